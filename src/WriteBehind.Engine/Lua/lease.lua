-- lease: takes up to N of the oldest items from the queue into an in-flight lease and applies them to
-- the cache, atomically (the seed's "pop and apply in one EVAL").
-- Prepended (LuaScripts.cs): common.lua, prelude.lua, redo.lua (common: chunked calls, int_texts, partition_of,
-- note_taken; prelude: parse_item, parse_object, merge; redo: redo_pending, add_state, pack_tokens).
-- KEYS[1] queue (LIST)            KEYS[2] cache (HASH user:<id> -> JSON)   KEYS[3] versions (HASH user:<id> -> int)
-- KEYS[4] this lease (LIST)       KEYS[5] leases (ZSET lease key -> expiry ms)
-- KEYS[6] dead letters (LIST)     KEYS[7] dead-letter info (HASH item -> "attempts|first ms|last ms|reason")
-- KEYS[8] redo records (HASH, redo.lua)
-- KEYS[9] pending age (HASH, see common.lua's note_taken)
-- ARGV[1] max items   ARGV[2] lease expiry (ms since epoch)   ARGV[3] now (ms since epoch)
-- ARGV[4] partition count (optional, 1)   ARGV[5] this partition's index (optional, 0): an item whose id
--         belongs to another partition is dead-lettered (its profile lives in that partition's keys)
-- Returns { dequeued, dead-lettered, leased, superseded, resumed, states1, states2, ... } (see reply below):
-- the latest state of every profile the leased items touched, once per profile, in first-touch order, as
-- field 'user:<id>', version ('<n>d' when deleted) and JSON ('' when deleted), packed like a redo record (redo.lua's add_state)
-- in one or more strings; resumed is 1 when the batch is one a lease cut short by a server crash had
-- merged (finished here).
-- update items are merged here, exactly once: recovery of this lease re-persists, never re-merges.
--
-- A server may replay only a prefix of a script's writes after a crash (Garnet does; moving items one
-- at a time with LMOVE still lost one there, so no two-key command is relied on). So the writes are
-- single-key commands in an order whose every prefix loses no item and merges none twice; the batch stays
-- in the queue until the one LTRIM that removes it:
--   1. RPUSH of a sentinel (NUL, 'wb:lease:', the lease key) to the queue's right end, past the batch;
--   2. one HSET of the redo records: 'batch' (the sentinel, the batch size, which items are poison and
--      their dead-letter info) and 'lease' (every state the merge produced);
--   3. the cache and versions writes (absolute states);
--   4. the dead letters (reasons, then items), ZADD and RPUSH of the lease (copies: the queue still has
--      them; the lease's ZADD also says the dead letters are written);
--   5. LTRIM of the batch and the sentinel;   6. HDEL of the records.
-- The next lease finds what a cut left: a sentinel without records (cut after 1) is dropped and the batch
-- leased as usual; records with the sentinel still at the right end (cut in 2-5) mean the merge is decided:
-- redo_pending has re-applied its states, and this call copies the batch into its own lease (a partial
-- lease of the cut call only duplicates items: recovery re-persists, never re-merges) and trims it;
-- records without the sentinel (cut before 6) are dropped.
-- The reply (LeaseReply in C# reads it by these positions): the five counts, then the touched profiles'
-- states packed (redo.lua's add_state) in strings of about STATE_CHUNK bytes, none cut inside a state.
local STATE_CHUNK = 32768
local function reply(dequeued, dead_lettered, leased, superseded, resumed, chunks)
  local out = { dequeued, dead_lettered, leased, superseded, resumed }
  for c = 1, #chunks do out[5 + c] = chunks[c] end
  return out
end

-- Cuts the packed states (add_state's pieces) into the reply's strings as they are packed: called after
-- each state, with states[first..ns] not yet cut and size their bytes (about); returns the new first and size.
local function cut_states(chunks, states, first, ns, size, last)
  if size >= STATE_CHUNK or last then
    chunks[#chunks + 1] = tconcat(states, '', first, ns)
    return ns + 1, 0
  end
  return first, size
end

local max = tonumber(ARGV[1])
local partitions, partition = tonumber(ARGV[4]) or 1, tonumber(ARGV[5]) or 0
local SENTINEL = '\0wb:lease:'
redo_pending(KEYS[2], KEYS[3], KEYS[8])
local tail = redis.call('LINDEX', KEYS[1], -1)
local batch = redis.call('HGET', KEYS[8], 'batch')
if batch then
  local b = unpack_tokens(batch)
  if tail == b[1] then
    -- a cut lease had merged this batch (its states are applied): copy it into this lease, trim it
    local n, flags = tonumber(b[2]), b[3]
    local items = n > 0 and redis.call('LRANGE', KEYS[1], -(n + 1), -2) or {}
    local leased, fields, seen, d = {}, {}, {}, 3
    -- the cut call registered its lease after its dead letters: then they are all written
    local dead_done = redis.call('ZSCORE', KEYS[5], string.sub(b[1], #SENTINEL + 1))
    local dinfo, ditems = {}, {}
    for j = 1, n do
      local item = items[n - j + 1]   -- oldest first
      if string.sub(flags, j, j) == 'D' then
        d = d + 1
        dinfo[#dinfo + 1] = item
        dinfo[#dinfo + 1] = b[d]
        ditems[#ditems + 1] = item
      else
        leased[#leased + 1] = item
        local id = smatch(item, '^%l+:user:([^:]+)')
        if id and not seen[id] then
          seen[id] = true
          fields[#fields + 1] = 'user:' .. id
        end
      end
    end
    local states, ns, chunks, first, size = {}, 0, {}, 1, 0
    for c = 1, #fields, 1000 do
      local last = math.min(c + 999, #fields)
      local jsons = redis.call('HMGET', KEYS[2], unpack(fields, c, last))
      local vers = redis.call('HMGET', KEYS[3], unpack(fields, c, last))
      for i = c, last do
        local json = jsons[i - c + 1]
        ns = add_state(states, ns, fields[i], int_text(tonumber(vers[i - c + 1]) or 0), json)
        first, size = cut_states(chunks, states, first, ns, size + #fields[i] + (json and #json or 0) + 16, i == #fields)
      end
    end
    if not dead_done then
      call_chunked('HSET', KEYS[7], dinfo)
      call_chunked('LPUSH', KEYS[6], ditems)
    end
    if #leased > 0 then
      redis.call('ZADD', KEYS[5], ARGV[2], KEYS[4])
      call_chunked('RPUSH', KEYS[4], leased)
    end
    redis.call('LTRIM', KEYS[1], 0, -(n + 2))
    note_taken(KEYS[9], n, redis.call('LLEN', KEYS[1]))
    redis.call('HDEL', KEYS[8], 'lease', 'batch')
    return reply(n, d - 3, #leased, 0, 1, chunks)
  end
  redis.call('HDEL', KEYS[8], 'lease', 'batch')
end
if tail and string.sub(tail, 1, #SENTINEL) == SENTINEL then
  -- a sentinel whose call was cut before its records: nothing else of it was written
  redis.call('LTRIM', KEYS[1], 0, -2)
end
local items = redis.call('LRANGE', KEYS[1], -max, -1)
local count = #items
if count == 0 then
  redis.call('DEL', KEYS[9])
  return reply(0, 0, 0, 0, 0, {})
end

-- Each profile's state, by field: its JSON (false when there is none), its version and whether this
-- batch changed it (parallel tables: no table per profile).
local sjson, sver, sdirty = {}, {}, {}
local touched_order, touched = {}, {}
local leased, dead, superseded = {}, 0, 0

-- Pass 1: parse every item and read the state of every profile they name, in a few HMGETs
-- (one redis.call per item and field would cost more than the parsing).
local kinds, ids, rests, fieldof, qnames = {}, {}, {}, {}, {}
local fields, nfields = {}, 0
for k = 1, count do
  local kind, id, rest, field, qname = parse_item(items[k])
  if kind and partitions > 1 then
    local home = partition_of(id, partitions)
    if home ~= partition then
      kind, id, rest, qname = nil, string.format('wrong partition: user %s belongs to partition %d of %d', id, home, partitions), nil, nil
    end
  end
  -- (a SIMPLE_UPDATE keeps only its name: its kind is 'update' and its id is needed no more)
  if qname then qnames[k] = qname else kinds[k], ids[k] = kind, id end
  rests[k] = rest
  if kind then
    fieldof[k] = field
    if sver[field] == nil then
      sver[field] = false
      nfields = nfields + 1
      fields[nfields] = field
    end
  end
end
-- A version's number from its text, memoised for this call (versions repeat; a tonumber is a C call).
local version_of = setmetatable({}, { __index = function(t, text)
  local n = tonumber(text) or 0
  t[text] = n
  return n
end })
for c = 1, nfields, 1000 do
  local last = math.min(c + 999, nfields)
  local jsons = redis.call('HMGET', KEYS[2], unpack(fields, c, last))
  local vers = redis.call('HMGET', KEYS[3], unpack(fields, c, last))
  for i = c, last do
    local field, v = fields[i], vers[i - c + 1]
    sjson[field], sver[field] = jsons[i - c + 1], v and version_of[v] or 0
  end
end

-- Dead letters are written in step 4, oldest first: the reasons, then the items.
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

-- Pass 2: apply, oldest first (in memory: the writes follow, in the order above). The patches' and the
-- profiles' members are parsed into two pairs of tables used again for every item.
local infos, nleased, ntouched = {}, 0, 0
local qat, qidx, pat, pidx = {}, {}, {}, {}
for k = count, 1, -1 do
  local item, rest, qname = items[k], rests[k], qnames[k]
  local kind, id = 'update', nil
  if not qname then kind, id = kinds[k], ids[k] end
  local reason, unknown
  if not kind then
    reason = id
  else
    local field = fieldof[k]
    local json, ver = sjson[field], sver[field]
    if kind == 'update' then
      -- the patch is checked first: whether an item is poison never depends on the cache's state
      -- (a SIMPLE_UPDATE's patch, qname its member's name, is valid and one member: its offsets are filled
      -- in only if a merge needs them)
      local qn, qerr, _, qopen = 1, nil, nil, 1
      if not qname then qn, qerr, _, qopen = parse_object(rest, qat, qidx) end
      if not qn then
        reason = 'invalid JSON patch: ' .. qerr
      elseif not json and ver > 0 then
        -- deleted profile: a patch never revives it (only a new set does); the tombstone is re-persisted
        superseded = superseded + 1
      elseif not json then
        -- no cached profile: the patch merged into '{}', which is the patch itself when it is compact
        sjson[field] = (qname or compact(rest, qn, qat, qopen)) and rest or merge('{}', 0, pat, pidx, 1, rest, qn, qat)
        sver[field] = ver + 1
        sdirty[field] = true
      elseif qname and smatch(json, SINGLE_STRING_MEMBER) == qname then
        -- the profile is one string member and the patch replaces it: the merge is the patch's text
        sjson[field] = rest
        sver[field] = ver + 1
        sdirty[field] = true
      else
        if qname then simple_patch(rest, qname, qat) end
        local pn, perr, _, popen = parse_object(json, pat, pidx)
        if not pn then
          reason = 'cached profile is not a JSON object: ' .. perr
        else
          sjson[field] = merge(json, pn, pat, pidx, popen, rest, qn, qat)
          sver[field] = ver + 1
          sdirty[field] = true
        end
      end
    elseif not json and ver == 0 then
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
      if json then
        sjson[field] = false
        sver[field] = ver + 1
        sdirty[field] = true
      end
    end
    if not reason then
      nleased = nleased + 1
      leased[nleased] = item
      if not unknown and not touched[field] then
        touched[field] = true
        ntouched = ntouched + 1
        touched_order[ntouched] = field
      end
    end
  end
  if reason then infos[k] = dead_letter(item, reason) end
end

-- Step 1: the sentinel past the batch.
local sentinel = SENTINEL .. KEYS[4]
redis.call('RPUSH', KEYS[1], sentinel)

-- The latest state of every touched profile, packed once (as redo.lua's add_state packs one): the redo
-- record's states and the reply.
local sets, dels, vers, states, nsets, nvers, ns = {}, {}, {}, {}, 0, 0, 0
local chunks, first, size = {}, 1, 0
for t = 1, ntouched do
  local field = touched_order[t]
  local json, version = sjson[field], int_texts[sver[field]]
  if sdirty[field] then
    if json then
      sets[nsets + 1], sets[nsets + 2] = field, json
      nsets = nsets + 2
    else
      dels[#dels + 1] = field
    end
    vers[nvers + 1], vers[nvers + 2] = field, version
    nvers = nvers + 2
  end
  if not json then version, json = version .. 'd', '' end
  states[ns + 1], states[ns + 2], states[ns + 3] = length_prefix[#field], field, length_prefix[#version]
  states[ns + 4], states[ns + 5], states[ns + 6] = version, length_prefix[#json], json
  ns = ns + 6
  first, size = cut_states(chunks, states, first, ns, size + #field + #json + 16, t == ntouched)
end
-- Step 2: the records, in one command.
local binfo = { sentinel, count, string.rep('L', count) }
if dead > 0 then
  local flags = {}
  for k = count, 1, -1 do
    flags[count - k + 1] = infos[k] and 'D' or 'L'
    if infos[k] then binfo[#binfo + 1] = infos[k] end
  end
  binfo[3] = tconcat(flags)
end
if nvers > 0 then
  redis.call('HSET', KEYS[8], 'batch', pack_tokens(binfo), 'lease', tconcat(chunks))
else
  redis.call('HSET', KEYS[8], 'batch', pack_tokens(binfo))
end
-- Step 3.
write_states(KEYS[2], KEYS[3], sets, dels, vers)
-- Step 4: the dead letters (reasons, then items, oldest first), then the lease: ZADD first, so a lease
-- list never exists without its entry, and the entry says the dead letters are written.
if dead > 0 then
  local dinfo, ditems = {}, {}
  for k = count, 1, -1 do
    if infos[k] then
      dinfo[#dinfo + 1] = items[k]
      dinfo[#dinfo + 1] = infos[k]
      ditems[#ditems + 1] = items[k]
    end
  end
  call_chunked('HSET', KEYS[7], dinfo)
  call_chunked('LPUSH', KEYS[6], ditems)
end
redis.call('ZADD', KEYS[5], ARGV[2], KEYS[4])
if nleased > 0 then call_chunked('RPUSH', KEYS[4], leased) end
-- Steps 5 and 6 (a batch of poison only leaves no lease: its entry goes once the batch is trimmed).
redis.call('LTRIM', KEYS[1], 0, -(count + 2))
note_taken(KEYS[9], count, count < max and 0 or redis.call('LLEN', KEYS[1]))
if nleased == 0 then redis.call('ZREM', KEYS[5], KEYS[4]) end
redis.call('HDEL', KEYS[8], 'lease', 'batch')
return reply(count, dead, nleased, superseded, 0, chunks)
