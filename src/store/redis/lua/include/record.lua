-- record: a job's record as stored in PREFIX jobs (docs/redis-schema.md,
-- "Job records"). Not a script: included by the scripts that read or write
-- records.
--
-- A record is text: the fields that change at almost every step, in this
-- order, each followed by a comma, then the latest error e, then the rest as
-- a MessagePack map (each empty when there is none):
--
--   s,n,u,l,sa,w,tr,r,pr,a,EL,E REST
--
-- where EL is the length of E in bytes. An empty field is an absent one.
-- Numbers are decimal; w (the worker) has '%' and ',' written as %25 and
-- %2C. The hot steps (a claim, a success, a failure) read and rewrite these
-- fields as text, without building a table: decoding and encoding a
-- MessagePack map in Lua cost more than the rest of a job's claim. Other
-- steps decode the whole record (decode) and encode it again (encode).
-- A record written by an earlier version, a MessagePack map, is read as well
-- and rewritten as text at its next step.
--
-- Decoded, n, pr and a are numbers; u, l, sa and r stay text (Lua prints a
-- number slowly, and arithmetic takes either); sa set means the success of
-- attempt n is not written yet (m in the earlier form).

local record_head = {s = 1, n = 1, u = 1, l = 1, sa = 1, w = 1, tr = 1, r = 1, pr = 1, a = 1, e = 1}

local number_text = {}  -- small numbers printed once: Lua prints a number slowly
local function record_num(v)
  if not v then return '' end
  local text = number_text[v]
  if not text then
    text = tostring(v)
    number_text[v] = text
  end
  return text
end

local escapes = {['%'] = '%25', [','] = '%2C'}
local function record_escape(w)
  if string.find(w, '[%%,]') then return (string.gsub(w, '[%%,]', escapes)) end
  return w
end

local function record_unescape(w)
  if string.find(w, '%', 1, true) then
    return (string.gsub(w, '%%(%x%x)', function(hex) return string.char(tonumber(hex, 16)) end))
  end
  return w
end

local function record_text(v) return v and tostring(v) or nil end

-- The record's fields (above), from its stored text.
local function decode(v)
  if string.byte(v) >= 128 then  -- an earlier version's MessagePack map
    local j = cmsgpack.unpack(v)
    j.u, j.l, j.r = record_text(j.u), record_text(j.l), record_text(j.r)
    j.sa = j.m and record_text(j.sa) or nil
    j.m = nil
    return j
  end
  local s, n, u, l, sa, w, tr, r, pr, a, el, at = string.match(v,
    '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),(%d*),()')
  local rest_at = at and at + (tonumber(el) or 0)
  if not s or rest_at > #v + 1 then error('malformed job record: ' .. string.sub(v, 1, 80)) end
  local j = rest_at <= #v and cmsgpack.unpack(string.sub(v, rest_at)) or {}
  if el ~= '' then j.e = string.sub(v, at, rest_at - 1) end
  j.s = s
  if n ~= '' then j.n = tonumber(n) end
  if u ~= '' then j.u = u end
  if l ~= '' then j.l = l end
  if sa ~= '' then j.sa = sa end
  if w ~= '' then j.w = record_unescape(w) end
  if tr ~= '' then j.tr = tr end
  if r ~= '' then j.r = r end
  if pr ~= '' then j.pr = tonumber(pr) end
  if a ~= '' then j.a = tonumber(a) end
  return j
end

-- The stored text of a decoded record (a table as decode returns).
local function encode(j)
  local rest, has_rest = {}, false
  for name, value in pairs(j) do
    if not record_head[name] then rest[name], has_rest = value, true end
  end
  return j.s .. ',' .. record_num(j.n) .. ',' .. (j.u or '') .. ',' .. (j.l or '') .. ',' ..
         (j.sa or '') .. ',' .. (j.w and record_escape(j.w) or '') .. ',' .. (j.tr or '') .. ',' ..
         (j.r or '') .. ',' .. record_num(j.pr) .. ',' .. record_num(j.a) .. ',' ..
         (j.e and record_num(#j.e) .. ',' .. j.e or ',') .. (has_rest and cmsgpack.pack(rest) or '')
end
