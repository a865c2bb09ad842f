-- tickwire ingest: answer an ingest entry on its `reply` list, atomically: the key must be
-- a reply key of this deployment, `<prefix>:reply:<token>` (token: 1-64 of A-Z a-z 0-9 . _ -),
-- and a list or absent; then the answer is pushed and the list expires in `ttl_ms`.
-- Anything else (another application's key, a key of the layout, a key of another type) is
-- left exactly as it was.
-- ARGV: prefix, reply key, answer, ttl_ms. Returns 1 when answered, 0 when refused.

local key, answer, ttl = ARGV[2], ARGV[3], ARGV[4]
local head = P .. ':reply:'
if string.sub(key, 1, #head) ~= head then
  return 0
end
local token = string.sub(key, #head + 1)
if #token < 1 or #token > 64 or string.find(token, '[^A-Za-z0-9._%-]') then
  return 0
end
local kind = redis.call('TYPE', key)['ok']
if kind ~= 'none' and kind ~= 'list' then
  return 0
end
redis.call('LPUSH', key, answer)
redis.call('PEXPIRE', key, ttl)
return 1
