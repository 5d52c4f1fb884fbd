-- The seat servers sharing one Redis ("the fleet"): who is alive, and who sets the seats.
-- A server joins at start-up and beats every second; only the first server of a fleet (no
-- live heartbeat left) sets the seats and enables reservations, so a server that joins a
-- live fleet never hands out sold seats again. Time is Redis's, so servers' clocks don't matter.
-- KEYS[1]: seat_servers (zset: server id -> heartbeat deadline, ms)
-- KEYS[2]: available_seats; KEYS[3]: reservation_enabled
-- ARGV[1]: server id; ARGV[2]: heartbeat TTL (ms); ARGV[3]: seats to set;
-- ARGV[4]: 'join' (set the seats if first), 'reset' (set them anyway) or 'beat' (never set them)
-- Returns 1 when this call set the seats, else 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local first = redis.call('ZCARD', KEYS[1]) == 0
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
if ARGV[4] == 'reset' or (ARGV[4] == 'join' and first) then
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('SET', KEYS[3], '1')
  return 1
end
return 0
