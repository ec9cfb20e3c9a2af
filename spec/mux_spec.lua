--- p0f-mux against a scripted fake p0f: framing, pipelining and order,
-- coalescing, the cache, limits, bad clients, p0f failures, signals.
-- (spec/mux_real_spec.lua runs it against a real p0f.)
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")
local support = require("support")
local ms = require("mux_support")
local socket = require("socket")

local WINXP = "203.0.113.7"
local SLOW = "198.51.100.9"     -- answered after 300 ms
local HANG = "192.0.2.99"       -- never answered
local LIE = "192.0.2.66"        -- answered with garbage
local NOMATCH = "192.0.2.50"

local RULES = {
  [WINXP] = { os_name = "Windows", os_flavor = "XP", distance = 12, link_type = "DSL" },
  [SLOW] = { action = "delay", ms = 300, reply = { os_name = "Slow" } },
  [HANG] = "hang",
  [LIE] = { action = "reply", bytes = string.rep("x", p0f.RESPONSE_SIZE) },
  [NOMATCH] = "nomatch",
  ["*"] = "echo",                  -- ok, os_name = the address asked about
}

local elapsed = require("policyd_support").elapsed

local function count(text, needle)
  local n, pos = 0, 1
  while true do
    local s, e = text:find(needle, pos, true)
    if not s then return n end
    n, pos = n + 1, e + 1
  end
end

-- ---- the protocol -----------------------------------------------------------

TestProtocol = {}

function TestProtocol:setUp()
  self.fake = fake.start{ rules = RULES }
  self.mux = assert(ms.start{ socket = self.fake.socket, timeout = 1 })
end

function TestProtocol:tearDown()
  if self.mux then ms.stop(self.mux) end
  self.fake:stop()
end

function TestProtocol:test_reply_passes_through_byte_for_byte()
  local c = ms.connect(self.mux.sock)
  local r, raw = ms.ask(c, WINXP)
  lu.assertEquals(raw, p0f.encode_response(RULES[WINXP]))
  lu.assertEquals(r.os, "Windows XP")
  lu.assertEquals(r.distance, 12)
  local _, nomatch = ms.ask(c, NOMATCH)
  lu.assertEquals(nomatch, p0f.encode_response{ status = "nomatch" })
  -- IPv6, and a second connection at the same time
  local c2 = ms.connect(self.mux.sock)
  lu.assertEquals(ms.ask(c2, "2001:db8::5").os_name, "2001:db8::5")
  c:close()
  c2:close()
end

function TestProtocol:test_queries_split_anywhere_and_pipelined()
  local c = ms.connect(self.mux.sock)
  -- one query a byte at a time
  local q = ms.q("192.0.2.1")
  for i = 1, #q do
    assert(c:send(q:sub(i, i)))
    socket.sleep(0.005)
  end
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).os_name, "192.0.2.1")
  -- 40 queries in one write, then cut across query boundaries
  local addrs, all = {}, {}
  for i = 1, 40 do
    addrs[i] = "198.51.100." .. (100 + i)
    all[i] = ms.q(addrs[i])
  end
  local blob = table.concat(all)
  assert(c:send(blob:sub(1, 400)))
  assert(c:send(blob:sub(401)))
  for i = 1, 40 do
    lu.assertEquals(p0f.decode(assert(ms.reply(c))).os_name, addrs[i])
  end
  c:close()
end

function TestProtocol:test_replies_in_order_behind_a_slow_one()
  local c = ms.connect(self.mux.sock)
  -- the slow answer is first; the cached and fast ones behind it must wait
  ms.ask(c, WINXP) -- now in the cache
  assert(c:send(ms.q(SLOW) .. ms.q(WINXP) .. ms.q("192.0.2.3") .. ms.q(NOMATCH)))
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).os_name, "Slow")
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).os, "Windows XP")
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).os_name, "192.0.2.3")
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).status, "nomatch")
  c:close()
end

