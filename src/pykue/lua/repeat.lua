-- Fire one tick of a repeatable job: move the schedule's next run forward and enqueue the
-- tick's job, in one script, only if the next run is still the score the caller read (so
-- however many worker processes race for a due tick, exactly one of them enqueues it).
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, now, schedule key, expected next run (ms), new next run (ms), job type,
--       priority, nfields, field, value, ... (the new job's hash, `state` = inactive)
-- Returns the new job's id, or 0 when the tick was already fired or the schedule removed.
local now, skey, expected, nxt = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local jtype, pri, nf = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local nextset = k('pykue:repeat:next')
local last = redis.call('TYPE', k('ids')).ok == 'string' and redis.call('GET', k('ids'))
local bad_keys = wrong_type({
  { nextset, 'zset' }, { k('pykue:repeat'), 'hash' }, { k('ids'), 'string' }, { k('job:types'), 'set' },
  { k('jobs'), 'zset' }, { k('jobs:inactive'), 'zset' }, { k('jobs:' .. jtype .. ':inactive'), 'zset' },
  { k(jtype .. ':jobs'), 'list' }, { jobkey(tostring((last and int_of(last) or 0) + 1)), 'hash' },
})
if bad_keys then return bad_keys end  -- checked before any write: a corrupt key changes nothing
if last and not int_of(last) then return redis.error_reply('pykue: ' .. k('ids') .. ' is not an integer') end
local cur = redis.call('ZSCORE', nextset, skey)
if not cur or tonumber(cur) ~= expected or expected > now then return 0 end
if redis.call('HEXISTS', k('pykue:repeat'), skey) == 0 then
  redis.call('ZREM', nextset, skey)
  return 0
end
redis.call('ZADD', nextset, nxt, skey)
local fields = {}
for f = 1, nf do fields[f] = ARGV[8 + f] end
local id = tostring(redis.call('INCR', k('ids')))
redis.call('HSET', jobkey(id), unpack(fields))
redis.call('SADD', k('job:types'), jtype)
redis.call('ZADD', k('jobs'), pri, zid(id))
set_state(id, jtype, nil, 'inactive', pri, nil, true)
publish(id, 'enqueue', ',' .. jstr(jtype))
return tonumber(id)
