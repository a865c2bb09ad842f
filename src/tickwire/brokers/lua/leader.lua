-- tickwire ingest lease: the node holding it reads the ingest stream. Renewed by its holder,
-- taken by another node only once it expired (its holder died or lost Redis).
-- Called on its own (without common.lua): KEYS[1] the lease key ({p}:ingest:leader),
-- ARGV: node id, lease ms. Returns 1 when this node holds the lease now, else 0.

local key, node, ms = KEYS[1], ARGV[1], ARGV[2]
if redis.call('GET', key) == node then
  redis.call('PEXPIRE', key, ms)
  return 1
end
if redis.call('SET', key, node, 'NX', 'PX', ms) then
  return 1
end
return 0
