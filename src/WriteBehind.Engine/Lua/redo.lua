-- Redo records (prepended, after common.lua, to the scripts that read or write profiles). A server may
-- replay only a prefix of a script's writes after it crashed (Garnet does, from its AOF), so a script that
-- writes several profile states first writes them all, in one command, as one field of the partition's
-- redo HASH, then writes the cache and versions hashes, then drops the record. Every script that reads or
-- writes profiles calls redo_pending first: a record left by a script cut short is applied again (its
-- states are absolute, and nothing ran in between), so no script ever sees a half-written profile.
-- Fields: 'lease' (lease.lua: the merge of its batch; '' once applied, until the next lease finishes the
-- batch), 'read' (read_through.lua); 'batch' (lease.lua: which batch, no states) is lease.lua's alone.

-- A list of strings (and numbers) as one string: each as <length>:<bytes>, joined by one table.concat
-- (no intermediate copy of each JSON text).
local function pack_tokens(t)
  local out, n = {}, 0
  for i = 1, #t do
    local s = t[i]
    if type(s) ~= 'string' then s = tostring(s) end
    out[n + 1], out[n + 2], out[n + 3] = #s, ':', s
    n = n + 3
  end
  return table.concat(out)
end

local function unpack_tokens(s)
  local t, i = {}, 1
  while i <= #s do
    local c = string.find(s, ':', i, true)
    local n = tonumber(string.sub(s, i, c - 1))
    t[#t + 1] = string.sub(s, c + 1, c + n)
    i = c + n + 1
  end
  return t
end

-- The record of a write: sets (field, JSON pairs), dels (fields), vers (field, version pairs).
local function redo_record(sets, dels, vers)
  local t = { #sets }
  for i = 1, #sets do t[#t + 1] = sets[i] end
  t[#t + 1] = #dels
  for i = 1, #dels do t[#t + 1] = dels[i] end
  t[#t + 1] = #vers
  for i = 1, #vers do t[#t + 1] = vers[i] end
  return pack_tokens(t)
end

-- The writes themselves, in this order: cache sets, cache deletes, versions.
local function write_states(cache, versions, sets, dels, vers)
  call_chunked('HSET', cache, sets)
  call_chunked('HDEL', cache, dels)
  call_chunked('HSET', versions, vers)
end

local function apply_record(cache, versions, record)
  local t = unpack_tokens(record)
  local lists, i = {}, 1
  for l = 1, 3 do
    local n, list = tonumber(t[i]), {}
    for k = 1, n do list[k] = t[i + k] end
    lists[l] = list
    i = i + n + 1
  end
  write_states(cache, versions, lists[1], lists[2], lists[3])
end

-- Applies the records scripts cut short by a crash left.
local function redo_pending(cache, versions, redo)
  if redis.call('HLEN', redo) == 0 then return end
  local all = redis.call('HGETALL', redo)
  for i = 1, #all, 2 do
    local name, record = all[i], all[i + 1]
    if name ~= 'batch' then
      if record ~= '' then apply_record(cache, versions, record) end
      if name == 'lease' then
        if record ~= '' then redis.call('HSET', redo, name, '') end
      else
        redis.call('HDEL', redo, name)
      end
    end
  end
end
