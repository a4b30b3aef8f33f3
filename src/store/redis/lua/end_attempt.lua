-- end_attempt: ends a job's current attempt and moves the job, if the lease
-- given is still the job's; records a refusal otherwise. The decision (where
-- the job goes, the records) is made by the store before the call: this
-- script only applies it, atomically and fenced by the token.
--
-- KEYS[1] prefix     "rt:{QUEUE}:"
-- KEYS[2] counters   hash of queue counters
-- KEYS[3] unique     hash: unique key -> live holder
-- KEYS[4] active     KEYS[5] ready     KEYS[6] retry_wait
-- KEYS[7] completed  KEYS[8] dead      (sorted sets of those states)
-- ARGV[1]  now_ms          the store's time (required)
-- ARGV[2]  id
-- ARGV[3]  token           the lease token (attempt number) the caller holds
-- ARGV[4]  actor           worker id, or "system"
-- ARGV[5]  what            "completion", "failure", "release": named in a refusal
-- ARGV[6]  record_refusal  "1": a stale lease is recorded as an event; "0": silently refused
-- ARGV[7]  event           the event's reason: succeeded, retry_scheduled, dead, lease_expired, released
-- ARGV[8]  to              completed, ready, retry_wait or dead
-- ARGV[9]  run_at_ms       ready or retry_wait: when it runs next
-- ARGV[10] trigger         the next attempt's trigger ("" to keep)
-- ARGV[11] last_delay_ms   ("" to keep)
-- ARGV[12] streak          lease expirations in a row ("" to keep)
-- ARGV[13] end_record      JSON history record of the attempt's end, carrying its event
--                          (readers derive the event from it; a refusal adds its own)
-- ARGV[14] note            the event's note (the decision's reason)
-- ARGV[15] counters        comma-separated counter names to increment
-- ARGV[16] last_error      JSON [class, code, message, signature], or ""
-- ARGV[17] dead_reason     ("" unless to = dead)
-- ARGV[18] dead_evidence   JSON array of lines ("" unless to = dead)
--
-- Returns: {1} applied; {0, state, n} refused (the lease is not the job's);
--          {-1} no such job.

local prefix, counters, unique = KEYS[1], KEYS[2], KEYS[3]
local sets = {active = KEYS[4], ready = KEYS[5], retry_wait = KEYS[6], completed = KEYS[7], dead = KEYS[8]}
local now, id, token, actor = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local job = prefix .. 'job:' .. id
local hist = prefix .. 'hist:' .. id
local f = redis.call('HMGET', job, 'state', 'n', 'unique', 'prio')
if not f[1] then return {-1} end
local state, n = f[1], tonumber(f[2])
if state ~= 'active' or n ~= token then
  if ARGV[6] == '1' then
    local note = ARGV[5] .. ' with lease token ' .. token .. ' refused: the job is ' .. state
    if state == 'active' then note = note .. ' under token ' .. n end
    redis.call('RPUSH', hist, cjson.encode({'e', now, state, '', 'stale_lease_refused', actor, note}))
    redis.call('HINCRBY', counters, 'stale_refused', 1)
  end
  return {0, state, n}
end

local to = ARGV[8]
redis.call('ZREM', sets.active, id)
redis.call('HSET', job, 'state', to, 'updated', now)
redis.call('HDEL', job, 'worker', 'lease')
if to == 'ready' then
  redis.call('HSET', job, 'run_at', ARGV[9])
  redis.call('ZADD', sets.ready, tonumber(ARGV[9]) - tonumber(f[4]) * 17592186044416, id)
elseif to == 'retry_wait' then
  redis.call('HSET', job, 'run_at', ARGV[9])
  redis.call('ZADD', sets.retry_wait, ARGV[9], id)
elseif to == 'completed' then
  redis.call('ZADD', sets.completed, now, id)
elseif to == 'dead' then
  redis.call('ZADD', sets.dead, now, id)
  redis.call('HSET', job, 'dead_reason', ARGV[17], 'dead_at', now, 'dead_evidence', ARGV[18])
end
if (to == 'completed' or to == 'dead') and f[3] and redis.call('HGET', unique, f[3]) == id then
  redis.call('HDEL', unique, f[3])  -- a finished job no longer holds its unique key
end
if ARGV[10] ~= '' then redis.call('HSET', job, 'trigger', ARGV[10]) end
if ARGV[11] ~= '' then redis.call('HSET', job, 'last_delay', ARGV[11]) end
if ARGV[12] ~= '' then redis.call('HSET', job, 'streak', ARGV[12]) end
if ARGV[16] ~= '' then
  local e = cjson.decode(ARGV[16])
  redis.call('HSET', job, 'err_class', e[1], 'err_code', e[2], 'err_msg', e[3], 'err_sig', e[4])
end
redis.call('RPUSH', hist, ARGV[13])
for name in string.gmatch(ARGV[15], '[^,]+') do redis.call('HINCRBY', counters, name, 1) end
return {1}
