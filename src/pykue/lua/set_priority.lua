-- Change a job's priority everywhere its score is the priority (Kue's priority + update).
-- Validated before the first write: the priority must be an integer within JavaScript's safe
-- range (Lua would store 1e17 as "1e+17", which nothing reads back), the job key a hash, and
-- only the sets of a known state are touched.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, id, priority. Returns 1, or 0 if the job does not exist.
local now, id, pri = tonumber(ARGV[2]), ARGV[3], int_of(ARGV[4])
if not pri then
  return redis.error_reply('pykue: priority ' .. shown(ARGV[4]) .. ' is not an integer within +-2^53')
end
local key = jobkey(id)
local f = redis.pcall('HMGET', key, 'type', 'state', 'ttl')
if f.err or not f[1] then return 0 end
local state = STATES[f[2] or ''] and f[2]
local jtype = writable_type(f[1], state, state)
local bad_keys = wrong_type({ { k('jobs'), 'zset' }, { k('jobs:' .. (state or 'inactive')), 'zset' } })
if bad_keys then return bad_keys end
local z = zid(id)
redis.call('HSET', key, 'priority', ARGV[4], 'updated_at', now)
redis.call('ZADD', k('jobs'), pri, z)
if state then
  if jtype then redis.call('ZADD', k('jobs:' .. jtype .. ':' .. state), pri, z) end
  if state == 'active' then
    redis.call('ZADD', k('jobs:active'), active_score(pri, f[3], now), z)
  elseif state ~= 'delayed' then
    redis.call('ZADD', k('jobs:' .. state), pri, z)
  end
end
return 1
