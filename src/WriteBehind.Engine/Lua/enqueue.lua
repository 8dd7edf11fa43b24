-- enqueue: LPUSHes items unless that would pass the high-water mark.
-- Prepended (LuaScripts.cs): common.lua.
-- KEYS[1] queue (LIST)   KEYS[2] pending age (HASH, see common.lua)   ARGV[1] high-water mark (0 = none)   ARGV[2..] items
-- Returns the queue depth after the push, or 'WB_QUEUE_FULL ...' and pushes nothing.
local err = queue_full(KEYS[1], tonumber(ARGV[1]), #ARGV - 1)
if err then return err end
mark_pending(KEYS[1], KEYS[2])
return call_chunked('LPUSH', KEYS[1], ARGV, 2) or redis.call('LLEN', KEYS[1])
