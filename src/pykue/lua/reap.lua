-- Return the jobs of dead workers (lease expired) to inactive. A crash is not the
-- handler's failure, so attempts are untouched; a job that stalls more than
-- max_stalled times is failed for good.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, max_stalled, limit (workers). Returns {requeued, failed}.
local now, max_stalled, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local bad_keys = wrong_type({
  { WORKERS, 'zset' }, { OWNERS, 'hash' }, { STALLS, 'hash' },
  { k('jobs:active'), 'zset' }, { k('jobs:inactive'), 'zset' }, { k('jobs:failed'), 'zset' },
})
if bad_keys then return bad_keys end
local dead = redis.call('ZRANGEBYSCORE', WORKERS, 0, now, 'LIMIT', 0, limit)
local orphans = {}
for _, worker in ipairs(dead) do
  for _, id in ipairs(redis.call('SMEMBERS', held(worker))) do
    local token = redis.call('HGET', OWNERS, id)
    if token and worker_of(token) == worker then
      redis.call('HDEL', OWNERS, id)
      orphans[#orphans + 1] = id
    end
  end
  redis.call('DEL', held(worker))
  redis.call('ZREM', WORKERS, worker)
end
local requeued, failed = 0, 0
for _, id in ipairs(orphans) do
  local key = jobkey(id)
  -- no error after the writes above
  local f = redis.pcall('HMGET', key, 'state', 'type', 'priority', 'attempts', 'failed_at')
  if not f.err and f[1] == 'active' and writable_type(f[2], 'active', 'inactive')
      and writable_type(f[2], 'failed', 'failed') and is_a(k(f[2] .. ':jobs'), 'list') then
    local stalls = count_stall(id, stall_run(f[4], f[5]))
    local pri = num_of(f[3]) or 0
    if stalls > max_stalled then
      local msg = 'job stalled more than allowable limit'
      redis.call('HSET', key, 'error', msg, 'failed_at', now, 'updated_at', now)
      redis.call('RPUSH', key .. ':log', msg)
      set_state(id, f[2], 'active', 'failed', pri)
      publish(id, 'failed', ',' .. jstr(msg) .. ',null')
      failed = failed + 1
    else
      requeue(id, f[2], 'active', pri, now, nil)
      requeued = requeued + 1
    end
  end
end
return { requeued, failed }
