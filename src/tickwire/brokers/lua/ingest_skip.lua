-- tickwire ingest: move the ingest cursor past an entry that could not be published (it
-- was invalid), unless it already is. ARGV: prefix, entry id. Returns 1 when moved.

local ck = P .. ':ingest:cursor'
local id = ARGV[2]
local cur = redis.call('GET', ck)
if cur then
  local ca, cb = string.match(cur, '^(%d+)-(%d+)$')
  local ia, ib = string.match(id, '^(%d+)-(%d+)$')
  ca, cb, ia, ib = tonumber(ca), tonumber(cb), tonumber(ia), tonumber(ib)
  if ia < ca or (ia == ca and ib <= cb) then
    return 0
  end
end
redis.call('SET', ck, id)
return 1
