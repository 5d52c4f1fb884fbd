-- Save new jobs (Kue's Job#save for a new job), a batch in one call.
-- Everything is checked before the first write (INCR): the numbers, and that no key the
-- batch writes has another type, so a batch is saved whole or not at all.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, n, then per job: type, state ("inactive"|"delayed"), priority,
--       promote_at, nfields, field, value, ... (the fields include `state`)
-- Issue 12: a job with a `pykue_unique` field whose key an unfinished job holds is not saved;
-- its place in the reply is "-<that job's id>". A job with `pykue_after` (comma-separated ids)
-- waits (delayed, score +inf) until they complete, or is failed at once when one failed and
-- its `pykue_on_failure` is not "run".
-- Returns the new ids (and "-<id>" for a unique key already held).
local now, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local last = redis.call('TYPE', k('ids')).ok == 'string' and redis.call('GET', k('ids'))
local next_id = last and int_of(last) or 0
if last and not int_of(last) then return redis.error_reply('pykue: ' .. k('ids') .. ' is not an integer') end
local checks = { { k('ids'), 'string' }, { k('job:types'), 'set' }, { k('jobs'), 'zset' } }
checks[#checks + 1] = { UNIQUE, 'hash' }
local i, seen = 4, {}
-- The features' fields of each job (field name -> value), read once.
local extra = {}
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
  checks[#checks + 1] = { deps_key(tostring(next_id + j)), 'set' }
  local x = {}
  for f = i + 5, i + 4 + tonumber(ARGV[i + 4]), 2 do
    local name = ARGV[f]
    if name == 'pykue_unique' or name == 'pykue_after' or name == 'pykue_on_failure' then x[name] = ARGV[f + 1] end
  end
  if x.pykue_after then
    x.parents = {}
    for _, st in ipairs({ 'failed', 'delayed' }) do
      checks[#checks + 1] = { k('jobs:' .. st), 'zset' }
      checks[#checks + 1] = { k('jobs:' .. jtype .. ':' .. st), 'zset' }
    end
    for p in string.gmatch(x.pykue_after, '[^,]+') do
      if not string.find(p, '^%d+$') or redis.call('EXISTS', jobkey(p)) == 0 then
        return redis.error_reply('pykue: dependency job ' .. shown(p) .. ' does not exist (job ' .. j
          .. ' of the batch waits for it); nothing was written')
      end
      x.parents[#x.parents + 1] = p
      checks[#checks + 1] = { jobkey(p), 'hash' }
      checks[#checks + 1] = { dependents_key(p), 'set' }
    end
  end
  extra[j] = x
  i = i + 5 + tonumber(ARGV[i + 4])
end
local bad_keys = wrong_type(checks)
if bad_keys then return bad_keys end
-- The unfinished job holding a unique key, or nil (a finished or removed one frees it).
local function holder(ukey)
  local cur = redis.call('HGET', UNIQUE, ukey)
  if not cur then return nil end
  local state = redis.pcall('HGET', jobkey(cur), 'state')
  if type(state) == 'string' and RUNNING_STATES[state] then return cur end
  return nil
end

-- A dependent's first state: the id of a dependency that failed for it, or the pending ones.
local function dependencies(x)
  local pending = {}
  for _, p in ipairs(x.parents) do
    local ps = redis.call('HGET', jobkey(p), 'state')
    if ps == 'failed' and x.pykue_on_failure ~= 'run' then return p, {} end
    if ps ~= 'complete' and ps ~= 'failed' then pending[#pending + 1] = p end
  end
  return nil, pending
end

i = 4
local ids = {}
for j = 1, n do
  local jtype, state, pri, promote_at = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local nf = tonumber(ARGV[i + 4])
  i = i + 5
  local x = extra[j]
  local dup = x.pykue_unique and holder(x.pykue_unique)
  if dup then
    ids[#ids + 1] = '-' .. dup
    i = i + nf
  else
  local id = tostring(redis.call('INCR', k('ids')))
  local fields = {}
  for f = 0, nf - 1 do fields[f + 1] = ARGV[i + f] end
  i = i + nf
  redis.call('HSET', jobkey(id), unpack(fields))
  redis.call('SADD', k('job:types'), jtype)
  redis.call('ZADD', k('jobs'), pri, zid(id))
  local failed_dep, pending = nil, {}
  if x.parents then failed_dep, pending = dependencies(x) end
  if x.pykue_unique and not failed_dep then redis.call('HSET', UNIQUE, x.pykue_unique, id) end
  if failed_dep then
    local msg = 'pykue: dependency ' .. failed_dep .. ' failed'
    redis.call('HSET', jobkey(id), 'state', 'failed', 'error', msg, 'failed_at', now)
    set_state(id, jtype, nil, 'failed', pri, nil, true)
    publish(id, 'failed', ',' .. jstr(msg) .. ',null')
  elseif #pending > 0 then
    redis.call('HSET', jobkey(id), 'state', 'delayed')
    set_state(id, jtype, nil, 'delayed', pri, '+inf', true)
    for _, p in ipairs(pending) do redis.call('SADD', dependents_key(p), id) end
    redis.call('SADD', deps_key(id), unpack(pending))
  elseif state == 'delayed' then
    set_state(id, jtype, nil, 'delayed', pri, promote_at, true)
  else
    set_state(id, jtype, nil, 'inactive', pri, nil, true)
    publish(id, 'enqueue', ',' .. jstr(jtype))
  end
  ids[#ids + 1] = id
  end
end
return ids
