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
-- The entry with the slots of the ids in `gone` (n of them) emptied, their
-- spaces kept; each id found is taken out of `gone`. Lua hashes every byte
-- of every string it makes, and an entry is up to 100 ids long: a few ids
-- are found in place and the entry cut once; many, by reading its slots.
local function without(entry, gone, n)
  if n > 8 then
    local slots, changed = {}, false
    for slot in string.gmatch(entry .. ' ', '([^ ]*) ') do
      if gone[slot] then
        gone[slot], slot, changed = nil, '', true
      end
      slots[#slots + 1] = slot
    end
    return changed and table.concat(slots, ' ') or entry
  end
  local cuts, ends, len = {}, {}, #entry
  for id in pairs(gone) do
    local init = 1
    while true do
      local from, to = string.find(entry, id, init, true)
      if not from then break end
      if (from == 1 or string.byte(entry, from - 1) == 32) and
         (to == len or string.byte(entry, to + 1) == 32) then
        cuts[#cuts + 1], ends[from], gone[id] = from, to, nil
        break
      end
      init = from + 1
    end
  end
  if #cuts == 0 then return entry end
  table.sort(cuts)
  local pieces, at = {}, 1
  for _, from in ipairs(cuts) do
    pieces[#pieces + 1] = string.sub(entry, at, from - 1)
    at = ends[from] + 1
  end
  pieces[#pieces + 1] = string.sub(entry, at)
  return table.concat(pieces)
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
  local by_entry, counts, scores, alone = {}, {}, {}, {}
  for i, id in ipairs(removed) do
    local first = entry_score(specs[i])
    if first then
      if not by_entry[first] then
        by_entry[first], counts[first] = {}, 0
        scores[#scores + 1] = first
      end
      by_entry[first][id], counts[first] = true, counts[first] + 1
    else
      alone[#alone + 1] = id
    end
  end
  for _, first in ipairs(scores) do
    local gone = by_entry[first]
    for _, entry in ipairs(redis.call('ZRANGEBYSCORE', all, first, first)) do
      local after = without(entry, gone, counts[first])
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
