-- Claim up to `count` inactive jobs of one type for a worker, atomically: the job leaves
-- inactive, becomes active with an owner token and a lease, and its wake-up token is used.
-- Stray index entries are dropped; a hash without `type` is set aside as failed.
-- ARGV: prefix, now, type, count, lease_ms, token_base ("<worker>:<claim>"), worker_id,
--       tokens_already_taken
-- Returns 'paused' (nothing claimed) while the type is in P:pykue:paused (queue.pause), else
-- a flat list: id, token, HGETALL (as it was before the claim; the caller applies
-- state, started_at, updated_at and workerId itself), per claimed job.
local now, jtype, count = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local lease, base, wid, taken = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8])
local tset = k('jobs:' .. jtype .. ':inactive')
if redis.call('SISMEMBER', k('pykue:paused'), jtype) == 1 then return 'paused' end  -- queue.pause(type)
local start_tail = ',' .. jstr(jtype) .. ',null'
local out, claimed = {}, 0
while claimed < count do
  local r = redis.call('ZPOPMIN', tset)
  if #r == 0 then break end
  local z = r[1]
  local id = string.sub(z, (string.find(z, '|', 1, true) or 0) + 1)
  local key = jobkey(id)
  local all = redis.call('HGETALL', key)
  local f = {}
  for i = 1, #all, 2 do f[all[i]] = all[i + 1] end
  if f.state == 'inactive' and f.type == jtype then
    claimed = claimed + 1
    local pri = tonumber(f.priority) or 0
    redis.call('ZREM', k('jobs:inactive'), z)
    redis.call('HSET', key, 'state', 'active', 'started_at', now, 'updated_at', now, 'workerId', wid)
    redis.call('ZADD', k('jobs:active'), active_score(pri, f.ttl, now), z)
    redis.call('ZADD', k('jobs:' .. jtype .. ':active'), pri, z)
    local token = base .. ':' .. claimed
    redis.call('HSET', OWNERS, id, token)
    redis.call('SADD', held(worker_of(base)), id)
    publish(id, 'start', start_tail)
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = all
  elseif f.state and not f.type then
    local msg = 'pykue: job hash has no type field; set aside'
    redis.call('ZREM', k('jobs:inactive'), z)
    redis.call('HSET', key, 'state', 'failed', 'error', msg, 'failed_at', now, 'updated_at', now)
    redis.call('ZADD', k('jobs:failed'), tonumber(f.priority) or 0, z)
    publish(id, 'failed', ',' .. jstr(msg) .. ',null')
  elseif #all == 0 then
    redis.call('ZREM', k('jobs'), z)
  end
end
if claimed > 0 then redis.call('ZADD', WORKERS, now + lease, worker_of(base)) end
local pop = claimed - taken
if pop > 0 then redis.call('LPOP', k(jtype .. ':jobs'), pop) end
return out
