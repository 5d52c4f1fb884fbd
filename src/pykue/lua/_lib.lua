-- pykue shared prelude, prepended to every script at load time.
-- KEYS: every fixed key of the queue, in DECLARED's order (Python's _keys.DECLARED builds them;
-- tests/test_cluster.py checks the two lists agree), so Redis Cluster routes and checks the call.
-- ARGV[1] is always the key prefix: per-job and per-type keys (job:ID, jobs:TYPE:STATE,
-- pykue:held:WORKER, ...) are derived from it, which on a cluster needs a hash-tagged prefix
-- such as "{q}" (create_queue(cluster=True) insists) to keep them in the queue's slot.
--
-- The rule every transition follows: read and validate everything, then write. Redis does
-- not roll back a script that errors half-way, so nothing that can raise (a key of the wrong
-- type, HINCRBY on a corrupt number, a NaN score) may run after the first write. Numbers read
-- from a job hash go through int_of/num_of (nil when corrupt), never bare tonumber (which
-- takes "nan", "inf" and "0x10"); a record that fails validation is set aside, not half-moved.
-- Audited (issue 9): claim, complete, fail, enqueue, set_state, set_priority, set_aside,
-- retry, promote, reap type-check their keys first (wrong_type / is_a) and read job hashes with redis.pcall where
-- a read follows a write. progress, remove and unlock write once or read first; renew and
-- repair_tokens only touch pykue's lease keys and the wake-up lists.
local P = ARGV[1]
local DECLARED = {
  'jobs', 'ids', 'job:types', 'stats:work-time',
  'jobs:inactive', 'jobs:active', 'jobs:complete', 'jobs:failed', 'jobs:delayed',
  'pykue:owners', 'pykue:workers', 'pykue:stalls', 'pykue:watchdog', 'pykue:ttl', 'pykue:orphans',
  'pykue:paused', 'pykue:repeat', 'pykue:repeat:next', 'pykue:limits', 'pykue:unique',
}
local K = {}
for i, name in ipairs(DECLARED) do K[name] = KEYS[i] end
-- A fixed key as declared in KEYS; any other (per job, per type) derived from the prefix.
local function k(name) return K[name] or (P .. ':' .. name) end
local function jobkey(id) return P .. ':job:' .. id end
-- zid's width prefix by id length: a number concatenated or formatted costs Redis's Lua a
-- printf, and ids are up to 16 digits.
local WIDTH = {}
for w = 1, 16 do WIDTH[w] = string.format('%02d', w) end
local function zid(id) return (WIDTH[#id] or string.format('%02d', #id)) .. '|' .. id end
-- Leases: OWNERS maps a claimed job to its owner token "<worker>:<claim>:<n>"; the
-- worker's lease is its score in WORKERS, and HELD:<worker> lists the jobs it holds.
-- One lease per worker, not per job: a claim or completion touches a set, not a zset.
local OWNERS, WORKERS, STALLS = k('pykue:owners'), k('pykue:workers'), k('pykue:stalls')
local function held(worker) return k('pykue:held:' .. worker) end
local function worker_of(token) return string.match(token, '^[^:]+') end
-- The claim number in a token; "<worker>:<claim>:<n>" tokens are numbered per worker.
local function claim_of(token) return tonumber(string.match(token, '^[^:]+:(%d+):')) or 0 end

-- Under maxmemory + noeviction, Redis (6, and 7 without `allow-oom`) refuses a script's
-- first write that may grow memory but lets every later one through once the script has
-- written. A script that must not fail on a full Redis (a lease renewal only rewrites
-- existing entries) starts with this no-op write.
local function oom_pass() redis.call('HDEL', STALLS, '') end

local STATES = { inactive = true, active = true, complete = true, failed = true, delayed = true }
local MAX_SAFE = 9007199254740991

-- A stored integer as JavaScript's safe integers allow ("12", "-3"), or nil.
local function int_of(v)
  if type(v) ~= 'string' or #v > 17 or not string.find(v, '^%-?%d+$') then return nil end
  local n = tonumber(v)
  if n > MAX_SAFE or n < -MAX_SAFE then return nil end
  return n
end

-- A stored number in plain decimals within the safe range ("1.5", as Node Kue stores a
-- fractional priority or delay), or nil. Used where a value is only a score or duration.
local function num_of(v)
  if type(v) ~= 'string' or #v > 32 or not string.find(v, '^%-?%d+%.?%d*$') then return nil end
  local n = tonumber(v)
  if n > MAX_SAFE or n < -MAX_SAFE then return nil end
  return n
end

-- Whether Python's strict UTF-8 decoder accepts s (no overlongs, surrogates or > U+10FFFF):
-- redis-py decodes every reply, and one bad byte in it raises in the worker. ASCII runs are
-- skipped by find (in C); each multi-byte sequence costs one string.byte call.
local function utf8_ok(s)
  local byte, find = string.byte, string.find
  local i, n = find(s, '[\128-\255]'), #s
  while i do
    local c, c2, c3, c4 = byte(s, i, i + 3)
    if c < 128 then
      i = find(s, '[\128-\255]', i + 1)
    elseif c >= 194 and c <= 223 then
      if not c2 or c2 < 128 or c2 > 191 then return false end
      i = i + 2
    elseif c >= 224 and c <= 239 then
      local lo, hi = c == 224 and 160 or 128, c == 237 and 159 or 191
      if not c3 or c2 < lo or c2 > hi or c3 < 128 or c3 > 191 then return false end
      i = i + 3
    elseif c >= 240 and c <= 244 then
      local lo, hi = c == 240 and 144 or 128, c == 244 and 143 or 191
      if not c4 or c2 < lo or c2 > hi or c3 < 128 or c3 > 191 or c4 < 128 or c4 > 191 then return false end
      i = i + 4
    else
      return false
    end
    if i and i > n then return true end
  end
  return true
end

-- A value quoted for an error message: ASCII only, bytes as \xNN, at most 40 characters.
local function shown(s)
  local t = string.gsub(string.sub(s, 1, 40), '[^\32-\126]', function(c)
    return string.format('\\x%02x', string.byte(c))
  end)
  if #s > 40 then t = t .. '...' end
  return "'" .. t .. "'"
end

-- What is wrong with a job hash (f: field -> value), or nil if nothing. Bytes that are not
-- UTF-8 are the worker's to find (claim's reply is read undecoded, and Python decodes at C
-- speed what this would scan byte by byte), except in `type`, which decides whose job it is.
local INT_FIELDS = { attempts = int_of, max_attempts = int_of, priority = num_of, delay = num_of, ttl = num_of }
local function record_problem(f)
  if f.type and not utf8_ok(f.type) then return "field 'type' is not UTF-8: " .. shown(f.type) end
  if not f.type or f.type == '' then return 'job hash has no type field' end
  if not STATES[f.state or ''] then return 'unknown state ' .. shown(f.state or '') end
  for name, parse in pairs(INT_FIELDS) do
    local v = f[name]
    if v and v ~= '' and not parse(v) then
      local what = parse == int_of and 'an integer' or 'a number'
      return 'field ' .. name .. ' is ' .. shown(v) .. ', not ' .. what .. ' within +-2^53'
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

-- jobs:<state> (jtype nil) or jobs:<type>:<state>, each built once per script run.
local SET_KEYS = {}
local function set_key(jtype, state)
  local by_type = SET_KEYS[jtype or '']
  if not by_type then
    by_type = {}
    SET_KEYS[jtype or ''] = by_type
  end
  local key = by_type[state]
  if not key then
    key = jtype and k('jobs:' .. jtype .. ':' .. state) or k('jobs:' .. state)
    by_type[state] = key
  end
  return key
end

-- A job type whose per-type sets for states a and b can be written, or nil (skip them).
local function writable_type(jtype, a, b)
  if not jtype or jtype == '' then return nil end
  if STATES[a] and not is_a(set_key(jtype, a), 'zset') then return nil end
  if STATES[b] and not is_a(set_key(jtype, b), 'zset') then return nil end
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

-- Writes gathered over a batch and sent at flush() as one variadic call per command and key
-- (ZADD, ZREM, HSET, HDEL, SREM, SADD of many members): a call from Lua costs about as much
-- as the member it writes. Only for keys already type-checked (a flush comes after other
-- writes), and a batch never writes the same member of one key twice, so the order of the
-- gathered calls is free. Numbers go as strings: Redis formats a Lua number with printf.
local LATER, LATER_ORDER = {}, {}
local function later(cmd, key, a, b)
  local by_key = LATER[cmd]
  if not by_key then by_key = {} LATER[cmd] = by_key end
  local t = by_key[key]
  if not t then
    t = { cmd, key }
    by_key[key] = t
    LATER_ORDER[#LATER_ORDER + 1] = t
  end
  local n = #t
  t[n + 1] = a
  if b ~= nil then t[n + 2] = b end
end

local function flush()
  for _, t in ipairs(LATER_ORDER) do
    local n = #t
    for i = 3, n, 4000 do  -- an even step keeps score/member and field/value pairs together
      redis.call(t[1], t[2], unpack(t, i, math.min(i + 3999, n)))
    end
  end
  LATER, LATER_ORDER = {}, {}
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
    redis.call('ZREM', set_key(nil, old), z)
    if jtype then redis.call('ZREM', set_key(jtype, old), z) end
  end
  if not skip_hset then redis.call('HSET', jobkey(id), 'state', new) end
  redis.call('ZADD', set_key(nil, new), score or priority, z)
  if jtype then redis.call('ZADD', set_key(jtype, new), priority, z) end
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
  ttl = num_of(ttl)
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

-- feata: remove_on_complete/remove_on_fail {age, count} (see _retention.py). The finished
-- jobs of a type that carry a policy sit in P:pykue:kept:<state>:<type> by finish time;
-- those beyond the count or older than the age go (at most 100 per call), if still `state`.
local function retain(id, jtype, state, policy, now)
  local age, count = string.match(policy, '^(%d*),(%d*)$')
  age, count = tonumber(age), tonumber(count)
  local kept = k('pykue:kept:' .. state .. ':' .. jtype)
  if not is_a(kept, 'zset') then return end  -- a corrupt bookkeeping key never fails the finish
  redis.call('ZADD', kept, now, id)
  local victims = {}
  if count then
    local over = redis.call('ZCARD', kept) - count
    if over > 0 then victims = redis.call('ZRANGE', kept, 0, math.min(over, 100) - 1) end
  end
  if age then
    for _, v in ipairs(redis.call('ZRANGEBYSCORE', kept, '-inf', '(' .. (now - age), 'LIMIT', 0, 100)) do
      victims[#victims + 1] = v
    end
  end
  for _, v in ipairs(victims) do
    redis.call('ZREM', kept, v)
    local now_state = redis.pcall('HGET', jobkey(v), 'state')
    if now_state == state then
      remove_job(v)
      publish(v, 'remove', ',' .. jstr(jtype))
    end
  end
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
      local pri = num_of(f[3]) or 0
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
  local f = redis.call('HMGET', key, 'type', 'priority', 'max_attempts', 'state', 'attempts', 'pykue_keep_failed',
    'pykue_unique')
  local pri, max = num_of(f[2]) or 0, int_of(f[3]) or 1
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
  free_unique(id, f[7])  -- issue 12
  release_dependents(id, 'failed', now)
  if f[6] and jtype then retain(id, jtype, 'failed', f[6], now) end  -- feata: remove_on_fail
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
