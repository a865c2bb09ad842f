-- tickwire presence: who is connected where, for the cluster-wide per-user connection cap
-- and the user buffer TTL (a user's history expires once no node holds a connection).
-- ARGV: prefix, op ("open" | "close"), user, node, serial, cap, buffer_ttl_ms, then the
--       serials of this node's connections to forget first (the node's own cap closed them).
-- "open" returns the members ("node:serial") over the cap, oldest first; each one is also
-- announced on `<prefix>:control` so that the node holding it closes it.

local op, user, node, serial = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cap, buffer_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local pk = P .. ':presence:' .. tag(user)

local function drop(who)
  redis.call('ZREM', pk, who)
  local owner = string.match(who, '^(.*):%d+$')
  redis.call('SREM', P .. ':node:' .. tag(owner) .. ':conns', user .. '\t' .. who)
end

for i = 8, #ARGV do
  drop(node .. ':' .. ARGV[i])
end
local victims = {}
if op == 'open' then
  local who = node .. ':' .. serial
  redis.call('ZADD', pk, redis.call('INCR', P .. ':presence:seq'), who)
  redis.call('SADD', P .. ':node:' .. tag(node) .. ':conns', user .. '\t' .. who)
  redis.call('PERSIST', log_base('user:' .. user) .. ':events')
  local n = redis.call('ZCARD', pk)
  if n > cap then
    victims = redis.call('ZRANGE', pk, 0, n - cap - 1)
    for _, v in ipairs(victims) do
      drop(v)
      redis.call('PUBLISH', P .. ':control', cjson.encode({ t = 'evict', m = v, limit = cap }))
    end
  end
else
  drop(node .. ':' .. serial)
end
if redis.call('ZCARD', pk) == 0 then
  expire_history(user, buffer_ttl)
end
return victims
