-- replay: puts a dead or cancelled job back to ready as a manual replay.
--
-- KEYS[1] prefix (records in PREFIX jobs)    KEYS[2] ready    KEYS[3] dead    KEYS[4] cancelled
-- KEYS[5] unique    KEYS[6] counters    KEYS[7] signal (stream that wakes idle workers)
-- ARGV[1] now_ms (required)   ARGV[2] id   ARGV[3] by   ARGV[4] note
-- ARGV[5] mode ("fresh" | "more=N")   ARGV[6] budget ("" for fresh)
-- ARGV[7] deadline_ms ("" to keep)   ARGV[8] event note
--
-- Returns: {1} replayed; {0, state} not dead or cancelled; {2, holder} its
--          unique key is held by another live job; {-1} no such job.

local prefix, ready, dead, cancelled, unique, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

--@include history.lua
--@include record.lua
local now, id = tonumber(ARGV[1]), ARGV[2]
local jobs_key = prefix .. 'jobs'
local packed = redis.call('HGET', jobs_key, id)
if not packed then return {-1} end
local j = decode(packed)
if j.s ~= 'dead' and j.s ~= 'cancelled' then return {0, j.s} end
if j.k then
  local holder = redis.call('HGET', unique, j.k)
  if holder and holder ~= id then return {2, holder} end
  redis.call('HSET', unique, j.k, id)
end
local from = j.s
redis.call('ZREM', from == 'dead' and dead or cancelled, id)
j.s, j.r, j.u, j.tr = 'ready', ARGV[1], ARGV[1], 'manual'
j.ss, j.ld, j.st = (j.n or 0) + 1, nil, nil  -- 0, their default, left out
j.rb, j.rn, j.ra, j.rm = ARGV[3], ARGV[4], now, ARGV[5]
j.dr, j.da, j.de = nil, nil, nil
j.b = tonumber(ARGV[6])  -- nil for a fresh budget
if ARGV[7] ~= '' then j.dl = tonumber(ARGV[7]) end
redis.call('HSET', jobs_key, id, encode(j))
redis.call('ZADD', ready, now - (j.pr or 0) * 17592186044416, id)
local event = cjson.encode({'e', now, from, 'ready', 'replayed', ARGV[3], ARGV[8]})
local field = hist_field(id, j.n)
local old = redis.call('HGET', prefix .. 'hist', field)
redis.call('HSET', prefix .. 'hist', field, old and old .. '\n' .. event or event)
redis.call('HINCRBY', counters, 'replayed', 1)
redis.call('XADD', KEYS[7], 'MAXLEN', '~', 100, '*', 'replayed', id)
return {1}
