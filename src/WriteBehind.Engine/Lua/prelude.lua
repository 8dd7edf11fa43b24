-- Shared helpers, prepended to the scripts that parse queue items and merge profiles.
-- They work on JSON *text*: values are located by offset and spliced, never decoded and re-encoded,
-- so field order, number text, escapes and nested values stay byte for byte (cjson would rewrite them).
local sbyte, ssub, sfind, schar, smatch, sgsub = string.byte, string.sub, string.find, string.char, string.match, string.gsub
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

-- Failure reasons are worded exactly as the C# validator's (JsonText.cs), offsets included: a shared table
-- of cases (tests/WriteBehind.Engine.Tests/ValidationCases.txt) holds both to it. C# counts offsets in
-- UTF-16 code units from 0; here they are computed from byte positions only when a reason is made.
local function offset(s, p)
  local before = ssub(s, 1, p - 1)
  local _, cont = sgsub(before, '[\128-\191]', '')
  local _, four = sgsub(before, '[\240-\247]', '')
  return string.format('%d', #before - cont + four)
end

-- The UTF-16 code unit at byte p (an astral character's high surrogate), as C# sees the character there.
local function code_unit(s, p)
  local c = sbyte(s, p)
  if c < 0x80 then return c end
  local d1, d2, d3 = sbyte(s, p + 1) or 128, sbyte(s, p + 2) or 128, sbyte(s, p + 3) or 128
  if c < 0xE0 then return (c % 32) * 64 + d1 % 64 end
  if c < 0xF0 then return (c % 16) * 4096 + (d1 % 64) * 64 + d2 % 64 end
  local cp = (c % 8) * 262144 + (d1 % 64) * 4096 + (d2 % 64) * 64 + d3 % 64
  return 0xD800 + math.floor((cp - 0x10000) / 1024)
end

local function code_point_text(u) return string.format('U+%04X', u) end

local function describe_char(s, p)
  local c = sbyte(s, p)
  if c > 32 and c < 127 then return "'" .. schar(c) .. "'" end
  return code_point_text(code_unit(s, p))
end

local function is_comment_start(s, p)
  local n = sbyte(s, p + 1)
  return sbyte(s, p) == 47 and (n == 47 or n == 42)
end

-- C#'s Expected(what) at byte p.
local function expected(s, p, what)
  local c = sbyte(s, p)
  if not c then return nil, 'unexpected end of input at offset ' .. offset(s, p) .. ' (expected ' .. what .. ')' end
  if is_comment_start(s, p) then return nil, 'comments are not allowed in JSON (offset ' .. offset(s, p) .. ')' end
  if c == 39 then return nil, 'single-quoted strings are not allowed in JSON (offset ' .. offset(s, p) .. ')' end
  return nil, 'expected ' .. what .. ' at offset ' .. offset(s, p) .. ', found ' .. describe_char(s, p)
end

-- Returns the index after the closing quote and whether the string had escapes, or nil and a reason.
-- (A NUL byte is not looked for here: an item with one is refused before its JSON is read.)
local function scan_string(s, i)
  local j, esc = i + 1, false
  while true do
    -- an anchored run up to the next quote, backslash or control character: an unanchored search for
    -- them would restart the pattern matcher at every byte
    local _, e = sfind(s, '^[^"\\\1-\31]*', j)
    local p = e + 1
    local c = sbyte(s, p)
    if not c then return nil, 'unterminated string starting at offset ' .. offset(s, i) end
    if c == 34 then return p + 1, esc end
    if c ~= 92 then
      return nil, 'raw control character ' .. code_point_text(c) .. ' in string at offset ' .. offset(s, p) .. ' (must be escaped)'
    end
    esc = true
    local n = sbyte(s, p + 1)
    if n == 117 then
      if not sfind(s, '^%x%x%x%x', p + 2) then
        return nil, 'invalid \\u escape at offset ' .. offset(s, p) .. ' (expected 4 hex digits)'
      end
      j = p + 6
    elseif n == 34 or n == 92 or n == 47 or n == 98 or n == 102 or n == 110 or n == 114 or n == 116 then
      j = p + 2
    elseif not n then
      return nil, 'unterminated string starting at offset ' .. offset(s, i)
    else
      local e = (n > 32 and n < 127) and ("'\\" .. schar(n) .. "'") or ("'\\' followed by " .. code_point_text(code_unit(s, p + 1)))
      return nil, 'invalid escape sequence ' .. e .. ' at offset ' .. offset(s, p)
    end
  end
end

local function non_finite(s, p)
  return nil, 'NaN and Infinity are not valid JSON numbers (offset ' .. offset(s, p) .. ')'
end

-- -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
local function scan_number(s, i)
  local j = i
  if sbyte(s, j) == 45 then
    j = j + 1
    if ssub(s, j, j + 7) == 'Infinity' then return non_finite(s, i) end
  end
  local c = sbyte(s, j)
  if c == 48 then
    j = j + 1
    c = sbyte(s, j)
    if c and c >= 48 and c <= 57 then return nil, 'leading zeros are not allowed in numbers (offset ' .. offset(s, i) .. ')' end
  elseif c and c >= 49 and c <= 57 then
    local _, e = sfind(s, '^%d*', j + 1)
    j = e + 1
  else
    return expected(s, j, "a digit after '-'")
  end
  if sbyte(s, j) == 46 then
    local _, e = sfind(s, '^%d+', j + 1)
    if not e then return expected(s, j + 1, 'a digit after the decimal point') end
    j = e + 1
  end
  c = sbyte(s, j)
  if c == 101 or c == 69 then
    j = j + 1
    c = sbyte(s, j)
    if c == 43 or c == 45 then j = j + 1 end
    local _, e = sfind(s, '^%d+', j)
    if not e then return expected(s, j, 'a digit in the exponent') end
    j = e + 1
  end
  return j
end

local utf8_char, decode_name

-- A member name as compared for duplicates: its text, decoded when it has escapes (so "a" and "\u0061"
-- are one name, as C# compares decoded UTF-16).
local function name_key(s, j, ke, esc)
  if esc then return decode_name(ssub(s, j, ke - 1)) end
  return ssub(s, j + 1, ke - 2)
end

-- C#'s reason for a duplicate: the decoded name, cut to 32 UTF-16 code units when longer (never just
-- after a high surrogate), as a JSON string literal written by JsonText.WriteString.
local function duplicate(s, name, quote)
  local _, cont = sgsub(name, '[\128-\191]', '')
  local _, four = sgsub(name, '[\240-\247]', '')
  local total = #name - cont + four
  local out, units, i, n = {}, 0, 1, #name
  while i <= n do
    local c, d = sbyte(name, i), sbyte(name, i + 1) or 0
    local len = (c < 0x80 and 1) or (c < 0xE0 and 2) or (c < 0xF0 and 3) or 4
    local lone = c == 0xED and d >= 0xA0 -- a surrogate decoded from a lone \u escape
    if total > 32 then
      if units + ((len == 4) and 2 or 1) > 32 or (units == 31 and lone and d <= 0xAF) then break end
    end
    units = units + ((len == 4) and 2 or 1)
    if c == 34 then out[#out + 1] = '\\"'
    elseif c == 92 then out[#out + 1] = '\\\\'
    elseif c == 8 then out[#out + 1] = '\\b'
    elseif c == 12 then out[#out + 1] = '\\f'
    elseif c == 10 then out[#out + 1] = '\\n'
    elseif c == 13 then out[#out + 1] = '\\r'
    elseif c == 9 then out[#out + 1] = '\\t'
    elseif c < 32 then out[#out + 1] = string.format('\\u%04x', c)
    elseif lone then out[#out + 1] = string.format('\\u%04x', code_unit(name, i))
    else out[#out + 1] = ssub(name, i, i + len - 1) end
    i = i + len
  end
  return nil, 'duplicate member name "' .. tconcat(out) .. '"' .. ((total > 32) and '...' or '') .. ' at offset ' .. offset(s, quote)
end

local scan_value

-- Whether name is already a member: seen[name] is true (a nested object's names) or the member's index
-- k in a parse_object whose tables are reused, valid only when k is one of its n members so far and
-- member k has that name (an entry left by an earlier object is not).
local function is_seen(seen, name, n, at)
  local k = seen[name]
  if not k then return false end
  if k == true then return true end
  return k <= n and at[5 * k - 4] == name
end

-- A member name at byte j and the ':' after it: returns the decoded name, the index of its value and the
-- index after the name's closing quote, or nil and a reason (also for a name already seen: is_seen).
local function member_name(s, j, seen, n, at)
  -- the common case in one anchored match: a name without escapes or control characters, then ':'
  local _, e, plain = sfind(s, '^"([^"\\\1-\31]*)":', j)
  if e then
    if is_seen(seen, plain, n, at) then return duplicate(s, plain, j) end
    return plain, skip_ws(s, e + 1), e
  end
  if sbyte(s, j) ~= 34 then return expected(s, j, "'\"' to start a member name") end
  local ke, esc = scan_string(s, j)
  if not ke then return nil, esc end
  local name = name_key(s, j, ke, esc)
  if is_seen(seen, name, n, at) then return duplicate(s, name, j) end
  local c = skip_ws(s, ke)
  if sbyte(s, c) ~= 58 then return expected(s, c, "':' after member name") end
  return name, skip_ws(s, c + 1), ke
end

-- A nested object or array at byte i, of depth `depth` (the top-level object is 1); returns the index
-- after it, or nil and a reason. Member names are checked for duplicates at every depth.
local function scan_container(s, i, depth)
  local c = sbyte(s, i)
  local obj = c == 123
  local close = obj and 125 or 93
  local j = skip_ws(s, i + 1)
  if sbyte(s, j) == close then return j + 1 end
  local names = obj and {} or nil
  while true do
    local err
    if obj then
      local name, vs = member_name(s, j, names)
      if not name then return nil, vs end
      names[name] = true
      j = vs
    end
    j, err = scan_value(s, j, depth)
    if not j then return nil, err end
    j = skip_ws(s, j)
    local d = sbyte(s, j)
    if d == 44 then
      local comma = j
      j = skip_ws(s, j + 1)
      if sbyte(s, j) == close then
        return nil, 'trailing comma before ' .. (obj and "'}'" or "']'") .. ' at offset ' .. offset(s, comma)
      end
    elseif d == close then
      return j + 1
    else
      return expected(s, j, obj and "',' or '}' after member value" or "',' or ']' after array element")
    end
  end
end

-- One value at byte i inside a container of depth `depth`.
scan_value = function(s, i, depth)
  local c = sbyte(s, i)
  if c == 34 then
    local j, e = scan_string(s, i)
    if not j then return nil, e end
    return j
  elseif c == 123 or c == 91 then
    if depth >= MAX_DEPTH then return nil, 'nesting deeper than 64 at offset ' .. offset(s, i) end
    return scan_container(s, i, depth + 1)
  elseif c == 116 or c == 102 or c == 110 then
    local lit = (c == 116 and 'true') or (c == 102 and 'false') or 'null'
    if ssub(s, i, i + #lit - 1) == lit then return i + #lit end
    return nil, 'invalid literal at offset ' .. offset(s, i) .. ' (expected ' .. lit .. ')'
  elseif c == 45 or (c and c >= 48 and c <= 57) then
    return scan_number(s, i)
  elseif (c == 78 and ssub(s, i, i + 2) == 'NaN') or (c == 73 and ssub(s, i, i + 7) == 'Infinity') then
    return non_finite(s, i)
  end
  return expected(s, i, 'a value')
end

utf8_char = function(cp)
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
decode_name = function(raw)
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

local function describe_top_level(s, i)
  local c = sbyte(s, i)
  if c == 91 then return 'found an array' end
  if c == 34 then return 'found a string' end
  if c == 39 then return 'found a single-quoted string' end
  if c == 45 or (c >= 48 and c <= 57) then return 'found a number' end
  if ssub(s, i, i + 3) == 'true' or ssub(s, i, i + 4) == 'false' then return 'found a boolean' end
  if ssub(s, i, i + 3) == 'null' then return 'found null' end
  if is_comment_start(s, i) then return 'comments are not allowed, offset ' .. offset(s, i) end
  return 'found ' .. describe_char(s, i) .. ' at offset ' .. offset(s, i)
end

-- One member of compact text in one anchored match: a name and a string value, neither with escapes or
-- control characters, and the ',' or '}' right after. Captures the name, the value's start and end
-- (after its closing quote) and the delimiter.
local COMPACT_MEMBER = '^"([^"\\\1-\31]*)":()"[^"\\\1-\31]*"()([,}])'

-- Parses a text that must be exactly one JSON object (whitespace around allowed). Returns the members
-- as offsets into s: n, at, idx, open, where member k's decoded name, name start, name end (after the
-- closing quote), value start and value end (after the value) are at[5k-4 .. 5k], idx[name] = k, and open
-- is the index of the '{'. Or nil and a reason. at and idx may be tables of an earlier call, reused:
-- building tables is most of what parsing costs in Redis's Lua, so a caller that parses many objects
-- passes the same two, and reads only at[1 .. 5n] and the idx entries member_at confirms.
-- Each member is first tried as COMPACT_MEMBER (one C call where the strict scanner makes about ten);
-- any other member is read by the strict scanner, from the same place, with the same verdicts and reasons.
local function parse_object(s, at, idx)
  at, idx = at or {}, idx or {}
  local i = 1
  if sbyte(s, 1) ~= 123 then
    i = skip_ws(s, 1)
    if i > #s then return nil, (#s == 0) and 'empty input' or 'empty input (whitespace only)' end
    if sbyte(s, i) ~= 123 then return nil, 'top-level value is not a JSON object (' .. describe_top_level(s, i) .. ')' end
  end
  local n, j = 0, i + 1
  while true do
    local _, e, name, vs, ve, d = sfind(s, COMPACT_MEMBER, j)
    if e and not is_seen(idx, name, n, at) then
      n = n + 1
      idx[name] = n
      local b = 5 * n
      at[b - 4], at[b - 3], at[b - 2], at[b - 1], at[b] = name, j, vs - 1, vs, ve
      j = e + 1
      if d == '}' then break end
      if sbyte(s, j) ~= 34 then
        j = skip_ws(s, j)
        if sbyte(s, j) == 125 then return nil, "trailing comma before '}' at offset " .. offset(s, e) end
      end
    else
      j = skip_ws(s, j)
      if n == 0 and sbyte(s, j) == 125 then
        j = j + 1
        break
      end
      local vs, ke
      name, vs, ke = member_name(s, j, idx, n, at)
      if not name then return nil, vs end
      local ks = j
      j = vs
      local err
      if sbyte(s, j) == 34 then
        -- a string value without escapes or control characters in one anchored match
        local _, se = sfind(s, '^"[^"\\\1-\31]*"', j)
        if se then ve = se + 1 else ve, err = scan_string(s, j) end
      else
        ve, err = scan_value(s, j, 1)
      end
      if not ve then return nil, err end
      n = n + 1
      idx[name] = n
      local b = 5 * n
      at[b - 4], at[b - 3], at[b - 2], at[b - 1], at[b] = name, ks, ke, j, ve
      j = skip_ws(s, ve)
      d = sbyte(s, j)
      if d == 44 then
        local comma = j
        j = skip_ws(s, j + 1)
        if sbyte(s, j) == 125 then return nil, "trailing comma before '}' at offset " .. offset(s, comma) end
      elseif d == 125 then
        j = j + 1
        break
      else
        return expected(s, j, "',' or '}' after member value")
      end
    end
  end
  if j <= #s then
    j = skip_ws(s, j)
    if j <= #s then
      if is_comment_start(s, j) then return nil, 'comments are not allowed in JSON (offset ' .. offset(s, j) .. ')' end
      return nil, 'unexpected data after the top-level object at offset ' .. offset(s, j)
    end
  end
  return n, at, idx, i
end

-- The index of the member named name among the n a parse_object found (at, idx as it returned them), or nil.
local function member_at(name, n, at, idx)
  local k = idx[name]
  if k and k <= n and at[5 * k - 4] == name then return k end
  return nil
end

-- Whether s (parsed: n, at, open) is exactly '{', its members as name:value separated by ',', and '}':
-- then a merge into '{}' gives s itself.
local function compact(s, n, at, open)
  if open ~= 1 then return false end
  local j = 2
  for k = 1, n do
    local b = 5 * k
    if at[b - 3] ~= j or at[b - 1] ~= at[b - 2] + 1 then return false end
    j = at[b] + 1
  end
  return j == #s + (n > 0 and 1 or 0)
end

-- Tables merge reuses from call to call (read up to the count it keeps, so never cleared).
local merge_out, merge_repl, merge_adds = {}, {}, {}

-- Top-level merge of patch members into profile, on the text: replaced values are spliced in place,
-- new members are appended after the last one; every other byte of the profile is kept. pn, pat, pidx,
-- popen and qn, qat are what parse_object returned for the profile and for the patch (a profile of no
-- members: pn 0, popen its '{').
local function merge(profile, pn, pat, pidx, popen, patch, qn, qat)
  if qn == 1 then
    -- one member (the usual patch): one concatenation
    local p = member_at(qat[1], pn, pat, pidx)
    if p then
      return ssub(profile, 1, pat[5 * p - 1] - 1) .. ssub(patch, qat[4], qat[5] - 1) .. ssub(profile, pat[5 * p])
    end
    local at = (pn > 0) and pat[5 * pn] or (popen + 1)
    return ssub(profile, 1, at - 1) .. ((pn > 0) and ',' or '') .. ssub(patch, qat[2], qat[3] - 1) .. ':'
      .. ssub(patch, qat[4], qat[5] - 1) .. ssub(profile, at)
  end
  local repl, adds, na = merge_repl, merge_adds, 0
  for k = 1, qn do
    local p = member_at(qat[5 * k - 4], pn, pat, pidx)
    if p then repl[p] = k else na = na + 1; adds[na] = k end
  end
  local out, m, last = merge_out, 0, 1
  if na < qn then
    for p = 1, pn do
      local k = repl[p]
      if k then
        repl[p] = nil
        out[m + 1] = ssub(profile, last, pat[5 * p - 1] - 1)
        out[m + 2] = ssub(patch, qat[5 * k - 1], qat[5 * k] - 1)
        m = m + 2
        last = pat[5 * p]
      end
    end
  end
  if na > 0 then
    local at = (pn > 0) and pat[5 * pn] or (popen + 1)
    out[m + 1] = ssub(profile, last, at - 1)
    m = m + 1
    for a = 1, na do
      local k = adds[a]
      if pn > 0 or a > 1 then m = m + 1; out[m] = ',' end
      -- the member's own text from the patch: name, separator and value as written
      out[m + 1] = ssub(patch, qat[5 * k - 3], qat[5 * k - 2] - 1)
      out[m + 2] = ':'
      out[m + 3] = ssub(patch, qat[5 * k - 1], qat[5 * k] - 1)
      m = m + 3
    end
    last = at
  end
  out[m + 1] = ssub(profile, last)
  return tconcat(out, '', 1, m + 1)
end

-- UTF-8 well-formedness (no overlongs, no surrogates, nothing above U+10FFFF).
local function valid_utf8(s)
  local i = 1
  while true do
    -- an anchored run of ASCII bytes (an unanchored search would restart the matcher at every byte)
    local _, e = sfind(s, '^[^\128-\255]*', i)
    local p = e + 1
    local c = sbyte(s, p)
    if not c then return true end
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

-- The largest version an item may carry: 2^53 - 1, the largest integer Redis's Lua (doubles) counts exactly.
local MAX_VERSION = '9007199254740991'

-- A version as items write it: decimal digits, no sign, no leading zero, from 1 to MAX_VERSION.
local function valid_version(v)
  if not sfind(v, '^[1-9]%d*$') then return false end
  return #v < #MAX_VERSION or (#v == #MAX_VERSION and v <= MAX_VERSION)
end

-- The usual update item, whole, in one match: 'update:user:<id>:{"<name>":"<value>"}', compact, the name
-- and the value printable ASCII without a quote or a backslash (so no escape, no control character, valid
-- UTF-8): its patch is valid JSON of one member, and exactly what a merge into '{}' makes of it. One C call
-- where parse_item and parse_object make four (each costs hundreds of instructions in Redis's Lua).
local SIMPLE_UPDATE = '^update:(user:([A-Za-z0-9_%.@%-]+)):({"([ !#-[%]^-~]*)":"[ !#-[%]^-~]*"})$'

-- What parse_object returns (n, at, idx, open) for the patch of a SIMPLE_UPDATE whose member is named name,
-- without reading it again: its name starts at 2, its ':' follows the name's closing quote, its value runs
-- from there to the closing '}'. (No idx: a patch's own names are only needed to find duplicates.)
local function simple_patch(rest, name, at)
  local q = #name
  at[1], at[2], at[3], at[4], at[5] = name, 2, q + 4, q + 5, #rest
  return 1, at, nil, 1
end

-- A profile that is exactly '{"<name>":"<string>"}' (compact, no escape or control character in either):
-- captures the name. A SIMPLE_UPDATE of that name merges into it as its own patch text.
local SINGLE_STRING_MEMBER = '^{"([^"\\\1-\31]*)":"[^"\\\1-\31]*"}$'

-- Parses a queue item. Returns kind, id, rest, field, name (rest: the JSON of an update, the version
-- digits of a set/delete, or nil; field: 'user:<id>', the profile's field in the cache and versions
-- hashes; name: for a SIMPLE_UPDATE only, its member's name, and then its patch needs no parse_object:
-- see simple_patch), or nil and the reason the item is poison. QueueItem.TryParse in C# applies the
-- same rules in the same order, with the same reasons.
local function parse_item(item)
  local sf, si, sr, sn = smatch(item, SIMPLE_UPDATE)
  if sf and #si <= MAX_ID then return 'update', si, sr, sf, sn end
  -- the common case in two matches: a valid kind and id, then ':' and printable ASCII to the end (so no
  -- NUL and valid UTF-8); anything they do not accept is decided by the rules below, in their order
  local k, f, i, e = smatch(item, '^(%l+):(user:([A-Za-z0-9_%.@%-]+))()')
  if k and #i <= MAX_ID and (k == 'update' or k == 'set' or k == 'delete') then
    local n = #item
    if e > n then
      if k ~= 'update' then return k, i, nil, f end
    else
      local r, re = smatch(item, '^:([ -~]*)()', e)
      if re == n + 1 and (k == 'update' or valid_version(r)) then return k, i, r, f end
    end
  end
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
  elseif rest and not valid_version(rest) then
    return nil, kind .. ' item: expected a version after the id (1 to ' .. MAX_VERSION .. ', digits without sign or leading zero)'
  end
  return kind, id, rest, 'user:' .. id
end
