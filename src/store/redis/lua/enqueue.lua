-- enqueue: adds a batch of jobs to one queue, atomically.
--
-- KEYS[1] prefix    "rt:{QUEUE}:" (a job is a record in the hash PREFIX jobs, its
--                   unchanging part, payload included, in PREFIX specs, and its
--                   history a value of PREFIX hist: docs/redis-schema.md;
--                   the record's form: include/record.lua)
-- KEYS[2] ready     sorted set, score run_at - priority * 2^44
-- KEYS[3] scheduled sorted set, score run_at
-- KEYS[4] unique    hash: unique key -> id of the live job holding it
-- KEYS[5] all       sorted set of every job: each entry lists the ids of up to
--                   100 jobs created by one call, space-separated, its
--                   score the first one's insertion number (the k-th id's is
--                   score + k; docs/redis-schema.md)
-- KEYS[6] counters  hash of queue counters
-- KEYS[7] signal    stream that wakes idle workers (XREAD BLOCK): one entry per call that added jobs
-- KEYS[8] seq       string: the latest insertion number given in this queue
-- ARGV[1] now_ms    "" for the server's clock (TIME), or the store's own clock
-- ARGV[2] actor     who enqueues (recorded on the event)
-- ARGV[3] count     N
-- ARGV[4] seq_hint  the least insertion number to give (the caller's latest + 1), or 0
-- ARGV[5] written   "" or "1": the producer wrote every job's spec itself,
--                   in this call's transaction (MULTI, HSET PREFIX specs,
--                   EVAL of this script, EXEC), with the numbers now_ms (ARGV[1])
--                   and ARGV[4] .. ARGV[4] + count - 1 that reserve.lua gave
--                   it: job i has number ARGV[4] + i - 1 and a refused job
--                   leaves an empty slot in its entry of all (its spec is
--                   deleted). Only for generated ids (check "" below).
-- ARGV[6..]         per job, 3 values, or 10 when it has options (one fewer
--                   when written: no spec):
--   id, spec (its MessagePack map, built by the producer, its header counting
--   three more fields that this script adds at the end: c, when it was
--   created; ea, who enqueued it (nil for a scheduled job, whose 'enqueued'
--   event is in its history instead); and af, the score of its entry in
--   all, last so that remove.lua reads it without decoding the payload;
--   when written, the producer packs them the same way),
--   then "" for a job with none of the
--   options below (the common case: every argument costs), or "1" and 7 more:
--   priority, run_at_ms ("" = now), unique ("" = none), deadline_at_ms
--   ("" = none), deadline_after_ms ("" = none: when set and deadline_at is
--   not, the deadline is created + deadline_after), scheduled_note (the
--   event's note when the job is scheduled: "due at <RFC 3339>"), check ("1":
--   the producer gave the id, refuse it if a job has it; "": a generated id,
--   new by construction, so no lookup)
--
-- Insertion numbers (which order listings newest first, across queues too:
-- all above) are at least now_ms * 1024, the queue's previous one + 1
-- and seq_hint (reserve.lua gives written calls theirs by the same rule):
-- increasing within a queue, in the order they are given or reserved,
-- and within a producer (which
-- passes its latest as the hint), in time order across producers to the
-- millisecond, and exact as doubles until the year 2250.
--
-- Returns: {now_ms, last_seq, i, status, id, note, ...}, flat: last_seq, the
--   last insertion number given (the next hint is one more); then, for each job
--   not created, its position i among this call's jobs (from 1), and status 0: a job
--   with this id exists, or 2: the unique key is held by the live job whose id
--   is returned. Every other job was created: one reply per job would cost
--   more than its record.

