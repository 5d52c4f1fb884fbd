-- pykue shared prelude, prepended to every script at load time.
-- ARGV[1] is always the key prefix; every key is built from it here, so a hash-tagged
-- prefix such as "{q}" keeps all of a queue's keys in one Redis Cluster slot.
-- KEYS[1] is the queue's "P:jobs" key, declared only so cluster clients route the call.
--
-- The rule every transition follows: read and validate everything, then write. Redis does
-- not roll back a script that errors half-way, so nothing that can raise (a key of the wrong
-- type, HINCRBY on a corrupt number, a NaN score) may run after the first write. Numbers read
-- from a job hash go through int_of (nil when corrupt), never bare tonumber (which takes
-- "nan", "inf" and "0x10"); a record that fails validation is set aside, not half-moved.
-- Audited (issue 9): claim, complete, fail, enqueue, set_state, set_priority, promote, reap
-- type-check their keys first (wrong_type / is_a) and read job hashes with redis.pcall where
-- a read follows a write. progress, remove and unlock write once or read first; renew and
-- repair_tokens only touch pykue's lease keys and the wake-up lists.
local P = ARGV[1]
local function k(name) return P .. ':' .. name end
local function jobkey(id) return P .. ':job:' .. id end
local function zid(id) return string.format('%02d', #id) .. '|' .. id end
-- Leases: OWNERS maps a claimed job to its owner token "<worker>:<claim>:<n>"; the
-- worker's lease is its score in WORKERS, and HELD:<worker> lists the jobs it holds.
-- One lease per worker, not per job: a claim or completion touches a set, not a zset.
local OWNERS, WORKERS, STALLS = k('pykue:owners'), k('pykue:workers'), k('pykue:stalls')
local function held(worker) return k('pykue:held:' .. worker) end
local function worker_of(token) return string.match(token, '^[^:]+') end

local STATES = { inactive = true, active = true, complete = true, failed = true, delayed = true }
local MAX_SAFE = 9007199254740991

-- A stored integer as JavaScript's safe integers allow ("12", "-3"), or nil.
local function int_of(v)
  if type(v) ~= 'string' or #v > 17 or not string.find(v, '^%-?%d+$') then return nil end
  local n = tonumber(v)
  if n > MAX_SAFE or n < -MAX_SAFE then return nil end
  return n
end

-- Whether Python's strict UTF-8 decoder accepts s (no overlongs, surrogates or > U+10FFFF):
-- redis-py decodes every reply, and one bad byte in it raises in the worker.
local function utf8_ok(s)
  local i, n = 1, #s
  while true do
    i = string.find(s, '[\128-\255]', i)
    if not i then return true end
    local c, len, lo, hi = string.byte(s, i), 0, 128, 191
    if c >= 194 and c <= 223 then len = 2
    elseif c == 224 then len, lo = 3, 160
    elseif c == 237 then len, hi = 3, 159
    elseif c >= 225 and c <= 239 then len = 3
    elseif c == 240 then len, lo = 4, 144
    elseif c >= 241 and c <= 243 then len = 4
    elseif c == 244 then len, hi = 4, 143
    else return false end
    if i + len - 1 > n then return false end
    local c2 = string.byte(s, i + 1)
    if c2 < lo or c2 > hi then return false end
    for j = i + 2, i + len - 1 do
      local cj = string.byte(s, j)
      if cj < 128 or cj > 191 then return false end
    end
    i = i + len
  end
end

-- A value quoted for an error message: ASCII only, bytes as \xNN, at most 40 characters.
local function shown(s)
  local t = string.gsub(string.sub(s, 1, 40), '[^\32-\126]', function(c)
    return string.format('\\x%02x', string.byte(c))
  end)
  if #s > 40 then t = t .. '...' end
  return "'" .. t .. "'"
end

-- What is wrong with a job hash (f: field -> value, all: HGETALL), or nil if nothing.
local INT_FIELDS = { 'priority', 'attempts', 'max_attempts', 'delay', 'ttl' }
local function record_problem(f, all)
  for i = 1, #all do
    if not utf8_ok(all[i]) then
      if i % 2 == 1 then return 'a field name ' .. shown(all[i]) .. ' is not UTF-8' end
      return 'field ' .. shown(all[i - 1]) .. ' is not UTF-8: ' .. shown(all[i])
    end
  end
  if not f.type or f.type == '' then return 'job hash has no type field' end
  if not STATES[f.state or ''] then return 'unknown state ' .. shown(f.state or '') end
  for _, name in ipairs(INT_FIELDS) do
    local v = f[name]
    if v and v ~= '' and not int_of(v) then
      return 'field ' .. name .. ' is ' .. shown(v) .. ', not an integer within +-2^53'
    end
  end
  return nil
end

-- Whether a write of type t to key cannot fail for the key's type. Memoised for the script
-- run: the scripts only ever write a key with its right type, so an answer stays true.
local KNOWN = {}
local function is_a(key, t)
  if KNOWN[key] == t then return true end
  local got = redis.call('TYPE', key).ok
  if got == 'none' or got == t then KNOWN[key] = t return true end
  return false
end

-- A job type whose per-type sets for states a and b can be written, or nil (skip them).
local function writable_type(jtype, a, b)
  if not jtype or jtype == '' then return nil end
  for _, s in ipairs({ a, b }) do
    if STATES[s] and not is_a(k('jobs:' .. jtype .. ':' .. s), 'zset') then return nil end
  end
  return jtype
end

-- The first of {key, type} pairs whose key exists with another type, as an error reply.
local function wrong_type(pairs_)
  for _, p in ipairs(pairs_) do
    if not is_a(p[1], p[2]) then
      local t = redis.call('TYPE', p[1]).ok
      return redis.error_reply('pykue: ' .. p[1] .. ' is a ' .. t .. ', not a ' .. p[2] .. '; nothing was written')
    end
  end
  return nil
end

-- JSON string literal as JavaScript's JSON.stringify writes it.
local ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r',
              ['\t'] = '\\t', ['\b'] = '\\b', ['\f'] = '\\f' }
