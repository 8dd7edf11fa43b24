-- clear_queue: empties the queue and says how many pending items it dropped.
-- KEYS[1] queue (LIST)   Returns the number of items dropped.
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
