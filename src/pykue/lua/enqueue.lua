-- Save new jobs (Kue's Job#save for a new job), a batch in one call.
-- Everything is checked before the first write (INCR): the numbers, and that no key the
-- batch writes has another type, so a batch is saved whole or not at all.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, n, then per job: type, state ("inactive"|"delayed"), priority,
--       promote_at, nfields, field, value, ... (the fields include `state`)
-- Returns the new ids.
local n = tonumber(ARGV[3])
local last = redis.call('TYPE', k('ids')).ok == 'string' and redis.call('GET', k('ids'))
local next_id = last and int_of(last) or 0
if last and not int_of(last) then return redis.error_reply('pykue: ' .. k('ids') .. ' is not an integer') end
local checks = { { k('ids'), 'string' }, { k('job:types'), 'set' }, { k('jobs'), 'zset' } }
local i, seen = 4, {}
for j = 1, n do
  local jtype, state = ARGV[i], ARGV[i + 1]
  if not STATES[state] or not int_of(ARGV[i + 2]) or not int_of(ARGV[i + 3]) then
    return redis.error_reply('pykue: bad enqueue arguments for job ' .. j .. '; nothing was written')
  end
  if not seen[jtype .. ':' .. state] then
    seen[jtype .. ':' .. state] = true
    checks[#checks + 1] = { k('jobs:' .. state), 'zset' }
    checks[#checks + 1] = { k('jobs:' .. jtype .. ':' .. state), 'zset' }
    checks[#checks + 1] = { k(jtype .. ':jobs'), 'list' }
  end
  checks[#checks + 1] = { jobkey(tostring(next_id + j)), 'hash' }
  i = i + 5 + tonumber(ARGV[i + 4])
end
local bad_keys = wrong_type(checks)
if bad_keys then return bad_keys end
i = 4
local ids = {}
for _ = 1, n do
  local jtype, state, pri, promote_at = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local nf = tonumber(ARGV[i + 4])
  i = i + 5
  local id = tostring(redis.call('INCR', k('ids')))
  local fields = {}
  for f = 0, nf - 1 do fields[f + 1] = ARGV[i + f] end
  i = i + nf
  redis.call('HSET', jobkey(id), unpack(fields))
  redis.call('SADD', k('job:types'), jtype)
  redis.call('ZADD', k('jobs'), pri, zid(id))
  if state == 'delayed' then
    set_state(id, jtype, nil, 'delayed', pri, promote_at, true)
  else
    set_state(id, jtype, nil, 'inactive', pri, nil, true)
    publish(id, 'enqueue', ',' .. jstr(jtype))
  end
  ids[#ids + 1] = id
end
return ids