local function jstr(s)
  return '"' .. string.gsub(s, '[%z\1-\31"\\]', function(c)
    return ESC[c] or string.format('\\u%04x', string.byte(c))
  end) .. '"'
end

-- Kue's event message: {"id":ID,"event":NAME,"args":[NAME<tail>]}; tail is pre-encoded JSON.
local function publish(id, name, tail)
  redis.call('PUBLISH', k('events'),
    '{"id":' .. id .. ',"event":"' .. name .. '","args":["' .. name .. '"' .. (tail or '') .. ']}')
end

-- Kue's Job#state: leave the old state's sets, join the new ones, wake a worker if inactive.
-- skip_hset: the caller already wrote `state` in its own HSET (one call fewer).
local function set_state(id, jtype, old, new, priority, score, skip_hset)
  local z = zid(id)
  if old and STATES[old] and old ~= new then  -- an unknown state has no sets to leave
    redis.call('ZREM', k('jobs:' .. old), z)
    if jtype then redis.call('ZREM', k('jobs:' .. jtype .. ':' .. old), z) end
  end
  if not skip_hset then redis.call('HSET', jobkey(id), 'state', new) end
  redis.call('ZADD', k('jobs:' .. new), score or priority, z)
  if jtype then redis.call('ZADD', k('jobs:' .. jtype .. ':' .. new), priority, z) end
  if new == 'inactive' and jtype then redis.call('LPUSH', k(jtype .. ':jobs'), 1) end
end

local function drop_lease(id, token)
  token = token or redis.call('HGET', OWNERS, id)
  if token then
    redis.call('SREM', held(worker_of(token)), id)
    redis.call('HDEL', OWNERS, id)
  end
end

local function active_score(priority, ttl, now)
  ttl = int_of(ttl)
  if ttl and ttl > 0 then return now + ttl end
  if priority < 0 then return priority end
  return -priority
end

