-- lease: takes up to N of the oldest items from the queue into an in-flight lease and applies them to
-- the cache, atomically (the seed's "pop and apply in one EVAL").
-- KEYS[1] queue (LIST)            KEYS[2] cache (HASH user:<id> -> JSON)   KEYS[3] versions (HASH user:<id> -> int)
-- KEYS[4] this lease (LIST)       KEYS[5] leases (ZSET lease key -> expiry ms)
-- KEYS[6] dead letters (LIST)     KEYS[7] dead-letter info (HASH item -> "attempts|first ms|last ms|reason")
-- KEYS[8] pending age (HASH, see common.lua's note_taken)
-- ARGV[1] max items   ARGV[2] lease expiry (ms since epoch)   ARGV[3] now (ms since epoch)
-- ARGV[4] partition count (optional, 1)   ARGV[5] this partition's index (optional, 0): an item whose id
--         belongs to another partition is dead-lettered (its profile lives in that partition's keys)
-- Returns { dequeued, dead-lettered, leased, superseded, id1, json1 or nil (deleted), version1, id2, ... }:
-- the latest state of every profile the leased items touched, once per profile, in first-touch order.
-- update items are merged here, exactly once: recovery of this lease re-persists, never re-merges.
local max = tonumber(ARGV[1])
local partitions, partition = tonumber(ARGV[4]) or 1, tonumber(ARGV[5]) or 0
local items = redis.call('LRANGE', KEYS[1], -max, -1)
local count = #items
if count == 0 then
  redis.call('DEL', KEYS[8])
  return { 0, 0, 0, 0 }
end
redis.call('LTRIM', KEYS[1], 0, -count - 1)
note_taken(KEYS[8], count, count < max and 0 or redis.call('LLEN', KEYS[1]))

local state, touched_order, touched = {}, {}, {}
local leased, dead, superseded = {}, 0, 0

-- Pass 1: parse every item and read the state of every profile they name, in a few HMGETs
-- (one redis.call per item and field would cost more than the parsing).
local kinds, ids, rests = {}, {}, {}
local fields, seen = {}, {}
for k = count, 1, -1 do
  local kind, id, rest = parse_item(items[k])
  if kind and partitions > 1 then
    local home = partition_of(id, partitions)
    if home ~= partition then
      kind, id, rest = nil, string.format('wrong partition: user %s belongs to partition %d of %d', id, home, partitions), nil
    end
  end
  kinds[k], ids[k], rests[k] = kind, id, rest
  if kind and not seen[id] then
    seen[id] = true
    fields[#fields + 1] = 'user:' .. id
  end
end
for c = 1, #fields, 1000 do
  local last = math.min(c + 999, #fields)
  local jsons = redis.call('HMGET', KEYS[2], unpack(fields, c, last))
  local vers = redis.call('HMGET', KEYS[3], unpack(fields, c, last))
  for i = c, last do
    state[fields[i]] = { json = jsons[i - c + 1], ver = tonumber(vers[i - c + 1]) or 0, dirty = false }
  end
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

-- Pass 2: apply, oldest first.
for k = count, 1, -1 do
  local item, kind, id, rest = items[k], kinds[k], ids[k], rests[k]
  local reason, unknown
  if not kind then
    reason = id
  else
    local field = 'user:' .. id
    local st = state[field]
    if kind == 'update' then
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
    elseif not st.json and st.ver == 0 then
      -- a profile the cache has never known (no JSON, no version, not even made by an earlier item of this
      -- batch): a deferred delete has nothing to delete (leased, but no row: counted as coalesced); a set,
      -- or a delete naming a version, claims a state that is not there: dead-lettered, not counted as persisted
      if kind == 'delete' and not rest then
        unknown = true
      else
        reason = 'no cached profile and no version for user ' .. id .. ': nothing to persist'
      end
    elseif kind == 'delete' and not rest then
      -- a deferred delete from a raw producer (the module's own deletes carry the version they made)
      if st.json then
        st.json = false
        st.ver = st.ver + 1
        st.dirty = true
      end
    end
    if not reason then
      leased[#leased + 1] = item
      if not unknown and not touched[field] then
        touched[field] = id
        touched_order[#touched_order + 1] = field
      end
    end
  end
  if reason then dead_letter(item, reason) end
end

local out = { count, dead, #leased, superseded }
if #leased > 0 then
  call_chunked('RPUSH', KEYS[4], leased)
  redis.call('ZADD', KEYS[5], ARGV[2], KEYS[4])
end
local sets, dels, vers = {}, {}, {}
for t = 1, #touched_order do
  local field = touched_order[t]
  local st = state[field]
  if st.dirty then
    if st.json then
      sets[#sets + 1] = field
      sets[#sets + 1] = st.json
    else
      dels[#dels + 1] = field
    end
    vers[#vers + 1] = field
    vers[#vers + 1] = st.ver
  end
  out[#out + 1] = touched[field]
  out[#out + 1] = st.json
  out[#out + 1] = st.ver
end
call_chunked('HSET', KEYS[2], sets)
call_chunked('HDEL', KEYS[2], dels)
call_chunked('HSET', KEYS[3], vers)
return out
