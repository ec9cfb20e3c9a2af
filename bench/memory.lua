--- Benchmark worker: resident memory before and after QUERIES queries
-- through one persistent client (client:query, one at a time).
--   lua5.4 memory.lua SOCKET QUERIES ADDR...
-- Prints "<rss_before_kB> <rss_after_kB> <queries> <seconds>". Both samples
-- follow a full GC, after a warm-up that lets the client and the
-- interpreter reach their working size; a leak shows as a difference.
local p0f = require("p0f")
local now = require("clock")

local path, total = arg[1], tonumber(arg[2])
local addrs = {}
for i = 3, #arg do addrs[#addrs + 1] = arg[i] end
local naddr = #addrs
assert(path and total and naddr > 0, "usage: memory.lua SOCKET QUERIES ADDR...")

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)%s*kB"))
end

local c = assert(p0f.client { socket = path })
local function run(n)
  for i = 1, n do
    local r, err, code = c:query(addrs[i % naddr + 1])
    if not r then error(string.format("query failed: %s (%s)", tostring(err), tostring(code))) end
  end
end

run(10000)
collectgarbage("collect")
local before = rss_kb()
local t0 = now()
run(total)
local secs = now() - t0
collectgarbage("collect")
local after = rss_kb()
c:close()
print(string.format("%d %d %d %.6f", before, after, total, secs))
