-- records: reading and writing a batch of one queue's job records and
-- appending to their histories (docs/redis-schema.md). Not a script: the
-- build puts this file in place of the line that includes it in the scripts
-- that use it (cmake/Embed.cmake). Expects the local `prefix` ("rt:{QUEUE}:")
-- to be set before that line.

local jobs_key, hist_key = prefix .. 'jobs', prefix .. 'hist'

--@include history.lua
--@include record.lua

-- Runs cmd on key with args, up to 1,000 values per command (the most Lua's
-- unpack takes safely); returns the replies' elements in order. One command
-- per batch, not per job: each redis.call costs about a microsecond alone.
local function each_chunk(cmd, key, args)
  local got = {}
  for i = 1, #args, 1000 do
    local r = redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
    if type(r) == 'table' then for k = 1, #r do got[i + k - 1] = r[k] end end
  end
  return got
end

-- id -> the record's text as a step of this call rewrote it (rewrite,
-- below); id -> its decoded record (record.lua), for the jobs a step
-- decoded; ids whose decoded record changed. A job named twice in a call is
-- read once: its second step sees what the first did.
local stored, records, changed = {}, {}, {}

-- The records of ids as text, in order (false: no such job): what a step
-- reads unless the call rewrote the job (stored) or decoded it (records).
local function read_stored(ids)
  return each_chunk('HMGET', jobs_key, ids)
end

-- The decoded record of a job (false: no such job), given its text as read;
-- changes made to it are written by write_records once changed[id] is set.
local function record_of(id, read)
  local j = records[id]
  if j == nil then
    local v = stored[id]
    if v == nil then v = read end
    j = v and decode(v) or false
    records[id] = j
  end
  return j
end

-- Records rewritten as text by a step that did not decode them: id, text,
-- id, text... in order (a job named twice is in it twice: the later wins).
-- A step that finds a job decoded (records[id]) does not rewrite it as text,
-- so writing these first, then the decoded ones, leaves each job as the last
-- step of the call left it.
local rewritten, n_rewritten = {}, 0
local function rewrite(id, text)
  stored[id] = text
  rewritten[n_rewritten + 1], rewritten[n_rewritten + 2] = id, text
  n_rewritten = n_rewritten + 2
end

-- Writes the records changed: those rewritten as text, then those decoded
-- and changed (changed[id] set), encoded.
local function write_records()
  local set = {}
  for id in pairs(changed) do set[#set + 1], set[#set + 2] = id, encode(records[id]) end
  each_chunk('HSET', jobs_key, rewritten)
  each_chunk('HSET', jobs_key, set)
end

-- History records to append, per history field (history.lua), joined by
-- newlines as stored. n is the job's attempt count (a number or its text):
-- it says where.
local appended, appended_ids = {}, {}
local function append(id, n, text)
  local field = hist_field(id, n)
  local before = appended[field]
  if before then
    appended[field] = before .. '\n' .. text
  else
    appended[field], appended_ids[#appended_ids + 1] = text, field
  end
end

local function flush_history()
  local old = each_chunk('HMGET', hist_key, appended_ids)
  local set = {}
  for i, id in ipairs(appended_ids) do
    set[#set + 1], set[#set + 2] = id, old[i] and old[i] .. '\n' .. appended[id] or appended[id]
  end
  each_chunk('HSET', hist_key, set)
end

-- The start record of a job's latest attempt, from its record (n, tr, w, r)
-- and when it started.
local quoted = {}  -- worker id -> its JSON text: a batch has few workers
local function start_record(j, started)
  local w = quoted[j.w or false]
  if not w then
    w = cjson.encode(j.w)
    quoted[j.w or false] = w
  end
  return '["a",' .. j.n .. ',"' .. (j.tr or 'initial') .. '",' .. w .. ',' ..
         started .. ',' .. (started - j.r) .. ']'
end

-- Writes the records a job's record stands for, before anything follows
-- them in its history: a running attempt's start (claim.lua writes none), or
-- a success's start and end (complete.lua writes none: the record keeps what
-- they hold, sa set).
local function write_pending(id, j)
  if j.s == 'active' and j.a ~= j.n then
    append(id, j.n, start_record(j, j.u))
    j.a = j.n
    changed[id] = true
  elseif j.sa then
    local x = '["x",' .. j.n .. ',' .. j.u .. ',"succeeded",null,null,"completed","succeeded",' ..
              (j.xa and cjson.encode(j.xa) or 'null') .. ',""]'
    append(id, j.n, j.a == j.n and x or start_record(j, j.sa) .. '\n' .. x)
    j.sa, j.xa, j.w, j.a = nil, nil, nil, nil
    changed[id] = true
  end
end
