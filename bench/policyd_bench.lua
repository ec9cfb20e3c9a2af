#!/usr/bin/env lua
--- How many policy requests per second p0f-policyd answers, beside a
-- ceiling measured in the same run.
--
--   lua5.4 bench/policyd_bench.lua BUILD_DIR [SECONDS [CONNS [LUA]]]
--
-- BUILD_DIR holds policy-load and p0f-fake (cmake --build). LUA_PATH and
-- LUA_CPATH must find p0f (the source tree's lua/ and BUILD_DIR). LUA is
-- the interpreter the servers run under (default: lua5.4).
--
-- Three servers, the same load (CONNS connections, one request in flight
-- on each, as Postfix's smtpd processes keep them), protocol_state DATA:
--   baseline  the same loop, connections and parser, DUNNO without lookups
--   warm      p0f-policyd, one client address: every answer from the LRU
--   lookup    p0f-policyd, no cache, a new address per request: every
--             request is a p0f query (a scripted fake p0f answers, so the
--             figure is the server's, not p0f's)
local build = assert(arg[1], "usage: policyd_bench.lua BUILD_DIR [SECONDS [CONNS [LUA]]]")
local seconds = tonumber(arg[2]) or 5
local conns = tonumber(arg[3]) or 20
local lua = arg[4] or "lua5.4"
local here = (arg[0]:match("^(.*)/[^/]+$") or ".")
local src = here .. "/.."

local fake = require("p0f.fake")

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function tmp(suffix)
  local n = os.tmpname()
  os.remove(n)
  return n .. suffix
end

local function serve(script, opts)
  local conf, log = tmp(".conf"), tmp(".log")
  local f = assert(io.open(conf, "w"))
  for k, v in pairs(opts) do f:write(k, " = ", type(v) == "string" and string.format("%q", v) or tostring(v), "\n") end
  f:close()
  local p = io.popen(string.format("%s %s -c %s >%s 2>&1 & echo $!", lua, script, conf, log))
  local pid = tonumber(p:read("*l"))
  p:close()
  local port
  for _ = 1, 200 do
    port = read(log):match("listening on [^\n]-:(%d+) ")
    if port then break end
    sh("sleep 0.05")
  end
  assert(port, "server did not start:\n" .. read(log))
  return { pid = pid, port = tonumber(port), conf = conf, log = log }
end

local function stop(s)
  sh("kill " .. s.pid)
  for _ = 1, 100 do
    if read(s.log):find("stopped after", 1, true) then break end
    sh("sleep 0.05")
  end
  os.remove(s.conf)
  os.remove(s.log)
end

local function load(port, mode)
  local p = io.popen(string.format("%s/policy-load 127.0.0.1 %d %d %g %s DATA", build, port, conns, seconds, mode))
  local out = p:read("*a")
  p:close()
  local rps = tonumber(out:match("rps=(%d+)"))
  local errors = tonumber(out:match("errors=(%d+)"))
  assert(rps and errors == 0, "load generator failed: " .. out)
  return rps, out
end

local p0fd = fake.start{ bin = build .. "/p0f-fake",
  rules = { ["*"] = { os_name = "Linux", os_flavor = "3.11 and newer", distance = 3 } } }
local base = { listen = "127.0.0.1:0", socket = p0fd.socket, header = "X-p0f-OS",
               timeout = 5, log_level = "notice" }

local results = {}
local function run(name, script, extra, mode)
  local opts = {}
  for k, v in pairs(base) do opts[k] = v end
  for k, v in pairs(extra) do opts[k] = v end
  local s = serve(script, opts)
  load(s.port, mode) -- warm up (and fill the cache)
  local rps, out = load(s.port, mode)
  stop(s)
  results[#results + 1] = { name = name, rps = rps, out = out }
end

run("baseline", here .. "/policyd_baseline.lua", {}, "same")
run("warm", src .. "/bin/p0f-policyd", {}, "same")
run("lookup", src .. "/bin/p0f-policyd", { cache_size = 0 }, "spread")
p0fd:stop()

print(string.format("p0f-policyd under %s, %d connections, %g s per run", lua, conns, seconds))
print(string.format("%-10s %10s %10s", "server", "req/s", "ratio"))
for _, r in ipairs(results) do
  print(string.format("%-10s %10d %9.2f", r.name, r.rps, r.rps / results[1].rps))
end
