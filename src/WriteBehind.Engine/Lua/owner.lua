-- owner: a flusher's claim on one partition, so concurrent flushers drain different partitions.
-- Prepended (LuaScripts.cs): nothing.
-- KEYS[1] the partition's owner key (STRING: owner token, with an expiry)
-- ARGV[1] 'take' | 'renew' | 'release'   ARGV[2] this flusher's token   ARGV[3] time to live (ms)
-- Returns 1 when the flusher owns the partition after 'take' or 'renew', or let it go with 'release'; else 0.
local op, token = ARGV[1], ARGV[2]
if op == 'take' then
  if redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[3]) then return 1 end
  if redis.call('GET', KEYS[1]) == token then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 1
  end
  return 0
end
if redis.call('GET', KEYS[1]) ~= token then return 0 end
if op == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
