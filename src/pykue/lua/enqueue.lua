-- Save new jobs (Kue's Job#save for a new job), a batch in one call.
-- ARGV: prefix, now, n, then per job: type, state ("inactive"|"delayed"), priority,
--       promote_at, nfields, field, value, ... (the fields include `state`)
-- Returns the new ids.
local n = tonumber(ARGV[3])
local i = 4
local ids = {}
for _ = 1, n do
  local jtype, state, pri, promote_at = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local nf = tonumber(ARGV[i + 4])
  i = i + 5
  local id = tostring(redis.call('INCR', k('ids')))
  local fields = {}
  for f = 0, nf - 1 do fields[f + 1] = ARGV[i + f] end
  i = i + nf
  redis.call('HSET', jobkey(id), unpack(fields))
  redis.call('SADD', k('job:types'), jtype)
  redis.call('ZADD', k('jobs'), pri, zid(id))
  if state == 'delayed' then
    set_state(id, jtype, nil, 'delayed', pri, promote_at, true)
  else
    set_state(id, jtype, nil, 'inactive', pri, nil, true)
    publish(id, 'enqueue', ',' .. jstr(jtype))
  end
  ids[#ids + 1] = id
end
return ids
