-- Keep a type's wake-up token list as long as its inactive set (Kue's watchStuckJobs,
-- without the KEYS command: the caller names the types).
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, type, ... Returns tokens added.
local added = 0
for i = 2, #ARGV do
  local jtype = ARGV[i]
  local jobs = redis.call('ZCARD', k('jobs:' .. jtype .. ':inactive'))
  local toks = k(jtype .. ':jobs')
  local have = redis.call('LLEN', toks)
  if have < jobs then
    for _ = 1, jobs - have do redis.call('LPUSH', toks, 1) end
    added = added + jobs - have
  elseif have > jobs and jobs == 0 then
    redis.call('DEL', toks)
  elseif have > jobs then
    redis.call('LTRIM', toks, 0, jobs - 1)
  end
end
return added
