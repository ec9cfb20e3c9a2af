--- Benchmark worker: decode one real p0f reply into a Lua table.
--   lua5.4 decode.lua SOCKET ours|plain SECONDS ADDR
-- The reply is fetched once from the running daemon (raw bytes, over a
-- socket of our own) so both decoders work on what p0f really sends.
-- Prints "<decodes> <seconds>".
local p0f = require("p0f")
local plain = require("plain_p0f")
local now = require("clock")

local path, which, seconds, addr = arg[1], arg[2], tonumber(arg[3]), arg[4]
assert(path and which and seconds and addr, "usage: decode.lua SOCKET ours|plain SECONDS ADDR")

local reply = assert(plain.query_raw(path, addr))

local decode = which == "ours" and p0f.decode or assert(which == "plain" and plain.decode, "ours or plain")
local r = assert(decode(reply))
assert(r.status == "ok" and r.os_name ~= "", "the decode row wants a full (status ok) reply")

local t0 = now()
local t1, n = t0 + seconds, 0
repeat
  for _ = 1, 10000 do r = decode(reply) end
  n = n + 10000
until now() >= t1
assert(r.os_name)
print(string.format("%d %.6f", n, now() - t0))
