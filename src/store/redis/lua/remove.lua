-- remove: deletes finished jobs with their history (a purge or a retention trim).
--
-- KEYS[1] prefix   KEYS[2] all   KEYS[3] completed   KEYS[4] dead   KEYS[5] cancelled
-- KEYS[6] counters
-- ARGV[1] counter ("purged" or "trimmed")   ARGV[2..] job ids
--
-- Returns: the ids removed (live or missing jobs are left alone).

local prefix, all, counters = KEYS[1], KEYS[2], KEYS[6]
local sets = {completed = KEYS[3], dead = KEYS[4], cancelled = KEYS[5]}
local removed = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local job = prefix .. 'job:' .. id
  local state = redis.call('HGET', job, 'state')
  if state and sets[state] then
    redis.call('DEL', job, prefix .. 'hist:' .. id)
    redis.call('ZREM', sets[state], id)
    redis.call('ZREM', all, id)
    removed[#removed + 1] = id
  end
end
if #removed > 0 then redis.call('HINCRBY', counters, ARGV[1], #removed) end
return removed
