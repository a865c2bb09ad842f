-- tickwire connect rate: attempts per client address in a sliding window, shared by every
-- node. Refused attempts count too; at most 2 x limit timestamps are kept per address.
-- ARGV: prefix, address, limit, window_ms, nonce (unique per attempt).
-- Returns -1 when allowed, else milliseconds until an attempt will be allowed again.

local addr, limit, window, nonce = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local key = P .. ':rate:' .. tag(addr)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', num(now - window))
redis.call('ZADD', key, now, nonce)
local n = redis.call('ZCARD', key)
if n > 2 * limit then
  redis.call('ZREMRANGEBYRANK', key, 0, n - 2 * limit - 1)
  n = 2 * limit
end
redis.call('PEXPIRE', key, window)
if n > limit then
  local oldest = redis.call('ZRANGE', key, n - limit - 1, n - limit - 1, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + window - now
  if wait < 0 then
    wait = 0
  end
  return wait
end
return -1
