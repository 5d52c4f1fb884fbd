-- Move a job to a state by hand (Kue's job.inactive()/complete()/..., the JSON API's
-- PUT /job/:id/state/:state). Any pykue lease on it is dropped.
-- ARGV: prefix, now, id, state. Returns 1, or 0 if the job does not exist.
local now, id, new = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local key = jobkey(id)
local f = redis.call('HMGET', key, 'type', 'priority', 'state', 'ttl', 'promote_at')
if not f[1] then return 0 end
drop_lease(id)
local pri = int_of(f[2]) or 0
local score = nil
if new == 'delayed' then score = int_of(f[5]) or now end
if new == 'active' then score = active_score(pri, f[4], now) end
if new == 'complete' then redis.call('HSET', key, 'progress', 100) end
if new == 'failed' then redis.call('HSET', key, 'failed_at', now) end
redis.call('HSET', key, 'updated_at', now)
set_state(id, f[1], f[3], new, pri, score)
if new == 'inactive' then publish(id, 'enqueue', ',' .. jstr(f[1])) end
return 1
