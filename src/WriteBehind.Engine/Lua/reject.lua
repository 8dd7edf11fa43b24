-- reject: the store refused one profile's row for good; its items leave the lease for the dead-letter
-- list (original text, the store's reason) so the rest of the batch can be acknowledged.
-- Prepended (LuaScripts.cs): nothing.
-- KEYS[1] the lease (LIST)   KEYS[2] dead letters (LIST)   KEYS[3] dead-letter info (HASH)
-- ARGV[1] now (ms)   ARGV[2] user id   ARGV[3] reason
-- Returns the number of items moved.
-- Each item is dead-lettered (reason, then the item) before it leaves the lease: a prefix of the writes
-- replayed after a server crash can only leave an item in both places, never in neither.
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local moved = 0
for _, item in ipairs(items) do
  local id = string.match(item, '^%l+:user:([^:]+)')
  if id == ARGV[2] then
    local info = redis.call('HGET', KEYS[3], item)
    local attempts, first = 0, ARGV[1]
    if info then
      local a, f = string.match(info, '^(%d+)|(%d+)|')
      attempts, first = tonumber(a) or 0, f or ARGV[1]
    end
    redis.call('HSET', KEYS[3], item, (attempts + 1) .. '|' .. first .. '|' .. ARGV[1] .. '|' .. ARGV[3])
    redis.call('LPUSH', KEYS[2], item)
    redis.call('LREM', KEYS[1], 1, item)
    moved = moved + 1
  end
end
return moved
