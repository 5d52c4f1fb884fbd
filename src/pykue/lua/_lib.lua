-- pykue shared prelude, prepended to every script at load time.
-- ARGV[1] is always the key prefix; every key is built from it here, so a hash-tagged
-- prefix such as "{q}" keeps all of a queue's keys in one Redis Cluster slot.
-- KEYS[1] is the queue's "P:jobs" key, declared only so cluster clients route the call.
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
-- The claim number in a token; "<worker>:<claim>:<n>" tokens are numbered per worker.
local function claim_of(token) return tonumber(string.match(token, '^[^:]+:(%d+):')) or 0 end

-- Under maxmemory + noeviction, Redis (6, and 7 without `allow-oom`) refuses a script's
-- first write that may grow memory but lets every later one through once the script has
-- written. A script that must not fail on a full Redis (a lease renewal only rewrites
-- existing entries) starts with this no-op write.
local function oom_pass() redis.call('HDEL', STALLS, '') end

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
  if old and old ~= '' and old ~= new then
    redis.call('ZREM', k('jobs:' .. old), z)
    redis.call('ZREM', k('jobs:' .. jtype .. ':' .. old), z)
  end
  if not skip_hset then redis.call('HSET', jobkey(id), 'state', new) end
  redis.call('ZADD', k('jobs:' .. new), score or priority, z)
  redis.call('ZADD', k('jobs:' .. jtype .. ':' .. new), priority, z)
  if new == 'inactive' then redis.call('LPUSH', k(jtype .. ':jobs'), 1) end
end

local function drop_lease(id, token)
  token = token or redis.call('HGET', OWNERS, id)
  if token then
    redis.call('SREM', held(worker_of(token)), id)
    redis.call('HDEL', OWNERS, id)
  end
end

local function active_score(priority, ttl, now)
  if ttl and tonumber(ttl) and tonumber(ttl) > 0 then return now + tonumber(ttl) end
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
  if f[2] then
    redis.call('ZREM', k('jobs:' .. f[2]), z)
    if f[1] then redis.call('ZREM', k('jobs:' .. f[1] .. ':' .. f[2]), z) end
  end
  redis.call('ZREM', k('jobs'), z)
  redis.call('DEL', key, key .. ':log')
  drop_lease(id)
  redis.call('HDEL', STALLS, id)
  return f[1]
end

-- Record a failure; retry (delay >= 0: delayed, -1: inactive) while attempts remain.
-- Returns attempts made, negative when the job is now failed for good.
local function fail_job(id, now, err, logline, msg, delay)
  local key = jobkey(id)
  local f = redis.call('HMGET', key, 'type', 'priority', 'max_attempts', 'state')
  local jtype, pri, max = f[1], tonumber(f[2]) or 0, tonumber(f[3]) or 1
  redis.call('HSET', key, 'error', err, 'failed_at', now, 'updated_at', now)
  redis.call('RPUSH', key .. ':log', logline)
  publish(id, 'error', ',' .. jstr(err))
  drop_lease(id)
  local attempts = redis.call('HINCRBY', key, 'attempts', 1)
  if attempts < max then
    requeue(id, jtype, f[4], pri, now, delay)
    publish(id, 'failed attempt', ',' .. jstr(msg) .. ',' .. attempts)
    return attempts
  end
  set_state(id, jtype, f[4], 'failed', pri)
  publish(id, 'failed', ',' .. jstr(msg) .. ',null')
  return -attempts
end
