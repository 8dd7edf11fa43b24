-- set_profiles: writes profiles to the cache, bumps each one's version and queues its persist, in one
-- atomic step, so cache and queue cannot diverge (invariant 5).
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   KEYS[3] queue (LIST)
-- ARGV[1] '1' to queue the persist, '0' to only warm the cache   ARGV[2] queue high-water mark (0 = none)
-- ARGV[3], ARGV[4], ... pairs of field ('user:<id>') and JSON text (validated by the caller)
-- Returns the new version of each profile, in order; or an error 'WB_QUEUE_FULL ...' and writes nothing.
local queue = ARGV[1] == '1'
local n = (#ARGV - 2) / 2
local hw = tonumber(ARGV[2])
if queue and hw > 0 then
  local depth = redis.call('LLEN', KEYS[3])
  if depth + n > hw then
    return redis.error_reply('WB_QUEUE_FULL queue depth ' .. depth .. ' + ' .. n .. ' exceeds the high-water mark ' .. hw)
  end
end
local out = {}
for i = 3, #ARGV, 2 do
  local field = ARGV[i]
  redis.call('HSET', KEYS[1], field, ARGV[i + 1])
  local v = redis.call('HINCRBY', KEYS[2], field, 1)
  if queue then redis.call('LPUSH', KEYS[3], 'set:' .. field .. ':' .. v) end
  out[#out + 1] = v
end
return out
