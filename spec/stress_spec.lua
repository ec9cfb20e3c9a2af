--- Stress: p0f-policyd with everything going wrong at once, before a real
-- p0f. A hostile Redis (hung, answering twice, answering late), clients
-- that flood requests and never read the answers, clients that pipeline
-- lookups and sit, one client that reads and must be served throughout,
-- and SIGTERM in the middle of it all. Asserted:
--   - the daemon stays up and answers from p0f (fail open);
--   - after every wave of such clients its descriptors come back to where
--     they were: nothing is kept for a client that is gone;
--   - SIGTERM with the last wave connected: exit 0 and no sanitizer report
--     (the ASan run preloads ASan into the daemon too, so LeakSanitizer
--     checks its exit; a leak would make the exit status non-zero);
--   - p0f is alive and answering afterwards.
-- The Redis stand-in runs in a process of its own (spec/support_fake_redis.lua).
--
-- Size: P0F_STRESS_WAVES waves come and go before the last one (default 2).
local lu = require("luaunit")
local p0f = require("p0f")
local socket = require("socket")
local support = require("support")
local ps = require("policyd_support")
local stand_in = require("support_fake_redis")
local child = require("support_child")

local WAVES = tonumber(os.getenv("P0F_STRESS_WAVES") or "") or 2
local FLOODERS = 2   -- per wave: empty requests (answered at once), never read
local SITTERS = 4    -- per wave: PIPELINED lookups each, never read
local PIPELINED = 40
local FLOOD_MAX = 16 * 1024 * 1024 -- bytes one flooder sends at most

local d = assert(support.start_p0f())
local learned = support.learn(d, "127.0.0.1")

-- The reader's question: a header at DATA, which needs p0f's answer. No
-- answer: fail, saying what became of the daemon.
local function assert_served(srv, c)
  local a, err = ps.ask(c, { client_address = "127.0.0.1", protocol_state = "DATA" })
  if not a then
    local alive = ps.alive(srv)
    local status, log = ps.stop(srv)
    lu.fail(string.format("no answer (%s); the daemon: %s; log:\n%s", tostring(err),
      alive and "was alive" or child.describe(status), log:sub(-2000)))
  end
  lu.assertStrContains(a, "PREPEND X-p0f-OS: Linux")
end

-- Send empty requests on every flooder (non-blocking) until the daemon has
-- dropped it, or it has taken FLOOD_MAX, or sending stalls. Returns how
-- many the daemon dropped.
local function flood(flooders)
  local chunk = string.rep("\n", 65536)
  local state = {}
  for i, c in ipairs(flooders) do
    c:settimeout(0)
    state[i] = { sent = 0, stalled = 0 }
  end
  local dropped, busy = 0, true
  while busy do
    busy = false
    for i, c in ipairs(flooders) do
      local st = state[i]
      if not st.done then
        local n, err, partial = c:send(chunk)
        local sent = n or partial or 0
        st.sent = st.sent + sent
        if err and err ~= "timeout" then
          st.done, dropped = true, dropped + 1
        elseif st.sent >= FLOOD_MAX then
          st.done = true
        else
          st.stalled = sent > 0 and 0 or st.stalled + 1
          st.done = st.stalled > 100
        end
        busy = busy or not st.done
      end
    end
    if busy then socket.sleep(0.005) end
  end
  return dropped
end

-- One wave: its clients connect, flood or pipeline lookups (which then
-- wait on Redis), and are left there.
local function wave(srv, n)
  local clients, flooders = {}, {}
  for i = 1, FLOODERS do
    flooders[i] = ps.connect(srv.port)
    clients[#clients + 1] = flooders[i]
  end
  local dropped = flood(flooders)
  for i = 1, SITTERS do
    local c = ps.connect(srv.port)
    local batch = {}
    for j = 1, PIPELINED do
      batch[j] = ps.request{ client_address = string.format("198.51.%d.%d", 100 + n % 8, (i * PIPELINED + j) % 250 + 1),
                             protocol_state = "DATA" }
    end
    assert(c:send(table.concat(batch)))
    clients[#clients + 1] = c
  end
  return clients, dropped
end

TestStress = {}

function TestStress:setUp()
  lu.assertNotNil(learned, "p0f never learned 127.0.0.1")
end

function TestStress:tearDown()
  if self.srv and self.srv.pid then ps.stop(self.srv) end
  if self.redis then ps.stop(self.redis) end
end

function TestStress:run(answer, late)
  self.redis = assert(stand_in.spawn(answer, { late = late }))
  local srv = assert(ps.start{
    socket = d.socket, timeout = 2, header = "X-p0f-OS", skip_local = false, cache_size = 0,
    -- a Redis deadline shorter than the shutdown grace (3 s of the 4): a lookup
    -- hung on Redis at SIGTERM fails during the grace, from Redis' timer
    redis = { host = "127.0.0.1", port = self.redis.port, timeout = 1 }, publish = true,
    request_timeout = 5, shutdown_timeout = 4,
  })
  self.srv = srv
  local reader = ps.connect(srv.port)
  assert_served(srv, reader)
  -- under the ASan run the daemon inherits the preload: its exit is checked
  if (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
    lu.assertStrContains(support.read_file("/proc/" .. srv.pid .. "/maps") or "", "libasan")
  end
  local base = ps.fds(srv.pid)
  local figures = { string.format("%d fds before", base) }
  for n = 1, WAVES + 1 do
    local clients, dropped = wave(srv, n)
    local peak = ps.fds(srv.pid)
    figures[#figures + 1] = string.format("wave %d: %d fds at its peak, %d flooders dropped", n, peak or -1, dropped)
    -- at most one descriptor per client still there (and Redis reconnecting)
    lu.assertTrue(peak and peak <= base + #clients + 1,
      string.format("%d descriptors with %d clients, %d before", peak or -1, #clients, base))
    if n <= WAVES then
      -- the one that reads is served all along, from p0f
      assert_served(srv, reader)
      for _, c in ipairs(clients) do c:close() end
      local now = support.wait_until(function()
        local fds = ps.fds(srv.pid)
        return fds and fds <= base + 1 and fds
      end, 400, 0.05)
      lu.assertNotNil(now, string.format("after wave %d: %s descriptors, %d before", n,
        tostring(ps.fds(srv.pid)), base))
    else
      -- the last wave is still connected, its lookups waiting: SIGTERM now
      socket.sleep(0.1)
      local status, log = ps.stop(srv)
      for _, c in ipairs(clients) do c:close() end
      local why = child.describe(status) .. "; log:\n" .. log:sub(-3000)
      lu.assertEquals(status, 0, why)
      lu.assertStrContains(log, "shutting down (SIGTERM)")
      lu.assertNil(log:find("Sanitizer", 1, true), why)
      lu.assertNil(log:find("runtime error", 1, true), why)
      figures[#figures + 1] = log:match("stopped after [^\n]*") or "?"
    end
  end
  reader:close()
  -- p0f was never hurt
  lu.assertTrue(support.p0f_alive(d), "p0f died")
  local r = p0f.query(d.socket, "127.0.0.1", { timeout = 2 })
  lu.assertEquals(r and r.status, "ok")
  io.stderr:write("\nstress (", _VERSION, "): ", table.concat(figures, "; "), "\n")
end

function TestStress:test_hung_redis()
  self:run(stand_in.HANG)
end

function TestStress:test_over_answering_redis()
  self:run(stand_in.OVER_ANSWER)
end

function TestStress:test_redis_answering_late()
  self:run(stand_in.NIL, stand_in.LATE_OK)
end

os.exit(support.run(lu))