function TestProtocol:test_half_closed_client_gets_its_replies_then_eof()
  local c = ms.connect(self.mux.sock)
  -- lookups in flight when the client shuts down its sending side
  assert(c:send(ms.q(SLOW) .. ms.q(NOMATCH)))
  assert(c:shutdown("send"))
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).os_name, "Slow")
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).status, "nomatch")
  -- then the mux closes its side: end of file, not a timeout
  lu.assertEquals(select(2, ms.reply(c)), "closed")
  c:close()
end

function TestProtocol:test_concurrent_queries_for_one_address_share_one_lookup()
  local conns = {}
  for i = 1, 10 do
    conns[i] = ms.connect(self.mux.sock)
    assert(conns[i]:send(ms.q(SLOW)))
  end
  for i = 1, 10 do
    lu.assertEquals(p0f.decode(assert(ms.reply(conns[i]))).os_name, "Slow")
    conns[i]:close()
  end
  local n = 0
  for _, a in ipairs(self.fake:queries()) do if a == SLOW then n = n + 1 end end
  lu.assertEquals(n, 1)
  lu.assertEquals(self.fake:connections(), 1) -- one connection to p0f, whatever the clients
  ms.signal(self.mux, "USR1")
  local st = support.wait_until(function()
    local s = ms.stats(self.mux)
    return s and s.queries == 10 and s
  end, 100, 0.02)
  lu.assertNotNil(st, ms.log(self.mux))
  lu.assertEquals(st.upstream, 1)
  lu.assertEquals(st.coalesced, 9)
  lu.assertEquals(st.failures, 0)
end

function TestProtocol:test_cache_answers_repeated_senders()
  for _ = 1, 3 do
    local c = ms.connect(self.mux.sock)
    lu.assertEquals(ms.ask(c, WINXP).os, "Windows XP")
    lu.assertEquals(ms.ask(c, NOMATCH).status, "nomatch")
    c:close()
  end
  local asked = self.fake:queries()
  lu.assertEquals(#asked, 2, table.concat(asked, " "))
  ms.signal(self.mux, "USR1")
  local st = support.wait_until(function() return ms.stats(self.mux) end, 100, 0.02)
  lu.assertEquals(st.cache_hits, 4)
  lu.assertEquals(st.upstream, 2)
end

function TestProtocol:test_bad_magic_closes_that_client_alone()
  local good = ms.connect(self.mux.sock)
  local bad = ms.connect(self.mux.sock)
  assert(bad:send(string.rep("G", p0f.QUERY_SIZE * 2)))
  lu.assertTrue(ms.closed_within(bad, 3))
  -- an unknown address type is no query either
  local bad2 = ms.connect(self.mux.sock)
  local q = ms.q(WINXP)
  assert(bad2:send(q:sub(1, 4) .. "\7" .. q:sub(6)))
  lu.assertTrue(ms.closed_within(bad2, 3))
  lu.assertEquals(ms.ask(good, WINXP).os, "Windows XP")
  lu.assertStrContains(ms.log(self.mux), "not a p0f v3 query")
  good:close()
end

function TestProtocol:test_short_query_is_closed_after_the_timeout()
  local c = ms.connect(self.mux.sock)
  assert(c:send(ms.q(WINXP):sub(1, 10)))
  local t, closed = elapsed(function() return ms.closed_within(c, 5) end)
  lu.assertTrue(closed)
  lu.assertTrue(t >= 0.9 and t < 4, "closed after " .. t)
  lu.assertStrContains(ms.log(self.mux), "query not finished within 1s")
end

function TestProtocol:test_client_leaving_early_harms_nobody()
  local c = ms.connect(self.mux.sock)
  assert(c:send(ms.q(SLOW) .. ms.q("192.0.2.4")))
  c:close() -- before the answers
  socket.sleep(0.4)
  lu.assertTrue(ms.alive(self.mux))
  lu.assertEquals(ms.ask_once(self.mux.sock, "192.0.2.4").os_name, "192.0.2.4")
end

-- ---- p0f failing ----------------------------------------------------------------

function TestProtocol:test_p0f_hung_closes_waiting_clients_within_the_timeout()
  local c = ms.connect(self.mux.sock)
  assert(c:send(ms.q(WINXP) .. ms.q(HANG) .. ms.q(WINXP)))
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).os, "Windows XP") -- the one before it
  local t, closed = elapsed(function() return ms.closed_within(c, 5) end)
  lu.assertTrue(closed)
  lu.assertTrue(t < 3, "closed after " .. t .. " s") -- timeout = 1
  lu.assertStrContains(ms.log(self.mux), "ETIMEDOUT")
  -- p0f stays wedged (the fake never answers on that connection again):
  -- later clients are closed within the timeout too, none waits longer
  local c2 = ms.connect(self.mux.sock)
  t, closed = elapsed(function()
    assert(c2:send(ms.q("192.0.2.8")))
    return ms.closed_within(c2, 5)
  end)
  lu.assertTrue(closed)
  lu.assertTrue(t < 3, "closed after " .. t .. " s")
  -- the operator restarts p0f: answers resume, the mux was not restarted
  local sock = self.fake.socket
  self.fake:stop()
  self.fake = fake.start{ rules = RULES, socket = sock }
  local r = ms.answer_eventually(self.mux.sock, "192.0.2.8")
  lu.assertNotNil(r)
  lu.assertEquals(r.os_name, "192.0.2.8")
  lu.assertEquals(self.fake:connections(), 1)
