-- tickwire snapshot: current keyed values (oldest change first) and the log's end, atomically.
-- ARGV: prefix, log, nonce, kinds (all, for a new epoch), state_ttl_ms, then the kinds wanted.
-- Returns {epoch, offset, tick}, then one JSON array of values per kind wanted.

local log, nonce, kinds, state_ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local m = open_log(log, nonce, kinds, state_ttl)
local out = { { m.epoch, m.offset, m.tick } }
for i = 6, #ARGV do
  local kind = ARGV[i]
  local keys = redis.call('ZRANGE', m.base .. ':recent:' .. kind, 0, -1)
  local values = {}
  for s = 1, #keys, 500 do
    local chunk = {}
    for j = s, math.min(s + 499, #keys) do
      chunk[#chunk + 1] = keys[j]
    end
    local got = redis.call('HMGET', m.base .. ':state:' .. kind, unpack(chunk))
    for _, v in ipairs(got) do
      if v then
        values[#values + 1] = v
      end
    end
  end
  out[#out + 1] = '[' .. table.concat(values, ',') .. ']'
end
return out
