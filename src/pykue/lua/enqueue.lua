-- Save new jobs (Kue's Job#save for a new job), a batch in one call.
-- Everything is checked before the first write: the numbers, and that no key the batch
-- writes has another type, so a batch is saved whole or not at all.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, n, then per job: type, state ("inactive"|"delayed"), priority,
--       promote_at, nfields, field, value, ... (the fields include `state`)
-- Issue 12: a job with a `pykue_unique` field whose key an unfinished job holds is not saved;
-- its place in the reply is "-<that job's id>". A job with `pykue_after` (comma-separated ids)
-- waits (delayed, score +inf) until they complete, or is failed at once when one failed and
-- its `pykue_on_failure` is not "run".
-- Returns the new ids (and "-<id>" for a unique key already held).
--
-- Cost (issue 13): Redis's CPU per saved job is what bounds bulk enqueue, so the per-job work
-- is one HSET and one PUBLISH; the index writes Kue's layout needs (jobs, jobs:<state>,
-- jobs:<type>:<state>, the <type>:jobs wake-up list, job:types, ids) are one variadic call
-- per key for the whole batch, and the new job keys are checked with one EXISTS (TYPE only
-- when one exists). The order of writes differs from Kue's, not the state they leave.
local now, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local last = is_a(k('ids'), 'string') and redis.call('GET', k('ids'))  -- is_a: checked once, with the others
local next_id = last and int_of(last) or 0
if last and not int_of(last) then return redis.error_reply('pykue: ' .. k('ids') .. ' is not an integer') end
local checks = { { k('ids'), 'string' }, { k('job:types'), 'set' }, { k('jobs'), 'zset' } }
local i, seen, any_unique, any_after = 4, { inactive = {}, delayed = {} }, false, false
-- A new job is inactive or delayed (a waiting dependent becomes delayed, a failed one failed).
local function first_state(state) return state == 'delayed' and 'delayed' or 'inactive' end
local FEATURES = { pykue_unique = true, pykue_after = true, pykue_on_failure = true }
local NONE = {}  -- the features of a job that has none (shared, never written)
local extra = {}  -- each job's features' fields (name -> value), read once
for j = 1, n do
  local jtype, nf = ARGV[i], tonumber(ARGV[i + 4])
  if not STATES[ARGV[i + 1]] or not nf or not int_of(ARGV[i + 2]) or not int_of(ARGV[i + 3]) then
    return redis.error_reply('pykue: bad enqueue arguments for job ' .. j .. '; nothing was written')
  end
  local state = first_state(ARGV[i + 1])
  if not seen[state][jtype] then
    seen[state][jtype] = true
    checks[#checks + 1] = { k('jobs:' .. state), 'zset' }
    checks[#checks + 1] = { k('jobs:' .. jtype .. ':' .. state), 'zset' }
    checks[#checks + 1] = { k(jtype .. ':jobs'), 'list' }
  end
  local x = NONE
  for f = i + 5, i + 4 + nf, 2 do
    if FEATURES[ARGV[f]] then
      if x == NONE then x = {} end
      x[ARGV[f]] = ARGV[f + 1]
    end
  end
  any_unique = any_unique or x.pykue_unique ~= nil
  if x.pykue_after then
    any_after = true
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
  i = i + 5 + nf
end
if any_unique then checks[#checks + 1] = { UNIQUE, 'hash' } end
-- The ids the batch may take (a job deduplicated takes none) and their keys: one EXISTS for
-- all (new ids have no keys yet); only when some exist is each one's type checked.
local new_ids, fresh = {}, {}
for j = 1, n do
  new_ids[j] = tostring(next_id + j)
  fresh[j] = jobkey(new_ids[j])
end
if any_after then
  for j = 1, n do fresh[n + j] = deps_key(new_ids[j]) end
end
local function exist_count(list)
  local c = 0
  for a = 1, #list, 1000 do c = c + redis.call('EXISTS', unpack(list, a, math.min(a + 999, #list))) end
  return c
end
if exist_count(fresh) > 0 then
  for j, key in ipairs(fresh) do checks[#checks + 1] = { key, j <= n and 'hash' or 'set' } end
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

-- A job that waits for others, or failed with one, goes through set_state (rare). Returns
-- whether it did: a job whose dependencies all completed is saved as any other.
local function dependent(id, jtype, pri, x)
  local failed_dep, pending = dependencies(x)
  if failed_dep then
    local msg = 'pykue: dependency ' .. failed_dep .. ' failed'
    redis.call('HSET', jobkey(id), 'state', 'failed', 'error', msg, 'failed_at', now)
    set_state(id, jtype, nil, 'failed', pri, nil, true)
    publish(id, 'failed', ',' .. jstr(msg) .. ',null')
    return true
  end
  if x.pykue_unique then redis.call('HSET', UNIQUE, x.pykue_unique, id) end
  if #pending == 0 then return false end
  redis.call('HSET', jobkey(id), 'state', 'delayed')
  set_state(id, jtype, nil, 'delayed', pri, '+inf', true)
  for _, p in ipairs(pending) do redis.call('SADD', dependents_key(p), id) end
  redis.call('SADD', deps_key(id), unpack(pending))
  return true
end

-- The index writes, gathered per key (score, member, ...) and sent once per key at the end.
local all_jobs = {}
local by_state = { inactive = {}, delayed = {} }
local by_type = { inactive = {}, delayed = {} }  -- state -> type -> entries
local types, pushes, enqueued = {}, {}, {}  -- per type: saved; wake-up tokens; its `enqueue` event's tail
local function add(list, score, member)
  list[#list + 1] = score
  list[#list + 1] = member
end
-- Variadic calls of at most 1000 arguments each: Lua's unpack has a limit.
local function variadic(cmd, key, list)
  for a = 1, #list, 1000 do redis.call(cmd, key, unpack(list, a, math.min(a + 999, #list))) end
end

i = 4
local ids, created, events = {}, 0, k('events')
for j = 1, n do
  local jtype, pri, nf = ARGV[i], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 4])
  local x = extra[j]
  local dup = x.pykue_unique and holder(x.pykue_unique)
  if dup then
    ids[j] = '-' .. dup
  else
    created = created + 1
    local id = new_ids[created]
    local z = zid(id)
    if nf > 0 then redis.call('HSET', fresh[created], unpack(ARGV, i + 5, i + 4 + nf)) end
    add(all_jobs, pri, z)
    types[jtype] = true
    if x.pykue_unique and not x.parents then redis.call('HSET', UNIQUE, x.pykue_unique, id) end
    if not (x.parents and dependent(id, jtype, pri, x)) then
      local state = first_state(ARGV[i + 1])
      local per_type = by_type[state][jtype]
      if not per_type then
        per_type = {}
        by_type[state][jtype] = per_type
      end
      add(per_type, pri, z)
      if state == 'delayed' then
        add(by_state.delayed, tonumber(ARGV[i + 3]), z)
      else
        add(by_state.inactive, pri, z)
        pushes[jtype] = (pushes[jtype] or 0) + 1
        enqueued[jtype] = enqueued[jtype] or (',"event":"enqueue","args":["enqueue",' .. jstr(jtype) .. ']}')
        redis.call('PUBLISH', events, '{"id":' .. id .. enqueued[jtype])  -- Kue's event, as publish() writes it
      end
    end
    ids[j] = id
  end
  i = i + 5 + nf
end
if created == 0 then return ids end
redis.call('INCRBY', k('ids'), created)
local type_list = {}
for jtype in pairs(types) do type_list[#type_list + 1] = jtype end
variadic('SADD', k('job:types'), type_list)
variadic('ZADD', k('jobs'), all_jobs)
for state, entries in pairs(by_state) do
  variadic('ZADD', k('jobs:' .. state), entries)
  for jtype, per_type in pairs(by_type[state]) do variadic('ZADD', k('jobs:' .. jtype .. ':' .. state), per_type) end
end
for jtype, count in pairs(pushes) do
  local ones = {}
  for c = 1, count do ones[c] = 1 end
  variadic('LPUSH', k(jtype .. ':jobs'), ones)
end
return ids