end

function TestProtocol:test_lying_p0f_closes_the_clients_then_recovers()
  local c = ms.connect(self.mux.sock)
  assert(c:send(ms.q(LIE)))
  lu.assertTrue(ms.closed_within(c, 3))
  lu.assertStrContains(ms.log(self.mux), "EPROTO")
  lu.assertEquals(ms.ask_once(self.mux.sock, "192.0.2.9").os_name, "192.0.2.9")
end

function TestProtocol:test_sigusr1_logs_stats_and_sigterm_answers_in_flight()
  local c = ms.connect(self.mux.sock)
  assert(c:send(ms.q(SLOW) .. ms.q("192.0.2.10")))
  socket.sleep(0.05)
  ms.signal(self.mux, "USR1")
  local status, mux_log = ms.stop(self.mux) -- SIGTERM while the slow query is at p0f
  self.mux = nil
  lu.assertEquals(status, 0)
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).os_name, "Slow")
  lu.assertEquals(p0f.decode(assert(ms.reply(c))).os_name, "192.0.2.10")
  lu.assertTrue(ms.closed_within(c, 3))
  lu.assertTrue(self.fake:alive())
  lu.assertStrMatches(mux_log, ".*stats: clients=1 queries=2 upstream=2 cache_hits=0 coalesced=0 failures=0 .*")
  lu.assertStrMatches(mux_log, ".*stopped: clients=%d+ queries=2 upstream=2 cache_hits=0 coalesced=0 failures=0 .*")
end

