-- set_profiles: writes profiles to the cache, bumps each one's version and queues its persist, in one
-- atomic step, so cache and queue cannot diverge (invariant 5).
-- Prepended (LuaScripts.cs): common.lua, redo.lua.
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   KEYS[3] queue (LIST)   KEYS[4] redo records (HASH, redo.lua)
-- KEYS[5] pending age (HASH, see common.lua)
-- ARGV[1] '1' to queue the persist, '0' to only warm the cache   ARGV[2] queue high-water mark (0 = none)
-- ARGV[3] '1' to return the versions, '0' to return only how many profiles were written (a reply of one
-- integer instead of one per profile: Set-UserProfile without -PassThru has no use for them)
-- ARGV[4], ARGV[5], ... pairs of field ('user:<id>') and JSON text (validated by the caller)
-- Returns the new version of each profile, in order (or their count); or an error 'WB_QUEUE_FULL ...' and
-- writes nothing.
-- Work is done in a few multi-field calls per chunk, not three calls per profile. The writes go queue
-- items, versions, cache: any prefix of them (a server replaying part of a script cut short by a crash)
-- leaves each profile at its old JSON, with at most a new version and a queued persist of it.
local FIRST = 4
local queue = ARGV[1] == '1'
if queue then
  local err = queue_full(KEYS[3], tonumber(ARGV[2]), math.floor((#ARGV - FIRST + 1) / 2))
  if err then return err end
end
redo_pending(KEYS[1], KEYS[2], KEYS[4])
local fields = {}
for i = FIRST, #ARGV, 2 do fields[#fields + 1] = ARGV[i] end
local current = {}
for c = 1, #fields, 1000 do
  local got = redis.call('HMGET', KEYS[2], unpack(fields, c, math.min(c + 999, #fields)))
  for i = 1, #got do current[c + i - 1] = tonumber(got[i]) or 0 end
end
-- the same id twice in one call gets two versions, in order
-- (each version's text is made once, for its queue item and its HSET: Redis need not format a number;
-- int_texts, since most profiles of a chunk share a version: 1 for new ones)
local latest, out, vers, items = {}, {}, {}, {}
for i = 1, #fields do
  local f = fields[i]
  local v = (latest[f] or current[i]) + 1
  local text = int_texts[v]
  latest[f] = v
  out[i] = v
  vers[2 * i - 1] = f
  vers[2 * i] = text
  items[i] = 'set:' .. f .. ':' .. text
end
if queue then
  mark_pending(KEYS[3], KEYS[5])
  call_chunked('LPUSH', KEYS[3], items)
end
call_chunked('HSET', KEYS[2], vers)
call_chunked('HSET', KEYS[1], ARGV, FIRST)
if ARGV[3] == '1' then return out end
return #fields
