-- Shared by the scripts that write (prepended to them): chunked multi-argument calls and the queue's
-- high-water mark.
local unpack = unpack or table.unpack

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
  return redis.error_reply('WB_QUEUE_FULL queue depth ' .. depth .. ' + ' .. n .. ' exceeds the high-water mark ' .. hw)
end

-- The partition (0-based) of a user id among n: FNV-1a 32-bit over its bytes, mod n (KeyLayout.IndexOf in
-- C#). The multiply by the FNV prime 16777619 = 2^24 + 403 is split so every step stays exact in a double.
local function partition_of(id, n)
  if n <= 1 then return 0 end
  local h = bit.tobit(2166136261)
  for i = 1, #id do
    h = bit.bxor(h, string.byte(id, i))
    h = bit.tobit(bit.lshift(h, 24) + h * 403)
  end
  if h < 0 then h = h + 4294967296 end
  return h % n
end