function TestProtocol:test_shutdown_with_p0f_hung_takes_shutdown_timeout_in_total()
  ms.stop(self.mux)
  self.mux = assert(ms.start{ socket = self.fake.socket, timeout = 30, shutdown_timeout = 3 })
  local c = ms.connect(self.mux.sock)
  assert(c:send(ms.q(HANG)))
  support.wait_until(function() return #self.fake:queries() > 0 end, 100, 0.05)
  local dt, status = elapsed(function() return ms.stop(self.mux) end)
  self.mux = nil
  lu.assertEquals(status, 0)
  lu.assertTrue(ms.closed_within(c, 3)) -- no answer from a hung p0f: closed
  -- answering (2 s) and the drain of what p0f owes (1 s) together; the
  -- drain used to come on top
  lu.assertTrue(dt >= 2.9 and dt < 3.8, string.format("shutdown took %.2f s", dt))
  lu.assertTrue(self.fake:alive())
  c:close()
end

-- ---- in the test's process ----------------------------------------------------------

TestInProcess = {}

-- A callback that raises with no handler of its own goes to the daemon's
-- log through the loop's on_error, not to stderr.
function TestInProcess:test_a_raising_callback_is_logged()
  local f = fake.start{ rules = RULES }
  local log, lines = support.recording_log()
  local sock = support.tmpname(".sock")
  local m = assert(require("p0f.mux").new({ listen = "unix:" .. sock, socket = f.socket }, { log = log }))
  assert(m:start())
  m._read = function() error("read exploded") end
  local c = ms.connect(sock)
  assert(c:send(ms.q("192.0.2.1")))
  local logged = function() return table.concat(lines, "\n"):find("read exploded", 1, true) ~= nil end
  for _ = 1, 100 do -- the mux's sweep timer wakes the loop every 0.25 s
    if logged() then break end
    m.loop:run_once()
  end
  c:close()
  m:shutdown()
  m.loop:run()
  f:stop()
  os.remove(sock)
  lu.assertStrContains(table.concat(lines, "\n"), "err in a loop callback: ")
  lu.assertTrue(logged(), table.concat(lines, "\n"))
end

-- ---- p0f down and back ------------------------------------------------------------

TestDown = {}

function TestDown:test_p0f_down_fails_fast_then_answers_resume()
  local f = fake.start{ rules = RULES }
  local m = assert(ms.start{ socket = f.socket, timeout = 2, cache_size = 0 })
  local c = ms.connect(m.sock)
  lu.assertEquals(ms.ask(c, "192.0.2.11").os_name, "192.0.2.11")
  f:stop()
  -- p0f gone: the client is closed at once, not after the timeout
  local t, closed = elapsed(function()
    assert(c:send(ms.q("192.0.2.12")))
    return ms.closed_within(c, 5)
  end)
  lu.assertTrue(closed)
  lu.assertTrue(t < 1.5, "closed after " .. t .. " s")
  -- p0f back on the same socket: answers resume, the mux was not restarted
  local f2 = fake.start{ rules = RULES, socket = f.socket }
  local r = ms.answer_eventually(m.sock, "192.0.2.13")
  lu.assertNotNil(r)
  lu.assertEquals(r.os_name, "192.0.2.13")
  lu.assertTrue(ms.alive(m))
  lu.assertEquals(ms.stop(m), 0)
  f2:stop()
end

-- ---- limits ----------------------------------------------------------------------

TestLimits = {}

function TestLimits:setUp()
  self.fake = fake.start{ rules = RULES }
end

function TestLimits:tearDown()
  if self.mux then ms.stop(self.mux) end
  self.fake:stop()
end

function TestLimits:test_max_clients_refuses_at_once_with_one_log_line()
  self.mux = assert(ms.start{ socket = self.fake.socket, max_clients = 3 })
  local kept = {}
  for i = 1, 3 do
    kept[i] = ms.connect(self.mux.sock)
    lu.assertEquals(ms.ask(kept[i], WINXP).os, "Windows XP")
  end
  for _ = 1, 20 do
    local extra = ms.connect(self.mux.sock)
    local t, closed = elapsed(function() return ms.closed_within(extra, 3) end)
    lu.assertTrue(closed)
    lu.assertTrue(t < 1, "refused after " .. t)
    extra:close()
  end
  lu.assertEquals(count(ms.log(self.mux), "refused"), 1) -- rate-limited
  -- the kept ones still work; a place freed is taken again
  lu.assertEquals(ms.ask(kept[1], "192.0.2.20").os_name, "192.0.2.20")
  kept[3]:close()
  local again = support.wait_until(function()
    local c = ms.connect(self.mux.sock)
    local r = ms.ask(c, "192.0.2.21")
    c:close()
    return r
  end, 50, 0.05)
  lu.assertNotNil(again)
  kept[1]:close()
  kept[2]:close()
end

function TestLimits:test_non_reader_is_dropped_and_delays_nobody()
  self.mux = assert(ms.start{ socket = self.fake.socket, max_output = 65536, max_pending = 64 })
  local hog = ms.connect(self.mux.sock)
  hog:settimeout(0.01)
  local qs = {}
  for i = 1, 1000 do qs[i] = ms.q("10.1." .. math.floor(i / 256) .. "." .. (i % 256)) end
  local blob = table.concat(qs)
  local other = ms.connect(self.mux.sock)
  local sent, worst = 0, 0
  for _ = 1, 100 do -- up to 100k queries, never reading
    local n, err = hog:send(blob)
    if n then sent = sent + 1000 end
    if err == "closed" then break end
    local t = elapsed(function() lu.assertEquals(ms.ask(other, WINXP).os, "Windows XP") end)
    if t > worst then worst = t end
  end
  lu.assertTrue(ms.closed_within(hog, 3))
  lu.assertTrue(sent < 100000, "never dropped")
  lu.assertTrue(worst < 1, "another client waited " .. worst .. " s")
  local log = ms.log(self.mux)
  -- pipelining alone only pauses reading; the replies it does not read drop it
  lu.assertStrContains(log, "not reading its replies")
  other:close()
end

function TestLimits:test_queue_full_fails_fast()
  self.mux = assert(ms.start{ socket = self.fake.socket, max_inflight = 1, max_queue = 1, timeout = 5 })
  local c1 = ms.connect(self.mux.sock)
  assert(c1:send(ms.q(HANG)))              -- on the wire
  socket.sleep(0.1)
  local c2 = ms.connect(self.mux.sock)
  assert(c2:send(ms.q("192.0.2.30")))      -- queued behind it
  socket.sleep(0.1)
  local c3 = ms.connect(self.mux.sock)
  local t, closed = elapsed(function()
    assert(c3:send(ms.q("192.0.2.31")))    -- no room: closed now, not in 5 s
    return ms.closed_within(c3, 4)
  end)
  lu.assertTrue(closed)
  lu.assertTrue(t < 1, "closed after " .. t)
  lu.assertStrContains(ms.log(self.mux), "lookups waiting for p0f")
  c1:close()
  c2:close()
end

function TestLimits:test_idle_clients_closed_when_asked()
  self.mux = assert(ms.start{ socket = self.fake.socket, idle_timeout = 0.5 })
  local c = ms.connect(self.mux.sock)
  lu.assertEquals(ms.ask(c, WINXP).os, "Windows XP")
  local t, closed = elapsed(function() return ms.closed_within(c, 5) end)
  lu.assertTrue(closed)
  lu.assertTrue(t >= 0.4 and t < 3, "closed after " .. t)
end

-- ---- the command line -------------------------------------------------------------

TestCommandLine = {}

local function run(args)
  local lua = assert(os.getenv("P0F_LUA"))
  local src = os.getenv("P0F_SOURCE_DIR") or "."
  local p = io.popen(string.format("%s %s/bin/p0f-mux %s 2>&1; echo \"status=$?\"", lua, src, args))
  local out = p:read("*a")
  p:close()
  return out, tonumber(out:match("status=(%d+)%s*$"))
end

-- --check-config on a file with this text: its output and exit status.
local function check_config(text)
  local conf = support.tmpname(".conf")
  local f = assert(io.open(conf, "w"))
  f:write(text)
  f:close()
  local out, status = run("-c " .. conf .. " --check-config")
  os.remove(conf)
  return out, status
end

function TestCommandLine:test_help_and_check_config()
  local out, status = run("--help")
  lu.assertEquals(status, 0)
  lu.assertStrContains(out, "usage: p0f-mux")
  out, status = check_config('listen = "unix:/tmp/x.sock"\nsocket = "/tmp/p0f.sock"\n'
    .. 'timeout = "500ms"\ncache_size = 0\n')
  lu.assertEquals(status, 0, out)
  lu.assertStrContains(out, "configuration OK")
  local bad = {
    { "max_inflight = 0\n", "p0f-mux: bad option 'max_inflight'" },
    { "max_infligth = 10\n", "p0f-mux: unknown option 'max_infligth'" },
    { "timeout = -1\n", "p0f-mux: bad option 'timeout'" },
    { "expire = 1e300\n", "p0f-mux: bad option 'expire'" },
    { "log_level = 'loud'\n", "p0f-mux: bad option 'log_level'" },
    { "timeout = \n", "p0f-mux: " },
  }
  for _, b in ipairs(bad) do
    out, status = check_config(b[1])
    lu.assertEquals(status, 1, b[1])
    lu.assertStrContains(out, b[2])
  end
  out, status = run("--bogus")
  lu.assertEquals(status, 2)
  lu.assertStrContains(out, "unknown argument")
end

os.exit(support.run(lu))
