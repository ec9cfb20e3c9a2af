--- The server-side limits of p0f.server, as hostile clients meet them in
-- both daemons (real processes against a scripted fake p0f, on UNIX
-- sockets, whose small buffers make "the peer does not read" quick to
-- reach): requests in flight per connection, connections we close that
-- still hold a descriptor, and accept() out of descriptors (prlimit).
local lu = require("luaunit")
local fake = require("p0f.fake")
local support = require("support")
local ps = require("policyd_support")
local ms = require("mux_support")

local WINXP = "203.0.113.7"
local HANG = "192.0.2.99"
local SLOW = "198.51.100.9"

local RULES = {
  [WINXP] = { os_name = "Windows", os_flavor = "XP", distance = 12, link_type = "DSL" },
  [HANG] = "hang",
  [SLOW] = { action = "delay", ms = 2000, reply = { os_name = "Slow" } },
  ["*"] = "echo",
}

-- ---- what /proc says about a process ------------------------------------------------

local fds = ps.fds

-- The descriptor count once it has stopped moving: a connection a test
-- just closed may not be closed on the server's side yet.
local function settled_fds(pid)
  local n
  support.wait_until(function()
    local before = n
    n = fds(pid)
    return n == before
  end, 100, 0.1)
  return n
end

-- Wait (tries x 50 ms at most) until pid holds `want` descriptors.
local function assert_fds_become(pid, want, tries)
  lu.assertTrue(support.wait_until(function() return fds(pid) == want end, tries, 0.05),
    string.format("descriptors: %s, %d expected", tostring(fds(pid)), want))
end

local function rss_kb(pid)
  local status = support.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(status:match("VmRSS:%s*(%d+)"))
end

-- Send blob again and again until the peer stops taking it (no progress
-- for `stall` seconds) or `times` copies went out: the bytes taken.
local function send_until_blocked(c, blob, times, stall)
  c:settimeout(stall)
  local sent = 0
  for _ = 1, times do
    local n, err, last = c:send(blob)
    if not n then return sent + (last or 0), err end
    sent = sent + #blob
  end
  return sent
end

-- A policy server on a UNIX socket of its own (prefix: a command run
-- before it, e.g. prlimit).
local function start_policyd(opts, prefix)
  local s = ps.files()
  s.sock = s.conf .. ".sock"
  opts.listen = "unix:" .. s.sock
  ps.write_config(s.conf, opts)
  local lua = assert(os.getenv("P0F_LUA"), "P0F_LUA not set (run through ctest)")
  local src = os.getenv("P0F_SOURCE_DIR") or "."
  return assert(ps.spawn(s, string.format("%s %s %s/bin/p0f-policyd -c %s", prefix or "", lua, src,
    s.conf), true))
end

-- A client that sends n garbage requests (each answered DUNNO at once),
-- shuts down its sending side and never reads: once the server has
-- answered, it closes, with more answers buffered than the socket takes.
local function non_reader(path, n)
  local c = ms.connect(path)
  assert(c:send(string.rep("x\n\n", n)))
  c:shutdown("send")
  return c
end

-- ---- p0f-policyd ----------------------------------------------------------------------

-- A test class with a fake p0f, the clients it opened and the daemon
-- (self.srv) it started, which stop_server ends.
local function fixture(stop_server)
  return {
    setUp = function(self)
      self.fake = fake.start{ rules = RULES }
      self.clients = {}
    end,
    tearDown = function(self)
      for _, c in ipairs(self.clients) do c:close() end
      if self.srv then stop_server(self.srv) end
      self.fake:stop()
    end,
  }
end

TestPolicyd = fixture(function(srv)
  ps.stop(srv)
  os.remove(srv.sock)
end)

local HANG_REQUEST = ps.request{ client_address = HANG, protocol_state = "DATA" }

