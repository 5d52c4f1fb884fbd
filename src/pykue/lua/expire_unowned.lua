-- Kue's TTL checker for active jobs past their TTL that no pykue worker owns (a Node
-- worker's): announce "ttl exceeded" so their worker can fail the job and ack, as Kue does;
-- if the same run is still active and past its TTL `grace` ms after the first announcement
-- (no Kue worker answered: it died), fail the attempt as Kue's own checker would.
-- P:pykue:ttl maps id -> "<started_at>@<first announcement ms>", one run of the job.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, grace_ms, then per job: id, retry_delay_ms (-1 = back to inactive)
-- Returns per job: 0 skipped (owned, gone, not past its TTL), 1 announced, 2 failed.
local now, grace = tonumber(ARGV[2]), tonumber(ARGV[3])
local TTLS = k('pykue:ttl')
local bad_keys = wrong_type({
  { TTLS, 'hash' }, { OWNERS, 'hash' }, { k('jobs:active'), 'zset' }, { k('jobs:inactive'), 'zset' },
  { k('jobs:delayed'), 'zset' }, { k('jobs:failed'), 'zset' },
})
if bad_keys then return bad_keys end
local out = {}
for i = 4, #ARGV, 2 do
  local id, delay = ARGV[i], tonumber(ARGV[i + 1])
  local f = redis.pcall('HMGET', jobkey(id), 'state', 'started_at')  -- no error after a write
  local s = tonumber(redis.call('ZSCORE', k('jobs:active'), zid(id)))
  local r = 0
  if f.err or f[1] ~= 'active' or not s or s < 100000 or s > now or redis.call('HEXISTS', OWNERS, id) == 1 then
    redis.call('HDEL', TTLS, id)
  else
    local run = f[2] or ''
    local mark = redis.call('HGET', TTLS, id)
    local seen_run, first = nil, nil
    if mark then seen_run, first = string.match(mark, '^(.*)@(%d+)$') end
    if seen_run == run and now - tonumber(first) >= grace then
      redis.call('HDEL', TTLS, id)
      fail_job(id, now, 'TTL exceeded', 'TTL exceeded', 'TTL exceeded', delay)
      r = 2
    else
      if seen_run ~= run then redis.call('HSET', TTLS, id, run .. '@' .. now) end
      publish(id, 'ttl exceeded')
      r = 1
    end
  end
  out[#out + 1] = r
end
return out
