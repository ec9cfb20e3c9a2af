--- rspamd 3.4 with BOTH its built-in `p0f` module and our plugin, asking a
-- real p0f that is busy: stopped 50 ms in every 60 ms (SIGSTOP/SIGCONT
-- from this test), with 600 scans of distinct senders, 64 in flight.
-- Through p0f-mux no scan may lose its lookup (no P0F_FAIL from either
-- module); the same load straight at p0f is measured and printed beside it.
--
-- Both modules reach p0f through one symlink, pointed first at the mux,
-- then at p0f itself: one rspamd, the same configuration, two runs.
-- Runs under LuaJIT only (the *_jit_spec naming rule), needs root.
local lu = require("luaunit")
local support = require("support")
local ms = require("mux_support")
local H = require("rspamd.harness")
local json = require("cjson.safe")

local SCANS, IN_FLIGHT = 600, 64

-- 600 distinct public (TEST-NET) senders: neither module skips them.
local function sender(i)
  if i <= 256 then return "203.0.113." .. (i - 1) end
  if i <= 512 then return "198.51.100." .. (i - 257) end
  return "192.0.2." .. (i - 513)
end

TestRspamdThroughMux = {}

function TestRspamdThroughMux.setupClass()
  local T = TestRspamdThroughMux
  T.p0f = assert(support.start_p0f())
  T.link = support.tmpname(".p0f-link")
  T.mux = assert(ms.start{ socket = T.p0f.socket, log_level = "info" })
  assert(support.sh(string.format("ln -sfn %s %s", T.mux.sock, T.link)))
  T.rspamd = H.start({
    section = string.format([[
  socket = "%s";
  timeout = 5s;
  symbol = "P0F_OURS";
  symbol_fail = "P0F_OURS_FAIL";
  cache_size = 0;]], T.link),
    workers = 2,
    extra = string.format([[
p0f {
  socket = "%s";
  timeout = 5s;
}]], T.link),
  })
end

function TestRspamdThroughMux.teardownClass()
  local T = TestRspamdThroughMux
  if T.rspamd then T.rspamd:stop() end
  if T.mux then ms.stop(T.mux) end
  if T.p0f then support.stop_p0f(T.p0f) end
  if T.link then os.remove(T.link) end
end

-- p0f stalled 50 ms in every 60 ms, by a shell loop we start and stop by PID.
local function stall(pid)
  local pidfile = support.tmpname(".pid")
  support.sh(string.format("(sh -c 'while kill -STOP %d 2>/dev/null; do sleep 0.05; "
    .. "kill -CONT %d; sleep 0.01; done' & echo $! > %s) >/dev/null 2>&1", pid, pid, pidfile))
  local f = io.open(pidfile)
  local spid = tonumber(f:read("*l"))
  f:close()
  os.remove(pidfile)
  return function()
    support.sh("kill " .. spid .. " 2>/dev/null")
    support.wait_until(function() return not support.pid_alive(spid) end, 100, 0.02)
    support.sh("kill -CONT " .. pid)
  end
end

-- 600 scans, 64 in flight (curl --parallel against rspamd's HTTP API),
-- each from its own sender. Returns counts of the fail symbols and of
-- scans that gave no answer at all.
local function load(port, msg)
  local dir = support.tmpname(".scans")
  assert(support.sh("mkdir -p " .. dir))
  local cfg = {}
  for i = 1, SCANS do
    cfg[#cfg + 1] = string.format('url = "http://127.0.0.1:%d/checkv2"\nheader = "IP: %s"\n'
      .. 'data-binary = "@%s"\noutput = "%s/%d.json"\n', port, sender(i), msg, dir, i)
    if i < SCANS then cfg[#cfg + 1] = "next\n" end
  end
  H.write_file(dir .. "/curl.cfg", table.concat(cfg))
  local t0 = support.now()
  support.sh(string.format("curl -s --no-progress-meter --max-time 60 --parallel --parallel-max %d -K %s/curl.cfg",
    IN_FLIGHT, dir))
  local secs = support.now() - t0
  local n = { builtin_fail = 0, ours_fail = 0, unanswered = 0, secs = secs }
  for i = 1, SCANS do
    local reply = json.decode(H.read_file(string.format("%s/%d.json", dir, i)) or "")
    if type(reply) ~= "table" or type(reply.symbols) ~= "table" then
      n.unanswered = n.unanswered + 1
    else
      if reply.symbols.P0F_FAIL then n.builtin_fail = n.builtin_fail + 1 end
      if reply.symbols.P0F_OURS_FAIL then n.ours_fail = n.ours_fail + 1 end
    end
  end
  support.sh("rm -rf " .. dir)
  return n
end

function TestRspamdThroughMux:test_no_lookup_lost_through_the_mux()
  local T = TestRspamdThroughMux
  -- through the mux
  local resume = stall(T.p0f.pid)
  local via = load(T.rspamd.port, T.rspamd.msg)
  resume()
  local _, st = pcall(function()
    ms.signal(T.mux, "USR1")
    return support.wait_until(function() return ms.stats(T.mux) end, 100, 0.02)
  end)
  -- straight at p0f, the same load
  assert(support.sh(string.format("ln -sfn %s %s", T.p0f.socket, T.link)))
  resume = stall(T.p0f.pid)
  local direct = load(T.rspamd.port, T.rspamd.msg)
  resume()
  print(string.format("\n  %d scans, %d in flight, p0f stalled 50 ms in every 60 ms:\n"
    .. "    through p0f-mux: P0F_FAIL built-in %d, ours %d; unanswered %d; %.1f s\n"
    .. "    straight at p0f: P0F_FAIL built-in %d, ours %d; unanswered %d; %.1f s",
    SCANS, IN_FLIGHT, via.builtin_fail, via.ours_fail, via.unanswered, via.secs,
    direct.builtin_fail, direct.ours_fail, direct.unanswered, direct.secs))
  print("    mux: " .. tostring(ms.log(T.mux):match("stats: ([^\n]*)")))
  local _, too_many = (H.read_file(T.p0f.log) or ""):gsub("Too many API connections", "")
  print(string.format("    p0f logged \"Too many API connections\" %d times (direct run)", too_many))
  lu.assertEquals(via.unanswered, 0)
  lu.assertEquals(via.builtin_fail, 0)
  lu.assertEquals(via.ours_fail, 0)
  -- both modules really went through the mux: two lookups per scan
  lu.assertNotNil(st)
  lu.assertTrue(st.queries >= 2 * SCANS, "mux saw " .. tostring(st.queries) .. " queries")
  lu.assertEquals(st.failures, 0)
  lu.assertTrue(support.p0f_alive(T.p0f))
  lu.assertTrue(ms.alive(T.mux))
end

os.exit(support.run(lu))
