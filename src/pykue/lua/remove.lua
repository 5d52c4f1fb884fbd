-- Kue's Job#remove: drop the job from every index, delete hash and log, publish remove.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, id. Returns 1 if the job existed.
local jtype = remove_job(ARGV[2])
if not jtype then return 0 end
publish(ARGV[2], 'remove', ',' .. jstr(jtype))
return 1
