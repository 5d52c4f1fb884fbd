-- Take one seat: decrement available_seats unless it would go below 0, and disable
-- reservations when the last seat goes. KEYS[1]: available_seats; KEYS[2]: the flag.
-- Returns the new number of seats, or -1 when none was left.
local seats = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if seats - 1 < 0 then
  redis.call('SET', KEYS[2], '0')
  return -1
end
redis.call('SET', KEYS[1], seats - 1)
if seats - 1 == 0 then redis.call('SET', KEYS[2], '0') end
return seats - 1
