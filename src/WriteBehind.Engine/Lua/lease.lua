-- lease: takes up to N of the oldest items from the queue into an in-flight lease and applies them to
-- the cache, atomically (the seed's "pop and apply in one EVAL").
-- KEYS[1] queue (LIST)            KEYS[2] cache (HASH user:<id> -> JSON)   KEYS[3] versions (HASH user:<id> -> int)
-- KEYS[4] this lease (LIST)       KEYS[5] leases (ZSET lease key -> expiry ms)
-- KEYS[6] dead letters (LIST)     KEYS[7] dead-letter info (HASH item -> "attempts|first ms|last ms|reason")
-- ARGV[1] max items   ARGV[2] lease expiry (ms since epoch)   ARGV[3] now (ms since epoch)
-- Returns { dequeued, dead-lettered, leased, superseded, id1, json1 or nil (deleted), version1, id2, ... }:
-- the latest state of every profile the leased items touched, once per profile, in first-touch order.
-- update items are merged here, exactly once: recovery of this lease re-persists, never re-merges.
local max = tonumber(ARGV[1])
local items = redis.call('LRANGE', KEYS[1], -max, -1)
local count = #items
if count == 0 then return { 0, 0, 0, 0 } end
redis.call('LTRIM', KEYS[1], 0, -count - 1)

local state, touched_order, touched = {}, {}, {}
local leased, dead, superseded = {}, 0, 0

local function load(field)
  local st = state[field]
  if not st then
    local v = redis.call('HGET', KEYS[3], field)
    st = { json = redis.call('HGET', KEYS[2], field), ver = tonumber(v) or 0, dirty = false, field = field }
    state[field] = st
  end
  return st
end

local function dead_letter(item, reason)
  dead = dead + 1
  redis.call('LPUSH', KEYS[6], item)
  local info = redis.call('HGET', KEYS[7], item)
  local attempts, first = 0, ARGV[3]
  if info then
    local a, f = smatch(info, '^(%d+)|(%d+)|')
    attempts, first = tonumber(a) or 0, f or ARGV[3]
  end
  redis.call('HSET', KEYS[7], item, (attempts + 1) .. '|' .. first .. '|' .. ARGV[3] .. '|' .. reason)
end

for k = count, 1, -1 do
  local item = items[k]
  local kind, id, rest = parse_item(item)
  local reason
  if not kind then
    reason = id
  else
    local field = 'user:' .. id
    if kind == 'update' then
      local st = load(field)
      -- the patch is checked first: whether an item is poison never depends on the cache's state
      local qm, err = parse_object(rest)
      if not qm then
        reason = 'invalid JSON patch: ' .. err
      elseif not st.json and st.ver > 0 then
        -- deleted profile: a patch never revives it (only a new set does); the tombstone is re-persisted
        superseded = superseded + 1
      else
        local base = st.json or '{}'
        local pm, perr = parse_object(base)
        if not pm then
          reason = 'cached profile is not a JSON object: ' .. perr
        else
          st.json = merge(base, pm, rest, qm)
          st.ver = st.ver + 1
          st.dirty = true
        end
      end
    elseif kind == 'delete' and not rest then
      -- a deferred delete from a raw producer (the module's own deletes carry the version they made)
      local st = load(field)
      if st.json then
        st.json = false
        st.ver = st.ver + 1
        st.dirty = true
      end
    end
    if not reason then
      leased[#leased + 1] = item
      if not touched[field] then
        touched[field] = id
        touched_order[#touched_order + 1] = field
      end
    end
  end
  if reason then dead_letter(item, reason) end
end

local out = { count, dead, #leased, superseded }
if #leased > 0 then
  for c = 1, #leased, 1000 do
    redis.call('RPUSH', KEYS[4], unpack(leased, c, math.min(c + 999, #leased)))
  end
  redis.call('ZADD', KEYS[5], ARGV[2], KEYS[4])
end
for t = 1, #touched_order do
  local field = touched_order[t]
  local st = load(field)
  if st.dirty then
    if st.json then
      redis.call('HSET', KEYS[2], field, st.json)
    else
      redis.call('HDEL', KEYS[2], field)
    end
    redis.call('HSET', KEYS[3], field, st.ver)
  end
  out[#out + 1] = touched[field]
  out[#out + 1] = st.json
  out[#out + 1] = st.ver
end
return out
