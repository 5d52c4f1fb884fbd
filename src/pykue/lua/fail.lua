-- Fail one attempt of an owned job (Kue's failedAttempt): error, log line, attempts,
-- then retry (delayed by the backoff, or inactive) or failed for good.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, id, token ("*" = any pykue owner), error, log_line, message,
--       retry_delay_ms (-1 = straight back to inactive), mode:
--       ""    a handler's failure
--       "ttl" pykue's TTL checker: only if the TTL ran out; announces it and acks, as Kue does
--       "ack" the owner answering a Node TTL checker's "ttl exceeded": fail, then ack
-- Returns attempts made (negative when failed for good), or nil if not owned/active.
local now, id, token = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local bad_keys = wrong_type({
  OWNERS, 'hash', k('jobs:inactive'), 'zset', k('jobs:active'), 'zset',
  k('jobs:failed'), 'zset', k('jobs:delayed'), 'zset', k('jobs:complete'), 'zset',
})
if bad_keys then return bad_keys end
local owner = redis.call('HGET', OWNERS, id)
if not owner or (token ~= '*' and owner ~= token) then return nil end
if not is_a(held(worker_of(owner)), 'set') then return redis.error_reply('pykue: held set is not a set') end
local state = redis.pcall('HGET', jobkey(id), 'state')  -- an error table if not a hash
if state ~= 'active' then
  drop_lease(id, owner)
  return nil
end
local mode = ARGV[9]
if mode == 'ttl' then
  local s = tonumber(redis.call('ZSCORE', k('jobs:active'), zid(id)))
  if not s or s < 100000 or s > now then return nil end
  publish(id, 'ttl exceeded')
end
local r = fail_job(id, now, ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]))
if mode ~= '' then publish(id, 'ttl exceeded ack') end
return r
