-- read_state: the current JSON and version of some profiles, read together (used by recovery and by
-- the consistency check).
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   ARGV[1..] fields ('user:<id>')
-- Returns { json1 or nil, version1 or nil, json2, version2, ... }.
local out = {}
for i = 1, #ARGV do
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i])
  out[#out + 1] = redis.call('HGET', KEYS[2], ARGV[i])
end
return out
