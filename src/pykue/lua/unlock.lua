-- Release a lock only if we still hold it (Kue's warlock compare-and-delete).
-- KEYS[1]: the lock; ARGV[1]: our token. The shared prelude is unused here.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
