-- tickwire leases (the ingest lease, and `Broker.lease`): the node holding one renews it;
-- another node takes it only once it expired (its holder died or lost Redis).
-- Called on its own (without common.lua): KEYS[1] the lease key ({p}:ingest:leader,
-- {p}:lease:{name}), ARGV: node id, lease ms. Returns 1 when this node holds the lease now,
-- else 0. A lease of 0 ms gives the lease up, if this node holds it (returns 0).

local key, node, ms = KEYS[1], ARGV[1], ARGV[2]
if tonumber(ms) <= 0 then
  if redis.call('GET', key) == node then
    redis.call('DEL', key)
  end
  return 0
end
if redis.call('GET', key) == node then
  redis.call('PEXPIRE', key, ms)
  return 1
end
if redis.call('SET', key, node, 'NX', 'PX', ms) then
  return 1
end
return 0
