-- complete: ends the current attempts of a batch of one queue's jobs as
-- succeeded, each fenced by its lease token. One call per batch of acks.
--
-- KEYS[1] prefix     "rt:{QUEUE}:" (records in PREFIX jobs, histories in PREFIX hist)
-- KEYS[2] counters   hash of queue counters
-- KEYS[3] unique     hash: unique key -> live holder
-- KEYS[4] active     sorted set, score lease expiry
-- KEYS[5] completed  sorted set, score when completed
-- ARGV[1] now_ms     "" for the server's clock (TIME), or the store's own clock
-- ARGV[2] actor      the worker id (recorded on the event)
-- ARGV[3..] id, token pairs
--
-- Returns: {now_ms, status...}, one status per pair: 1 completed; -1 no such
--   job; {0, state, n} refused (the lease is not the job's; recorded as a
--   stale_lease_refused event).

--@include now.lua
local prefix, counters, unique, active, completed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local actor = ARGV[2]
local now_s = tostring(now)  -- once, not per job: formatting numbers is costly in Lua
local out = {now}
local done, refused = 0, 0

--@include records.lua

local ids = {}
for i = 3, #ARGV - 1, 2 do ids[#ids + 1] = ARGV[i] end
local vals = read_stored(ids)

-- The worker as its records hold it (record.lua), to compare without decoding.
local actor_field = record_escape(actor)
local match, find, sub = string.match, string.find, string.sub
local ended, finished = {}, {}
local n_ended = 0
for i, id in ipairs(ids) do
  local token_s = ARGV[2 + 2 * i]  -- ids[i] is ARGV[1 + 2 * i]
  local v = stored[id]
  if v == nil then v = vals[i] end
  -- The common case, on the text (record.lua): the job is active under this
  -- token, its worker acks it, and the rest has no unique key to release
  -- ("\161k" is the name k in MessagePack; its absence rules one out).
  -- The record becomes completed: u the end, sa the start, l cleared.
  -- (The rest by its position, not captured: a pattern's .* goes byte by
  -- byte over it.)
  local n, u, w, at
  if v and not records[id] then
    n, u, w, at = match(v, '^active,(%d*),(%d*),[^,]*,[^,]*,([^,]*),()')
  end
  if n == token_s and w == actor_field and not find(v, '\161k', at, true) then
    rewrite(id, 'completed,' .. n .. ',' .. now_s .. ',,' .. u .. ',' .. w .. ',' .. sub(v, at))
    n_ended = n_ended + 1
    ended[n_ended], finished[2 * n_ended - 1], finished[2 * n_ended] = id, now_s, id
    done = done + 1
    out[i + 1] = 1
  else
    local token = tonumber(token_s)
    local j = record_of(id, vals[i])
    if not j then
      out[i + 1] = -1
    elseif j.s ~= 'active' or j.n ~= token then
      local note = 'completion with lease token ' .. token_s .. ' refused: the job is ' .. j.s
      if j.s == 'active' then note = note .. ' under token ' .. j.n end
      write_pending(id, j)  -- so that the refusal reads after what came before it
      append(id, j.n, cjson.encode({'e', now, j.s, '', 'stale_lease_refused', actor, note}))
      refused = refused + 1
      out[i + 1] = {0, j.s, j.n or 0}
    else
      n_ended = n_ended + 1
      ended[n_ended], finished[2 * n_ended - 1], finished[2 * n_ended] = id, now_s, id
      if j.k and redis.call('HGET', unique, j.k) == id then redis.call('HDEL', unique, j.k) end
      -- No history record: the record keeps the attempt's start (sa), its
      -- end (u), its worker (w) and the actor when another (xa).
      j.s, j.sa, j.u, j.l = 'completed', j.u, now_s, nil
      if j.w ~= actor then j.xa = actor end
      changed[id] = true
      done = done + 1
      out[i + 1] = 1
    end
  end
end
write_records()
flush_history()
each_chunk('ZREM', active, ended)
each_chunk('ZADD', completed, finished)
if done > 0 then redis.call('HINCRBY', counters, 'completed', done) end
if refused > 0 then redis.call('HINCRBY', counters, 'stale_refused', refused) end
return out
