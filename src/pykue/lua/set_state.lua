-- Move a job to a state by hand (Kue's job.inactive()/complete()/..., the JSON API's
-- PUT /job/:id/state/:state). Any pykue lease on it is dropped first, so the owner token of
-- a running attempt is revoked: that attempt's complete/fail is refused.
-- Checked before the first write: a known target state, a job key that is a hash, and sets
-- of the right types (a per-type set of the wrong type is skipped, a global one refused).
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, id, state, mode: "" Kue's shortcuts (job.complete() sets progress 100,
--       job.failed() sets failed_at), "state" Kue's bare job.state(s) as kue.app's PUT uses it.
-- Issue 12: moving a job to complete or failed releases the jobs waiting for it, as a
-- worker's outcome would (the sets they move through are checked first).
-- Returns 1, or 0 if the job does not exist.
local now, id, new, bare = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5] == 'state'
if not STATES[new] then return redis.error_reply('pykue: unknown state ' .. shown(new)) end
local key = jobkey(id)
local f = redis.pcall('HMGET', key, 'type', 'priority', 'state', 'ttl', 'promote_at')
if f.err or not f[1] then return 0 end
local bad_keys = wrong_type({
  { OWNERS, 'hash' }, { k('jobs:' .. new), 'zset' }, { k('jobs:' .. (STATES[f[3] or ''] and f[3] or new)), 'zset' },
})
if bad_keys then return bad_keys end
local waited = (new == 'complete' or new == 'failed') and redis.call('EXISTS', dependents_key(id)) == 1
if waited then
  bad_keys = wrong_type({ { k('jobs:inactive'), 'zset' }, { k('jobs:failed'), 'zset' }, { k('jobs:delayed'), 'zset' } })
  if bad_keys then return bad_keys end
end
local jtype = writable_type(f[1], f[3], new)
if jtype and new == 'inactive' and not is_a(k(jtype .. ':jobs'), 'list') then jtype = nil end
local owner = redis.call('HGET', OWNERS, id)
if owner and not is_a(held(worker_of(owner)), 'set') then return redis.error_reply('pykue: held set is not a set') end
drop_lease(id)
local pri = num_of(f[2]) or 0
local score = nil
if new == 'delayed' then score = num_of(f[5]) or now end
if new == 'active' then score = active_score(pri, f[4], now) end
if new == 'complete' and not bare then redis.call('HSET', key, 'progress', 100) end
if new == 'failed' and not bare then redis.call('HSET', key, 'failed_at', now) end
redis.call('HSET', key, 'updated_at', now)
set_state(id, jtype, f[3], new, pri, score)
if new == 'inactive' then publish(id, 'enqueue', ',' .. jstr(f[1])) end
if waited then release_dependents(id, new, now) end
return 1
