-- remove_profiles: deletes profiles from the cache, bumps each version (a versioned tombstone) and
-- queues the delete, atomically.
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   KEYS[3] queue (LIST)
-- ARGV[1] queue high-water mark (0 = none)   ARGV[2..] fields ('user:<id>')
-- Returns for each field 1 when a cached profile was removed, 0 when none was cached (a tombstone is
-- still versioned and queued, so a copy only the store holds is deleted too); or 'WB_QUEUE_FULL ...'.
local hw = tonumber(ARGV[1])
local n = #ARGV - 1
if hw > 0 then
  local depth = redis.call('LLEN', KEYS[3])
  if depth + n > hw then
    return redis.error_reply('WB_QUEUE_FULL queue depth ' .. depth .. ' + ' .. n .. ' exceeds the high-water mark ' .. hw)
  end
end
local out = {}
for i = 2, #ARGV do
  local field = ARGV[i]
  local removed = redis.call('HDEL', KEYS[1], field)
  local v = redis.call('HINCRBY', KEYS[2], field, 1)
  redis.call('LPUSH', KEYS[3], 'delete:' .. field .. ':' .. v)
  out[#out + 1] = removed
end
return out
