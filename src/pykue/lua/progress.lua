-- Kue's Job#progress: store percent (and data), refresh the TTL deadline, publish.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, id, percent, data_json ("" = none)
local now, id, pct, data = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local key = jobkey(id)
redis.call('HSET', key, 'progress', pct, 'updated_at', now)
if data ~= '' then redis.call('HSET', key, 'progress_data', data) else data = 'null' end
local f = redis.call('HMGET', key, 'state', 'ttl')
local ttl = num_of(f[2])
if f[1] == 'active' and ttl and ttl > 0 then
  redis.call('ZADD', k('jobs:active'), now + ttl, zid(id))
end
publish(id, 'progress', ',' .. pct .. ',' .. data)
return 1
