--- p0f-mux in front of a real p0f started with `-S 2` (two API slots):
-- hundreds of pipelining clients through one connection, byte-for-byte
-- replies, p0f killed and restarted, stopped and continued, and bad
-- clients that must not delay the others. Root (p0f sniffs lo).
--
-- The mux reaches p0f through a symlink, so a restarted p0f (on a socket
-- of its own) is found again at the same path without touching the mux.
local lu = require("luaunit")
local p0f = require("p0f")
local support = require("support")
local ms = require("mux_support")
local slots = require("soak_slots")

local KNOWN = "127.0.0.1" -- p0f learns it; the rest are unseen: "nomatch"

-- The address a client asks as its j-th query, and the status it must get:
-- an answer out of step with its query shows as the wrong status.
local function addr_for(i, j)
  local k = (i * 7 + j) % 4
  if k == 0 then return KNOWN, "ok" end
  if k == 1 then return "192.0.2." .. ((i + j) % 250 + 1), "nomatch" end
  if k == 2 then return "2001:db8::" .. string.format("%x", i * 20 + j), "nomatch" end
  return "198.51.100." .. (j % 250 + 1), "nomatch"
end

local function start_p0f_behind(link)
  local d = assert(support.start_p0f("-S 2"))
  assert(support.sh(string.format("ln -sfn %s %s", d.socket, link)))
  return d
end

