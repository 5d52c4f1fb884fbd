-- Complete a batch of jobs, each only if the caller still owns it (a second done(),
-- or a worker whose lease was reaped, changes nothing).
-- Everything that could raise is checked before the first write: the queue's own keys up
-- front (an error reply, nothing written); per job, a key that is no longer a hash (the lease
-- is dropped, 0) and per-type sets of the wrong type (skipped). A corrupt `attempts` restarts
-- at 1 rather than making HINCRBY fail half-way.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, n, then per job: id, token, duration_ms, result_json ("" = none)
-- Returns 1/0 per job.
local now, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local bad_keys = wrong_type({
  { OWNERS, 'hash' }, { STALLS, 'hash' }, { k('jobs'), 'zset' }, { k('stats:work-time'), 'string' },
  { k('jobs:inactive'), 'zset' }, { k('jobs:active'), 'zset' }, { k('jobs:complete'), 'zset' },
  { k('jobs:failed'), 'zset' }, { k('jobs:delayed'), 'zset' },
})
if bad_keys then return bad_keys end
local res, work = {}, 0
for j = 0, n - 1 do
  local id, token, dur, result = ARGV[4 + j * 4], ARGV[5 + j * 4], ARGV[6 + j * 4], ARGV[7 + j * 4]
  local key = jobkey(id)
  local f = redis.call('HGET', OWNERS, id) == token and is_a(held(worker_of(token)), 'set')
    and redis.pcall('HMGET', key, 'type', 'priority', 'removeOnComplete', 'state', 'attempts',
                                  'pykue_keep_complete', 'pykue_unique')
  if f and f.err then
    drop_lease(id, token)
    res[#res + 1] = 0
  elseif f then
    local jtype = writable_type(f[1], f[4], 'complete')
    local attempts = (int_of(f[5]) or 0) + 1  -- not HINCRBY: it errors on a corrupt count
    drop_lease(id, token)
    redis.call('HDEL', STALLS, id)
    if result ~= '' then
      redis.call('HSET', key, 'duration', dur, 'progress', 100, 'updated_at', now, 'state', 'complete',
                 'attempts', attempts, 'result', result)
    else
      redis.call('HSET', key, 'duration', dur, 'progress', 100, 'updated_at', now, 'state', 'complete',
                 'attempts', attempts)
    end
    set_state(id, jtype, f[4], 'complete', num_of(f[2]) or 0, nil, true)
    work = work + tonumber(dur)
    if result == '' then result = 'null' end
    publish(id, 'complete', ',' .. result .. ',null')
    free_unique(id, f[7])  -- issue 12: the key frees, and waiting dependents learn it
    release_dependents(id, 'complete', now)
    if f[3] == 'true' then
      remove_job(id)
      publish(id, 'remove', ',' .. jstr(f[1] or ''))
    elseif f[6] and jtype then
      retain(id, jtype, 'complete', f[6], now)  -- feata: remove_on_complete {age, count}
    end
    res[#res + 1] = 1
  else
    res[#res + 1] = 0
  end
end
if work > 0 then
  local before = redis.call('GET', k('stats:work-time'))
  if before and not int_of(before) then  -- INCRBY would raise after every write above
    redis.call('SET', k('stats:work-time'), work)
  else
    redis.call('INCRBY', k('stats:work-time'), work)
  end
end
return res
