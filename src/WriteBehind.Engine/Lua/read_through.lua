-- read_through: puts a profile read from the store back into the cache after a cache miss, unless the
-- cache knows a newer state (a pending change, or a delete whose tombstone is newer).
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   ARGV[1] field   ARGV[2] JSON   ARGV[3] store version
-- Returns the cached JSON (what is now in the cache), or nil when the cache holds a newer state.
local cached = redis.call('HGET', KEYS[1], ARGV[1])
if cached then return cached end
local v = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if v > tonumber(ARGV[3]) then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return ARGV[2]
