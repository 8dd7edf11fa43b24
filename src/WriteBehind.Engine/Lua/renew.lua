-- renew: extends a live lease while its flush runs.
-- Prepended (LuaScripts.cs): nothing.
-- KEYS[1] leases (ZSET)   KEYS[2] the lease (LIST)   ARGV[1] new expiry (ms)
-- Returns 1 when renewed, 0 when the lease is gone (acknowledged or claimed and finished by another flusher).
if redis.call('ZSCORE', KEYS[1], KEYS[2]) then
  redis.call('ZADD', KEYS[1], ARGV[1], KEYS[2])
  return 1
end
return 0
