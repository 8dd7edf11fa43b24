-- pending_age: the queue's depth and the time its oldest pending item was pushed at the latest (see
-- common.lua), read without a flush. A queue with items but no record (raw LPUSHes only) is recorded as
-- first seen now; an empty queue drops its record.
-- Prepended (LuaScripts.cs): common.lua.
-- KEYS[1] queue (LIST)   KEYS[2] pending age (HASH)
-- Returns { depth, since (ms text, Redis's clock) or false, now (ms text, Redis's clock) }.
local depth = redis.call('LLEN', KEYS[1])
local now = redis_ms()
if depth == 0 then
  redis.call('DEL', KEYS[2])
  return { 0, false, now }
end
local since = redis.call('HGET', KEYS[2], 'since')
if not since then
  since = now
  redis.call('HSET', KEYS[2], 'since', now)
end
return { depth, since, now }
