-- history: where a job's history records are kept (docs/redis-schema.md).
-- Not a script: included by the scripts that append to histories. A job's
-- records are values of the hash PREFIX hist: field ID holds those written
-- before its first claim, field ID#N those written while N is its attempt
-- count (attempt N's start and end, and what follows until the next claim).
-- An attempt's end then writes a field of its own instead of reading the
-- whole history back and writing it longer.

local hist_suffix = {}  -- n -> '#n': Lua prints a number slowly
local function hist_field(id, n)  -- n: a number, or its text
  if not n or n == 0 or n == '' or n == '0' then return id end
  local suffix = hist_suffix[n]
  if not suffix then
    suffix = '#' .. n
    hist_suffix[n] = suffix
  end
  return id .. suffix
end
