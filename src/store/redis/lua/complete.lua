-- complete: ends the current attempts of a batch of one queue's jobs as
-- succeeded, each fenced by its lease token. One call per batch of acks.
--
-- KEYS[1] prefix     "rt:{QUEUE}:"
-- KEYS[2] counters   hash of queue counters
-- KEYS[3] unique     hash: unique key -> live holder
-- KEYS[4] active     sorted set, score lease expiry
-- KEYS[5] completed  sorted set, score when completed
-- ARGV[1] now_ms     "" for the server's clock (TIME), or the store's own clock
-- ARGV[2] actor      the worker id (recorded on the event)
-- ARGV[3] actor_json the actor as a JSON string
-- ARGV[4..] id, token pairs
--
-- Returns: {now_ms, status...}, one status per pair: 1 completed; -1 no such
--   job; {0, state, n} refused (the lease is not the job's; recorded as a
--   stale_lease_refused event).

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local prefix, counters, unique, active, completed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local actor, actor_json = ARGV[2], ARGV[3]
local now_s = tostring(now)  -- once, not per job: formatting numbers is costly in Lua
local out = {now}
local done, refused = 0, 0
-- Sorted-set entries move after the loop, many per command: one command per
-- job costs more than the entry itself.
local ended, finished = {}, {}
local function each_chunk(cmd, key, args)
  for i = 1, #args, 1000 do redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args))) end
end
for i = 4, #ARGV - 1, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local job = prefix .. 'job:' .. id
  local hist = prefix .. 'hist:' .. id
  local f = redis.call('HMGET', job, 'state', 'n', 'unique', 'worker')
  if not f[1] then
    out[#out + 1] = -1
  elseif f[1] ~= 'active' or f[2] ~= token then
    local note = 'completion with lease token ' .. token .. ' refused: the job is ' .. f[1]
    if f[1] == 'active' then note = note .. ' under token ' .. f[2] end
    redis.call('RPUSH', hist, cjson.encode({'e', now, f[1], '', 'stale_lease_refused', actor, note}))
    refused = refused + 1
    out[#out + 1] = {0, f[1], tonumber(f[2] or 0)}
  else
    ended[#ended + 1] = id
    finished[#finished + 1], finished[#finished + 2] = now_s, id
    redis.call('HSET', job, 'state', 'completed', 'updated', now_s)
    redis.call('HDEL', job, 'worker', 'lease')
    if f[3] and redis.call('HGET', unique, f[3]) == id then redis.call('HDEL', unique, f[3]) end
    -- The end record with its event (a success's decision is implied, and
    -- the actor too when it is the attempt's own worker).
    redis.call('RPUSH', hist, '["x",' .. token .. ',' .. now_s .. ',"succeeded",null,null,' ..
               '"completed","succeeded",' .. (f[4] == actor and 'null' or actor_json) .. ',""]')
    done = done + 1
    out[#out + 1] = 1
  end
end
if done > 0 then
  each_chunk('ZREM', active, ended)
  each_chunk('ZADD', completed, finished)
  redis.call('HINCRBY', counters, 'completed', done)
end
if refused > 0 then redis.call('HINCRBY', counters, 'stale_refused', refused) end
return out
