-- lease: takes up to N of the oldest items from the queue into an in-flight lease and applies them to
-- the cache, atomically (the seed's "pop and apply in one EVAL").
-- KEYS[1] queue (LIST)            KEYS[2] cache (HASH user:<id> -> JSON)   KEYS[3] versions (HASH user:<id> -> int)
-- KEYS[4] this lease (LIST)       KEYS[5] leases (ZSET lease key -> expiry ms)
-- KEYS[6] dead letters (LIST)     KEYS[7] dead-letter info (HASH item -> "attempts|first ms|last ms|reason")
-- KEYS[8] staging (LIST: items on their way into a lease)   KEYS[9] redo records (HASH, redo.lua)
-- ARGV[1] max items   ARGV[2] lease expiry (ms since epoch)   ARGV[3] now (ms since epoch)
-- ARGV[4] partition count (optional, 1)   ARGV[5] this partition's index (optional, 0): an item whose id
--         belongs to another partition is dead-lettered (its profile lives in that partition's keys)
-- Returns { dequeued, dead-lettered, leased, superseded, resumed, id1, json1 or nil (deleted), version1, id2, ... }:
-- the latest state of every profile the leased items touched, once per profile, in first-touch order;
-- resumed is 1 when the batch is the one a lease cut short by a server crash had staged (finished here).
-- update items are merged here, exactly once: recovery of this lease re-persists, never re-merges.
--
-- The writes come in an order whose every prefix, replayed alone after a server crash (Garnet replays
-- part of a script cut short), loses no item and merges none twice:
--   1. each item moves alone (LMOVE) from the queue's right end into the staging list or, poison, into
--      the dead-letter list after its reason: any prefix leaves every item in exactly one place;
--   2. one HSET of the redo record: every state the merge produced;
--   3. the cache and versions writes (absolute states; redone from the record when cut short);
--   4. ZADD of the lease, RENAME of the staging list to the lease, HDEL of the record.
-- A later call finds what a cut left: staged items without a record were never merged (merged now, once,
-- before any newer item); with a record they were (redo_pending re-applies it), and only step 4 is left.
local max = tonumber(ARGV[1])
local partitions, partition = tonumber(ARGV[4]) or 1, tonumber(ARGV[5]) or 0
local merged = redo_pending(KEYS[2], KEYS[3], KEYS[9])
-- the staging list (and so the lease) holds the oldest item leftmost, as the lease always did; items[]
-- below is in the queue's order (oldest last)
local staged = redis.call('LRANGE', KEYS[8], 0, -1)
local items = {}
for i = #staged, 1, -1 do items[#items + 1] = staged[i] end
local resumed = #items > 0
if resumed and merged then
  -- a cut lease had merged and applied this batch: it only needs to become a lease; its rows are the
  -- profiles' current state, as a recovery would persist
  local out, fields, seen = { #items, 0, #items, 0, 1 }, {}, {}
  for k = #items, 1, -1 do
    local id = smatch(items[k], '^%l+:user:([^:]+)')
    if id and not seen[id] then
      seen[id] = true
      fields[#fields + 1] = 'user:' .. id
    end
  end
  for c = 1, #fields, 1000 do
    local last = math.min(c + 999, #fields)
    local jsons = redis.call('HMGET', KEYS[2], unpack(fields, c, last))
    local vers = redis.call('HMGET', KEYS[3], unpack(fields, c, last))
    for i = c, last do
      out[#out + 1] = string.sub(fields[i], 6)
      out[#out + 1] = jsons[i - c + 1]
      out[#out + 1] = tonumber(vers[i - c + 1]) or 0
    end
  end
  redis.call('ZADD', KEYS[5], ARGV[2], KEYS[4])
  redis.call('RENAME', KEYS[8], KEYS[4])
  redis.call('HDEL', KEYS[9], 'lease')
  return out
end
if merged then redis.call('HDEL', KEYS[9], 'lease') end
if not resumed then items = redis.call('LRANGE', KEYS[1], -max, -1) end
local count = #items
if count == 0 then return { 0, 0, 0, 0, 0 } end

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

-- Dead letters are written in step 1, in queue order with the moves: the reason first, then the item
-- moves (from the queue, or from the staging list when a staged batch is merged now).
local new_info = {}
local function dead_letter(item, reason)
  dead = dead + 1
  local info = new_info[item] or redis.call('HGET', KEYS[7], item)
  local attempts, first = 0, ARGV[3]
  if info then
    local a, f = smatch(info, '^(%d+)|(%d+)|')
    attempts, first = tonumber(a) or 0, f or ARGV[3]
  end
  new_info[item] = (attempts + 1) .. '|' .. first .. '|' .. ARGV[3] .. '|' .. reason
  return new_info[item]
end

-- Pass 2: apply, oldest first (in memory: the writes follow, in the order above).
local infos = {}
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
  if reason then infos[k] = dead_letter(item, reason) end
end

-- Step 1: the moves, oldest first (the queue's right end is items[count], then items[count - 1], ...).
for k = count, 1, -1 do
  if infos[k] then
    redis.call('HSET', KEYS[7], items[k], infos[k])
    if resumed then
      redis.call('LPUSH', KEYS[6], items[k])
      redis.call('LREM', KEYS[8], 1, items[k])
    else
      redis.call('LMOVE', KEYS[1], KEYS[6], 'RIGHT', 'LEFT')
    end
  elseif not resumed then
    redis.call('LMOVE', KEYS[1], KEYS[8], 'RIGHT', 'RIGHT')
  end
end

local out = { count, dead, #leased, superseded, resumed and 1 or 0 }
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
-- Steps 2 to 4.
local record = #vers > 0
if record then
  redis.call('HSET', KEYS[9], 'lease', redo_record(sets, dels, vers))
  write_states(KEYS[2], KEYS[3], sets, dels, vers)
end
if #leased > 0 then
  redis.call('ZADD', KEYS[5], ARGV[2], KEYS[4])
  redis.call('RENAME', KEYS[8], KEYS[4])
end
if record then redis.call('HDEL', KEYS[9], 'lease') end
return out
