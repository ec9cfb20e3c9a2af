--- Benchmark worker: decode one real p0f reply into a Lua table.
--   lua5.4 decode.lua SOCKET ours|plain|both SECONDS ADDR
-- The reply is fetched once from the running daemon (raw bytes, over a
-- socket of our own) so both decoders work on what p0f really sends.
-- ours/plain print "<decodes> <seconds>" (the rows of run.sh); both times
-- p0f.decode and the plain-Lua decoder (bench/plain_p0f.lua: string.unpack,
-- each string cut at its first NUL, the same field names) in this one
-- process, in alternating slices, and prints each one's cost and the ratio.
local p0f = require("p0f")
local plain = require("plain_p0f")
local now = require("clock")

local path, which, seconds, addr = arg[1], arg[2], tonumber(arg[3]), arg[4]
assert(path and which and seconds and addr, "usage: decode.lua SOCKET ours|plain|both SECONDS ADDR")

local reply = assert(plain.query_raw(path, addr))
local decoders = { ours = p0f.decode, plain = plain.decode }

-- Both give the same table: the comparison is between equals.
local function check(decode)
  local r = assert(decode(reply))
  assert(r.status == "ok" and r.os_name ~= "", "the decode row wants a full (status ok) reply")
  return r
end

--- Decode for about `secs` seconds: decodes, seconds taken.
local function slice(decode, secs)
  local r
  local t0 = now()
  local t1, n = t0 + secs, 0
  repeat
    for _ = 1, 10000 do r = decode(reply) end
    n = n + 10000
  until now() >= t1
  assert(r.os_name)
  return n, now() - t0
end

if which ~= "both" then
  local decode = assert(decoders[which], "ours, plain or both")
  check(decode)
  print(string.format("%d %.6f", slice(decode, seconds)))
  return
end

local a, b = check(p0f.decode), check(plain.decode)
for k, v in pairs(a) do assert(b[k] == v, "the decoders differ on " .. k) end
for k in pairs(b) do assert(a[k] ~= nil, "the decoders differ on " .. k) end
local total = { ours = { 0, 0 }, plain = { 0, 0 } }
local rounds = 10
for _ = 1, rounds do
  for _, name in ipairs({ "ours", "plain" }) do
    local n, s = slice(decoders[name], seconds / (2 * rounds))
    total[name][1], total[name][2] = total[name][1] + n, total[name][2] + s
  end
end
local us_ours = total.ours[2] / total.ours[1] * 1e6
local us_plain = total.plain[2] / total.plain[1] * 1e6
print(string.format("p0f.decode %.3f us/reply, plain Lua %.3f us/reply: %.2fx faster (%s)",
  us_ours, us_plain, us_plain / us_ours, _VERSION))
