-- clear_queue: empties the queue and says how many pending items it dropped.
-- Prepended (LuaScripts.cs): nothing.
-- KEYS[1] queue (LIST)   KEYS[2] pending age (HASH, see common.lua)   Returns the number of items dropped.
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return n
