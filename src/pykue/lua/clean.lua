-- One bounded step of queue.clean: look at up to `scan` jobs of a finished state, from
-- rank `start`, and remove (like Kue's Job#remove, `remove` event included) those last
-- updated before `cutoff`, at most `limit` of them. The caller loops, so no call blocks
-- Redis for long however big the set is.
-- KEYS: the queue's fixed keys, in _lib.lua's DECLARED order.
-- ARGV: prefix, state ("complete"|"failed"), cutoff (ms), start rank, scan, limit
-- Returns {next start rank (-1: the end was reached), removed id, ...}.
local state, cutoff = ARGV[2], tonumber(ARGV[3])
local start, scan, limit = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local bad_keys = wrong_type({ { k('jobs:' .. state), 'zset' }, { k('jobs'), 'zset' } })
if bad_keys then return bad_keys end
local members = redis.call('ZRANGE', k('jobs:' .. state), start, start + scan - 1)
local out = {0}
for _, z in ipairs(members) do
  if #out - 1 >= limit then break end
  local id = string.sub(z, (string.find(z, '|', 1, true) or 0) + 1)
  local f = redis.pcall('HMGET', jobkey(id), 'state', 'updated_at', 'type')
  if not f.err and f[1] == state and tonumber(f[2]) and tonumber(f[2]) < cutoff then
    remove_job(id)
    publish(id, 'remove', ',' .. jstr(f[3] or ''))
    out[#out + 1] = id
  end
end
local removed = #out - 1
if #members < scan and removed < limit then
  out[1] = -1
else
  out[1] = start + #members - removed
end
return out