--@include now.lua
local prefix, ready, scheduled, unique, all, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local actor = ARGV[2]
local count = tonumber(ARGV[3])
-- Text made once per call: Lua formats every number passed to Redis.
local now_s = tostring(now)
local actor_json = cjson.encode(actor)
-- The end of every spec: c, ea, then af (record.lua's names), packed once
-- per entry of all.
local spec_end = cmsgpack.pack('c') .. cmsgpack.pack(now) .. cmsgpack.pack('ea')
local spec_end_ready, spec_end_scheduled = spec_end .. cmsgpack.pack(actor), spec_end .. '\192'
local spec_end_ready_af, spec_end_scheduled_af
local out = {now, 0}  -- last_seq filled in at the end, then the refused jobs
local created = 0
-- Sorted-set entries are added after the loop, many per command: one command
-- per job costs more than the entry itself.
local to_ready, to_scheduled = {}, {}
-- The entries of all: one per 100 jobs, not one per job (an entry costs
-- more than the job's record); no more than 100, so that removing a job
-- from its entry (remove.lua) costs little.
local to_all, entry = {}, {}
-- Records are written many per command after the loop, too.
local records, specs, histories, added = {}, {}, {}, {}
local jobs_key = prefix .. 'jobs'
--@include record.lua
local written = ARGV[5] == '1'
local seq
if written then
  seq = tonumber(ARGV[4])
else
  seq = math.max(now * 1024, tonumber(redis.call('GET', KEYS[8]) or '0') + 1, tonumber(ARGV[4]))
end
local refused_specs = {}
-- Lengths kept in counters: Lua's # looks for a table's border each time.
local nrecords, nready, nentry = 0, 0, 0
local entry_used = false  -- when written: a slot of entry is not empty
local function end_entry()
  if nentry == 0 then return end
  if entry_used or not written then
    to_all[#to_all + 1] = seq - nentry
    to_all[#to_all + 1] = table.concat(entry, ' ', 1, nentry)
  end
  entry, nentry, entry_used = {}, 0, false
end
-- A job's place in the entries of all (and, when the script writes the
-- spec, the end of its spec, which names the entry).
local function place(id)
  if nentry == 100 then end_entry() end
  if nentry == 0 and not written then
    local af = cmsgpack.pack('af') .. cmsgpack.pack(seq)
    spec_end_ready_af, spec_end_scheduled_af = spec_end_ready .. af, spec_end_scheduled .. af
  end
  nentry = nentry + 1
  entry[nentry] = id
end
local function add_all(key, pairs, cmd)
  for i = 1, #pairs, 1000 do
    redis.call(cmd or 'ZADD', key, unpack(pairs, i, math.min(i + 999, #pairs)))
  end
end
-- The record of a job with no options, ready now: the same text for all.
local plain_record = 'ready,,' .. now_s .. ',,,,,' .. now_s .. ',,,,'
local b = 6
for i = 1, count do
  local id, spec = ARGV[b], nil
  if written then
    b = b + 1
  else
    spec = ARGV[b + 1]
    b = b + 2
  end
  local prio, run_at_arg, ukey, deadline_at, deadline_after, note, given = '0', '', '', '', '', '', false
  if ARGV[b] == '' then
    b = b + 1  -- no options (the common case): ready now, nothing to check
  else
    prio, run_at_arg, ukey, deadline_at, deadline_after, note =
      ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
    given = ARGV[b + 7] ~= ''
    b = b + 8
  end
  local run_at, run_at_s = now, now_s
  if run_at_arg ~= '' and tonumber(run_at_arg) > now then run_at, run_at_s = tonumber(run_at_arg), run_at_arg end
  local holder = ukey ~= '' and redis.call('HGET', unique, ukey) or false
  if holder then
    out[#out + 1], out[#out + 2], out[#out + 3] = i, 2, holder
    out[#out + 1] = "unique key '" .. ukey .. "' is held by live job " .. holder
    if written then
      -- Its number is taken: an empty slot keeps the next ones' places.
      place('')
      seq = seq + 1
      refused_specs[#refused_specs + 1] = id
    end
  elseif given and (added[id] or redis.call('HEXISTS', jobs_key, id) == 1) then
    out[#out + 1], out[#out + 2], out[#out + 3] = i, 0, id
    out[#out + 1] = 'a job with id ' .. id .. ' exists'
  else
    local state = run_at > now and 'scheduled' or 'ready'
    -- The record (record.lua): state, u and r in its text; the unique key
    -- and the deadline, when given, in its MessagePack rest. n (0), prio
    -- (0), trigger (initial), seq_start (1), last_delay (0) and streak (0)
    -- are left out at their defaults: every byte of a record is kept per job.
    local rest
    if ukey ~= '' then
      rest = {k = ukey}
      redis.call('HSET', unique, ukey, id)
    end
    if deadline_at ~= '' then
      rest = rest or {}
      rest.dl = tonumber(deadline_at)
    elseif deadline_after ~= '' then
      rest = rest or {}
      rest.dl = now + tonumber(deadline_after)
    end
    local record = plain_record
    if rest or prio ~= '0' or state ~= 'ready' or run_at_s ~= now_s then
      local prio_field = prio ~= '0' and record_num(tonumber(prio)) or ''
      record = state .. ',,' .. now_s .. ',,,,,' .. run_at_s .. ',' .. prio_field .. ',,,' ..
               (rest and cmsgpack.pack(rest) or '')
    end
    records[nrecords + 1], records[nrecords + 2] = id, record
    nrecords = nrecords + 2
    -- What never changes, apart, so that the steps of the job rewrite only
    -- the record above. A job that is ready at once has its 'enqueued' event
    -- in its spec (ea), not in its history: one hash entry less per job.
    if given then added[id] = true end
    place(id)
    entry_used = true
    if state == 'scheduled' then
      if not written then specs[#specs + 1], specs[#specs + 2] = id, spec .. spec_end_scheduled_af end
      to_scheduled[#to_scheduled + 1], to_scheduled[#to_scheduled + 2] = run_at_s, id
      histories[#histories + 1] = id
      histories[#histories + 1] = '["e",' .. now_s .. ',"","scheduled","enqueued",' .. actor_json ..
                                  ',' .. cjson.encode(note) .. ']'
    else
      if not written then specs[#specs + 1], specs[#specs + 2] = id, spec .. spec_end_ready_af end
      local score = prio == '0' and run_at_s or run_at - tonumber(prio) * 17592186044416
      to_ready[nready + 1], to_ready[nready + 2] = score, id
      nready = nready + 2
    end
    seq = seq + 1
    created = created + 1
  end
end
add_all(prefix .. 'specs', refused_specs, 'HDEL')
if created > 0 then
  end_entry()
  add_all(jobs_key, records, 'HSET')
  add_all(prefix .. 'specs', specs, 'HSET')
  add_all(prefix .. 'hist', histories, 'HSET')
  add_all(ready, to_ready)
  add_all(scheduled, to_scheduled)
  add_all(all, to_all)
  -- reserve.lua has set it already, maybe past these, for a later call.
  if not written then redis.call('SET', KEYS[8], seq - 1) end
  redis.call('HINCRBY', counters, 'enqueued', created)
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', 100, '*', 'enqueued', created)
end
out[2] = seq - 1
return out
