-- reserve: gives a producer the server's time and insertion numbers for a
-- batch it is about to enqueue, so that it can write the jobs' specs itself
-- (enqueue.lua with written = "1": the specs never become Lua strings).
--
-- KEYS[1] seq      string: the latest insertion number given in the queue
-- ARGV[1] now_ms   "" for the server's clock (TIME), or the store's own clock
-- ARGV[2] count    how many numbers
-- ARGV[3] seq_hint the least number to give (the caller's latest + 1), or 0
--
-- The numbers follow enqueue.lua's rule: at least now_ms * 1024, the queue's
-- previous one + 1 and seq_hint.
--
-- Returns: {now_ms, first}: the numbers first .. first + count - 1 are the
--   caller's; none is given again, whether or not it enqueues.

--@include now.lua
local first = math.max(now * 1024, tonumber(redis.call('GET', KEYS[1]) or '0') + 1, tonumber(ARGV[3]))
redis.call('SET', KEYS[1], first + tonumber(ARGV[2]) - 1)
return {now, first}
