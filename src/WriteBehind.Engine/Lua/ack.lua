-- ack: the store has committed a lease's effect; drop the lease.
-- Prepended (LuaScripts.cs): nothing.
-- KEYS[1] the lease (LIST)   KEYS[2] leases (ZSET)
-- Returns 1.
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return 1
