-- Retry a job (BullMQ's job.retry()): a fresh run with its attempts reset, back to inactive.
-- Only a failed job, unless forced; a forced retry of an active job revokes its owner token
-- first, so the running attempt's outcome is refused and its worker drops it on renewal.
-- Checked before the first write, as set_state.lua does: the job key is a hash, the lease and
-- state keys have their types (a per-type set of the wrong type is skipped, a global one refused).
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, id, force ("1" or "0").
-- Returns 1 when re-queued, 0 when the job does not exist, or the job's state when refused.
local now, id, force = tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local key = jobkey(id)
local f = redis.pcall('HMGET', key, 'type', 'priority', 'state')
if f.err or not f[1] then return 0 end
local state = f[3] or ''
if state ~= 'failed' and not force then return state end
-- Everything below must not raise once it writes (see _lib.lua): check the keys first.
local bad_keys = wrong_type({
  { OWNERS, 'hash' }, { STALLS, 'hash' }, { k('jobs:inactive'), 'zset' },
  { k('jobs:' .. (STATES[state] and state or 'inactive')), 'zset' },
})
if bad_keys then return bad_keys end
local jtype = writable_type(f[1], state, 'inactive')
if jtype and not is_a(k(jtype .. ':jobs'), 'list') then jtype = nil end
local owner = redis.call('HGET', OWNERS, id)
if owner and not is_a(held(worker_of(owner)), 'set') then return redis.error_reply('pykue: held set is not a set') end
drop_lease(id)
redis.call('HDEL', STALLS, id)
redis.call('HSET', key, 'attempts', 0, 'progress', 0, 'updated_at', now)
set_state(id, jtype, state, 'inactive', num_of(f[2]) or 0)
publish(id, 'enqueue', ',' .. jstr(f[1]))
return 1
