-- dead_letters: takes entries out of the dead-letter list, either requeueing them or dropping them.
-- Prepended (LuaScripts.cs): common.lua.
-- KEYS[1] dead letters (LIST)   KEYS[2] dead-letter info (HASH)   KEYS[3] queue (LIST)   KEYS[4] pending age (HASH, see common.lua)
-- ARGV[1] 'restore' or 'remove', then pairs: ARGV[2k] the entry's item text, ARGV[2k+1] the text to
-- requeue (restore only; ignored for remove)
-- Returns for each entry 1 when it was found (and requeued or removed), 0 when it was not there.
-- The oldest copy of an item goes first; its info is dropped with its last copy.
-- A restored item is queued before it leaves the dead-letter list: a prefix of the writes replayed after
-- a server crash can only leave it in both, never in neither.
-- One pass whatever the order or the positions of the entries: the copies to take are overwritten with
-- TAKEN (LSET, from the nearer end) and one LREM drops them all (a DEL when every entry goes). A LREM per entry scanned the list from its
-- oldest end each time, so restoring the newest 20,000 entries of 20,000 blocked the server for seconds.
-- A cut between the LSETs and the LREM leaves TAKEN entries behind: readers skip them
-- (DeadLetterList.Taken, the same text) and the next call here drops them.
local TAKEN = '\0WriteBehind: dead letter taken\0'
local list = redis.call('LRANGE', KEYS[1], 0, -1)
local len = #list
local copies = {}
for i = 1, len do
  local item = list[i]
  copies[item] = (copies[item] or 0) + 1
end
local restore = ARGV[1] == 'restore'
-- per entry in ARGV order: found when an earlier entry for the same item has not taken its last copy
local out, asked, found = {}, {}, 0
for i = 2, #ARGV, 2 do
  local item = ARGV[i]
  local n = asked[item] or 0
  asked[item] = n + 1
  if item ~= TAKEN and n < (copies[item] or 0) then
    out[#out + 1] = 1
    found = found + 1
  else
    out[#out + 1] = 0
  end
end
if found == 0 and not copies[TAKEN] then return out end
if restore and found > 0 then
  mark_pending(KEYS[3], KEYS[4])
  for k = 1, #out do
    if out[k] == 1 then redis.call('LPUSH', KEYS[3], ARGV[2 * k + 1]) end
  end
end
-- take the oldest copies (the right end): as many per item as its entries found
local left = {}
for k = 1, #out do
  if out[k] == 1 then
    local item = ARGV[2 * k]
    left[item] = (left[item] or 0) + 1
  end
end
local remaining = found
if found == len then
  -- every entry goes (Restore-WriteBehindDeadLetter -All): the list goes with them
  redis.call('DEL', KEYS[1])
  remaining = 0
end
for i = len, 1, -1 do
  if remaining == 0 then break end
  local item = list[i]
  local n = left[item]
  if n and n > 0 then
    left[item] = n - 1
    remaining = remaining - 1
    if i - 1 <= len - i then redis.call('LSET', KEYS[1], i - 1, TAKEN)
    else redis.call('LSET', KEYS[1], i - len - 1, TAKEN) end
  end
end
if found < len then redis.call('LREM', KEYS[1], 0, TAKEN) end
-- an item's info goes with its last copy
local dropped = {}
for k = 1, #out do
  local item = ARGV[2 * k]
  if out[k] == 1 and not dropped[item] and asked[item] >= copies[item] then
    dropped[item] = true
    redis.call('HDEL', KEYS[2], item)
  end
end
return out
