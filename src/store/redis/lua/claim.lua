-- claim: makes a queue's due jobs ready, then takes up to N ready jobs under
-- a lease, atomically.
--
-- KEYS[1] prefix     "rt:{QUEUE}:"
-- KEYS[2] ready      sorted set, score run_at - priority * 2^44
-- KEYS[3] scheduled  sorted set, score run_at
-- KEYS[4] retry_wait sorted set, score run_at
-- KEYS[5] active     sorted set, score lease expiry
-- KEYS[6] counters   hash of queue counters
-- ARGV[1] now_ms   "" for the server's clock (TIME), or the store's own clock
-- ARGV[2] worker   the claiming worker's id
-- ARGV[3] max      claim up to this many jobs (1 to 1000)
-- ARGV[4] lease_ms how long the lease lasts
--
-- Returns: {now_ms, job...} where each job is
--   {id, type, payload, policy, priority, token, created, run_at, unique|false,
--    timeout|false, deadline|false, trigger, lateness_ms}
-- The token is the attempt number; the lease expires at now + lease_ms. The
-- payload is the first element of the job's history list (PREFIX hist:ID).

-- Now: the server's clock, unless the store was given a clock (tests).
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local prefix, ready, active, counters = KEYS[1], KEYS[2], KEYS[5], KEYS[6]
local worker, max, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

-- Due scheduled and retry_wait jobs become ready first. Sorted-set entries
-- move many per command (at most 1,000 here): one command per job costs more
-- than the entry itself.
for _, due in ipairs({KEYS[3], KEYS[4]}) do
  local promoted = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, 1000)
  if #promoted > 0 then
    local entries = {}
    for _, id in ipairs(promoted) do
      local job = prefix .. 'job:' .. id
      local f = redis.call('HMGET', job, 'state', 'prio', 'run_at')
      redis.call('HSET', job, 'state', 'ready', 'updated', now)
      entries[#entries + 1] = f[2] and tonumber(f[3]) - tonumber(f[2]) * 17592186044416 or f[3]
      entries[#entries + 1] = id
      redis.call('RPUSH', prefix .. 'hist:' .. id, cjson.encode({'e', now, f[1], 'ready', 'due', 'system', ''}))
    end
    redis.call('ZREM', due, unpack(promoted))
    redis.call('ZADD', ready, unpack(entries))
  end
end

-- Numbers are turned into text once here, not per job: Lua formats every
-- number it passes to Redis, and that dominated the per-job cost.
local now_s, expires_s = tostring(now), tostring(now + lease)
local worker_json = cjson.encode(worker)
local out = {now}
local popped = redis.call('ZPOPMIN', ready, max)
local leases = {}  -- active entries, added in one command after the loop
local by_trigger = {}
local claimed = 0
for i = 1, #popped, 2 do
  local id = popped[i]
  local job = prefix .. 'job:' .. id
  local hist = prefix .. 'hist:' .. id
  local f = redis.call('HMGET', job, 'n', 'type', 'policy', 'prio', 'created', 'run_at',
                       'unique', 'timeout', 'deadline', 'trigger')
  local token = tostring(tonumber(f[1] or 0) + 1)
  redis.call('HSET', job, 'n', token, 'state', 'active', 'worker', worker, 'lease', expires_s,
             'updated', now_s)
  leases[#leases + 1], leases[#leases + 2] = expires_s, id
  local lateness = now - tonumber(f[6])
  local trigger = f[10] or 'initial'
  -- One record starts the attempt; readers derive the 'claimed' event from it.
  redis.call('RPUSH', hist, '["a",' .. token .. ',"' .. trigger .. '",' .. worker_json .. ',' ..
             now_s .. ',' .. lateness .. ']')
  by_trigger[trigger] = (by_trigger[trigger] or 0) + 1
  claimed = claimed + 1
  out[#out + 1] = {id, f[2], redis.call('LINDEX', hist, 0), f[3], f[4], tonumber(token), f[5], f[6], f[7],
                   f[8], f[9], trigger, lateness}
end
if claimed > 0 then
  redis.call('ZADD', active, unpack(leases))
  redis.call('HINCRBY', counters, 'attempts', claimed)
  for trigger, n in pairs(by_trigger) do redis.call('HINCRBY', counters, 'attempts_' .. trigger, n) end
end
return out