-- Back to inactive, or delayed until now + delay (Kue's reattempt).
local function requeue(id, jtype, old, priority, now, delay)
  if delay and delay >= 0 then
    redis.call('HSET', jobkey(id), 'delay', delay, 'promote_at', now + delay, 'updated_at', now)
    set_state(id, jtype, old, 'delayed', priority, now + delay)
  else
    redis.call('HSET', jobkey(id), 'updated_at', now)
    set_state(id, jtype, old, 'inactive', priority)
    publish(id, 'enqueue', ',' .. jstr(jtype))
  end
end

local function remove_job(id)
  local key = jobkey(id)
  local f = redis.call('HMGET', key, 'type', 'state')
  local z = zid(id)
  if f[2] and STATES[f[2]] then
    redis.call('ZREM', k('jobs:' .. f[2]), z)
    if f[1] then redis.call('ZREM', k('jobs:' .. f[1] .. ':' .. f[2]), z) end
  end
  redis.call('ZREM', k('jobs'), z)
  redis.call('DEL', key, key .. ':log')
  drop_lease(id)
  redis.call('HDEL', STALLS, id)
  return f[1]
end

-- Issue 12's features, under pykue's own keys (Kue never reads them).
-- UNIQUE maps a unique key to the id of the job that holds it; DEPENDENTS:<id> are the jobs
-- waiting for job <id>, DEPS:<id> the jobs <id> still waits for. A waiting dependent is
-- `delayed` with score +inf in jobs:delayed: Kue's promoter (ZRANGEBYSCORE 0 now) and
-- pykue's never reach it, so Node sees a job that is not runnable.
local UNIQUE = k('pykue:unique')
local RUNNING_STATES = { inactive = true, active = true, delayed = true }
local function dependents_key(id) return k('pykue:dependents:' .. id) end
local function deps_key(id) return k('pykue:deps:' .. id) end

-- The unique key frees when its job finishes for good (enqueue also frees it lazily, for
-- jobs a Node worker finished or that were removed).
local function free_unique(id, ukey)
  if ukey and ukey ~= '' and is_a(UNIQUE, 'hash') and redis.call('HGET', UNIQUE, ukey) == id then
    redis.call('HDEL', UNIQUE, ukey)
  end
end

-- Job <id> finished: outcome "complete", "failed" (for good) or "removed". A dependent whose
-- last dependency this was becomes inactive (or delayed until its own promote_at); a failure
-- or removal fails the dependents that asked for it (on_failure "fail", the default), and
-- theirs in turn. Every key is type-checked (or read with pcall) before it is written.
local function release_dependents(id, outcome, now)
  local dk = dependents_key(id)
  if not is_a(dk, 'set') then return end
  local children = redis.call('SMEMBERS', dk)
  if #children == 0 then return end
  redis.call('DEL', dk)
  for _, cid in ipairs(children) do
    local ck = deps_key(cid)
    local f = redis.pcall('HMGET', jobkey(cid), 'state', 'type', 'priority', 'promote_at', 'pykue_on_failure',
      'pykue_unique')
    if not f.err and f[1] == 'delayed' and f[2] and is_a(ck, 'set') then
      local pri = int_of(f[3]) or 0
      if outcome ~= 'complete' and f[5] ~= 'run' then
        local msg = 'pykue: dependency ' .. id .. (outcome == 'removed' and ' was removed' or ' failed')
        redis.call('DEL', ck)
        redis.call('HSET', jobkey(cid), 'error', msg, 'failed_at', now, 'updated_at', now)
        set_state(cid, writable_type(f[2], 'delayed', 'failed'), 'delayed', 'failed', pri)
        publish(cid, 'failed', ',' .. jstr(msg) .. ',null')
        free_unique(cid, f[6])
        release_dependents(cid, 'failed', now)
      else
        redis.call('SREM', ck, id)
        local jtype = writable_type(f[2], 'delayed', 'inactive')
        if redis.call('SCARD', ck) == 0 and jtype and is_a(k(jtype .. ':jobs'), 'list') then
          redis.call('DEL', ck)
          local at = int_of(f[4]) or 0
          redis.call('HSET', jobkey(cid), 'updated_at', now)
          if at > now then
            set_state(cid, jtype, 'delayed', 'delayed', pri, at)
          else
            publish(cid, 'promotion')
            set_state(cid, jtype, 'delayed', 'inactive', pri)
            publish(cid, 'enqueue', ',' .. jstr(jtype))
          end
        end
      end
    end
  end
end

-- Record a failure; retry (delay >= 0: delayed, -1: inactive) while attempts remain.
-- Returns attempts made, negative when the job is now failed for good.
-- The caller has checked that the job key is a hash and the global state sets are zsets.
local function fail_job(id, now, err, logline, msg, delay)
  local key = jobkey(id)
  local f = redis.call('HMGET', key, 'type', 'priority', 'max_attempts', 'state', 'attempts', 'pykue_unique')
  local pri, max = int_of(f[2]) or 0, int_of(f[3]) or 1
  local attempts = (int_of(f[5]) or 0) + 1  -- not HINCRBY: it errors on a corrupt count
  local retry = (delay and delay >= 0) and 'delayed' or 'inactive'
  local jtype = writable_type(f[1], f[4], retry)
  -- A retry must land in its type's sets and wake-up list, or no worker would ever see it.
  if not jtype or (retry == 'inactive' and not is_a(k(jtype .. ':jobs'), 'list')) then max = 0 end
  if max == 0 then jtype = writable_type(f[1], f[4], 'failed') end
  redis.call('HSET', key, 'error', err, 'failed_at', now, 'updated_at', now, 'attempts', attempts)
  if is_a(key .. ':log', 'list') then redis.call('RPUSH', key .. ':log', logline) end
  publish(id, 'error', ',' .. jstr(err))
  drop_lease(id)
  if attempts < max then
    requeue(id, jtype, f[4], pri, now, delay)
    publish(id, 'failed attempt', ',' .. jstr(msg) .. ',' .. attempts)
    return attempts
  end
  set_state(id, jtype, f[4], 'failed', pri)
  publish(id, 'failed', ',' .. jstr(msg) .. ',null')
  free_unique(id, f[6])  -- issue 12
  release_dependents(id, 'failed', now)
  return -attempts
end

-- A stall count belongs to one run of the job: STALLS holds "<count>@<run>", the run being
-- "<attempts>/<failed_at>", which every outcome changes, whoever writes it (Node or pykue).
-- A count left by an earlier run starts over, so a job that a Node worker completed or
-- failed since is not failed for its next single stall.
local function stall_run(attempts, failed_at) return (attempts or '0') .. '/' .. (failed_at or '') end
local function count_stall(id, run)
  local old = redis.call('HGET', STALLS, id)
  local n = 1
  if old then
    local c, r = string.match(old, '^(%d+)@(.*)$')
    if r == run then n = tonumber(c) + 1 end
  end
  redis.call('HSET', STALLS, id, n .. '@' .. run)
  return n
end

