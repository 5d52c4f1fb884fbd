-- Promote due delayed jobs to inactive (Kue's checkJobPromotion), each at most once.
-- Per job one HMGET, one HSET and Kue's two events; the index writes and wake-up tokens are
-- gathered into one call per key for the batch (see _lib.lua's gathered).
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, limit. Returns how many were promoted.
local now_s, limit = ARGV[2], tonumber(ARGV[3])
local DELAYED, INACTIVE = k('jobs:delayed'), k('jobs:inactive')
local bad_keys = wrong_type({ DELAYED, 'zset', INACTIVE, 'zset' })
if bad_keys then return bad_keys end
local due = redis.call('ZRANGEBYSCORE', DELAYED, 0, now_s, 'LIMIT', 0, limit)
local left_delayed, joined_inactive = gathered('ZREM', DELAYED), gathered('ZADD', INACTIVE)

-- A job type's gathered lists and event tail, or false when its keys cannot be written.
local by_type = {}
local function type_lists(jtype)
  local t = by_type[jtype]
  if t == nil then
    t = writable_type(jtype, 'delayed', 'inactive') and is_a(k(jtype .. ':jobs'), 'list') and {
      left = gathered('ZREM', set_key(jtype, 'delayed')),
      joined = gathered('ZADD', set_key(jtype, 'inactive')),
      tokens = gathered('LPUSH', k(jtype .. ':jobs')),
      tail = ',' .. jstr(jtype),
    } or false
    by_type[jtype] = t
  end
  return t
end

local n = 0
for _, z in ipairs(due) do
  local id = string.sub(z, (string.find(z, '|', 1, true) or 0) + 1)
  local key = jobkey(id)
  local f = redis.pcall('HMGET', key, 'state', 'type', 'priority')  -- no error after a write
  if f.err or f[1] ~= 'delayed' or not f[2] then
    left_delayed[#left_delayed + 1] = z  -- stale: not a delayed job
  else
    local t = type_lists(f[2])
    if t then
      local member, pri = zid(id), num_of(f[3]) and f[3] or '0'
      publish(id, 'promotion')
      redis.call('HSET', key, 'updated_at', now_s, 'state', 'inactive')
      left_delayed[#left_delayed + 1] = member
      t.left[#t.left + 1] = member
      local m = #joined_inactive
      joined_inactive[m + 1], joined_inactive[m + 2] = pri, member
      m = #t.joined
      t.joined[m + 1], t.joined[m + 2] = pri, member
      t.tokens[#t.tokens + 1] = '1'
      publish(id, 'enqueue', t.tail)
      n = n + 1
    end
  end
end
write_gathered()
return n
