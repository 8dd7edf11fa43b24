-- remove_profiles: deletes profiles from the cache, bumps each version (a versioned tombstone) and
-- queues the delete, atomically.
-- Prepended (LuaScripts.cs): common.lua, redo.lua.
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   KEYS[3] queue (LIST)   KEYS[4] redo records (HASH, redo.lua)
-- KEYS[5] pending age (HASH, see common.lua)
-- ARGV[1] queue high-water mark (0 = none)   ARGV[2..] fields ('user:<id>')
-- Returns for each field 1 when a cached profile was removed, 0 when none was cached (a tombstone is
-- still versioned and queued, so a copy only the store holds is deleted too); or 'WB_QUEUE_FULL ...'.
-- The writes go queue items, versions, cache deletes: any prefix of them (a server replaying part of a
-- script cut short by a crash) leaves each profile live, with at most a new version and a queued persist.
local err = queue_full(KEYS[3], tonumber(ARGV[1]), #ARGV - 1)
if err then return err end
redo_pending(KEYS[1], KEYS[2], KEYS[4])
local out, latest, vers, items = {}, {}, {}, {}
for c = 2, #ARGV, 1000 do
  local last = math.min(c + 999, #ARGV)
  local cached = redis.call('HMGET', KEYS[1], unpack(ARGV, c, last))
  local got = redis.call('HMGET', KEYS[2], unpack(ARGV, c, last))
  for i = c, last do
    local f = ARGV[i]
    local v = (latest[f] or tonumber(got[i - c + 1]) or 0) + 1
    out[#out + 1] = (cached[i - c + 1] and not latest[f]) and 1 or 0
    latest[f] = v
    vers[#vers + 1] = f
    vers[#vers + 1] = v
    items[#items + 1] = 'delete:' .. f .. ':' .. int_text(v)
  end
end
mark_pending(KEYS[3], KEYS[5])
call_chunked('LPUSH', KEYS[3], items)
call_chunked('HSET', KEYS[2], vers)
call_chunked('HDEL', KEYS[1], ARGV, 2)
return out
