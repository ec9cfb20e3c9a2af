--- Benchmark worker for the peer baseline: the per-connection style of the
-- other filters, in plain Lua with LuaSocket and string.pack/unpack.
--   lua5.4 peer.lua SOCKET SECONDS ADDR...   -> "<queries> <seconds>"
local plain = require("plain_p0f")
local now = require("clock")

local path, seconds = arg[1], tonumber(arg[2])
local addrs = {}
for i = 3, #arg do addrs[#addrs + 1] = arg[i] end
local naddr = #addrs
assert(path and seconds and naddr > 0, "usage: peer.lua SOCKET SECONDS ADDR...")

local t0 = now()
local t1, n = t0 + seconds, 0
repeat
  for _ = 1, 100 do
    n = n + 1
    local r, err = plain.query(path, addrs[n % naddr + 1], 5)
    if not r then error("query failed: " .. tostring(err)) end
  end
until now() >= t1
print(string.format("%d %.6f", n, now() - t0))
