-- The hot path of claim.lua and complete.lua over every ready job, in
-- batches of 1,000, inside one call, so SLOWLOG gives its server time alone.
-- ARGV[1] lists the variants to apply (letters; "" for the layout as it was):
--   A  no history record at claim (the start written with the end)
--   B  one active entry per claimed batch instead of one per job
--   C  no HDEL of worker and lease at the end
--   D  the claim reads 3 fields instead of 10
--   E  completed jobs pushed to a list instead of a sorted set
--   F  no payload read at claim
local variants = ARGV[1] or ''
local function has(c) return string.find(variants, c, 1, true) ~= nil end
local prefix = 'rt:{q}:'
local now_s, expires_s = '1732780000200', '1732780030200'
local worker = 'host-12345-abcd'
local total = 0
while true do
  local popped = redis.call('ZPOPMIN', prefix .. 'ready', 1000)
  if #popped == 0 then break end
  local leases, ids = {}, {}
  for i = 1, #popped, 2 do
    local id = popped[i]
    local job = prefix .. 'job:' .. id
    local hist = prefix .. 'hist:' .. id
    local f
    if has('D') then
      f = redis.call('HMGET', job, 'n', 'run_at', 'trigger')
    else
      f = redis.call('HMGET', job, 'n', 'type', 'policy', 'prio', 'created', 'run_at', 'unique',
                     'timeout', 'deadline', 'trigger')
    end
    local token = tostring(tonumber(f[1] or 0) + 1)
    redis.call('HSET', job, 'n', token, 'state', 'active', 'worker', worker, 'lease', expires_s,
               'updated', now_s)
    leases[#leases + 1], leases[#leases + 2] = expires_s, id
    if not has('A') then
      redis.call('RPUSH', hist, '["a",' .. token .. ',"initial","' .. worker .. '",' .. now_s .. ',3]')
    end
    if not has('F') then redis.call('LINDEX', hist, 0) end
    ids[#ids + 1] = id
  end
  if has('B') then
    redis.call('ZADD', prefix .. 'active', expires_s, 'batch' .. total)
  else
    redis.call('ZADD', prefix .. 'active', unpack(leases))
  end
  local finished = {}
  for _, id in ipairs(ids) do
    local job = prefix .. 'job:' .. id
    redis.call('HMGET', job, 'state', 'n', 'unique', 'worker')
    redis.call('HSET', job, 'state', 'completed', 'updated', now_s)
    if not has('C') then redis.call('HDEL', job, 'worker', 'lease') end
    redis.call('RPUSH', prefix .. 'hist:' .. id,
               '["x",1,' .. now_s .. ',"succeeded",null,null,"completed","succeeded",null,""]')
    finished[#finished + 1], finished[#finished + 2] = now_s, id
  end
  if not has('B') then redis.call('ZREM', prefix .. 'active', unpack(ids)) end
  if has('E') then
    redis.call('RPUSH', prefix .. 'completed_list', unpack(ids))
  else
    redis.call('ZADD', prefix .. 'completed', unpack(finished))
  end
  total = total + #ids
end
return total
