-- Change a job's priority everywhere its score is the priority (Kue's priority + update).
-- ARGV: prefix, now, id, priority. Returns 1, or 0 if the job does not exist.
local now, id, pri = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local key = jobkey(id)
local f = redis.call('HMGET', key, 'type', 'state', 'ttl')
if not f[1] then return 0 end
local z = zid(id)
redis.call('HSET', key, 'priority', pri, 'updated_at', now)
redis.call('ZADD', k('jobs'), pri, z)
if f[2] then
  redis.call('ZADD', k('jobs:' .. f[1] .. ':' .. f[2]), pri, z)
  if f[2] == 'active' then
    redis.call('ZADD', k('jobs:active'), active_score(pri, f[3], now), z)
  elseif f[2] ~= 'delayed' then
    redis.call('ZADD', k('jobs:' .. f[2]), pri, z)
  end
end
return 1
