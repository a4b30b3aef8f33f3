-- The same hot path in the per-queue layout: per batch, one HMGET and one HSET
-- of each hash, a lease entry per batch, no command per job; each record is
-- decoded and encoded in Lua, the attempt's records appended to its history.
local prefix = 'rt:{q}:'
local now, expires = 1732780000200, 1732780030200
local now_s = tostring(now)
local worker = 'host-12345-abcd'
local jobs, payloads, hist = prefix .. 'jobs', prefix .. 'payloads', prefix .. 'hist'
local total = 0
while true do
  local popped = redis.call('ZPOPMIN', prefix .. 'ready', 1000)
  if #popped == 0 then break end
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  local records = redis.call('HMGET', jobs, unpack(ids))
  local bodies = redis.call('HMGET', payloads, unpack(ids))
  local set, out = {}, {}
  for i, id in ipairs(ids) do
    local r = cmsgpack.unpack(records[i])
    r.n = (r.n or 0) + 1
    r.state, r.worker, r.lease, r.updated, r.late = 'active', worker, expires, now, now - r.run_at
    local packed = cmsgpack.pack(r)
    set[#set + 1], set[#set + 2] = id, packed
    out[#out + 1] = {id, packed, bodies[i]}
  end
  redis.call('HSET', jobs, unpack(set))
  redis.call('ZADD', prefix .. 'active', expires, 'batch' .. total)
  records = redis.call('HMGET', jobs, unpack(ids))
  local histories = redis.call('HMGET', hist, unpack(ids))
  local job_set, hist_set, finished = {}, {}, {}
  for i, id in ipairs(ids) do
    local r = cmsgpack.unpack(records[i])
    if r.state == 'active' then
      r.state, r.updated, r.worker, r.lease = 'completed', now, nil, nil
      job_set[#job_set + 1], job_set[#job_set + 2] = id, cmsgpack.pack(r)
      hist_set[#hist_set + 1] = id
      hist_set[#hist_set + 1] = histories[i] .. '\n["a",' .. r.n .. ',"initial","' .. worker ..
          '",' .. r.updated .. ',' .. r.late .. ']\n["x",' .. r.n .. ',' .. now_s ..
          ',"succeeded",null,null,"completed","succeeded",null,""]'
      finished[#finished + 1], finished[#finished + 2] = now_s, id
    end
  end
  redis.call('HSET', jobs, unpack(job_set))
  redis.call('HSET', hist, unpack(hist_set))
  redis.call('ZADD', prefix .. 'completed', unpack(finished))
  total = total + #ids
end
return total
