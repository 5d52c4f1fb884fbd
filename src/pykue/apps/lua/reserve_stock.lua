-- Reserve one unit of an item if any is left: read, check and write as one step.
-- KEYS[1]: item.ITEM_ID (reserved count); ARGV[1]: the item's initial stock.
-- Returns the quantity left after the reservation, or -1 when none was left.
local reserved = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local initial = tonumber(ARGV[1])
if reserved + 1 > initial then return -1 end
redis.call('SET', KEYS[1], reserved + 1)
return initial - reserved - 1
