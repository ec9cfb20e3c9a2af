--- Soak: a long random run of the persistent client against a real p0f.
--
-- The client submits, steps, fetches, lets queries time out (tiny
-- timeouts), cancels, closes with queries on the wire and reconnects, in a
-- random order. Throughout, our process must never hold more than one
-- connection to p0f (sampled on our side and on p0f's, from /proc), every
-- answer must belong to its own question (127.0.0.1 is known to p0f, the
-- other addresses are not, so a reply out of step shows), and at the end
-- p0f must be alive, hold no slot for us, and answer a new connection.
-- The libev driver goes through the same with callbacks.
--
-- Size: P0F_SOAK_QUERIES queries (default 40000: a few seconds);
-- the long form is e.g. P0F_SOAK_QUERIES=500000. P0F_SOAK_SEED repeats a
-- run (the seed in use is printed).
local lu = require("luaunit")
local p0f = require("p0f")
local support = require("spec.support")
local slots = require("spec.soak_slots")

local QUERIES = tonumber(os.getenv("P0F_SOAK_QUERIES") or "") or 40000
local SEED = tonumber(os.getenv("P0F_SOAK_SEED") or "") or os.time()

-- Each address with the status a reply in step must carry.
local ADDRS = {
  { "127.0.0.1", "ok" },
  { "::ffff:127.0.0.1", "ok" },
  { "192.0.2.7", "nomatch" },
  { "198.51.100.23", "nomatch" },
  { "2001:db8::7", "nomatch" },
}
local TIMEOUTS = { 0.0003, 0.001, 0.003, 0.02, 1 } -- mostly tiny
local INFLIGHT = { 1, 4, 64 }

local function pick(t) return t[math.random(#t)] end

-- Burn a few milliseconds without stepping: deadlines pass meanwhile.
local function busy(seconds)
  local t = os.clock() + seconds
  while os.clock() < t do end
end

local learn = support.learn

--- The random run. Returns its figures; raises on any broken promise.
local function soak(d, total, every)
  local st = {
    submitted = 0, ok = 0, nomatch = 0, timedout = 0, cancelled = 0,
    dropped_by_close = 0, closes = 0, samples = 0, max_ours = 0, max_p0f = 0,
    p0f_lag = 0,
  }
  local c, handles, expect
  local function open()
    c = assert(p0f.client { socket = d.socket, timeout = pick(TIMEOUTS),
                            max_inflight = pick(INFLIGHT) })
    handles, expect = {}, {}
  end
  local function forget(i)
    expect[handles[i]] = nil
    handles[i] = handles[#handles]
    handles[#handles] = nil
  end
  local function fetch_all()
    local i = 1
    while i <= #handles do
      local h = handles[i]
      local r, err, code = c:fetch(h)
      if r then
        lu.assertEquals(r.status, expect[h], "a reply out of step with its query")
        if r.status == "ok" then lu.assertEquals(r.os_name, "Linux") end
        st[r.status] = st[r.status] + 1
        forget(i)
      elseif code == "ETIMEDOUT" then
        st.timedout = st.timedout + 1
        forget(i)
      elseif code == "EAGAIN" then
        i = i + 1
      else
        error(string.format("query failed: %s (%s)", tostring(err), tostring(code)))
      end
    end
  end
  local function sample()
    st.samples = st.samples + 1
    local ours = slots.ours()
    lu.assertTrue(ours <= 1, "our process holds " .. ours .. " connections to p0f")
    if ours > st.max_ours then st.max_ours = ours end
    local theirs = slots.p0f(d.pid, d.socket)
    if theirs > st.max_p0f then st.max_p0f = theirs end
    if theirs > 1 then
      -- p0f reaps a connection we closed on its next poll: allow it that
      -- moment, but not a slot it keeps.
      st.p0f_lag = st.p0f_lag + 1
      lu.assertTrue(support.wait_until(function() return slots.p0f(d.pid, d.socket) <= 1 end, 100, 0.02),
        "p0f keeps " .. theirs .. " API connections for our process")
    end
    lu.assertTrue(support.p0f_alive(d), "p0f died")
  end

  open()
  local ops = 0
  while st.submitted < total do
    ops = ops + 1
    local r = math.random()
    if r < 0.55 then
      for _ = 1, math.random(8) do
        local a = pick(ADDRS)
        local h = assert(c:submit(a[1]))
        handles[#handles + 1] = h
        expect[h] = a[2]
        st.submitted = st.submitted + 1
      end
      if math.random() < 0.5 then c:step() end
    elseif r < 0.84 then
      c:step()
      fetch_all()
    elseif r < 0.90 then
      if #handles > 0 then
        local i = math.random(#handles)
        c:cancel(handles[i])
        forget(i)
        st.cancelled = st.cancelled + 1
      end
    elseif r < 0.94 then
      busy(math.random() * 0.003)
      c:step()
    elseif r < 0.95 then
      -- Close with queries queued and on the wire, then start again.
      c:step()
      st.dropped_by_close = st.dropped_by_close + #handles
      c:close()
      st.closes = st.closes + 1
      open()
    else
      c:step()
    end
    if ops % every == 0 then sample() end
  end
  -- Settle: everything left ends (answer or timeout) within the deadline.
  local deadline = os.time() + 5
  while #handles > 0 and os.time() <= deadline do
    c:step()
    fetch_all()
  end
  lu.assertEquals(#handles, 0, "queries never finished")
  sample()
  c:close()
  return st
end

--- The same through the libev driver: queries with callbacks, cancels (of
-- live and of finished handles), closes with callbacks owed, run_nowait and
-- run_once. Every callback of a query not cancelled runs exactly once, with
-- the answer to its own question; a cancelled one never runs.
local function soak_libev(d, total, every)
  local st = { submitted = 0, ok = 0, nomatch = 0, timedout = 0, cancelled = 0,
               closed = 0, closes = 0, stale_cancels = 0, samples = 0 }
  local loop = p0f.loop()
  local c, live, finished
  local problems = {}
  local function bad(msg) problems[#problems + 1] = msg end
  local function open()
    c = assert(loop:client { socket = d.socket, timeout = pick(TIMEOUTS),
                             max_inflight = pick(INFLIGHT), on_error = bad })
    live, finished = {}, {}
  end
  local function submit()
    local a = pick(ADDRS)
    local q = { expect = a[2] }
    -- The driver catches errors in callbacks: problems are noted, and
    -- checked outside the loop.
    q.h = assert(c:query(a[1], function(r, err, code)
      if q.called then bad("a callback ran twice") end
      if q.cancelled then bad("a cancelled query's callback ran") end
      q.called = true
      live[q.h] = nil
      finished[#finished + 1] = q.h
      if r then
        if r.status ~= q.expect then bad("a reply out of step with its query") end
        st[r.status] = st[r.status] + 1
      elseif code == "ETIMEDOUT" then
        st.timedout = st.timedout + 1
      elseif code == "ECANCELED" and q.closing then
        st.closed = st.closed + 1
      else
        bad(string.format("query failed: %s (%s)", tostring(err), tostring(code)))
      end
    end))
    live[q.h] = q
    st.submitted = st.submitted + 1
  end
  local function any_live()
    for h in pairs(live) do return h end
  end

  open()
  local ops = 0
  while st.submitted < total do
    ops = ops + 1
    local r = math.random()
    if r < 0.5 then
      for _ = 1, math.random(8) do submit() end
    elseif r < 0.75 then
      loop:run_nowait()
    elseif r < 0.8 then
      if any_live() then loop:run_once() end
    elseif r < 0.86 then
      local h = any_live()
      if h then
        live[h].cancelled = true
        live[h] = nil
        c:cancel(h)
        st.cancelled = st.cancelled + 1
      end
    elseif r < 0.9 then
      -- A handle already answered: its slot may serve a newer query now,
      -- which must not lose its callback.
      if #finished > 0 then
        c:cancel(finished[math.random(#finished)])
        st.stale_cancels = st.stale_cancels + 1
      end
    elseif r < 0.94 then
      busy(math.random() * 0.003)
      loop:run_nowait()
    elseif r < 0.95 then
      for _, q in pairs(live) do q.closing = true end
      c:close() -- owed callbacks run now, with ECANCELED
      lu.assertNil(any_live(), "close left callbacks owed")
      lu.assertEquals(problems, {})
      st.closes = st.closes + 1
      open()
    end
    if #finished > 256 then finished = {} end
    if ops % every == 0 then
      lu.assertEquals(problems, {})
      st.samples = st.samples + 1
      local ours = slots.ours()
      lu.assertTrue(ours <= 1, "our process holds " .. ours .. " connections to p0f")
    end
  end
  local deadline = os.time() + 5
  while any_live() and os.time() <= deadline do loop:run_once() end
  lu.assertNil(any_live(), "callbacks never ran")
  lu.assertEquals(problems, {})
  c:close()
  loop:close()
  return st
end

TestSoak = {}

function TestSoak:tearDown()
  if self.d then
    support.stop_p0f(self.d) -- only the p0f we started, by its PID
    self.d = nil
  end
end

function TestSoak:test_random_use_keeps_p0f_alive_on_one_slot()
  local d = assert(support.start_p0f())
  self.d = d
  lu.assertNotNil(learn(d, "127.0.0.1"), "p0f never learned 127.0.0.1")
  math.randomseed(SEED)
  local t0 = support.now()
  local st = soak(d, QUERIES, 50)
  local secs = support.now() - t0

  -- p0f lets go of our last connection, is alive, and answers a new one.
  lu.assertTrue(support.wait_until(function() return slots.p0f(d.pid, d.socket) == 0 end, 100, 0.02),
    "p0f still holds an API connection after we closed")
  lu.assertEquals(slots.ours(), 0)
  lu.assertTrue(support.p0f_alive(d), "p0f died")
  local r = p0f.query(d.socket, "127.0.0.1", { timeout = 2 })
  lu.assertNotNil(r, "p0f does not answer after the soak")
  lu.assertEquals(r.status, "ok")

  -- Every kind of event happened, and the counts add up.
  lu.assertTrue(st.ok > 0 and st.nomatch > 0 and st.timedout > 0 and st.cancelled > 0 and st.closes > 0,
    "the run did not exercise every path")
  lu.assertEquals(st.ok + st.nomatch + st.timedout + st.cancelled + st.dropped_by_close, st.submitted)
  io.stderr:write(string.format(
    "\nsoak (seed %d, %s): %d queries in %.1f s: %d ok, %d nomatch, %d timed out, %d cancelled, "
    .. "%d dropped by %d closes; %d slot samples, max connections ours %d / on p0f's side %d "
    .. "(%d samples caught p0f still reaping a closed one)\n",
    SEED, _VERSION, st.submitted, secs, st.ok, st.nomatch, st.timedout, st.cancelled,
    st.dropped_by_close, st.closes, st.samples, st.max_ours, st.max_p0f, st.p0f_lag))
end

function TestSoak:test_libev_driver_random_use()
  local d = assert(support.start_p0f())
  self.d = d
  lu.assertNotNil(learn(d, "127.0.0.1"), "p0f never learned 127.0.0.1")
  math.randomseed(SEED + 2)
  local t0 = support.now()
  local st = soak_libev(d, math.floor(QUERIES / 2), 50)
  local secs = support.now() - t0
  lu.assertTrue(support.wait_until(function() return slots.p0f(d.pid, d.socket) == 0 end, 100, 0.02),
    "p0f still holds an API connection after we closed")
  lu.assertTrue(support.p0f_alive(d), "p0f died")
  local r = p0f.query(d.socket, "127.0.0.1", { timeout = 2 })
  lu.assertNotNil(r, "p0f does not answer after the soak")
  lu.assertEquals(r.status, "ok")
  lu.assertTrue(st.ok > 0 and st.nomatch > 0 and st.timedout > 0 and st.cancelled > 0
    and st.closes > 0 and st.stale_cancels > 0, "the run did not exercise every path")
  lu.assertEquals(st.ok + st.nomatch + st.timedout + st.cancelled + st.closed, st.submitted)
  io.stderr:write(string.format(
    "\nsoak libev (seed %d, %s): %d queries in %.1f s: %d ok, %d nomatch, %d timed out, "
    .. "%d cancelled, %d cancelled by %d closes, %d cancels of finished handles; %d slot samples\n",
    SEED + 2, _VERSION, st.submitted, secs, st.ok, st.nomatch, st.timedout, st.cancelled,
    st.closed, st.closes, st.stale_cancels, st.samples))
end

-- With a single API slot (-S 1), the slot is free again after random use:
-- a second, independent connection gets its answer.
function TestSoak:test_single_slot_is_free_after_random_use()
  local d = assert(support.start_p0f("-S 1"))
  self.d = d
  lu.assertNotNil(learn(d, "127.0.0.1"), "p0f never learned 127.0.0.1")
  math.randomseed(SEED + 1)
  soak(d, math.max(1000, math.floor(QUERIES / 10)), 100)
  local r = support.wait_until(function()
    return p0f.query(d.socket, "192.0.2.99", { timeout = 0.5 })
  end, 10, 0.05)
  lu.assertNotNil(r, "the only API slot is still taken")
  lu.assertEquals(r.status, "nomatch")
  lu.assertTrue(support.p0f_alive(d), "p0f died")
end

os.exit(support.run(lu))
