-- Shared by the scripts that write (prepended to them): chunked multi-argument calls and the queue's
-- high-water mark.
-- Numbers: Redis's Lua 5.1 has only doubles (concatenation prints 1e14 and above as '1e+14'); Garnet's
-- Lua 5.4 has integers and floats, and prints a float such as 6/2 as '3.0' (also in redis.call arguments).
-- So a count or version is never made by '/', and one that goes into text goes through int_text.
local unpack = unpack or table.unpack

-- The decimal text of an integral number, the same on both servers (no exponent, no '.0').
local function int_text(x) return string.format('%d', x) end

-- int_text memoised for one script call: versions and lengths repeat, and a string.format costs as much
-- as dozens of table lookups.
local int_texts = setmetatable({}, { __index = function(t, x)
  local text = int_text(x)
  t[x] = text
  return text
end })

-- redis.call(cmd, key, args[first], ...) in chunks of 1000 arguments (Lua's unpack limit); 1000 is even,
-- so field/value pairs starting at `first` stay together. Returns the last call's reply.
local function call_chunked(cmd, key, args, first)
  local reply
  for c = first or 1, #args, 1000 do
    reply = redis.call(cmd, key, unpack(args, c, math.min(c + 999, #args)))
  end
  return reply
end

-- The error producers get when n more items would pass the high-water mark hw (0: none), else nil.
local function queue_full(queue, hw, n)
  if hw <= 0 then return nil end
  local depth = redis.call('LLEN', queue)
  if depth + n <= hw then return nil end
  return redis.error_reply(string.format('WB_QUEUE_FULL queue depth %d + %d exceeds the high-water mark %d', depth, n, hw))
end

-- The partition (0-based) of a user id among n: FNV-1a 32-bit over its bytes, mod n (KeyLayout.IndexOf in
-- C#). Plain arithmetic, exact both where every number is a double (Redis's Lua 5.1) and where numbers are
-- 64-bit integers or floats (Garnet's Lua 5.4, whose bit library returns floats and shifts wrongly): no
-- bit library, no value above 2^41, and math.floor instead of a division that would make a float.
-- The nibble xor table, built by the first partition_of of a script call (a call with one partition never
-- needs it, and building it costs about a million instructions).
local xor4
local function xor4_table()
  local t = {}
  for a = 0, 15 do
    for b = 0, 15 do
      local x, p, aa, bb = 0, 1, a, b
      for _ = 1, 4 do
        if aa % 2 ~= bb % 2 then x = x + p end
        aa, bb, p = math.floor(aa / 2), math.floor(bb / 2), p * 2
      end
      t[a * 16 + b] = x
    end
  end
  return t
end

local function partition_of(id, n)
  if n <= 1 then return 0 end
  xor4 = xor4 or xor4_table()
  local h = 2166136261
  for i = 1, #id do
    local b = string.byte(id, i)
    local low = h % 256
    -- h xor b changes only the low byte: xor it a nibble at a time
    h = h - low + xor4[(low % 16) * 16 + b % 16] + 16 * xor4[math.floor(low / 16) * 16 + math.floor(b / 16)]
    -- h * 16777619 mod 2^32, with h split into 16-bit halves so each product stays below 2^41
    local lo = h % 65536
    local hi = math.floor(h / 65536)
    h = (lo * 16777619 + (hi * 16777619) % 65536 * 65536) % 4294967296
  end
  return h % n
end
-- The age of the oldest pending item (Get-WriteBehindStatus's Lag), kept per partition in a HASH without a
-- flush ever running: 'since' (ms, Redis's clock) is never later than the push of the oldest item in the
-- queue; 'mark'/'left' is a checkpoint: at 'mark' the queue held 'left' items, so once the flush has taken
-- that many more, every item still queued was pushed after 'mark'. Times come from Redis's TIME as text
-- (no float formatting: Garnet's Lua writes 5.0 for a float 5); counts stay small integers.
local function redis_ms()
  local t = redis.call('TIME')
  return t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
end
-- Before a producer pushes: a queue that is empty (or has no record, e.g. raw LPUSHes) starts one now.
local function mark_pending(queue, pending)
  if redis.call('LLEN', queue) == 0 or not redis.call('HGET', pending, 'since') then
    redis.call('DEL', pending)
    redis.call('HSET', pending, 'since', redis_ms())
  end
end
-- After the flush took `taken` items and `left` are still queued.
local function note_taken(pending, taken, left)
  if left == 0 then
    redis.call('DEL', pending)
    return
  end
  local mark = redis.call('HMGET', pending, 'mark', 'left')
  if mark[1] then
    local rest = (tonumber(mark[2]) or 0) - taken
    if rest > 0 then
      redis.call('HSET', pending, 'left', rest)
      return
    end
    redis.call('HSET', pending, 'since', mark[1])
  end
  redis.call('HSET', pending, 'mark', redis_ms(), 'left', left)
end
