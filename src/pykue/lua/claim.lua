-- Claim up to `count` inactive jobs of one type for a worker, atomically: the job leaves
-- inactive, becomes active with an owner token and a lease, and its wake-up token is used.
-- Stray index entries are dropped. A bad record (no type or one that is not UTF-8, an unknown
-- state, a corrupt number, a key that is not a hash, an id that is not a number) is set
-- aside, never returned: failed with an error naming the field and reason when it has a
-- hash to carry that, else only unindexed; the batch goes on either way. Other bytes that
-- are not UTF-8 are the worker's to find: this reply is read undecoded (see _scripts.py
-- UNDECODED) and the worker sets such a record aside with set_aside.lua.
-- The queue's own keys are type-checked first, so nothing below can raise after a write.
-- Cost: the batch is popped with ZPOPMIN count (again for as many as were stale); per job
-- one HGETALL, one HSET and Kue's start event; its index and lease writes are gathered into
-- one call per key (_lib.lua's gathered), with the owners hash and active sets kept as
-- tables (WIDE).
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, type, count, lease_ms, token_base ("<worker>:<claim>"), worker_id,
--       tokens_already_taken
-- Issue 12's rate limit: with a limit "<max>:<per_ms>" for the type in pykue:limits, at most
-- max jobs are claimed per window fleet-wide (pykue:limit:<type> counts them, expiring with
-- the window, BullMQ's limiter); when the window is used up the reply ends with the triple
-- "#limit", "", <ms until it reopens>, and the worker waits that long instead of spinning.
-- Returns 'paused' (nothing claimed) while the type is in P:pykue:paused (queue.pause).
-- Otherwise a flat list of triples. Claimed: id, token, HGETALL (as it was before the claim;
-- the caller applies state, started_at, updated_at and workerId itself). Set aside: the
-- zset member (quoted), "", the reason (for the worker's log).
local now, jtype, count = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local lease, base, wid, taken = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8])
local tset = k('jobs:' .. jtype .. ':inactive')
local bad_keys = wrong_type({
  tset, 'zset', k('jobs:inactive'), 'zset', k('jobs:active'), 'zset', k('jobs'), 'zset',
  k('jobs:' .. jtype .. ':active'), 'zset', k('jobs:failed'), 'zset',
  k('jobs:' .. jtype .. ':failed'), 'zset', OWNERS, 'hash', held(worker_of(base)), 'set',
  WORKERS, 'zset', k(jtype .. ':jobs'), 'list', k('pykue:paused'), 'set',
})
if bad_keys then return bad_keys end
if redis.call('SISMEMBER', k('pykue:paused'), jtype) == 1 then return 'paused' end  -- queue.pause(type)
local LIMITS, lkey = k('pykue:limits'), k('pykue:limit:' .. jtype)
local limit_max, limit_per, limit_used
if is_a(LIMITS, 'hash') and is_a(lkey, 'string') then
  local m, p = string.match(redis.call('HGET', LIMITS, jtype) or '', '^(%d+):(%d+)$')
  limit_max, limit_per = tonumber(m), tonumber(p)
  if limit_max and limit_per and limit_per > 0 then
    limit_used = int_of(redis.call('GET', lkey))
    count = math.max(0, math.min(count, limit_max - (limit_used or 0)))
  else
    limit_max = nil
  end
end
local start_tail = ',' .. jstr(jtype) .. ',null'
local out, claimed = {}, 0

local function aside(z, reason)
  out[#out + 1] = shown(z)
  out[#out + 1] = ''
  out[#out + 1] = reason
end

-- Failed for good with the reason, in the failed sets of its own (checked) type only.
local function set_aside(id, z, f, reason)
  local msg = 'pykue: ' .. reason .. '; set aside'
  local pri = num_of(f.priority) or 0
  redis.call('ZREM', k('jobs:inactive'), z)
  redis.call('HSET', jobkey(id), 'state', 'failed', 'error', msg, 'failed_at', now, 'updated_at', now)
  redis.call('ZADD', k('jobs:failed'), pri, z)
  if f.type == jtype then redis.call('ZADD', k('jobs:' .. jtype .. ':failed'), pri, z) end
  publish(id, 'failed', ',' .. jstr(msg) .. ',null')
  aside(z, reason)
end

-- The score of a claimed job in jobs:active (Kue's: now + ttl, else -|priority|), and its
-- priority as sent: strings, as Redis would format numbers from Lua with printf.
local function active_scores(f)
  local pri = num_of(f.priority) and f.priority or '0'
  local ttl = num_of(f.ttl)
  if ttl and ttl > 0 then return string.format('%.17g', now + ttl), pri end
  if pri == '0' or string.sub(pri, 1, 1) == '-' then return pri, pri end
  return '-' .. pri, pri
end

local ACTIVE, TYPE_ACTIVE, INACTIVE = k('jobs:active'), k('jobs:' .. jtype .. ':active'), k('jobs:inactive')
local job_fields = { 'HSET', '', 'state', 'active', 'started_at', ARGV[2], 'updated_at', ARGV[2], 'workerId', wid }
local left_inactive, active, type_active = gathered('ZREM', INACTIVE), gathered('ZADD', ACTIVE),
  gathered('ZADD', TYPE_ACTIVE)
local owners, held_ids = gathered('HSET', OWNERS), gathered('SADD', held(worker_of(base)))

local function claim_one(id, key, z, f, all)
  claimed = claimed + 1
  local score, pri = active_scores(f)
  local token = base .. ':' .. string.format('%d', claimed)
  if claimed == 1 then  -- the keys written per running job, as tables (see WIDE)
    active[3], active[4], type_active[3], type_active[4], owners[3], owners[4] = '0', WIDE, '0', WIDE, WIDE, ''
  end
  job_fields[2] = key
  redis.call(unpack(job_fields))
  local n, m = #active, #owners
  left_inactive[#left_inactive + 1] = z
  active[n + 1], active[n + 2], type_active[n + 1], type_active[n + 2] = score, z, pri, z
  owners[m + 1], owners[m + 2] = id, token
  held_ids[#held_ids + 1] = id
  publish(id, 'start', start_tail)
  out[#out + 1] = id
  out[#out + 1] = token
  out[#out + 1] = all
end

-- A job hash as field -> value, in one table reused job after job: a new table per job would
-- be rehashed at each doubling of its ~12 fields. Valid until the next call.
local f, f_all = {}, {}
local function fields(all)
  for i = 1, #f_all, 2 do f[f_all[i]] = nil end
  for i = 1, #all, 2 do f[all[i]] = all[i + 1] end
  f_all = all
  return f
end

-- One popped member: claimed, set aside, or (a stale entry) dropped.
local function take(z)
  local id = string.sub(z, (string.find(z, '|', 1, true) or 0) + 1)
  local key = jobkey(id)
  local all = not (#id <= 16 and zid(id) == z and string.find(id, '^%d+$')) and 'bad id'
    or redis.pcall('HGETALL', key)
  if all == 'bad id' then
    redis.call('ZREM', INACTIVE, z)
    redis.call('ZREM', k('jobs'), z)
    aside(z, 'member ' .. shown(z) .. ' of ' .. tset .. ' is not a job id; removed from the index')
  elseif all.err then
    redis.call('ZREM', INACTIVE, z)
    redis.call('ZREM', k('jobs'), z)
    aside(z, key .. ' is a ' .. redis.call('TYPE', key).ok .. ', not a job hash; unindexed')
  elseif #all == 0 then
    redis.call('ZREM', k('jobs'), z)
  else
    local f = fields(all)
    local problem = record_problem(f)
    -- A stale entry (the job is in another state, or of another type) is only dropped.
    local ours = (f.state == 'inactive' or not STATES[f.state or ''])
      and (f.type == jtype or (f.type or '') == '' or not utf8_ok(f.type))
    if problem and ours then
      set_aside(id, z, f, problem)
    elseif not problem and f.state == 'inactive' and f.type == jtype then
      claim_one(id, key, z, f, all)
    end
  end
end

-- Popped in one call per round; a round's stale entries leave room for another.
while claimed < count do
  local popped = redis.call('ZPOPMIN', tset, count - claimed)
  if #popped == 0 then break end
  for i = 1, #popped, 2 do take(popped[i]) end
end
write_gathered()
if claimed > 0 then
  redis.call('ZREM', ACTIVE, WIDE)
  redis.call('ZREM', TYPE_ACTIVE, WIDE)
  redis.call('HDEL', OWNERS, WIDE)
end
if claimed > 0 then redis.call('ZADD', WORKERS, now + lease, worker_of(base)) end
if limit_max then
  if claimed > 0 and limit_used then
    redis.call('INCRBY', lkey, claimed)  -- keeps the window's expiry
  elseif claimed > 0 then
    redis.call('SET', lkey, claimed, 'PX', limit_per)
  end
  if (limit_used or 0) + claimed >= limit_max then
    local wait = redis.call('PTTL', lkey)
    if wait == -1 then redis.call('PEXPIRE', lkey, limit_per) end  -- a counter left without a window
    if wait < 0 then wait = limit_per end
    out[#out + 1] = '#limit'
    out[#out + 1] = ''
    out[#out + 1] = wait
  end
end
local pop = claimed - taken
if pop > 0 then redis.call('LPOP', k(jtype .. ':jobs'), pop) end
return out
