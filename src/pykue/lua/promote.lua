-- Promote due delayed jobs to inactive (Kue's checkJobPromotion), each at most once.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, limit. Returns how many were promoted.
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local bad_keys = wrong_type({ k('jobs:delayed'), 'zset', k('jobs:inactive'), 'zset' })
if bad_keys then return bad_keys end
local due = redis.call('ZRANGEBYSCORE', k('jobs:delayed'), 0, now, 'LIMIT', 0, limit)
local n = 0
for _, z in ipairs(due) do
  local id = string.sub(z, (string.find(z, '|', 1, true) or 0) + 1)
  local f = redis.pcall('HMGET', jobkey(id), 'state', 'type', 'priority')  -- no error after a write
  if f.err or f[1] ~= 'delayed' or not f[2] then
    redis.call('ZREM', k('jobs:delayed'), z)  -- stale: not a delayed job
  elseif writable_type(f[2], 'delayed', 'inactive') and is_a(k(f[2] .. ':jobs'), 'list') then
    publish(id, 'promotion')
    redis.call('HSET', jobkey(id), 'updated_at', now)
    set_state(id, f[2], 'delayed', 'inactive', num_of(f[3]) or 0)
    publish(id, 'enqueue', ',' .. jstr(f[2]))
    n = n + 1
  end
end
return n
