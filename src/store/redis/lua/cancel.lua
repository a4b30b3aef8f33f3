-- cancel: stops a live job.
--
-- KEYS[1] prefix (records in PREFIX jobs)   KEYS[2] scheduled   KEYS[3] ready
-- KEYS[4] retry_wait   KEYS[5] active   KEYS[6] cancelled   KEYS[7] unique  KEYS[8] counters
-- ARGV[1] now_ms (required)   ARGV[2] id   ARGV[3] by   ARGV[4] note
-- ARGV[5] evidence (JSON array of lines)
-- ARGV[6] end record for a running attempt (JSON, with its n set to 0: filled in here)
--
-- Returns: {1} cancelled; {0, state} the job is not live; {-1} no such job.

local prefix, counters, unique = KEYS[1], KEYS[8], KEYS[7]

--@include history.lua
--@include record.lua
local sets = {scheduled = KEYS[2], ready = KEYS[3], retry_wait = KEYS[4], active = KEYS[5]}
local now, id = tonumber(ARGV[1]), ARGV[2]
local jobs_key = prefix .. 'jobs'
local packed = redis.call('HGET', jobs_key, id)
if not packed then return {-1} end
local j = decode(packed)
local state = j.s
if not sets[state] then return {0, state} end
redis.call('ZREM', sets[state], id)
-- The records this writes, appended to the history at the end.
local records = {}
if state == 'active' then
  -- The running attempt's start record first, unless a refusal wrote it
  -- already (claim.lua writes none; the record has what it needs).
  if j.a ~= j.n then
    records[#records + 1] = '["a",' .. j.n .. ',"' .. (j.tr or 'initial') .. '",' ..
                            cjson.encode(j.w) .. ',' .. j.u .. ',' .. (j.u - j.r) .. ']'
  end
  local record = cjson.decode(ARGV[6])
  record[2] = j.n
  records[#records + 1] = cjson.encode(record)
end
if j.k and redis.call('HGET', unique, j.k) == id then redis.call('HDEL', unique, j.k) end
j.s, j.u, j.dr, j.da, j.de = 'cancelled', ARGV[1], 'cancelled', now, ARGV[5]
j.w, j.l, j.a = nil, nil, nil
redis.call('HSET', jobs_key, id, encode(j))
redis.call('ZADD', KEYS[6], now, id)
records[#records + 1] = cjson.encode({'e', now, state, 'cancelled', 'cancelled', ARGV[3], ARGV[4]})
local field = hist_field(id, j.n)
local old = redis.call('HGET', prefix .. 'hist', field)
local add = table.concat(records, '\n')
redis.call('HSET', prefix .. 'hist', field, old and old .. '\n' .. add or add)
redis.call('HINCRBY', counters, 'cancelled', 1)
return {1}
