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

-- The score of the job's entry in all, from the spec's last field (af,
-- enqueue.lua), read without decoding the payload before it; nil for a spec
-- written before af existed, whose job has an entry of its own, or for any
-- other ending: the entry is then looked for by id.
local uint_forms = {{8, '\207'}, {4, '\206'}, {2, '\205'}, {1, '\204'}}  -- MessagePack uint 64..8
local function entry_score(spec)
  if not spec then return nil end
  local n = #spec
  for _, form in ipairs(uint_forms) do
    local width, tag = form[1], form[2]
    if n > width + 3 and spec:sub(n - width - 3, n - width) == '\162af' .. tag then
      local v = 0
      for k = n - width + 1, n do v = v * 256 + string.byte(spec, k) end
      return v
    end
  end
  if n > 4 and spec:sub(n - 3, n - 1) == '\162af' and string.byte(spec, n) < 128 then
    return string.byte(spec, n)
  end
  return nil
end
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
  -- Their places in all: a removed job's slot in its entry is left empty,
  -- so that the others keep their numbers; an entry with no id left goes.
  local specs = redis.call('HMGET', prefix .. 'specs', unpack(removed))
  local by_entry, scores, alone = {}, {}, {}
  for i, id in ipairs(removed) do
    local first = entry_score(specs[i])
    if first then
      if not by_entry[first] then
        by_entry[first] = {}
        scores[#scores + 1] = first
      end
      by_entry[first][id] = true
    else
      alone[#alone + 1] = id
    end
  end
  for _, first in ipairs(scores) do
    local gone, n_gone = by_entry[first], 0
    for _ in pairs(gone) do n_gone = n_gone + 1 end
    for _, entry in ipairs(redis.call('ZRANGEBYSCORE', all, first, first)) do
      local after = entry
      if n_gone <= 8 then
        -- A few ids: found in place (an entry holds up to 1,000).
        for id in pairs(gone) do
          local from, to = string.find(' ' .. after .. ' ', ' ' .. id .. ' ', 1, true)
          if from then
            after = string.sub(after, 1, from - 1) .. string.sub(after, to - 1)
            gone[id] = nil
          end
        end
      else
        local slots = {}
        for slot in (entry .. ' '):gmatch('([^ ]*) ') do
          if gone[slot] then
            gone[slot] = nil
            slot = ''
          end
          slots[#slots + 1] = slot
        end
        after = table.concat(slots, ' ')
      end
      if after ~= entry then
        redis.call('ZREM', all, entry)
        if string.find(after, '[^ ]') then redis.call('ZADD', all, first, after) end
      end
    end
    for id in pairs(gone) do alone[#alone + 1] = id end
  end
  if #alone > 0 then redis.call('ZREM', all, unpack(alone)) end
  redis.call('HDEL', jobs_key, unpack(removed))
  redis.call('HDEL', prefix .. 'specs', unpack(removed))
  for i = 1, #fields, 1000 do  -- unpack takes a few thousand values at most
    redis.call('HDEL', prefix .. 'hist', unpack(fields, i, math.min(i + 999, #fields)))
  end
  for state, list in pairs(by_state) do
    if #list > 0 then redis.call('ZREM', sets[state], unpack(list)) end
  end
  redis.call('HINCRBY', counters, ARGV[1], #removed)
end
return removed
