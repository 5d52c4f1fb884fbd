-- Retry a job (BullMQ's job.retry()): a fresh run with its attempts reset, back to inactive.
-- Only a failed job, unless forced; a forced retry of an active job revokes its owner token
-- first, so the running attempt's outcome is refused and its worker drops it on renewal.
-- ARGV: prefix, now, id, force ("1" or "0").
-- Returns 1 when re-queued, 0 when the job does not exist, or the job's state when refused.
local now, id, force = tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local key = jobkey(id)
local f = redis.call('HMGET', key, 'type', 'priority', 'state')
if not f[1] then return 0 end
local state = f[3] or ''
if state ~= 'failed' and not force then return state end
drop_lease(id)
redis.call('HDEL', STALLS, id)
redis.call('HSET', key, 'attempts', 0, 'progress', 0, 'updated_at', now)
set_state(id, f[1], state, 'inactive', tonumber(f[2]) or 0)
publish(id, 'enqueue', ',' .. jstr(f[1]))
return 1
