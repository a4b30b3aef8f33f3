-- cancel: stops a live job.
--
-- KEYS[1] prefix   KEYS[2] scheduled   KEYS[3] ready   KEYS[4] retry_wait
-- KEYS[5] active   KEYS[6] cancelled   KEYS[7] unique  KEYS[8] counters
-- ARGV[1] now_ms (required)   ARGV[2] id   ARGV[3] by   ARGV[4] note
-- ARGV[5] evidence (JSON array of lines)
-- ARGV[6] end record for a running attempt (JSON, with its n set to 0: filled in here)
--
-- Returns: {1} cancelled; {0, state} the job is not live; {-1} no such job.

local prefix, counters, unique = KEYS[1], KEYS[8], KEYS[7]
local sets = {scheduled = KEYS[2], ready = KEYS[3], retry_wait = KEYS[4], active = KEYS[5]}
local now, id = tonumber(ARGV[1]), ARGV[2]
local job = prefix .. 'job:' .. id
local hist = prefix .. 'hist:' .. id
local f = redis.call('HMGET', job, 'state', 'n', 'unique')
if not f[1] then return {-1} end
local state = f[1]
if not sets[state] then return {0, state} end
redis.call('ZREM', sets[state], id)
if state == 'active' then
  local record = cjson.decode(ARGV[6])
  record[2] = tonumber(f[2])
  redis.call('RPUSH', hist, cjson.encode(record))
end
if f[3] and redis.call('HGET', unique, f[3]) == id then redis.call('HDEL', unique, f[3]) end
redis.call('HSET', job, 'state', 'cancelled', 'updated', now, 'dead_reason', 'cancelled',
           'dead_at', now, 'dead_evidence', ARGV[5])
redis.call('HDEL', job, 'worker', 'lease')
redis.call('ZADD', KEYS[6], now, id)
redis.call('RPUSH', hist, cjson.encode({'e', now, state, 'cancelled', 'cancelled', ARGV[3], ARGV[4]}))
redis.call('HINCRBY', counters, 'cancelled', 1)
return {1}
