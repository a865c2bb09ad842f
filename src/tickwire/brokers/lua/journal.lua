-- tickwire journals: bounded lists of records, newest first, paged by record id (brokers/base.py).
-- Keys of journal J: `<p>:journal:{J}` a sorted set (record id, scored by its insertion
-- number), `<p>:journal:{J}:r` a hash (record id -> "ms<TAB>JSON"), `<p>:journal:{J}:n` the
-- insertion counter. All three expire `ttl` ms after the last add (the retention; no longer
-- than the state TTL for a user's journal: brokers/base.py `journal_ttl_ms`).
--
-- ARGV: prefix, op, journal, then per op:
--   add    cap, retention_ms, ttl_ms, count, count x (id, ms, JSON)   -> 1
--   patch  id, JSON object of the fields to set                        -> {ms, JSON} or nil
--   get    id                                                          -> "ms<TAB>JSON" or nil
--   page   before ("" = newest), limit, since_ms                       -> flat id, "ms<TAB>JSON", ...

local op = ARGV[2]
local zk = P .. ':journal:' .. tag(ARGV[3])
local hk = zk .. ':r'
local nk = zk .. ':n'

local function record_ms(raw)
  return tonumber(string.match(raw, '^(%d+)'))
end

local function drop(id)
  redis.call('ZREM', zk, id)
  redis.call('HDEL', hk, id)
end

if op == 'add' then
  local cap, retention, ttl, count = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local newest = 0
  for i = 0, count - 1 do
    local id, ms, json = ARGV[8 + 3 * i], ARGV[9 + 3 * i], ARGV[10 + 3 * i]
    if redis.call('HEXISTS', hk, id) == 0 then
      redis.call('ZADD', zk, redis.call('INCR', nk), id)
    end
    redis.call('HSET', hk, id, ms .. '\t' .. json)
    if tonumber(ms) > newest then
      newest = tonumber(ms)
    end
  end
  local excess = redis.call('ZCARD', zk) - cap
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', zk, 0, excess - 1)) do
      drop(id)
    end
  end
  if retention > 0 then
    local cutoff = newest - retention
    while true do
      local oldest = redis.call('ZRANGE', zk, 0, 0)[1]
      if not oldest then
        break
      end
      local raw = redis.call('HGET', hk, oldest)
      if raw and record_ms(raw) >= cutoff then
        break
      end
      drop(oldest)
    end
  end
  if ttl > 0 then
    for _, key in ipairs({ zk, hk, nk }) do
      redis.call('PEXPIRE', key, ttl)
    end
  end
  return 1
end

if op == 'patch' then
  local raw = redis.call('HGET', hk, ARGV[4])
  if not raw then
    return false
  end
  local ms, json = string.match(raw, '^(%d+)\t(.*)$')
  local ks, vs = split_object(json)
  local pk, pv = split_object(ARGV[5])
  local out = join_object(merge_object(ks, vs, pk, pv))
  redis.call('HSET', hk, ARGV[4], ms .. '\t' .. out)
  return { ms, out }
end

if op == 'get' then
  return redis.call('HGET', hk, ARGV[4])
end

if op == 'page' then
  local before, limit, since = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  local top = '+inf'
  if before ~= '' then
    local score = redis.call('ZSCORE', zk, before)
    if not score then
      return {}
    end
    top = '(' .. score
  end
  local out = {}
  local offset = 0
  local taken = 0
  -- Records older than `since` are skipped (they go at the next add): read on past them.
  while taken < limit do
    local ids = redis.call('ZREVRANGEBYSCORE', zk, top, '-inf', 'LIMIT', offset, limit)
    if #ids == 0 then
      break
    end
    offset = offset + #ids
    for _, id in ipairs(ids) do
      local raw = redis.call('HGET', hk, id)
      if raw and record_ms(raw) >= since and taken < limit then
        out[#out + 1] = id
        out[#out + 1] = raw
        taken = taken + 1
      end
    end
  end
  return out
end

return redis.error_reply('TICKWIRE_JOURNAL unknown op ' .. tostring(op))
