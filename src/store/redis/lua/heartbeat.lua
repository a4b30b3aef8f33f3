-- heartbeat: extends the leases that are still their jobs'.
--
-- KEYS[1] prefix   "rt:{QUEUE}:"
-- KEYS[2] active   sorted set of active jobs, score lease expiry
-- ARGV[1] now_ms   "" for the server's clock (TIME), or the store's own clock
-- ARGV[2] lease_ms the new lease, from now
-- ARGV[3..] id, token pairs
--
-- Returns: one integer per pair: 1 extended; 0 the lease is no longer the job's.

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local prefix, active = KEYS[1], KEYS[2]
local expires = now + tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], tonumber(ARGV[i + 1])
  local job = prefix .. 'job:' .. id
  local f = redis.call('HMGET', job, 'state', 'n')
  if f[1] == 'active' and tonumber(f[2]) == token then
    redis.call('HSET', job, 'lease', expires)
    redis.call('ZADD', active, expires, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
