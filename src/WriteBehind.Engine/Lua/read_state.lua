-- read_state: the current JSON and version of some profiles, read together (used by recovery and by
-- the consistency check), after re-applying what a script cut short by a server crash left (redo.lua).
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   KEYS[3] redo records (HASH)   ARGV[1..] fields ('user:<id>')
-- Returns { json1 or nil, version1 or nil, json2, version2, ... }.
redo_pending(KEYS[1], KEYS[2], KEYS[3])
local out = {}
for i = 1, #ARGV do
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i])
  out[#out + 1] = redis.call('HGET', KEYS[2], ARGV[i])
end
return out
