-- list: a queue's jobs newest first, from a bound down (a listing's chunk).
--
-- KEYS[1] all       sorted set of every job: each entry lists the ids of up to
--                   100 jobs created by one enqueue call, space-separated, its
--                   score the first one's insertion number (the k-th id's is
--                   score + k; an empty slot is a removed job)
-- ARGV[1] bound     the jobs numbered below it come
-- ARGV[2] inclusive "1": the job numbered bound too
-- ARGV[3] count     at most this many jobs
--
-- Returns: {number, id, number, id, ...}, newest first; fewer than count
-- jobs when no more are below the bound.
--
-- Read-only. Entries are read one at a time and cut here, so a chunk costs
-- one round trip whatever the entries hold: 100 jobs or one, or mostly
-- empty slots after a retention trim.

local all = KEYS[1]
local bound, inclusive, count = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local out = {}
local below = ARGV[1]
while #out < 2 * count do
  local e = redis.call('ZREVRANGEBYSCORE', all, below, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #e == 0 then break end
  local first = tonumber(e[2])
  local ids = {}
  for slot in (e[1] .. ' '):gmatch('([^ ]*) ') do ids[#ids + 1] = slot end
  for k = #ids, 1, -1 do
    local seq = first + k - 1
    if ids[k] ~= '' and (seq < bound or (inclusive and seq == bound)) then
      out[#out + 1], out[#out + 2] = seq, ids[k]
      if #out == 2 * count then break end
    end
  end
  below = '(' .. e[2]
end
return out
