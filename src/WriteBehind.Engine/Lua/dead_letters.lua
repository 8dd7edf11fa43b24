-- dead_letters: takes entries out of the dead-letter list, either requeueing them or dropping them.
-- Prepended (LuaScripts.cs): common.lua.
-- KEYS[1] dead letters (LIST)   KEYS[2] dead-letter info (HASH)   KEYS[3] queue (LIST)   KEYS[4] pending age (HASH, see common.lua)
-- ARGV[1] 'restore' or 'remove', then pairs: ARGV[2k] the entry's item text, ARGV[2k+1] the text to
-- requeue (restore only; ignored for remove)
-- Returns for each entry 1 when it was found (and requeued or removed), 0 when it was not there.
-- The oldest copy of an item goes first; its info is dropped with its last copy.
-- A restored item is queued before it leaves the dead-letter list: a prefix of the writes replayed after
-- a server crash can only leave it in both, never in neither.
local copies = {}
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do copies[item] = (copies[item] or 0) + 1 end
local out = {}
for i = 2, #ARGV, 2 do
  local item = ARGV[i]
  local n = 0
  if (copies[item] or 0) > 0 then
    if ARGV[1] == 'restore' then
      mark_pending(KEYS[3], KEYS[4])
      redis.call('LPUSH', KEYS[3], ARGV[i + 1])
    end
    n = redis.call('LREM', KEYS[1], -1, item)
    copies[item] = copies[item] - n
    if copies[item] <= 0 then redis.call('HDEL', KEYS[2], item) end
  end
  out[#out + 1] = n
end
return out
