-- Complete a batch of jobs, each only if the caller still owns it (a second done(),
-- or a worker whose lease was reaped, changes nothing).
-- Everything that could raise is checked before the first write: the queue's own keys up
-- front (an error reply, nothing written); per job, a key that is no longer a hash (the lease
-- is dropped, 0) and per-type sets of the wrong type (skipped). A corrupt `attempts` restarts
-- at 1 rather than making HINCRBY fail half-way.
-- Cost: the owner tokens are read and the dependents looked for once per batch; a plain job
-- (no dependents, unique key, removal or retention policy) costs one HMGET, one HSET and one
-- PUBLISH, its lease and index writes gathered into one call per key for the batch. A job with
-- side effects on other jobs takes the step-by-step path, after the gathered writes are sent.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, n, then per job: id, token, duration_ms, result_json ("" = none)
-- Returns 1/0 per job.
local now_s, n = ARGV[2], tonumber(ARGV[3])
local now = tonumber(now_s)
local bad_keys = wrong_type({
  { OWNERS, 'hash' }, { STALLS, 'hash' }, { k('jobs'), 'zset' }, { k('stats:work-time'), 'string' },
  { k('jobs:inactive'), 'zset' }, { k('jobs:active'), 'zset' }, { k('jobs:complete'), 'zset' },
  { k('jobs:failed'), 'zset' }, { k('jobs:delayed'), 'zset' },
})
if bad_keys then return bad_keys end
if n == 0 then return {} end

-- The batch's owner tokens, and whether any of its jobs has dependents, in one read each.
local ids, dkeys, owners, has_dependents = {}, {}, {}, false
for j = 1, n do
  ids[j] = ARGV[j * 4]
  dkeys[j] = dependents_key(ids[j])
end
for i = 1, n, 4000 do  -- unpack stops near 8,000 values
  local last = math.min(i + 3999, n)
  local got = redis.call('HMGET', OWNERS, unpack(ids, i, last))
  for j = 1, #got do owners[i + j - 1] = got[j] end
  has_dependents = has_dependents or redis.call('EXISTS', unpack(dkeys, i, last)) > 0
end

local COMPLETE_SET = k('jobs:complete')
local ATTEMPTS = { '1', '2', '3', '4', '5', '6', '7', '8', '9', '10' }
-- Kue's Job#state(complete) and the lease drop, gathered for the batch's flush.
local function complete_plain(id, token, jtype, old, priority)
  local z = zid(id)
  later('SREM', held(worker_of(token)), id)
  later('HDEL', OWNERS, id)
  later('HDEL', STALLS, id)
  if old and STATES[old] and old ~= 'complete' then
    later('ZREM', set_key(nil, old), z)
    if jtype then later('ZREM', set_key(jtype, old), z) end
  end
  local pri = num_of(priority) and priority or '0'
  later('ZADD', COMPLETE_SET, pri, z)
  if jtype then later('ZADD', set_key(jtype, 'complete'), pri, z) end
end

-- The same step by step, then what the job's completion does to other jobs.
local function complete_with_effects(id, token, f)
  local jtype = writable_type(f[1], f[4], 'complete')
  drop_lease(id, token)
  redis.call('HDEL', STALLS, id)
  set_state(id, jtype, f[4], 'complete', num_of(f[2]) or 0, nil, true)
  free_unique(id, f[7])  -- issue 12: the key frees, and waiting dependents learn it
  release_dependents(id, 'complete', now)
  if f[3] == 'true' then
    remove_job(id)
    publish(id, 'remove', ',' .. jstr(f[1] or ''))
  elseif f[6] and jtype then
    retain(id, jtype, 'complete', f[6], now)  -- feata: remove_on_complete {age, count}
  end
end

local res, work, seen, exact, wrote = {}, 0, {}, false, false
for j = 1, n do
  local id, token, dur, result = ids[j], ARGV[j * 4 + 1], ARGV[j * 4 + 2], ARGV[j * 4 + 3]
  local key = jobkey(id)
  -- After a job's effects on others (removals), the batch's read of the owners may be stale.
  local owner = owners[j]
  if exact then owner = redis.call('HGET', OWNERS, id) end
  local f = not seen[id] and owner == token and is_a(held(worker_of(token)), 'set')
    and redis.pcall('HMGET', key, 'type', 'priority', 'removeOnComplete', 'state', 'attempts',
                                  'pykue_keep_complete', 'pykue_unique')
  if f and f.err then
    drop_lease(id, token)
    seen[id] = true
    res[j] = 0
  elseif f then
    -- The first write may not grow memory: a full Redis still takes a completion (see oom_pass).
    if not wrote then oom_pass() wrote = true end
    local attempts = (int_of(f[5]) or 0) + 1  -- not HINCRBY: it errors on a corrupt count
    if result ~= '' then
      redis.call('HSET', key, 'duration', dur, 'progress', '100', 'updated_at', now_s, 'state', 'complete',
                 'attempts', ATTEMPTS[attempts] or string.format('%d', attempts), 'result', result)
    else
      redis.call('HSET', key, 'duration', dur, 'progress', '100', 'updated_at', now_s, 'state', 'complete',
                 'attempts', ATTEMPTS[attempts] or string.format('%d', attempts))
      result = 'null'
    end
    work = work + tonumber(dur)
    publish(id, 'complete', ',' .. result .. ',null')
    if has_dependents or f[3] == 'true' or f[6] or (f[7] and f[7] ~= '') then
      flush()
      complete_with_effects(id, token, f)
      exact = true
    else
      complete_plain(id, token, writable_type(f[1], f[4], 'complete'), f[4], f[2])
    end
    seen[id] = true
    res[j] = 1
  else
    res[j] = 0
  end
end
flush()
if work > 0 then
  local before = redis.call('GET', k('stats:work-time'))
  if before and not int_of(before) then  -- INCRBY would raise after every write above
    redis.call('SET', k('stats:work-time'), work)
  else
    redis.call('INCRBY', k('stats:work-time'), work)
  end
end
return res
