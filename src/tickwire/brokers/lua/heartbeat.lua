-- tickwire heartbeat: a node says it is alive; nodes silent for too long (kill -9, lost
-- network) are buried: their connections leave the presence sets, so the caps count only
-- live connections and the history of users left with none starts to expire.
-- ARGV: prefix, node, dead_after_ms, buffer_ttl_ms, leaving ("1": this node stops now).
-- Returns the number of nodes buried.

local node, dead_after, buffer_ttl, leaving = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local nodes = P .. ':nodes'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function bury(dead)
  local nk = P .. ':node:' .. tag(dead) .. ':conns'
  for _, entry in ipairs(redis.call('SMEMBERS', nk)) do
    local user, who = string.match(entry, '^(.*)\t([^\t]*)$')
    local pk = P .. ':presence:' .. tag(user)
    redis.call('ZREM', pk, who)
    if redis.call('ZCARD', pk) == 0 then
      expire_history(user, buffer_ttl)
    end
  end
  redis.call('DEL', nk)
  redis.call('ZREM', nodes, dead)
end

local buried = 0
if leaving then
  bury(node)
else
  redis.call('ZADD', nodes, now, node)
end
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', '(' .. num(now - dead_after))) do
  bury(dead)
  buried = buried + 1
end
return buried