function TestPolicyd:test_pipelined_requests_waiting_on_lookups_are_bounded()
  self.srv = start_policyd{ socket = self.fake.socket, timeout = 60, max_pending = 16 }
  local c = ms.connect(self.srv.sock)
  self.clients[1] = c
  local before = rss_kb(self.srv.pid)
  -- up to 80,000 requests (about 20 MB) that all wait on a hung p0f
  local blob = string.rep(HANG_REQUEST, 2000)
  local sent = send_until_blocked(c, blob, 40, 2)
  local grew = rss_kb(self.srv.pid) - before
  lu.assertTrue(ps.alive(self.srv))
  -- reading paused at 16 requests in flight: what the socket buffers hold,
  -- one read and 16 requests, not 20 MB
  lu.assertTrue(sent < 2 * 1024 * 1024, string.format("%d bytes taken, %d kB more RSS", sent, grew))
  lu.assertTrue(grew < 32 * 1024, string.format("RSS grew by %d kB", grew))
  lu.assertEquals(#self.fake:queries(), 1) -- one lookup, the others wait for it
end

function TestPolicyd:test_paused_connection_resumes_and_answers_everything_in_order()
  self.srv = start_policyd{ socket = self.fake.socket, timeout = 10, max_pending = 8,
    max_output = 4194304, reject = { "Windows XP" } }
  local c = ms.connect(self.srv.sock)
  self.clients[1] = c
  -- one request p0f answers after 2 s, then many behind it (about 1 MB)
  local winxp = ps.request{ client_address = WINXP }
  local n = 4000
  local all = ps.request{ client_address = SLOW } .. string.rep(winxp, n)
  local sent = send_until_blocked(c, all, 1, 0.5)
  lu.assertTrue(sent < #all, "everything taken at once: " .. sent) -- paused, not read
  c:settimeout(20)
  assert(c:send(all, sent + 1)) -- taken once the slow answer is in
  lu.assertEquals(ps.answer(c), "DUNNO") -- Slow: no rule
  -- every request behind it answered, in order, none lost
  for i = 1, n do
    local a, err = ps.answer(c)
    lu.assertNotNil(a, "answer " .. i .. ": " .. tostring(err))
    lu.assertStrContains(a, "REJECT")
  end
  lu.assertEquals(ps.ask(c, { client_address = WINXP }):sub(1, 6), "REJECT")
end

function TestPolicyd:test_closing_connections_count_and_are_aborted_after_close_timeout()
  self.srv = start_policyd{ socket = self.fake.socket, max_connections = 3, close_timeout = 1,
    reject = { "Windows XP" } }
  local warm = ms.connect(self.srv.sock)
  lu.assertStrContains(ps.ask(warm, { client_address = WINXP }), "REJECT") -- p0f connected
  warm:close()
  local base = settled_fds(self.srv.pid) -- the warm-up connection closed on its side too
  for i = 1, 3 do self.clients[i] = non_reader(self.srv.sock, 10000) end
  -- the server closed them (half-close, every answer given) but the
  -- answers are not read: each still holds a descriptor
  assert_fds_become(self.srv.pid, base + 3, 100)
  -- ... and still counts: a fourth client is refused
  local extra = ms.connect(self.srv.sock)
  lu.assertTrue(ms.closed_within(extra, 5))
  extra:close()
  lu.assertStrContains(ps.read(self.srv.log), "refused: 3 connections open (max_connections 3)")
  -- after close_timeout they are aborted; the descriptors are free again
  assert_fds_become(self.srv.pid, base, 200)
  lu.assertStrContains(ps.read(self.srv.log), "did not read within close_timeout")
  local c = ms.connect(self.srv.sock)
  self.clients[#self.clients + 1] = c
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
end

function TestPolicyd:test_a_client_past_max_output_is_aborted_at_once()
  -- close_timeout far away: only the abort at max_output can free it soon
  self.srv = start_policyd{ socket = self.fake.socket, max_output = 4096, close_timeout = 600 }
  local warm = ms.connect(self.srv.sock)
  lu.assertEquals(ps.ask(warm, { client_address = WINXP }), "DUNNO")
  local base = fds(self.srv.pid)
  -- garbage requests, each answered DUNNO at once, never read: far more
  -- answers than the socket and max_output together hold
  local c = ms.connect(self.srv.sock)
  self.clients[1] = c
  send_until_blocked(c, string.rep("x\n\n", 10000), 20, 2)
  lu.assertTrue(support.wait_until(function()
    return ps.read(self.srv.log):find("not reading its answers", 1, true) ~= nil
  end, 100, 0.05), ps.read(self.srv.log))
  -- descriptor and buffer gone now, not after close_timeout
  assert_fds_become(self.srv.pid, base, 100)
  lu.assertEquals(ps.ask(warm, { client_address = WINXP }), "DUNNO") -- the others go on
  warm:close()
end

function TestPolicyd:test_out_of_descriptors_legitimate_clients_are_served()
  if not support.sh("command -v prlimit >/dev/null 2>&1") then
    error("prlimit (util-linux) is needed")
  end
  self.srv = start_policyd({ socket = self.fake.socket, close_timeout = 30, reject = { "Windows XP" } },
    "prlimit --nofile=64:64")
  -- 70 clients that make the server close them with answers unread: more
  -- descriptors than it has
  for i = 1, 70 do self.clients[i] = non_reader(self.srv.sock, 10000) end
  lu.assertTrue(support.wait_until(function()
    return ps.read(self.srv.log):find("Too many open files", 1, true) ~= nil
  end, 200, 0.05), "accept never ran out of descriptors:\n" .. ps.read(self.srv.log))
  -- legitimate clients, waiting in the backlog, are answered all the same
  for i = 1, 10 do
    local c = ms.connect(self.srv.sock, 20)
    self.clients[#self.clients + 1] = c
    local a, err = ps.ask(c, { client_address = WINXP })
    lu.assertNotNil(a, "legitimate client " .. i .. ": " .. tostring(err))
  end
  lu.assertTrue(ps.alive(self.srv))
  local log = ps.read(self.srv.log)
  -- through the logger, rate-limited: not a line per failed accept
  lu.assertTrue(select(2, log:gsub("Too many open files", "")) <= 2, log)
  lu.assertNil(log:find("\np0f: accept", 1, true), log)
  lu.assertEquals(ps.stop(self.srv), 0)
  os.remove(self.srv.sock)
  self.srv = nil
end

-- ---- p0f-mux ----------------------------------------------------------------------------

TestMux = fixture(ms.stop)

function TestMux:test_a_pipelining_client_is_paused_not_dropped()
  self.srv = assert(ms.start{ socket = self.fake.socket, max_pending = 16, log_level = "info" })
  local c = ms.connect(self.srv.sock)
  self.clients[1] = c
  local n = 2000 -- 125 times max_pending, sent at once
  local qs, want = {}, {}
  for i = 1, n do
    want[i] = "10.9." .. math.floor(i / 256) .. "." .. (i % 256)
    qs[i] = ms.q(want[i])
  end
  local blob, sent, got, buf = table.concat(qs), 0, 0, ""
  local window = 256 -- queries sent ahead of the replies read: 16 times max_pending
  c:settimeout(0)
  -- send and read side by side until every reply is in (bounded)
  for _ = 1, 5000 do
    local upto = math.min(#blob, (got + window) * #qs[1])
    if sent < upto then
      local k, _, last = c:send(blob, sent + 1, upto)
      sent = k or last or sent
    end
    local data, err, partial = c:receive(65536)
    buf = buf .. (data or partial or "")
    if err == "closed" then break end
    while #buf >= 232 do
      got = got + 1
      local r = assert(require("p0f").decode(buf:sub(1, 232)))
      lu.assertEquals(r.os_name, want[got])
      buf = buf:sub(233)
    end
    if got == n then break end
    support.sleep(0.002)
  end
  lu.assertEquals(got, n)
  lu.assertNil(ms.log(self.srv):find("closing it", 1, true), ms.log(self.srv))
end

function TestMux:test_a_closed_client_that_does_not_read_is_aborted_after_close_timeout()
  self.srv = assert(ms.start{ socket = self.fake.socket, close_timeout = 1, max_clients = 2,
    max_output = 1048576 })
  lu.assertEquals(ms.ask_once(self.srv.sock, WINXP).os, "Windows XP") -- p0f connected
  local base = settled_fds(self.srv.pid)
  for i = 1, 2 do
    local c = ms.connect(self.srv.sock)
    self.clients[i] = c
    -- 2000 replies (464 kB): more than the socket takes, less than max_output
    local qs = {}
    for k = 1, 2000 do qs[k] = ms.q(WINXP) end
    assert(c:send(table.concat(qs)))
    c:shutdown("send")
  end
  assert_fds_become(self.srv.pid, base + 2, 100)
  local extra = ms.connect(self.srv.sock)
  lu.assertTrue(ms.closed_within(extra, 5)) -- the closing ones count
  extra:close()
  assert_fds_become(self.srv.pid, base, 200)
  lu.assertStrContains(ms.log(self.srv), "did not read within close_timeout")
  lu.assertEquals(ms.answer_eventually(self.srv.sock, WINXP).os, "Windows XP")
end

function TestMux:test_a_client_past_max_output_is_aborted_at_once()
  self.srv = assert(ms.start{ socket = self.fake.socket, max_output = 4096, close_timeout = 600 })
  lu.assertEquals(ms.ask_once(self.srv.sock, WINXP).os, "Windows XP") -- p0f connected
  local base = settled_fds(self.srv.pid)
  -- queries whose replies are never read: far more than the socket and
  -- max_output together hold
  local c = ms.connect(self.srv.sock)
  self.clients[1] = c
  send_until_blocked(c, string.rep(ms.q(WINXP), 2000), 20, 2)
  lu.assertTrue(support.wait_until(function()
    return ms.log(self.srv):find("not reading its replies", 1, true) ~= nil
  end, 100, 0.05), ms.log(self.srv))
  -- descriptor and buffer gone now, not after close_timeout
  assert_fds_become(self.srv.pid, base, 100)
  lu.assertEquals(ms.ask_once(self.srv.sock, WINXP).os, "Windows XP") -- the others go on
end

-- ---- the shutdown budget -------------------------------------------------------------

TestBudget = {}

function TestBudget:test_every_shutdown_timeout_gives_a_usable_budget()
  local server = require("p0f.server")
  local loop = require("p0f").loop("new")
  for _, t in ipairs({ 5e-324, 1e-9, 0.001, 0.5, 2, 3, 86400 }) do
    local grace, drain = server.shutdown_budget(t)
    lu.assertTrue(grace >= 0 and drain > 0, string.format("%g: %g, %g", t, grace, drain))
    lu.assertTrue(grace + drain <= math.max(t, 0.001), string.format("%g: %g + %g", t, grace, drain))
    lu.assertTrue(drain <= 1)
    local c, err = loop:client{ socket = "/nonexistent/p0f.sock", drain = drain }
    lu.assertNotNil(c, string.format("%g: %s", t, tostring(err)))
    c:close()
  end
  loop:close()
end

function TestBudget:test_a_tiny_shutdown_timeout_starts_and_stops()
  local f = fake.start{ rules = RULES }
  local m = assert(ms.start{ socket = f.socket, shutdown_timeout = 5e-324 })
  lu.assertEquals(ms.ask_once(m.sock, WINXP).os, "Windows XP")
  lu.assertEquals(ms.stop(m), 0)
  f:stop()
end

os.exit(support.run(lu))
