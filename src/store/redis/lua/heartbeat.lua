-- heartbeat: extends the leases that are still their jobs'.
--
-- KEYS[1] prefix   "rt:{QUEUE}:" (records in PREFIX jobs)
-- KEYS[2] active   sorted set of active jobs, score lease expiry
-- ARGV[1] now_ms   "" for the server's clock (TIME), or the store's own clock
-- ARGV[2] lease_ms the new lease, from now
-- ARGV[3..] id, token pairs
--
-- Returns: one integer per pair: 1 extended; 0 the lease is no longer the job's.

--@include now.lua
local prefix, active = KEYS[1], KEYS[2]
local expires = now + tonumber(ARGV[2])
local expires_s = tostring(expires)

--@include records.lua

local ids = {}
for i = 3, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local vals = read_stored(ids)
local leases, out = {}, {}
for i, id in ipairs(ids) do
  local token = tonumber(ARGV[2 + 2 * i])
  -- The lease's expiry (l) is replaced in the record's text (record.lua);
  -- a record that is not an active one's text (another state, an earlier
  -- version's form, or decoded earlier in this call) is decoded.
  local n, u, at
  local v = stored[id]
  if v == nil then v = vals[i] end
  -- (The rest by its position: a pattern's .* goes byte by byte over it.)
  if v and not records[id] then n, u, at = string.match(v, '^active,(%d+),(%d*),[^,]*,()') end
  local extended = false
  if n then
    if tonumber(n) == token then
      rewrite(id, 'active,' .. n .. ',' .. u .. ',' .. expires_s .. ',' .. string.sub(v, at))
      extended = true
    end
  else
    local j = record_of(id, vals[i])
    if j and j.s == 'active' and j.n == token then
      j.l = expires_s
      changed[id] = true
      extended = true
    end
  end
  if extended then
    leases[#leases + 1], leases[#leases + 2] = expires_s, id
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
write_records()
each_chunk('ZADD', active, leases)
return out
