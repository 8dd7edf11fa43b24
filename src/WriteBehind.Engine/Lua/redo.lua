-- Redo records (prepended, after common.lua, to the scripts that read or write profiles). A server may
-- replay only a prefix of a script's writes after it crashed (Garnet does, from its AOF), so a script that
-- writes several profile states first writes them all, in one command, as one field of the partition's
-- redo HASH, then writes the cache and versions hashes, then drops the record. Every script that reads or
-- writes profiles calls redo_pending first: a record left by a script cut short is applied again (its
-- states are absolute, and nothing ran in between), so no script ever sees a half-written profile.
-- Fields: 'lease' (lease.lua: the merge of its batch; '' once applied, until the next lease finishes the
-- batch), 'read' (read_through.lua); 'batch' (lease.lua: which batch, no states) is lease.lua's alone.

-- The text of a token's length and the ':' after it, made once per length: a number put into a string
-- by table.concat or '..' is formatted by sprintf('%.14g') on Redis's Lua, and one per token is most of
-- what packing costs.
local length_prefix = setmetatable({}, { __index = function(t, n)
  local text = int_text(n) .. ':'
  t[n] = text
  return text
end })

-- A list of strings as one string: each as <length>:<bytes>, joined by one table.concat (no
-- intermediate copy of each JSON text).
local function pack_tokens(t)
  local out, n = {}, 0
  for i = 1, #t do
    local s = t[i]
    if type(s) ~= 'string' then s = int_text(s) end
    out[n + 1], out[n + 2] = length_prefix[#s], s
    n = n + 2
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

-- Profile states as a packed list of triples: field ('user:<id>'), version (decimal text; with a 'd' after
-- it for a deleted profile, whose JSON is then ''), JSON. A redo record holds one (lease.lua's merge,
-- read_through.lua's write), and lease.lua returns the same string to the flusher (LeaseReply in C#
-- reads it: the three tokens in this order). The mark is on the version, which only the scripts write:
-- a cached text, even an empty one, is never taken for a delete.
local STATE_TOKENS = 3

-- Appends one state to a list being packed (out, n: the list and its length so far); returns the new
-- length. json false or nil: the profile is deleted.
local function add_state(out, n, field, version_text, json)
  if not json then version_text, json = version_text .. 'd', '' end
  out[n + 1], out[n + 2] = length_prefix[#field], field
  out[n + 3], out[n + 4] = length_prefix[#version_text], version_text
  out[n + 5], out[n + 6] = length_prefix[#json], json
  return n + 6
end

-- The writes themselves, in this order: cache sets, cache deletes, versions.
local function write_states(cache, versions, sets, dels, vers)
  call_chunked('HSET', cache, sets)
  call_chunked('HDEL', cache, dels)
  call_chunked('HSET', versions, vers)
end

local function apply_record(cache, versions, record)
  local t = unpack_tokens(record)
  local lists = { {}, {}, {} }
  if string.find(t[1] or '', '^%d') then
    -- the format before the states were triples: #sets, sets..., #dels, dels..., #vers, vers...
    local i = 1
    for l = 1, 3 do
      local n, list = tonumber(t[i]), lists[l]
      for k = 1, n do list[k] = t[i + k] end
      i = i + n + 1
    end
  else
    local sets, dels, vers = lists[1], lists[2], lists[3]
    for i = 1, #t, STATE_TOKENS do
      local field, version, json = t[i], t[i + 1], t[i + 2]
      if string.sub(version, -1) == 'd' then
        version = string.sub(version, 1, -2)
        dels[#dels + 1] = field
      else
        sets[#sets + 1] = field
        sets[#sets + 1] = json
      end
      -- a version 0 is the state of a profile the versions hash has no entry for (never a written one)
      if version ~= '0' then vers[#vers + 1] = field; vers[#vers + 1] = version end
    end
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
