--- Benchmark worker: the plugin layer's work on a cache hit, per message:
-- f:skip(ctx) -> lru:get(addr) -> p0f.decode(raw) -> f:verdict(result, ctx).
--   lua5.4 verdict.lua SOCKET SECONDS ADDR
-- The cached reply is a real one, fetched once for ADDR from the running
-- daemon; it is cached under a public address (203.0.113.7), since the
-- filter skips local senders. Prints "<verdicts> <seconds>".
local p0f = require("p0f")
local plain = require("plain_p0f")
local filter = require("p0f.filter")
local cache = require("p0f.cache")
local now = require("clock")

local path, seconds, addr = arg[1], tonumber(arg[2]), arg[3]
assert(path and seconds and addr, "usage: verdict.lua SOCKET SECONDS ADDR")

local reply = assert(plain.query_raw(path, addr))
assert(p0f.decode(reply).status == "ok", "the verdict row wants a full (status ok) reply")

-- A typical configuration: a header, two patterns, a reject phrase.
local f = assert(filter.new {
  header = "X-OS-Fingerprint",
  patterns = { P0F_LINUX = "^Linux", P0F_WINDOWS = { pattern = "Windows", score = 2.5, field = "os" } },
  reject = { "Windows XP" },
})
local lru = cache.lru { size = 10000 }
local sender = "203.0.113.7"
assert(lru:put(sender, reply, "ok"))
local ctx = { ip = sender }

local function one()
  local skip, canon = f:skip(ctx)
  assert(not skip, skip)
  local raw = assert(lru:get(canon))
  return f:verdict(p0f.decode(raw), ctx)
end
local v = one()
assert(v.status == "ok" and v.header and #v.symbols >= 2, "unexpected verdict")

local t0 = now()
local t1, n = t0 + seconds, 0
repeat
  for _ = 1, 1000 do v = one() end
  n = n + 1000
until now() >= t1
print(string.format("%d %.6f", n, now() - t0))
