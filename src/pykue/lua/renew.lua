-- Extend a live worker's lease, check what it still holds, and hand back what Redis says
-- it holds but no handler of its owns: jobs of a claim whose reply never arrived (Redis
-- restarted or stalled past the client's timeout). They go back to inactive without
-- spending an attempt. Mode "release" (a clean shutdown) hands back the same way, then
-- drops the lease if nothing is left, instead of extending it.
-- Runs on a full Redis (oom_pass): a lease must not expire because memory is full.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, lease_ms, worker, floor, mode ("renew"|"release"), id, token, ...
--   floor: claims numbered >= floor may still be in flight; their jobs are not strays.
--   id, token: the jobs the worker knows it holds (running, or outcome not yet written).
-- Returns {ids the caller no longer owns (reaped, TTL-failed, removed, re-queued), ids handed back}.
local now, lease, worker, floor, mode = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6]
oom_pass()
local known, lost, back = {}, {}, {}
for i = 7, #ARGV, 2 do
  known[ARGV[i]] = ARGV[i + 1]
  if redis.call('HGET', OWNERS, ARGV[i]) ~= ARGV[i + 1] then lost[#lost + 1] = ARGV[i] end
end
local hkey = held(worker)
for _, id in ipairs(redis.call('SMEMBERS', hkey)) do
  local owner = redis.call('HGET', OWNERS, id)
  if not owner or worker_of(owner) ~= worker then
    redis.call('SREM', hkey, id)
  elseif known[id] ~= owner and claim_of(owner) < floor then
    drop_lease(id, owner)
    local f = redis.call('HMGET', jobkey(id), 'state', 'type', 'priority')
    if f[1] == 'active' and f[2] then requeue(id, f[2], 'active', tonumber(f[3]) or 0, now, nil) end
    back[#back + 1] = id
  end
end
if mode ~= 'release' then
  redis.call('ZADD', WORKERS, now + lease, worker)
elseif redis.call('SCARD', hkey) == 0 then
  redis.call('ZREM', WORKERS, worker)
end
return { lost, back }
