-- Shared helpers, prepended to the scripts that parse queue items and merge profiles.
-- They work on JSON *text*: values are located by offset and spliced, never decoded and re-encoded,
-- so field order, number text, escapes and nested values stay byte for byte (cjson would rewrite them).
local sbyte, ssub, sfind, schar, smatch = string.byte, string.sub, string.find, string.char, string.match
local tconcat = table.concat
local MAX_DEPTH = 64
local MAX_ID = 128

local function skip_ws(s, i)
  local c = sbyte(s, i)
  -- compact JSON has no whitespace: one byte test instead of a pattern match
  if c ~= 32 and c ~= 9 and c ~= 10 and c ~= 13 then return i end
  local _, e = sfind(s, '^[ \t\r\n]*', i)
  return e + 1
end

-- Returns the index after the closing quote and whether the string had escapes, or nil and a reason.
local function scan_string(s, i)
  local j, esc = i + 1, false
  while true do
    local p = sfind(s, '["\\\1-\31]', j)
    if not p then return nil, 'unterminated string' end
    local c = sbyte(s, p)
    if c == 34 then return p + 1, esc end
    if c ~= 92 then return nil, 'control character in string' end
    esc = true
    local n = sbyte(s, p + 1)
    if n == 117 then
      if not sfind(s, '^%x%x%x%x', p + 2) then return nil, 'bad \\u escape' end
      j = p + 6
    elseif n == 34 or n == 92 or n == 47 or n == 98 or n == 102 or n == 110 or n == 114 or n == 116 then
      j = p + 2
    else
      return nil, 'bad escape in string'
    end
  end
end

local function scan_number(s, i)
  local j = i
  if sbyte(s, j) == 45 then j = j + 1 end
  local c = sbyte(s, j)
  if c == 48 then
    j = j + 1
  elseif c and c >= 49 and c <= 57 then
    local _, e = sfind(s, '^%d*', j + 1)
    j = e + 1
  else
    return nil, 'bad number'
  end
  if sbyte(s, j) == 46 then
    local _, e = sfind(s, '^%d+', j + 1)
    if not e then return nil, 'bad number' end
    j = e + 1
  end
  c = sbyte(s, j)
  if c == 101 or c == 69 then
    local _, e = sfind(s, '^[+-]?%d+', j + 1)
    if not e then return nil, 'bad number' end
    j = e + 1
  end
  return j
end

local scan_value
scan_value = function(s, i, depth)
  local c = sbyte(s, i)
  if c == 34 then
    local j, e = scan_string(s, i)
    if not j then return nil, e end
    return j
  elseif c == 123 or c == 91 then
    if depth > MAX_DEPTH then return nil, 'nesting deeper than 64' end
    local close = (c == 123) and 125 or 93
    local j = skip_ws(s, i + 1)
    if sbyte(s, j) == close then return j + 1 end
    while true do
      local err
      if c == 123 then
        if sbyte(s, j) ~= 34 then return nil, 'expected member name' end
        j, err = scan_string(s, j)
        if not j then return nil, err end
        j = skip_ws(s, j)
        if sbyte(s, j) ~= 58 then return nil, "expected ':'" end
        j = skip_ws(s, j + 1)
      end
      j, err = scan_value(s, j, depth + 1)
      if not j then return nil, err end
      j = skip_ws(s, j)
      local d = sbyte(s, j)
      if d == close then return j + 1 end
      if d ~= 44 then return nil, "expected ',' or end of " .. ((c == 123) and 'object' or 'array') end
      j = skip_ws(s, j + 1)
    end
  elseif c == 116 then
    if ssub(s, i, i + 3) == 'true' then return i + 4 end
  elseif c == 102 then
    if ssub(s, i, i + 4) == 'false' then return i + 5 end
  elseif c == 110 then
    if ssub(s, i, i + 3) == 'null' then return i + 4 end
  elseif c == 45 or (c and c >= 48 and c <= 57) then
    return scan_number(s, i)
  end
  return nil, 'invalid JSON value'
end

