-- Kue's Job#remove: drop the job from every index, delete hash and log, publish remove.
-- Issue 12: its unique key frees, and jobs waiting for it learn it was removed.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, id, now. Returns 1 if the job existed.
local id, now = ARGV[2], tonumber(ARGV[3]) or 0
local bad_keys = wrong_type({
  { k('jobs:inactive'), 'zset' }, { k('jobs:failed'), 'zset' }, { k('jobs:delayed'), 'zset' },
})
if bad_keys then return bad_keys end
local ukey = redis.pcall('HGET', jobkey(id), 'pykue_unique')
local jtype = remove_job(id)
if not jtype then return 0 end
if type(ukey) == 'string' then free_unique(id, ukey) end
if is_a(deps_key(id), 'set') then redis.call('DEL', deps_key(id)) end
publish(id, 'remove', ',' .. jstr(jtype))
release_dependents(id, 'removed', now)
return 1
