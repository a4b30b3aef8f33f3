-- Fills queue {q} with ARGV[1] ready jobs in a layout with no key per job:
-- one hash of job records (MessagePack), one of payloads, one of histories.
local n = tonumber(ARGV[1])
local payload = string.rep('x', 100)
local jobs, payloads, hist, ready = {}, {}, {}, {}
local function flush()
  if #jobs == 0 then return end
  redis.call('HSET', 'rt:{q}:jobs', unpack(jobs))
  redis.call('HSET', 'rt:{q}:payloads', unpack(payloads))
  redis.call('HSET', 'rt:{q}:hist', unpack(hist))
  redis.call('ZADD', 'rt:{q}:ready', unpack(ready))
  jobs, payloads, hist, ready = {}, {}, {}, {}
end
for i = 1, n do
  local id = string.format('01JDQ8Z5%018d', i)
  jobs[#jobs + 1], jobs[#jobs + 2] = id, cmsgpack.pack({state = 'ready', created = 1732780000123,
    run_at = 1732780000123, updated = 1732780000123, type = 'noop', policy = 'none'})
  payloads[#payloads + 1], payloads[#payloads + 2] = id, payload
  hist[#hist + 1], hist[#hist + 2] = id, '["e",1732780000123,"","ready","enqueued","producer",""]'
  ready[#ready + 1], ready[#ready + 2] = i, id
  if #jobs >= 2000 then flush() end
end
flush()
return n
