-- The fleet watchdog: one bounded step of four sweeps over what Node Kue processes (and
-- people using kue.app) leave behind, each resuming from a cursor kept in P:pykue:watchdog,
-- so no pass scans everything and no pass ever calls KEYS.
--   owners  drop pykue lease entries whose job is no longer active (moved by kue.app or
--           Node's job.state(): the old run's outcome is then refused, its worker told)
--   marks   drop stall counts and TTL marks of jobs that are gone or no longer running
--   active  (stuck_after > 0) an active job no pykue worker owns, without a TTL, not updated
--           for stuck_after ms (its Node worker died) goes back to inactive; counted as a
--           stall, and failed for good past max_stalled, as the reaper does; an entry whose
--           hash left active that long ago is dropped from the active sets
--   keys    (orphan_after > 0) SCAN for job hashes in no set of their state (Kue popped them
--           and died before marking them active) and index them again once seen so, unchanged,
--           for orphan_after ms: a live Node worker is between its pop and job.active() for
--           a few ms only, and must not have its job taken from it
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, stuck_after_ms (0 = no active sweep), max_stalled, count (SCAN COUNT
--       per sweep), orphan_after_ms (0 = no key sweep)
-- Returns {owners_dropped, marks_dropped, requeued, failed, reindexed, strays_dropped}.
local now, stuck, max_stalled, count = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local orphan_after = tonumber(ARGV[6]) or 0
local WD, TTLS, SUSPECTS = k('pykue:watchdog'), k('pykue:ttl'), k('pykue:orphans')
local RUNNING = { inactive = true, active = true, delayed = true }
-- Read and check everything a sweep writes before it writes (_lib's rule): keys of the wrong
-- type are refused up front, job hashes are read with pcall, per-type keys checked per job.
local bad_keys = wrong_type({
  { WD, 'hash' }, { OWNERS, 'hash' }, { STALLS, 'hash' }, { TTLS, 'hash' }, { SUSPECTS, 'hash' },
  { k('jobs'), 'zset' },
  { k('jobs:inactive'), 'zset' }, { k('jobs:active'), 'zset' }, { k('jobs:delayed'), 'zset' },
  { k('jobs:complete'), 'zset' }, { k('jobs:failed'), 'zset' },
})
if bad_keys then return bad_keys end

-- A job hash's fields, or nil when the key is not a hash (a corrupt record is skipped).
local function fields(id, ...)
  local f = redis.pcall('HMGET', jobkey(id), ...)
  if f.err then return nil end
  return f
end

-- One page of a SCAN-family command from the cursor saved under `name` (key nil: SCAN).
local function step(name, cmd, key, ...)
  local cursor, r = redis.call('HGET', WD, name) or '0', nil
  if key then r = redis.call(cmd, key, cursor, ...) else r = redis.call(cmd, cursor, ...) end
  redis.call('HSET', WD, name, r[1])
  return r[2]
end

local function id_of(z) return string.sub(z, (string.find(z, '|', 1, true) or 0) + 1) end

local function log_line(id, line)
  if is_a(jobkey(id) .. ':log', 'list') then redis.call('RPUSH', jobkey(id) .. ':log', line) end
end

local function sweep_owners()
  local dropped, page = 0, step('owners', 'HSCAN', OWNERS, 'COUNT', count)
  for i = 1, #page, 2 do
    local f = fields(page[i], 'state')
    if not f or f[1] ~= 'active' then
      drop_lease(page[i], page[i + 1])
      dropped = dropped + 1
    end
  end
  return dropped
end

-- A stall count outlives its run when Node or kue.app ends it; a TTL mark when Node fails it.
local function sweep_marks()
  local dropped = 0
  local page = step('stalls', 'HSCAN', STALLS, 'COUNT', count)
  for i = 1, #page, 2 do
    local f = fields(page[i], 'state', 'attempts', 'failed_at')
    local run = string.match(page[i + 1], '^%d+@(.*)$')
    if not f or not RUNNING[f[1] or ''] or (run and run ~= stall_run(f[2], f[3])) then
      redis.call('HDEL', STALLS, page[i])
      dropped = dropped + 1
    end
  end
  page = step('ttl', 'HSCAN', TTLS, 'COUNT', count)
  for i = 1, #page, 2 do
    local f = fields(page[i], 'state')
    if not f or f[1] ~= 'active' then
      redis.call('HDEL', TTLS, page[i])
      dropped = dropped + 1
    end
  end
  page = step('orphans', 'HSCAN', SUSPECTS, 'COUNT', count)
  for i = 1, #page, 2 do
    local f = fields(page[i], 'state', 'type')
    local jtype = f and STATES[f[1] or ''] and writable_type(f[2], f[1], f[1])
    if not jtype or redis.call('ZSCORE', k('jobs:' .. jtype .. ':' .. f[1]), zid(page[i])) then
      redis.call('HDEL', SUSPECTS, page[i])
      dropped = dropped + 1
    end
  end
  return dropped
end

-- f: state, type, priority, updated_at, attempts, failed_at of an active job no worker holds.
local function stalled(id, f)
  local pri = int_of(f[3]) or 0
  if count_stall(id, stall_run(f[5], f[6])) > max_stalled then
    local msg = 'job stalled more than allowable limit'
    redis.call('HSET', jobkey(id), 'error', msg, 'failed_at', now, 'updated_at', now)
    log_line(id, msg)
    set_state(id, f[2], 'active', 'failed', pri)
    publish(id, 'failed', ',' .. jstr(msg) .. ',null')
    return 'failed'
  end
  log_line(id, 'pykue watchdog: active, owned by no pykue worker and not updated for ' .. stuck
    .. ' ms; back to inactive')
  requeue(id, f[2], 'active', pri, now, nil)
  return 'requeued'
end

local function sweep_active()
  local requeued, failed, strays = 0, 0, 0
  local page = step('active', 'ZSCAN', k('jobs:active'), 'COUNT', count)
  for i = 1, #page, 2 do
    local z, score = page[i], tonumber(page[i + 1])
    local id = id_of(z)
    local f = fields(id, 'state', 'type', 'priority', 'updated_at', 'attempts', 'failed_at')
    local old = f and now - (int_of(f[4]) or 0) >= stuck
    -- a TTL'd job is the TTL checker's (Kue fails it, spending an attempt); an owned one the reaper's
    if old and f[1] == 'active' and score < 100000 and redis.call('HEXISTS', OWNERS, id) == 0 then
      if writable_type(f[2], 'active', 'inactive') and writable_type(f[2], 'failed', 'failed')
          and is_a(k(f[2] .. ':jobs'), 'list') then
        if stalled(id, f) == 'failed' then failed = failed + 1 else requeued = requeued + 1 end
      end
    elseif redis.call('EXISTS', jobkey(id)) == 0 then  -- a stray entry left by a removal
      redis.call('ZREM', k('jobs:active'), z)
    elseif old and f[1] and f[1] ~= 'active' and writable_type(f[2], 'active', 'active') then
      -- Kue's job.state() leaves the set its stale in-memory copy did not name (Kue #944): the
      -- hash moved on long ago, the entry stays in active forever. Kue and pykue change the hash
      -- and the sets in one MULTI/script, so this is never a transition seen half done.
      redis.call('ZREM', k('jobs:active'), z)
      redis.call('ZREM', k('jobs:' .. f[2] .. ':active'), z)
      strays = strays + 1
    end
  end
  return requeued, failed, strays
end

local function glob(s) return (string.gsub(s, '[%*%?%[%]\\]', '\\%0')) end

-- Index a job hash that is in no set of its state, once it has been seen so, unchanged, for
-- orphan_after ms: the first sight only records "<state>@<updated_at>@<now>" in SUSPECTS.
local function reindex(id)
  local f = fields(id, 'state', 'type', 'priority', 'updated_at', 'created_at', 'promote_at', 'ttl')
  local state = f and f[1]
  if not state or not STATES[state] then return 0 end
  local jtype = writable_type(f[2], state, state)
  if not jtype or (state == 'inactive' and not is_a(k(jtype .. ':jobs'), 'list')) then return 0 end
  local z = zid(id)
  if redis.call('ZSCORE', k('jobs:' .. jtype .. ':' .. state), z) then return 0 end
  local at = int_of(f[4]) or int_of(f[5]) or 0
  local seen = state .. '@' .. at .. '@'
  local mark = redis.call('HGET', SUSPECTS, id)
  if not mark or string.sub(mark, 1, #seen) ~= seen then
    redis.call('HSET', SUSPECTS, id, seen .. now)
    return 0
  end
  if now - (tonumber(string.sub(mark, #seen + 1)) or now) < orphan_after then return 0 end
  redis.call('HDEL', SUSPECTS, id)
  local pri, score = int_of(f[3]) or 0, nil
  if state == 'delayed' then score = int_of(f[6]) or now end
  if state == 'active' then score = active_score(pri, f[7], at) end
  redis.call('ZADD', k('jobs'), pri, z)
  set_state(id, jtype, nil, state, pri, score, true)
  log_line(id, 'pykue watchdog: ' .. state .. ' but in no ' .. state .. ' set; indexed again')
  if state == 'inactive' then publish(id, 'enqueue', ',' .. jstr(jtype)) end
  return 1
end

local function sweep_keys()
  local reindexed, skip = 0, #P + 6
  for _, key in ipairs(step('keys', 'SCAN', nil, 'MATCH', glob(P) .. ':job:*', 'COUNT', count)) do
    local id = string.sub(key, skip)
    if string.match(id, '^%d+$') then reindexed = reindexed + reindex(id) end
  end
  return reindexed
end

local owners, marks = sweep_owners(), sweep_marks()
local requeued, failed, strays, reindexed = 0, 0, 0, 0
if stuck > 0 then requeued, failed, strays = sweep_active() end
if orphan_after > 0 then reindexed = sweep_keys() end
return { owners, marks, requeued, failed, reindexed, strays }