local function utf8_char(cp)
  if cp < 0x80 then return schar(cp) end
  if cp < 0x800 then return schar(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return schar(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return schar(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
    0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

local simple_escapes = { [34] = '"', [92] = '\\', [47] = '/', [98] = '\b', [102] = '\f', [110] = '\n', [114] = '\r', [116] = '\t' }

-- Decodes a member name (raw text with quotes) so that "a" and "\u0061" compare equal.
local function decode_name(raw)
  local out, i, n = {}, 2, #raw - 1
  while i <= n do
    local p = sfind(raw, '\\', i, true)
    if not p or p > n then out[#out + 1] = ssub(raw, i, n); break end
    out[#out + 1] = ssub(raw, i, p - 1)
    local c = sbyte(raw, p + 1)
    if c == 117 then
      local cp = tonumber(ssub(raw, p + 2, p + 5), 16)
      local nexti = p + 6
      if cp >= 0xD800 and cp <= 0xDBFF and ssub(raw, p + 6, p + 7) == '\\u' then
        local lo = tonumber(ssub(raw, p + 8, p + 11), 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
          nexti = p + 12
        end
      end
      out[#out + 1] = utf8_char(cp)
      i = nexti
    else
      out[#out + 1] = simple_escapes[c]
      i = p + 2
    end
  end
  return tconcat(out)
end

-- Parses a text that must be exactly one JSON object (whitespace around allowed). Returns the members
-- as offsets into s: { n, open, idx[name] = k, at } where member k's decoded name, name start, name end
-- (after the closing quote), value start and value end (after the value) are at[5k-4 .. 5k]. Few tables
-- per object: building them is most of what parsing costs in Redis's Lua.
local function parse_object(s)
  local i = skip_ws(s, 1)
  if sbyte(s, i) ~= 123 then return nil, 'not a JSON object' end
  local idx, at, n = {}, {}, 0
  local j = skip_ws(s, i + 1)
  if sbyte(s, j) == 125 then
    j = j + 1
  else
    while true do
      if sbyte(s, j) ~= 34 then return nil, 'expected member name' end
      local ke, esc = scan_string(s, j)
      if not ke then return nil, esc end
      local name = esc and decode_name(ssub(s, j, ke - 1)) or ssub(s, j + 1, ke - 2)
      if idx[name] then return nil, 'duplicate member name' end
      local ks = j
      j = skip_ws(s, ke)
      if sbyte(s, j) ~= 58 then return nil, "expected ':'" end
      j = skip_ws(s, j + 1)
      local ve, err = scan_value(s, j, 2)
      if not ve then return nil, err end
      n = n + 1
      idx[name] = n
      local b = 5 * n
      at[b - 4], at[b - 3], at[b - 2], at[b - 1], at[b] = name, ks, ke, j, ve
      j = skip_ws(s, ve)
      local d = sbyte(s, j)
      if d == 125 then j = j + 1; break end
      if d ~= 44 then return nil, "expected ',' or end of object" end
      j = skip_ws(s, j + 1)
    end
  end
  if skip_ws(s, j) <= #s then return nil, 'text after the JSON object' end
  return { n = n, open = i, idx = idx, at = at }
end

-- Top-level merge of patch members into profile, on the text: replaced values are spliced in place,
-- new members are appended after the last one; every other byte of the profile is kept.
local function merge(profile, pm, patch, qm)
  local pat, qat = pm.at, qm.at
  local repl, adds = {}, {}
  for k = 1, qm.n do
    local p = pm.idx[qat[5 * k - 4]]
    if p then repl[p] = k else adds[#adds + 1] = k end
  end
  local out, last = {}, 1
  for p = 1, pm.n do
    local k = repl[p]
    if k then
      out[#out + 1] = ssub(profile, last, pat[5 * p - 1] - 1)
      out[#out + 1] = ssub(patch, qat[5 * k - 1], qat[5 * k] - 1)
      last = pat[5 * p]
    end
  end
  if #adds > 0 then
    local at = (pm.n > 0) and pat[5 * pm.n] or (pm.open + 1)
    out[#out + 1] = ssub(profile, last, at - 1)
    for a = 1, #adds do
      local k = adds[a]
      if pm.n > 0 or a > 1 then out[#out + 1] = ',' end
      -- the member's own text from the patch: name, separator and value as written
      out[#out + 1] = ssub(patch, qat[5 * k - 3], qat[5 * k - 2] - 1)
      out[#out + 1] = ':'
      out[#out + 1] = ssub(patch, qat[5 * k - 1], qat[5 * k] - 1)
    end
    last = at
  end
  out[#out + 1] = ssub(profile, last)
  return tconcat(out)
end

-- UTF-8 well-formedness (no overlongs, no surrogates, nothing above U+10FFFF).
local function valid_utf8(s)
  local i = 1
  while true do
    local p = sfind(s, '[\128-\255]', i)
    if not p then return true end
    local c = sbyte(s, p)
    local len
    if c >= 0xC2 and c <= 0xDF then len = 1
    elseif c >= 0xE0 and c <= 0xEF then len = 2
    elseif c >= 0xF0 and c <= 0xF4 then len = 3
    else return false end
    for k = 1, len do
      local d = sbyte(s, p + k)
      if not d or d < 0x80 or d > 0xBF then return false end
    end
    local d1 = sbyte(s, p + 1)
    if (c == 0xE0 and d1 < 0xA0) or (c == 0xED and d1 > 0x9F) or (c == 0xF0 and d1 < 0x90) or (c == 0xF4 and d1 > 0x8F) then
      return false
    end
    i = p + len + 1
  end
end

-- Parses a queue item. Returns kind, id, rest (rest: the JSON of an update, the version digits of a
-- set/delete, or nil), or nil and the reason the item is poison.
local function parse_item(item)
  if item == '' then return nil, 'empty item' end
  if sfind(item, '\0', 1, true) then return nil, 'item contains a NUL byte' end
  if not valid_utf8(item) then return nil, 'item is not valid UTF-8' end
  local kind, after = smatch(item, '^(%l+):user:(.*)$')
  if not kind then return nil, "unrecognised item: expected '<update|set|delete>:user:<id>...'" end
  if kind ~= 'update' and kind ~= 'set' and kind ~= 'delete' then return nil, "unknown operation '" .. ssub(kind, 1, 20) .. "'" end
  local id, rest = after, nil
  local c = sfind(after, ':', 1, true)
  if c then id = ssub(after, 1, c - 1); rest = ssub(after, c + 1) end
  if #id == 0 then return nil, 'missing user id' end
  if #id > MAX_ID or not sfind(id, '^[A-Za-z0-9_%.@%-]+$') then
    return nil, 'invalid user id: 1-128 characters of [A-Za-z0-9_.@-] expected'
  end
  if kind == 'update' then
    if not rest then return nil, 'update item has no JSON patch' end
  elseif rest and not sfind(rest, '^%d+$') then
    return nil, kind .. ' item: expected a version number after the id'
  end
  return kind, id, rest
end
