-- Extend a live worker's lease and check what it still holds.
-- ARGV: prefix, now, lease_ms, worker, id, token, ...
-- Returns the ids the caller no longer owns (reaped, TTL-failed, removed): it must drop them.
local now, lease, worker = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZADD', WORKERS, now + lease, worker)
local lost = {}
for i = 5, #ARGV, 2 do
  if redis.call('HGET', OWNERS, ARGV[i]) ~= ARGV[i + 1] then lost[#lost + 1] = ARGV[i] end
end
return lost
