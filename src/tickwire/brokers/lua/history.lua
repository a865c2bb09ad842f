-- tickwire history: what a resume from a position gets, read atomically with the log's end.
-- ARGV: prefix, log, nonce, kinds, state_ttl_ms, has_after ("1"/"0"), after epoch, offset, tick,
-- since_ms ("" = none: also the values a tick changed before `after` but stamped at or after
-- that unix ms, newest first until an older one, at most SINCE_SCAN of them).
-- Returns {epoch, offset, tick}, reset reason ("" = none), stream entries, ticks
-- (ticks: {kind, key, tick, "type\toffset\tms", value JSON} per changed keyed value, in tick order).

local log, nonce, kinds, state_ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local m = open_log(log, nonce, kinds, state_ttl)
local sk = m.base .. ':events'
local head = { m.epoch, m.offset, m.tick }
if ARGV[6] ~= '1' then
  return { head, '', redis.call('XRANGE', sk, '-', '+'), {} }
end
local ae, ao, at = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
if ae ~= m.epoch then
  return { head, 'unknown_epoch', {}, {} }
end
if ao > m.offset or (ao == m.offset and at > m.tick) then
  return { head, 'unknown_position', {}, {} }
end
local first_offset = m.offset + 1
local first = redis.call('XRANGE', sk, '-', '+', 'COUNT', 1)
if first[1] then
  first_offset = tonumber(string.match(first[1][1], '^(%d+)'))
end
if ao + 1 < first_offset then
  return { head, 'history_trimmed', {}, {} }
end
local events = redis.call('XRANGE', sk, num(ao + 1) .. '-0', '+')
local ticks = {}
local since = tonumber(ARGV[10] or '')
if since then
  local SINCE_SCAN = 1000
  local older = redis.call('ZREVRANGEBYSCORE', m.base .. ':ticks', '(' .. num(at), '-inf', 'WITHSCORES', 'LIMIT', 0,
    SINCE_SCAN)
  local late = {}
  for i = 1, #older, 2 do
    local member = older[i]
    local meta = redis.call('HGET', m.base .. ':tickmeta', member)
    if meta then
      if tonumber(string.match(meta, '\t(%d+)$')) < since then
        break
      end
      local kind, key = string.match(member, '^([^\t]*)\t(.*)$')
      local value = redis.call('HGET', m.base .. ':state:' .. kind, key)
      if value then
        late[#late + 1] = { kind, key, older[i + 1], meta, value }
      end
    end
  end
  for i = #late, 1, -1 do
    ticks[#ticks + 1] = late[i]
  end
end
local changed = redis.call('ZRANGEBYSCORE', m.base .. ':ticks', '(' .. num(at), '+inf', 'WITHSCORES')
for i = 1, #changed, 2 do
  local member = changed[i]
  local kind, key = string.match(member, '^([^\t]*)\t(.*)$')
  local value = redis.call('HGET', m.base .. ':state:' .. kind, key)
  local meta = redis.call('HGET', m.base .. ':tickmeta', member)
  if value and meta then
    ticks[#ticks + 1] = { kind, key, changed[i + 1], meta, value }
  end
end
return { head, '', events, ticks }