local function p0f_ticks(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  local stat = f:read("*l")
  f:close()
  local fields = {}
  for x in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = x end
  return tonumber(fields[12]) + tonumber(fields[13]) -- utime + stime
end

TestReal = {}

function TestReal:setUp()
  self.link = support.tmpname(".p0f-link")
  self.p0f = start_p0f_behind(self.link)
  assert(support.learn(self.p0f, KNOWN), "p0f did not learn " .. KNOWN)
end

function TestReal:tearDown()
  if self.mux then ms.stop(self.mux) end
  support.stop_p0f(self.p0f)
  os.remove(self.link)
end

-- Drive `n` clients, each a loop client (one connection to the mux)
-- pipelining `per` queries; sample(…) runs every 20 ms meanwhile.
-- Returns the count of right answers and the list of wrong ones.
local function pipelined_load(sock, n, per, sample)
  local loop = p0f.loop()
  local right, wrong, left, answered = 0, {}, n * per, 0
  local clients = {}
  for i = 1, n do
    clients[i] = loop:client{ socket = sock, timeout = 30, max_inflight = per }
    for j = 1, per do
      local addr, want = addr_for(i, j)
      assert(clients[i]:query(addr, function(r, err, code)
        left = left - 1
        answered = answered + 1
        if answered % 200 == 0 then sample() end
        if r and r.status == want then
          right = right + 1
        else
          wrong[#wrong + 1] = string.format("%s: %s %s %s", addr, r and r.status or "-",
            tostring(err), tostring(code))
        end
      end))
    end
  end
  -- Sampled from the first answer on: before it, the mux may not have
  -- connected to p0f yet (it connects on its first query).
  local t = loop:timer(0.02, function() if answered > 0 then sample() end end, 0.02)
  while left > 0 do loop:run_once() end
  t:close()
  for _, c in ipairs(clients) do c:close() end
  loop:close()
  return right, wrong
end

function TestReal:test_500_pipelining_clients_one_p0f_connection()
  self.mux = assert(ms.start{ socket = self.link, timeout = 10, cache_size = 0 })
  local samples, most, least = 0, 0, math.huge
  local right, wrong = pipelined_load(self.mux.sock, 500, 20, function()
    local held = slots.p0f(self.p0f.pid, self.p0f.socket)
    samples = samples + 1
    if held > most then most = held end
    if held < least then least = held end
  end)
  print(string.format("  500 clients x 20 pipelined: %d right, %d wrong; p0f held %d..%d "
    .. "connections over %d samples", right, #wrong, least, most, samples))
  lu.assertEquals(#wrong, 0, table.concat(wrong, "\n", 1, math.min(#wrong, 10)))
  lu.assertEquals(right, 10000)
  lu.assertTrue(samples > 0)
  lu.assertEquals(most, 1)  -- never more than the mux's one connection ...
  lu.assertEquals(least, 1) -- ... and that one kept throughout
  -- p0f alive, still holding just that connection, and idle (not spinning)
  lu.assertTrue(support.p0f_alive(self.p0f))
  lu.assertEquals(slots.p0f(self.p0f.pid, self.p0f.socket), 1)
  local t0 = p0f_ticks(self.p0f.pid)
  support.sleep(1)
  local busy = p0f_ticks(self.p0f.pid) - t0
  lu.assertTrue(busy < 20, "p0f used " .. busy .. " ticks in an idle second")
  lu.assertEquals(ms.stop(self.mux), 0)
  self.mux = nil
  lu.assertTrue(support.p0f_alive(self.p0f))
  lu.assertEquals(p0f.query(self.p0f.socket, KNOWN).status, "ok")
end

function TestReal:test_replies_byte_for_byte()
  self.mux = assert(ms.start{ socket = self.link, cache_size = 0 })
  local via = ms.connect(self.mux.sock)
  -- p0f's counters for 127.0.0.1 move whenever anything on this machine
  -- connects over lo: compare only when two direct answers around the one
  -- through the mux agree (a few tries), so a change between them is no
  -- false failure and a difference made by the mux still is one.
  local function direct_ask(addr)
    local direct = ms.connect(self.p0f.socket)
    local _, raw = ms.ask(direct, addr)
    direct:close()
    return raw
  end
  for _, addr in ipairs({ KNOWN, "::ffff:127.0.0.1", "192.0.2.7", "2001:db8::7" }) do
    local before, got, after
    for _ = 1, 10 do
      before = direct_ask(addr)
      got = select(2, ms.ask(via, addr))
      after = direct_ask(addr)
      if before == after then break end
    end
    lu.assertEquals(before, after, addr .. ": p0f's answer kept changing")
    lu.assertEquals(got, before, addr)
  end
  via:close()
end

-- Chained one-at-a-time queries from `n` clients until stop() says so;
-- every answer and failure is recorded with its time and latency.
local function chained(loop, sock, n, opts)
  local rec = { ok = 0, wrong = 0, failed = 0, worst = 0, events = {} }
  local clients = {}
  local stopping = false
  local function ask(i, j)
    if stopping then return end
    local addr, want = addr_for(i, j)
    local t0 = loop:now()
    clients[i]:query(addr, function(r, err, code)
      if stopping then return end -- ECANCELED from our own close
      local dt = loop:now() - t0
      if dt > rec.worst then rec.worst = dt end
      if r then
        if r.status == want or (opts.any_status and r.status ~= "badquery") then
          rec.ok = rec.ok + 1
        else
          rec.wrong = rec.wrong + 1
        end
      else
        rec.failed = rec.failed + 1
        rec.events[#rec.events + 1] = { t = loop:now(), code = code, dt = dt }
      end
      if opts.on_answer then opts.on_answer(r, dt) end
      ask(i, j + 1)
    end)
  end
  for i = 1, n do
    clients[i] = loop:client{ socket = sock, timeout = opts.timeout or 10, max_inflight = 1,
                              backoff_max = 0.05 }
    ask(i, 1)
  end
  function rec.stop()
    stopping = true
    for _, c in ipairs(clients) do c:close() end
  end
  return rec
end

-- Run the loop for `s` seconds.
local function run_for(loop, s)
  local done = false
  local t = loop:timer(s, function() done = true end)
  while not done do loop:run_once() end
  t:close()
end

function TestReal:test_p0f_killed_and_restarted_under_load()
  self.mux = assert(ms.start{ socket = self.link, timeout = 2, cache_size = 0 })
  local loop = p0f.loop()
  -- the restarted p0f has not seen 127.0.0.1: any real answer counts there
  local rec = chained(loop, self.mux.sock, 20, { any_status = true })
  run_for(loop, 0.5)
  local before = rec.ok
  support.stop_p0f(self.p0f)
  local killed = loop:now()
  run_for(loop, 1)
  local failed_during = rec.failed
  -- every failure came fast: the mux closed the clients, nobody waited
  -- for the 2 s timeout
  local slowest_fail = 0
  for _, e in ipairs(rec.events) do
    if e.dt > slowest_fail then slowest_fail = e.dt end
  end
  self.p0f = start_p0f_behind(self.link)
  local ok_at_restart = rec.ok
  run_for(loop, 1.5)
  rec.stop()
  loop:close()
  print(string.format("  kill/restart: %d answers before, %d failures while down (slowest %.3f s), "
    .. "%d answers after the restart", before, failed_during, slowest_fail, rec.ok - ok_at_restart))
  lu.assertTrue(before > 0)
  lu.assertEquals(rec.wrong, 0)
  lu.assertTrue(failed_during > 0)
  lu.assertTrue(slowest_fail < 1.5, "a client waited " .. slowest_fail .. " s for its failure")
  lu.assertTrue(rec.events[1].t - killed < 1, "first failure only after " .. (rec.events[1].t - killed))
  lu.assertTrue(rec.ok - ok_at_restart > 0, "no answers after p0f came back")
  lu.assertTrue(ms.alive(self.mux))
  lu.assertTrue(support.p0f_alive(self.p0f))
end

function TestReal:test_p0f_stopped_then_continued()
  self.mux = assert(ms.start{ socket = self.link, timeout = 1, cache_size = 0 })
  local c = ms.connect(self.mux.sock)
  lu.assertEquals(ms.ask(c, KNOWN).status, "ok")
  support.sh("kill -STOP " .. self.p0f.pid)
  local t0 = support.now()
  assert(c:send(ms.q("192.0.2.77")))
  local closed = ms.closed_within(c, 5)
  local waited = support.now() - t0
  support.sh("kill -CONT " .. self.p0f.pid)
  lu.assertTrue(closed)
  lu.assertTrue(waited >= 0.8 and waited < 3, "closed after " .. waited .. " s (timeout 1 s)")
  local r = ms.answer_eventually(self.mux.sock, KNOWN)
  lu.assertNotNil(r)
  lu.assertEquals(r.status, "ok")
  lu.assertTrue(support.p0f_alive(self.p0f))
  lu.assertEquals(slots.p0f(self.p0f.pid, self.p0f.socket), 1)
end

-- A process that connects to the mux and misbehaves: "garbage" sends
-- bytes that are no query; "hog" pipelines 100k queries, never reading.
local function bad_client(sock, kind)
  local lua = assert(os.getenv("P0F_LUA"))
  local script = string.format([[
    local p0f = require("p0f")
    local c = require("socket.unix")()
    c:settimeout(2)
    assert(c:connect(%q))
    if %q == "garbage" then
      for _ = 1, 200 do
        if not c:send(string.rep("\255", 4096)) then break end
      end
    else
      local qs = {}
      for i = 1, 1000 do qs[i] = p0f.encode_query("10.9." .. math.floor(i / 256) .. "." .. (i %% 256)) end
      local blob = table.concat(qs)
      for _ = 1, 100 do
        if not c:send(blob) then break end
      end
    end
    c:close()]], sock, kind)
  local pidfile = support.tmpname(".pid")
  support.sh(string.format("(%s -e %s & echo $! > %s) >/dev/null 2>&1", lua, ms.quote(script), pidfile))
  local f = io.open(pidfile)
  local pid = tonumber(f:read("*l"))
  f:close()
  os.remove(pidfile)
  return pid
end

function TestReal:test_bad_clients_delay_nobody()
  self.mux = assert(ms.start{ socket = self.link, timeout = 2 })
  local loop = p0f.loop()
  local rec = chained(loop, self.mux.sock, 100, {})
  run_for(loop, 0.3)
  local pids = { bad_client(self.mux.sock, "garbage"), bad_client(self.mux.sock, "hog") }
  run_for(loop, 2)
  rec.stop()
  loop:close()
  -- both dropped by the mux (the processes themselves may still be in a
  -- blocked send: they are stopped here, by PID)
  local log = support.wait_until(function()
    local text = ms.log(self.mux)
    return text:find("not a p0f v3 query", 1, true) and text:find("not reading its replies", 1, true)
      and text
  end, 100, 0.05)
  for _, pid in ipairs(pids) do support.sh("kill " .. pid .. " 2>/dev/null") end
  print(string.format("  100 clients beside a garbage client and a 100k non-reader: %d answers, "
    .. "worst latency %.3f s", rec.ok, rec.worst))
  lu.assertNotNil(log, "a bad client was never dropped: " .. ms.log(self.mux))
  lu.assertEquals(rec.wrong, 0)
  lu.assertEquals(rec.failed, 0)
  lu.assertTrue(rec.ok > 1000)
  lu.assertTrue(rec.worst < 1, "a client waited " .. rec.worst .. " s")
  lu.assertTrue(support.p0f_alive(self.p0f))
end

os.exit(support.run(lu))
