-- remove: deletes finished jobs with their history (a purge or a retention trim).
--
-- KEYS[1] prefix (records in PREFIX jobs and PREFIX specs, histories in PREFIX hist)
-- KEYS[2] all   KEYS[3] completed   KEYS[4] dead   KEYS[5] cancelled   KEYS[6] counters
-- ARGV[1] counter ("purged" or "trimmed")   ARGV[2..] job ids
--
-- Returns: the ids removed (live or missing jobs are left alone).

local prefix, all, counters = KEYS[1], KEYS[2], KEYS[6]

--@include history.lua
--@include record.lua
local jobs_key = prefix .. 'jobs'
local sets = {completed = KEYS[3], dead = KEYS[4], cancelled = KEYS[5]}
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {} end
local vals = redis.call('HMGET', jobs_key, unpack(ids))
local removed, by_state, seen = {}, {completed = {}, dead = {}, cancelled = {}}, {}
local fields = {}  -- every history field of the removed jobs (history.lua)
for i, id in ipairs(ids) do
  -- Only the state and the attempt count are needed: read from the text
  -- (record.lua) unless written by an earlier version.
  local state, n
  if vals[i] and string.byte(vals[i]) < 128 then
    state, n = string.match(vals[i], '^([^,]*),(%d*),')
    n = tonumber(n)
  elseif vals[i] then
    local j = decode(vals[i])
    state, n = j.s, j.n
  end
  if state and sets[state] and not seen[id] then
    seen[id] = true
    removed[#removed + 1] = id
    for k = 0, n or 0 do fields[#fields + 1] = hist_field(id, k) end
    local list = by_state[state]
    list[#list + 1] = id
  end
end
if #removed > 0 then
  redis.call('HDEL', jobs_key, unpack(removed))
  redis.call('HDEL', prefix .. 'specs', unpack(removed))
  for i = 1, #fields, 1000 do  -- unpack takes a few thousand values at most
    redis.call('HDEL', prefix .. 'hist', unpack(fields, i, math.min(i + 999, #fields)))
  end
  redis.call('ZREM', all, unpack(removed))
  for state, list in pairs(by_state) do
    if #list > 0 then redis.call('ZREM', sets[state], unpack(list)) end
  end
  redis.call('HINCRBY', counters, ARGV[1], #removed)
end
return removed
