-- tickwire: helpers shared by every script (the broker prepends this file to each one).
-- ARGV[1] is always the key prefix (default "tw"). Key layout: docs/redis.md.

local P = ARGV[1]

-- A value that is not a fixed word of the layout (log name, user, strategy id, index
-- name, address, node id) as one key segment: `{value}` with its `%`, `{` and `}`
-- percent-encoded, so no value can produce a fixed key or another kind of key
-- (scripts.py `tag` is the same).
local function tag(value)
  if string.find(value, '[%%{}]') then
    value = string.gsub(value, '[%%{}]', { ['%'] = '%25', ['{'] = '%7B', ['}'] = '%7D' })
  end
  return '{' .. value .. '}'
end

-- What every key of a log starts with.
local function log_base(log)
  return P .. ':log:' .. tag(log)
end

-- An integer as text, without Lua's "1e+15" notation (exact below 2^53).
local function num(x)
  return string.format('%.0f', x)
end

local function log_user(log)
  if string.sub(log, 1, 5) == 'user:' then
    return string.sub(log, 6)
  end
  return nil
end

-- A user's history expires `ttl` ms after their last connection anywhere closed (SPEC 4).
local function expire_history(user, ttl)
  local key = log_base('user:' .. user) .. ':events'
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  else
    redis.call('DEL', key)
  end
end

-- A new log's epoch: random (the nonce is), and different for every log a script opens
-- with the same nonce (52 bits, exact in Lua's numbers; 0 is not an epoch).
local function new_epoch(nonce, log)
  local epoch = tonumber(string.sub(redis.sha1hex(nonce .. '\t' .. log), 1, 13), 16)
  if epoch == 0 then
    epoch = 1
  end
  return epoch
end

-- The counters of a log, creating them with a new epoch when nothing is known of it:
-- whatever an older epoch left behind (history, state) goes with it, so ids of the old
-- epoch can only ever get an explicit reset.
local function open_log(log, nonce, kinds, state_ttl)
  local base = log_base(log)
  local mk = base .. ':meta'
  local v = redis.call('HMGET', mk, 'epoch', 'offset', 'tick')
  local m = { base = base, mk = mk, user = log_user(log) }
  if v[1] then
    m.epoch = tonumber(v[1])
    m.offset = tonumber(v[2])
    m.tick = tonumber(v[3])
    m.fresh = false
  else
    local doomed = { base .. ':events', base .. ':ticks', base .. ':tickmeta', base .. ':ps' }
    for kind in string.gmatch(kinds, '[^,]+') do
      doomed[#doomed + 1] = base .. ':state:' .. kind
      doomed[#doomed + 1] = base .. ':recent:' .. kind
      doomed[#doomed + 1] = base .. ':done:' .. kind
    end
    redis.call('DEL', unpack(doomed))
    m.epoch = new_epoch(nonce, log)
    m.offset = 0
    m.tick = 0
    m.fresh = true
    redis.call('HSET', mk, 'epoch', num(m.epoch), 'offset', '0', 'tick', '0')
    if m.user and state_ttl > 0 then
      redis.call('PEXPIRE', mk, state_ttl)
    end
  end
  return m
end

-- Compact JSON (as orjson writes it) is split at the top level only: values stay the exact
-- text the publisher encoded, so no number is ever re-encoded with Lua's precision.
local function scan_string(s, i)
  local p = i + 1
  while true do
    local q = string.find(s, '["\\]', p)
    if string.sub(s, q, q) == '\\' then
      p = q + 2
    else
      return q
    end
  end
end

local function scan_value(s, i)
  local c = string.sub(s, i, i)
  if c == '"' then
    return scan_string(s, i)
  end
  if c == '{' or c == '[' then
    local depth = 0
    local p = i
    while true do
      local q = string.find(s, '[%[%]{}"]', p)
      local d = string.sub(s, q, q)
      if d == '"' then
        p = scan_string(s, q) + 1
      elseif d == '{' or d == '[' then
        depth = depth + 1
        p = q + 1
      else
        depth = depth - 1
        if depth == 0 then
          return q
        end
        p = q + 1
      end
    end
  end
  return string.find(s, '[,}]', i) - 1
end

-- '{"a":1,"b":[2]}' -> {'"a"', '"b"'}, {'1', '[2]'}
local function split_object(s)
  local ks, vs = {}, {}
  local n = #s
  local i = 2
  if string.sub(s, 2, 2) == '}' then
    return ks, vs
  end
  while i <= n do
    local j = scan_string(s, i)
    ks[#ks + 1] = string.sub(s, i, j)
    i = j + 2
    local k = scan_value(s, i)
    vs[#vs + 1] = string.sub(s, i, k)
    i = k + 1
    if string.sub(s, i, i) ~= ',' then
      break
    end
    i = i + 1
  end
  return ks, vs
end

local function join_object(ks, vs)
  local parts = {}
  for i = 1, #ks do
    parts[i] = ks[i] .. ':' .. vs[i]
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- The fields of (ks, vs) with those of (pk, pv) set over them (split_object's lists, changed).
local function merge_object(ks, vs, pk, pv)
  local index = {}
  for i = 1, #ks do
    index[ks[i]] = i
  end
  for j = 1, #pk do
    local i = index[pk[j]]
    if i then
      vs[i] = pv[j]
    else
      ks[#ks + 1] = pk[j]
      vs[#vs + 1] = pv[j]
      index[pk[j]] = #ks
    end
  end
  return ks, vs
end

local TERMINAL = { filled = true, canceled = true, cancelled = true, rejected = true, expired = true }

-- Finished entries (terminal orders, closed positions) are evicted first (core/state.py).
local function is_done(ks, vs)
  for i = 1, #ks do
    local k, v = ks[i], vs[i]
    if k == '"status"' and string.sub(v, 1, 1) == '"' then
      if TERMINAL[string.lower(string.sub(v, 2, -2))] then
        return true
      end
    elseif k == '"quantity"' and tonumber(v) == 0 then
      return true
    end
  end
  return false
end
