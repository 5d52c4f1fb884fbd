-- Set a claimed job aside as failed for good: its record cannot be read (the worker found a
-- byte that is not UTF-8), so no handler may run it and no retry would fare better. Only
-- while the caller still owns it; validated before the first write like every transition.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, id, token, reason (ASCII, naming the field and what is wrong)
-- Returns 1, or 0 if the caller no longer owns the job.
local now, id, token, reason = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local bad_keys = wrong_type({
  { OWNERS, 'hash' }, { STALLS, 'hash' }, { k('jobs:active'), 'zset' }, { k('jobs:failed'), 'zset' },
})
if bad_keys then return bad_keys end
if redis.call('HGET', OWNERS, id) ~= token or not is_a(held(worker_of(token)), 'set') then return 0 end
local f = redis.pcall('HMGET', jobkey(id), 'type', 'priority', 'state')
if f.err or f[3] ~= 'active' then
  drop_lease(id, token)
  return 0
end
local msg = 'pykue: ' .. reason .. '; set aside'
drop_lease(id, token)
redis.call('HDEL', STALLS, id)
redis.call('HSET', jobkey(id), 'error', msg, 'failed_at', now, 'updated_at', now)
set_state(id, writable_type(f[1], 'active', 'failed'), 'active', 'failed', num_of(f[2]) or 0)
publish(id, 'failed', ',' .. jstr(msg) .. ',null')
return 1
