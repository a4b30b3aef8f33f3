-- claim: makes a queue's due jobs ready, then takes up to N ready jobs under
-- a lease, atomically.
--
-- KEYS[1] prefix     "rt:{QUEUE}:" (records in PREFIX jobs, specs in PREFIX specs)
-- KEYS[2] ready      sorted set, score run_at - priority * 2^44
-- KEYS[3] scheduled  sorted set, score run_at
-- KEYS[4] retry_wait sorted set, score run_at
-- KEYS[5] active     sorted set, score lease expiry
-- KEYS[6] counters   hash of queue counters
-- ARGV[1] now_ms   "" for the server's clock (TIME), or the store's own clock
-- ARGV[2] worker   the claiming worker's id
-- ARGV[3] max      claim up to this many jobs (1 to 1000)
-- ARGV[4] lease_ms how long the lease lasts
--
-- Returns: {now_ms, id, spec, record, id, spec, record, ...}: three strings
-- per claimed job, where spec is its unchanging part as stored (a MessagePack
-- map: type, policy, created, payload, timeout) and record its record as
-- written by this claim (n, the attempt number, is the lease token; r the
-- run_at its lateness counts from), both passed undecoded: the store decodes
-- them, and one string per value costs the server less than a table per job.
-- The lease expires at now + lease_ms.
-- No history record is written: the attempt's start is in the record (n,
-- tr, w, u, r: docs/redis-schema.md), and its history record is appended with
-- the first one written while it runs, usually its end (docs/redis-schema.md).

-- Now: the server's clock, unless the store was given a clock (tests).
--@include now.lua
local prefix, ready, active, counters = KEYS[1], KEYS[2], KEYS[5], KEYS[6]

--@include history.lua
--@include record.lua
local jobs_key = prefix .. 'jobs'
local match = string.match
local worker, max, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
-- Numbers are turned into text once here, not per job: Lua formats every
-- number it passes to Redis, and that dominated the per-job cost.
local expires = now + lease
local now_s, expires_s = tostring(now), tostring(expires)

-- Due scheduled and retry_wait jobs become ready first.
for _, due in ipairs({KEYS[3], KEYS[4]}) do
  local promoted = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, 1000)
  if #promoted > 0 then
    local vals = redis.call('HMGET', jobs_key, unpack(promoted))
    local entries, set = {}, {}
    local hist_ids, entries_hist = {}, {}
    for i, id in ipairs(promoted) do
      local v = vals[i]
      if v then
        -- On the text (record.lua): s and u replaced, the rest kept by its
        -- position; a record of an earlier version's form is decoded.
        local from, n, at, r, pr
        if string.byte(v) < 128 then
          from, n, at, r, pr =
            match(v, '^([^,]*),([^,]*),[^,]*,()[^,]*,[^,]*,[^,]*,[^,]*,([^,]*),([^,]*),')
        end
        local record
        if from then
          record = 'ready,' .. n .. ',' .. now_s .. ',' .. string.sub(v, at)
          r, pr = tonumber(r), tonumber(pr)
        else
          local j = decode(v)
          from, n, r, pr = j.s, j.n, tonumber(j.r), j.pr
          j.s, j.u = 'ready', now_s
          record = encode(j)
        end
        entries[#entries + 1] = pr and r - pr * 17592186044416 or r
        entries[#entries + 1] = id
        set[#set + 1], set[#set + 2] = id, record
        hist_ids[#hist_ids + 1] = hist_field(id, n)
        entries_hist[#hist_ids] = '["e",' .. now_s .. ',"' .. from .. '","ready","due","system",""]'
      end
    end
    redis.call('ZREM', due, unpack(promoted))
    if #set > 0 then
      redis.call('HSET', jobs_key, unpack(set))
      redis.call('ZADD', ready, unpack(entries))
      -- The 'due' events, appended to the histories (PREFIX hist: records
      -- joined by newlines, in the field of the job's attempt count).
      local old = redis.call('HMGET', prefix .. 'hist', unpack(hist_ids))
      local hist_set = {}
      for k, id in ipairs(hist_ids) do
        hist_set[#hist_set + 1] = id
        hist_set[#hist_set + 1] = old[k] and old[k] .. '\n' .. entries_hist[k] or entries_hist[k]
      end
      redis.call('HSET', prefix .. 'hist', unpack(hist_set))
    end
  end
end

local out = {now}
-- The first N entries, then removed by rank: ZPOPMIN would also return
-- each entry's score, printed from a double, which costs more than the rest.
local ids = redis.call('ZRANGE', ready, 0, max - 1)
if #ids == 0 then return out end
redis.call('ZREMRANGEBYRANK', ready, 0, #ids - 1)
local vals = redis.call('HMGET', jobs_key, unpack(ids))
local specs = redis.call('HMGET', prefix .. 'specs', unpack(ids))
local leases, set = {}, {}  -- active entries and records, written after the loop
local by_trigger = {}
local claimed = 0
-- The record is rewritten as text (record.lua): its first six fields (s, n,
-- u, l, sa, w) are the claim's, the rest is kept as it was, with the
-- trigger (tr) read.
local worker_field = record_escape(worker)
local head_tail = now_s .. ',' .. expires_s .. ',,' .. worker_field .. ','
for i, id in ipairs(ids) do
  local v = vals[i]
  if v then  -- always: a ready entry has its record
    local n, rest, trigger, at
    if string.byte(v) < 128 then
      -- Where the kept part starts, not a capture of it: a pattern's .* goes
      -- byte by byte.
      n, at, trigger = match(v, '^[^,]*,(%d*),[^,]*,[^,]*,[^,]*,[^,]*,()([^,]*)')
      if n then rest = string.sub(v, at) end
    end
    if not n then  -- an earlier version's record (record.lua)
      local j = decode(v)
      n, trigger = j.n or 0, j.tr or ''
      j.s, j.u, j.l, j.sa, j.w = 'ready', nil, nil, nil, nil
      rest = match(encode(j), '^[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,(.*)$')
    end
    local packed = 'active,' .. record_num((tonumber(n) or 0) + 1) .. ',' .. head_tail .. rest
    claimed = claimed + 1
    set[2 * claimed - 1], set[2 * claimed] = id, packed
    leases[2 * claimed - 1], leases[2 * claimed] = expires_s, id
    out[3 * claimed - 1], out[3 * claimed], out[3 * claimed + 1] = id, specs[i], packed
    if trigger == '' then trigger = 'initial' end
    by_trigger[trigger] = (by_trigger[trigger] or 0) + 1
  end
end
if claimed == 0 then return out end
redis.call('HSET', jobs_key, unpack(set))
redis.call('ZADD', active, unpack(leases))
redis.call('HINCRBY', counters, 'attempts', claimed)
for trigger, n in pairs(by_trigger) do redis.call('HINCRBY', counters, 'attempts_' .. trigger, n) end
return out
