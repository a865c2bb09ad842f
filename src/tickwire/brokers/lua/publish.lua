-- tickwire publish: stamp a batch atomically (offsets, history, state, strategies) and
-- fan it out on the `<prefix>:events` channel. Nothing here can fail half-way: every check
-- comes before the first write.
--
-- ARGV: prefix, ms, user_cap, public_cap, state_cap, buffer_ttl_ms, state_ttl_ms, nonce,
--       kinds ("orders,positions,..."), ingest_id ("" or the ingest entry this batch consumes),
--       count, batch: a MessagePack array of strings (one argument: cheaper to send than
--       thousands), per event:
--       log, type, tick ("1"/"0"), kind ("" = no state), key, strategy ("" = none),
--       item ("" = none: what its `seq` counts within, core/event.py `sequence_key`),
--       only_if name ("" = unconditional), only_if version,
--       npairs, then npairs x (key JSON, value JSON): the top-level fields of `data`;
--       writes: MessagePack array, per processor state written: log, name, expected version,
--       value JSON ("" deletes); index: MessagePack array, per change: set, member, "1"/"0";
--       trace: the publisher's correlation id ("" = none), passed on in the message.
-- Returns epoch, offset, tick, seq per event (flat; seq 0 for ticks; all 0 for a conditional
-- tick left out), or
-- the error TICKWIRE_CONFLICT (nothing written) when a write's state moved on.

local ms = ARGV[2]
local user_cap = tonumber(ARGV[3])
local public_cap = tonumber(ARGV[4])
local state_cap = tonumber(ARGV[5])
local buffer_ttl = tonumber(ARGV[6])
local state_ttl = tonumber(ARGV[7])
local nonce = ARGV[8]
local kinds = ARGV[9]
local ingest_id = ARGV[10]
local count = tonumber(ARGV[11])
local B = cmsgpack.unpack(ARGV[12])
local W = cmsgpack.unpack(ARGV[13])
local X = cmsgpack.unpack(ARGV[14])
local trace = ARGV[15] or ''

-- Processor state: one hash per log, field name -> "version<TAB>JSON".
local function stored_version(log, name)
  local cur = redis.call('HGET', log_base(log) .. ':ps', name)
  if not cur then
    return 0
  end
  return tonumber(string.match(cur, '^(%d+)'))
end

for i = 1, #W, 4 do
  if stored_version(W[i], W[i + 1]) ~= tonumber(W[i + 2]) then
    return redis.error_reply('TICKWIRE_CONFLICT ' .. W[i + 1] .. ' of ' .. W[i] .. ' changed since it was read')
  end
end

