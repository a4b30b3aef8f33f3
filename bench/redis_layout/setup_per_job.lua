-- Fills queue {q} with ARGV[1] ready jobs in the store's first layout (a hash
-- and a history list per job, the payload at the list's head), 100-byte
-- payloads.
local n = tonumber(ARGV[1])
local payload = string.rep('x', 100)
for i = 1, n do
  local id = string.format('01JDQ8Z5%018d', i)
  redis.call('HSET', 'rt:{q}:job:' .. id, 'type', 'noop', 'policy', 'none', 'state', 'ready',
             'created', '1732780000123', 'run_at', '1732780000123', 'updated', '1732780000123')
  redis.call('RPUSH', 'rt:{q}:hist:' .. id, payload,
             '["e",1732780000123,"","ready","enqueued","producer",""]')
  redis.call('ZADD', 'rt:{q}:ready', i, id)
end
return n
