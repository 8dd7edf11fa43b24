-- read_state: the current JSON and version of some profiles, read together (used by recovery and by
-- the consistency check), after re-applying what a script cut short by a server crash left (redo.lua).
-- Prepended (LuaScripts.cs): common.lua, redo.lua (common: unpack; redo: redo_pending).
-- KEYS[1] cache (HASH)   KEYS[2] versions (HASH)   KEYS[3] redo records (HASH)   ARGV[1..] fields ('user:<id>')
-- Returns { json1 or nil, version1 or nil, json2, version2, ... }: two entries a field, in ARGV's order.
-- Two HMGETs per 1000 fields (Lua's unpack limit), not two HGETs per field.
redo_pending(KEYS[1], KEYS[2], KEYS[3])
local out, n = {}, 0
for c = 1, #ARGV, 1000 do
  local last = math.min(c + 999, #ARGV)
  local jsons = redis.call('HMGET', KEYS[1], unpack(ARGV, c, last))
  local vers = redis.call('HMGET', KEYS[2], unpack(ARGV, c, last))
  for i = 1, last - c + 1 do
    out[n + 1], out[n + 2] = jsons[i], vers[i]
    n = n + 2
  end
end
return out
