-- end_attempt: ends jobs' current attempts and moves the jobs, each if the
-- lease given is still the job's; records a refusal otherwise. The decisions
-- (where each job goes, the records) are made by the store before the call:
-- this script only applies them, atomically and fenced by the tokens. One call
-- takes a batch of one queue's jobs: ARGV is 19 values per job, as below.
--
-- KEYS[1] prefix     "rt:{QUEUE}:" (records in PREFIX jobs, histories in PREFIX hist)
-- KEYS[2] counters   hash of queue counters
-- KEYS[3] unique     hash: unique key -> live holder
-- KEYS[4] active     KEYS[5] ready     KEYS[6] retry_wait
-- KEYS[7] completed  KEYS[8] dead      (sorted sets of those states)
-- KEYS[9] signal     stream that wakes idle workers: appended to when jobs go ready
-- ARGV[1]  now_ms          the store's time (required)
-- ARGV[2]  id
-- ARGV[3]  token           the lease token (attempt number) the caller holds
-- ARGV[4]  actor           worker id, or "system"
-- ARGV[5]  what            "completion", "failure", "release": named in a refusal
-- ARGV[6]  record_refusal  "1": a stale lease is recorded as an event; "0": silently refused
-- ARGV[7]  event           the event's reason: succeeded, retry_scheduled, dead, lease_expired, released
-- ARGV[8]  to              completed, ready, retry_wait or dead; "" only records a
--                          refusal (the caller found the lease stale when it read the job)
-- ARGV[9]  run_at_ms       ready or retry_wait: when it runs next
-- ARGV[10] trigger         the next attempt's trigger ("" to keep)
-- ARGV[11] last_delay_ms   ("" to keep)
-- ARGV[12] streak          lease expirations in a row ("" to keep)
-- ARGV[13] end_record      JSON history record of the attempt's end, carrying its event
--                          (readers derive the event from it; a refusal adds its own)
-- ARGV[14] counters        comma-separated counter names to increment
-- ARGV[15] last_error      JSON [class, code, message, signature], or ""
-- ARGV[16] dead_reason     ("" unless to = dead)
-- ARGV[17] dead_evidence   JSON array of lines ("" unless to = dead)
-- ARGV[18] start_record    JSON history record of the attempt's start, written before
--                          the end record unless written already ("": made here)
-- ARGV[19] started_ms      when the caller's attempt started, as the caller read it
--                          ("": not checked); a job whose attempt started at
--                          another time is another claim (of a job removed and
--                          enqueued again under the same id), and is refused
--
-- Returns: per job, in order: 1 applied; {0, state, n} refused (the lease is
--          not the job's); -1 no such job.

local prefix, counters, unique = KEYS[1], KEYS[2], KEYS[3]
local sets = {active = KEYS[4], ready = KEYS[5], retry_wait = KEYS[6], completed = KEYS[7], dead = KEYS[8]}
local out, counts = {}, {}
local ended, entries = {}, {ready = {}, retry_wait = {}, completed = {}, dead = {}}

--@include records.lua

-- A batch's failures mostly share their counters: each distinct text is
-- split once per call.
local split = {}
local function names_of(text)
  local names = split[text]
  if not names then
    names = {}
    for name in string.gmatch(text, '[^,]+') do names[#names + 1] = name end
    split[text] = names
  end
  return names
end

local ids = {}
for b = 0, #ARGV - 19, 19 do ids[#ids + 1] = ARGV[b + 2] end
local vals = read_stored(ids)

local match, sub, find = string.match, string.sub, string.find
-- Whether a step that sets last_delay or streak to `value` leaves the
-- MessagePack rest as it is: "" keeps the field, "0" removes it (so the rest
-- must not hold it: `name` is its name as MessagePack writes it; a false
-- match in other bytes only costs the slow path), another value sets it.
local function keeps(value, rest, name)
  return value == '' or (value == '0' and not find(rest, name, 1, true))
end
for b = 0, #ARGV - 19, 19 do
  local id, token_s, to = ARGV[b + 2], ARGV[b + 3], ARGV[b + 8]
  -- The common case, on the text (record.lua): the lease is the job's, the
  -- store made the start record (or it was written), and nothing in the
  -- record's MessagePack rest changes (not dead, no delay or streak to set,
  -- no unique key to release): its fields and error are rewritten and the
  -- rest kept as it is, without decoding it.
  local read = vals[b / 19 + 1]
  local v = stored[id]
  if v == nil then v = read end
  local n, u, tr, r, pr, a, el, at
  if v and not records[id] and to ~= '' and to ~= 'dead' then
    n, u, tr, r, pr, a, el, at =
      match(v, '^active,(%d*),(%d*),[^,]*,[^,]*,[^,]*,([^,]*),([^,]*),([^,]*),([^,]*),(%d*),()')
  end
  local start, started, rest = ARGV[b + 18], ARGV[b + 19]
  if n == token_s and (started == '' or u == started) and (start ~= '' or a == n) then
    rest = sub(v, at + (tonumber(el) or 0))
    if not (keeps(ARGV[b + 11], rest, '\162ld') and keeps(ARGV[b + 12], rest, '\162st') and
            (to ~= 'completed' or not find(rest, '\161k', 1, true))) then
      rest = nil
    end
  end
  if rest then
    local now_s = ARGV[b + 1]
    append(id, n, a == n and ARGV[b + 13] or start .. '\n' .. ARGV[b + 13])
    if ARGV[b + 10] ~= '' then tr = ARGV[b + 10] end
    local into = entries[to]
    local score = now_s
    if to == 'ready' or to == 'retry_wait' then
      r = ARGV[b + 9]
      score = (to == 'ready' and pr ~= '') and tonumber(r) - tonumber(pr) * 17592186044416 or r
    end
    into[#into + 1], into[#into + 2] = score, id
    local e = ARGV[b + 15]
    if e == '' then e = sub(v, at, at + (tonumber(el) or 0) - 1) end
    rewrite(id, to .. ',' .. n .. ',' .. now_s .. ',,,,' .. tr .. ',' .. r .. ',' .. pr .. ',,' ..
                (e ~= '' and record_num(#e) .. ',' .. e or ',') .. rest)
    ended[#ended + 1] = id
    for _, name in ipairs(names_of(ARGV[b + 14])) do counts[name] = (counts[name] or 0) + 1 end
    out[#out + 1] = 1
  else
    local now, token, actor = tonumber(ARGV[b + 1]), tonumber(token_s), ARGV[b + 4]
    local j = record_of(id, read)
    if not j then
      out[#out + 1] = -1
    elseif j.s ~= 'active' or j.n ~= token or ARGV[b + 8] == '' or
           (ARGV[b + 19] ~= '' and j.u ~= ARGV[b + 19]) then
      if ARGV[b + 6] == '1' then
        local note = ARGV[b + 5] .. ' with lease token ' .. token_s .. ' refused: the job is ' ..
                     j.s
        if j.s == 'active' then note = note .. ' under token ' .. j.n end
        if j.s == 'active' and j.n == token then note = note .. ' of another claim' end
        write_pending(id, j)  -- so that the refusal reads after what came before it
        append(id, j.n, cjson.encode({'e', now, j.s, '', 'stale_lease_refused', actor, note}))
        counts.stale_refused = (counts.stale_refused or 0) + 1
      end
      out[#out + 1] = {0, j.s, j.n or 0}
    else
      local run_at = tonumber(ARGV[b + 9])
      ended[#ended + 1] = id
      local into = entries[to]
      -- The end record, after the start record unless a refusal wrote that already.
      if j.a == token then
        append(id, j.n, ARGV[b + 13])
      else
        local start = ARGV[b + 18]
        append(id, j.n, (start ~= '' and start or start_record(j, j.u)) .. '\n' .. ARGV[b + 13])
      end
      j.s, j.u, j.w, j.l, j.a = to, ARGV[b + 1], nil, nil, nil
      -- Scores go to Redis as the text given where they can: Lua prints a
      -- number slowly.
      if to == 'ready' then
        j.r = ARGV[b + 9]
        into[#into + 1] = j.pr and run_at - j.pr * 17592186044416 or ARGV[b + 9]
      elseif to == 'retry_wait' then
        j.r = ARGV[b + 9]
        into[#into + 1] = ARGV[b + 9]
      else
        into[#into + 1] = ARGV[b + 1]
      end
      into[#into + 1] = id
      if to == 'dead' then j.dr, j.da, j.de = ARGV[b + 16], now, ARGV[b + 17] end
      if ARGV[b + 10] ~= '' then j.tr = ARGV[b + 10] end
      -- 0, their default, is left out: every field is decoded at each step.
      local ld, st = ARGV[b + 11], ARGV[b + 12]
      if ld ~= '' then j.ld = ld ~= '0' and tonumber(ld) or nil end
      if st ~= '' then j.st = st ~= '0' and tonumber(st) or nil end
      -- The latest error, kept as the text given: the store reads it, no step does.
      if ARGV[b + 15] ~= '' then j.e = ARGV[b + 15] end
      if (to == 'completed' or to == 'dead') and j.k and redis.call('HGET', unique, j.k) == id then
        redis.call('HDEL', unique, j.k)  -- a finished job no longer holds its unique key
      end
      changed[id] = true
      for _, name in ipairs(names_of(ARGV[b + 14])) do counts[name] = (counts[name] or 0) + 1 end
      out[#out + 1] = 1
    end
  end
end
write_records()
flush_history()
each_chunk('ZREM', sets.active, ended)
for name, list in pairs(entries) do each_chunk('ZADD', sets[name], list) end
if #entries.ready > 0 then  -- retries due at once: idle workers elsewhere start them
  redis.call('XADD', KEYS[9], 'MAXLEN', '~', 100, '*', 'ready', #entries.ready / 2)
end
for name, n in pairs(counts) do redis.call('HINCRBY', counters, name, n) end
return out
