-- enqueue: LPUSHes items unless that would pass the high-water mark.
-- KEYS[1] queue (LIST)   ARGV[1] high-water mark (0 = none)   ARGV[2..] items
-- Returns the queue depth after the push, or 'WB_QUEUE_FULL ...' and pushes nothing.
local hw = tonumber(ARGV[1])
local n = #ARGV - 1
if hw > 0 then
  local depth = redis.call('LLEN', KEYS[1])
  if depth + n > hw then
    return redis.error_reply('WB_QUEUE_FULL queue depth ' .. depth .. ' + ' .. n .. ' exceeds the high-water mark ' .. hw)
  end
end
local unpack = unpack or table.unpack
local depth = 0
for c = 2, #ARGV, 1000 do
  depth = redis.call('LPUSH', KEYS[1], unpack(ARGV, c, math.min(c + 999, #ARGV)))
end
return depth
