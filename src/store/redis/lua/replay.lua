-- replay: puts a dead or cancelled job back to ready as a manual replay.
--
-- KEYS[1] prefix    KEYS[2] ready    KEYS[3] dead    KEYS[4] cancelled
-- KEYS[5] unique    KEYS[6] counters    KEYS[7] signal (stream that wakes idle workers)
-- ARGV[1] now_ms (required)   ARGV[2] id   ARGV[3] by   ARGV[4] note
-- ARGV[5] mode ("fresh" | "more=N")   ARGV[6] budget ("" for fresh)
-- ARGV[7] deadline_ms ("" to keep)   ARGV[8] event note
--
-- Returns: {1} replayed; {0, state} not dead or cancelled; {2, holder} its
--          unique key is held by another live job; {-1} no such job.

local prefix, ready, dead, cancelled, unique, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now, id = tonumber(ARGV[1]), ARGV[2]
local job = prefix .. 'job:' .. id
local f = redis.call('HMGET', job, 'state', 'n', 'unique', 'prio')
if not f[1] then return {-1} end
if f[1] ~= 'dead' and f[1] ~= 'cancelled' then return {0, f[1]} end
if f[3] then
  local holder = redis.call('HGET', unique, f[3])
  if holder and holder ~= id then return {2, holder} end
  redis.call('HSET', unique, f[3], id)
end
redis.call('ZREM', f[1] == 'dead' and dead or cancelled, id)
redis.call('HSET', job, 'state', 'ready', 'run_at', now, 'updated', now, 'trigger', 'manual',
           'seq_start', tonumber(f[2] or 0) + 1, 'last_delay', 0, 'streak', 0,
           'rep_by', ARGV[3], 'rep_note', ARGV[4], 'rep_at', now, 'rep_mode', ARGV[5])
redis.call('HDEL', job, 'dead_reason', 'dead_at', 'dead_evidence')
if ARGV[6] ~= '' then redis.call('HSET', job, 'budget', ARGV[6]) else redis.call('HDEL', job, 'budget') end
if ARGV[7] ~= '' then redis.call('HSET', job, 'deadline', ARGV[7]) end
redis.call('ZADD', ready, now - tonumber(f[4] or 0) * 17592186044416, id)
redis.call('RPUSH', prefix .. 'hist:' .. id, cjson.encode({'e', now, f[1], 'ready', 'replayed', ARGV[3], ARGV[8]}))
redis.call('HINCRBY', counters, 'replayed', 1)
redis.call('XADD', KEYS[7], 'MAXLEN', '~', 100, '*', 'replayed', id)
return {1}
