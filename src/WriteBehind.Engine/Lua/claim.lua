-- claim: takes over a lease whose flusher stopped renewing it (crashed or failed), for recovery.
-- Prepended (LuaScripts.cs): nothing.
-- KEYS[1] leases (ZSET)   KEYS[2] the lease (LIST)
-- ARGV[1] now (ms)   ARGV[2] new expiry (ms)   ARGV[3] '1' to claim even when not expired (own lease)
-- Returns the lease's items, or nil when it is not expired (its owner is alive) or already gone.
local score = redis.call('ZSCORE', KEYS[1], KEYS[2])
if not score then return false end
if ARGV[3] ~= '1' and tonumber(score) > tonumber(ARGV[1]) then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], KEYS[2])
  return false
end
redis.call('ZADD', KEYS[1], ARGV[2], KEYS[2])
return redis.call('LRANGE', KEYS[2], 0, -1)
