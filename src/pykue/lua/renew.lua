-- Extend the leases a live worker holds. ARGV: prefix, now, lease_ms, id, token, ...
-- Returns the ids the caller no longer owns (reaped, TTL-failed, removed): it must drop them.
local now, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 2 do
  if redis.call('HGET', OWNERS, ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', LEASES, now + lease, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
