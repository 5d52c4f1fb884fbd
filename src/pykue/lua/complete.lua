-- Complete a batch of jobs, each only if the caller still owns it (a second done(),
-- or a worker whose lease was reaped, changes nothing).
-- ARGV: prefix, now, n, then per job: id, token, duration_ms, result_json ("" = none)
-- Returns 1/0 per job.
local now, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local res, work = {}, 0
for j = 0, n - 1 do
  local id, token, dur, result = ARGV[4 + j * 4], ARGV[5 + j * 4], ARGV[6 + j * 4], ARGV[7 + j * 4]
  if redis.call('HGET', OWNERS, id) == token then
    drop_lease(id, token)
    redis.call('HDEL', STALLS, id)
    local key = jobkey(id)
    local f = redis.call('HMGET', key, 'type', 'priority', 'removeOnComplete', 'state', 'pykue_keep_complete')
    if result ~= '' then
      redis.call('HSET', key, 'duration', dur, 'progress', 100, 'updated_at', now, 'state', 'complete',
                 'result', result)
    else
      redis.call('HSET', key, 'duration', dur, 'progress', 100, 'updated_at', now, 'state', 'complete')
    end
    redis.call('HINCRBY', key, 'attempts', 1)
    set_state(id, f[1], f[4], 'complete', tonumber(f[2]) or 0, nil, true)
    work = work + tonumber(dur)
    if result == '' then result = 'null' end
    publish(id, 'complete', ',' .. result .. ',null')
    if f[3] == 'true' then
      remove_job(id)
      publish(id, 'remove', ',' .. jstr(f[1]))
    elseif f[5] then
      retain(id, f[1], 'complete', f[5], now)  -- feata: remove_on_complete {age, count}
    end
    res[#res + 1] = 1
  else
    res[#res + 1] = 0
  end
end
if work > 0 then redis.call('INCRBY', k('stats:work-time'), work) end
return res
