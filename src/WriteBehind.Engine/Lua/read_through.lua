-- read_through: puts a profile read from the store back into the cache after a cache miss, unless the
-- cache knows a newer state (a pending change, or a delete whose tombstone is newer).
-- Prepended (LuaScripts.cs): common.lua, redo.lua.
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   KEYS[3] redo records (HASH, redo.lua)
-- ARGV[1] field   ARGV[2] JSON   ARGV[3] store version
-- Returns the cached JSON (what is now in the cache), or nil when the cache holds a newer state.
-- The two writes go through a redo record: either half alone, replayed after a crash, would be a state
-- the flush could not converge (a JSON without its version, or a version that looks like a tombstone).
redo_pending(KEYS[1], KEYS[2], KEYS[3])
local cached = redis.call('HGET', KEYS[1], ARGV[1])
if cached then return cached end
local v = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if v > tonumber(ARGV[3]) then return false end
local record = {}
add_state(record, 0, ARGV[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], 'read', table.concat(record))
write_states(KEYS[1], KEYS[2], { ARGV[1], ARGV[2] }, {}, { ARGV[1], ARGV[3] })
redis.call('HDEL', KEYS[3], 'read')
return ARGV[2]