local function id_parts(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(a), tonumber(b)
end

if ingest_id ~= '' then
  local ck = P .. ':ingest:cursor'
  local cur = redis.call('GET', ck)
  if cur then
    local ca, cb = id_parts(cur)
    local ia, ib = id_parts(ingest_id)
    if ia < ca or (ia == ca and ib <= cb) then
      return redis.error_reply('TICKWIRE_DUPLICATE ingest entry ' .. ingest_id .. ' was already published')
    end
  end
  redis.call('SET', ck, ingest_id)
end

-- Keys of user logs get the state TTL once per batch, however many events touched them.
local expiring = {}
local function touch(m, key)
  if m.user and state_ttl > 0 then
    expiring[key] = true
  end
end

local function merge_state(m, kind, key, ks, vs, tick, typ)
  local hk = m.base .. ':state:' .. kind
  local cur = redis.call('HGET', hk, key)
  if cur then
    local ok, ov = split_object(cur)
    ks, vs = merge_object(ok, ov, ks, vs)
  end
  redis.call('HSET', hk, key, join_object(ks, vs))
  local rk = m.base .. ':recent:' .. kind
  local dk = m.base .. ':done:' .. kind
  local tk = m.base .. ':ticks'
  local tm = m.base .. ':tickmeta'
  local member = kind .. '\t' .. key
  redis.call('ZADD', rk, m.tick, key)
  if is_done(ks, vs) then
    redis.call('ZADD', dk, m.tick, key)
    touch(m, dk)
  else
    redis.call('ZREM', dk, key)
  end
  if tick then
    redis.call('ZADD', tk, m.tick, member)
    redis.call('HSET', tm, member, typ .. '\t' .. num(m.offset) .. '\t' .. ms)
    touch(m, tk)
    touch(m, tm)
  else
    redis.call('ZREM', tk, member)
    redis.call('HDEL', tm, member)
  end
  local n = 0
  if not cur then
    n = redis.call('HLEN', hk)  -- only a new key can take the hash over its bound
  end
  while n > state_cap do
    local victim = redis.call('ZRANGE', dk, 0, 0)[1]
    if not victim then
      victim = redis.call('ZRANGE', rk, 0, 0)[1]
    end
    if not victim then
      break
    end
    redis.call('HDEL', hk, victim)
    redis.call('ZREM', rk, victim)
    redis.call('ZREM', dk, victim)
    redis.call('ZREM', tk, kind .. '\t' .. victim)
    redis.call('HDEL', tm, kind .. '\t' .. victim)
    n = n - 1
  end
  touch(m, hk)
  touch(m, rk)
end

local logs = {}
local touched = {}
local reply = {}
local parts = {}

-- Stamp one event: counters, history, state, item owner, and its part of the message.
local function stamp(log, typ, flag, kind, key, strategy, item, ks, vs)
  local m = logs[log]
  if not m then
    m = open_log(log, nonce, kinds, state_ttl)
    logs[log] = m
    touched[#touched + 1] = m
  end
  local tick = flag == '1'
  m.tick = m.tick + 1
  if not tick then
    m.offset = m.offset + 1
  end
  local data = join_object(ks, vs)
  local seq = 0
  if not tick then
    local cap = public_cap
    if m.user then
      cap = user_cap
    end
    -- The event's number among the log's events of its sequence key (core/event.py).
    local counted = typ
    if item ~= '' then
      counted = typ .. ':' .. item
    end
    seq = redis.call('HINCRBY', m.mk, 'q:' .. counted, 1)
    local id = num(m.offset) .. '-' .. num(m.tick)
    if kind ~= '' then
      redis.call('XADD', m.base .. ':events', 'MAXLEN', cap, id, 'type', typ, 'data', data, 'ms', ms,
        'seq', seq, 'kind', kind, 'key', key)
    else
      redis.call('XADD', m.base .. ':events', 'MAXLEN', cap, id, 'type', typ, 'data', data, 'ms', ms,
        'seq', seq)
    end
    m.appended = true
  end
  if kind ~= '' then
    merge_state(m, kind, key, ks, vs, tick, typ)
  end
  if strategy ~= '' and m.user then
    local sk = P .. ':strategy:' .. tag(strategy)
    redis.call('SET', sk, m.user, 'NX')
    if state_ttl > 0 then
      redis.call('PEXPIRE', sk, state_ttl)
    end
  end
  reply[#reply + 1] = m.epoch
  reply[#reply + 1] = m.offset
  reply[#reply + 1] = m.tick
  reply[#reply + 1] = seq
  local state = 'null,null'
  if kind ~= '' then
    state = cjson.encode(kind) .. ',' .. cjson.encode(key)
  end
  local tick_flag = '0'
  if tick then
    tick_flag = '1'
  end
  parts[#parts + 1] = '[' .. cjson.encode(log) .. ',' .. num(m.epoch) .. ',' .. num(m.offset) .. ','
    .. num(m.tick) .. ',' .. ms .. ',' .. cjson.encode(typ) .. ',' .. tick_flag .. ',' .. state .. ','
    .. data .. ',' .. num(seq) .. ']'
end

local a = 1
for _ = 1, count do
  local log, typ, flag, kind, key, strategy = B[a], B[a + 1], B[a + 2], B[a + 3], B[a + 4], B[a + 5]
  local item, cond, cond_version = B[a + 6], B[a + 7], B[a + 8]
  local np = tonumber(B[a + 9])
  local ks, vs = {}, {}
  for j = 1, np do
    ks[j] = B[a + 8 + 2 * j]
    vs[j] = B[a + 9 + 2 * j]
  end
  a = a + 10 + 2 * np
  if cond ~= '' and stored_version(log, cond) ~= tonumber(cond_version) then
    reply[#reply + 1] = 0  -- a conditional tick whose state moved on: left out
    reply[#reply + 1] = 0
    reply[#reply + 1] = 0
    reply[#reply + 1] = 0
  else
    stamp(log, typ, flag, kind, key, strategy, item, ks, vs)
  end
end

for i = 1, #W, 4 do
  local log = W[i]
  if not logs[log] then
    local m = open_log(log, nonce, kinds, state_ttl)
    logs[log] = m
    touched[#touched + 1] = m
  end
  local hk = logs[log].base .. ':ps'
  if W[i + 3] == '' then
    redis.call('HDEL', hk, W[i + 1])
  else
    redis.call('HSET', hk, W[i + 1], num(tonumber(W[i + 2]) + 1) .. '\t' .. W[i + 3])
  end
  touch(logs[log], hk)
end
for i = 1, #X, 3 do
  if X[i + 2] == '1' then
    redis.call('SADD', P .. ':index:' .. tag(X[i]), X[i + 1])
  else
    redis.call('SREM', P .. ':index:' .. tag(X[i]), X[i + 1])
  end
end

for key in pairs(expiring) do
  redis.call('PEXPIRE', key, state_ttl)
end
for _, m in ipairs(touched) do
  redis.call('HSET', m.mk, 'offset', num(m.offset), 'tick', num(m.tick))
  if m.user then
    if state_ttl > 0 then
      redis.call('PEXPIRE', m.mk, state_ttl)
    end
    if m.appended then
      local sk = m.base .. ':events'
      if redis.call('ZCARD', P .. ':presence:' .. tag(m.user)) == 0 and redis.call('PTTL', sk) == -1 then
        expire_history(m.user, buffer_ttl)
      end
    end
  end
end

local head = '{"v":1,'
if trace ~= '' then
  head = head .. '"c":' .. cjson.encode(trace) .. ','
end
redis.call('PUBLISH', P .. ':events', head .. '"events":[' .. table.concat(parts, ',') .. ']}')
return reply
