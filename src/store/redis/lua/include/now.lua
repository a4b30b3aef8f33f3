-- The call's time in ms: ARGV[1] when the store passes its own clock, or
-- the server's (TIME) when ARGV[1] is "".
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
