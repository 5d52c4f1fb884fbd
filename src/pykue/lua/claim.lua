-- Claim up to `count` inactive jobs of one type for a worker, atomically: the job leaves
-- inactive, becomes active with an owner token and a lease, and its wake-up token is used.
-- Stray index entries are dropped; a hash without `type` is set aside as failed.
-- ARGV: prefix, now, type, count, lease_ms, token_base, worker_id, tokens_already_taken
-- Returns a flat list: id, token, HGETALL..., per claimed job.
local now, jtype, count = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local lease, base, wid, taken = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8])
local tset = k('jobs:' .. jtype .. ':inactive')
local out, claimed = {}, 0
while claimed < count do
  local r = redis.call('ZPOPMIN', tset)
  if #r == 0 then break end
  local z = r[1]
  local id = string.sub(z, (string.find(z, '|', 1, true) or 0) + 1)
  local key = jobkey(id)
  local f = redis.call('HMGET', key, 'state', 'type', 'priority', 'ttl')
  if f[1] == 'inactive' and f[2] == jtype then
    claimed = claimed + 1
    local pri = tonumber(f[3]) or 0
    redis.call('ZREM', k('jobs:inactive'), z)
    redis.call('HSET', key, 'state', 'active', 'started_at', now, 'updated_at', now, 'workerId', wid)
    redis.call('ZADD', k('jobs:active'), active_score(pri, f[4], now), z)
    redis.call('ZADD', k('jobs:' .. jtype .. ':active'), pri, z)
    local token = base .. ':' .. claimed
    redis.call('HSET', OWNERS, id, token)
    redis.call('ZADD', LEASES, now + lease, id)
    publish(id, 'start', ',' .. jstr(jtype) .. ',null')
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = redis.call('HGETALL', key)
  elseif f[1] and not f[2] then
    local msg = 'pykue: job hash has no type field; set aside'
    redis.call('ZREM', k('jobs:inactive'), z)
    redis.call('HSET', key, 'state', 'failed', 'error', msg, 'failed_at', now, 'updated_at', now)
    redis.call('ZADD', k('jobs:failed'), tonumber(f[3]) or 0, z)
    publish(id, 'failed', ',' .. jstr(msg) .. ',null')
  elseif not f[1] and not f[2] then
    redis.call('ZREM', k('jobs'), z)
  end
end
local pop = claimed - taken
if pop > 0 then redis.call('LPOP', k(jtype .. ':jobs'), pop) end
return out
