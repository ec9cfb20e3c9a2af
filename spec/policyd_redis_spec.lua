--- p0f-policyd (the process) with a hostile Redis: one that accepts and
-- never answers, one that answers each command twice, one that sends a
-- reply nobody asked for. Whatever Redis does, the daemon keeps running,
-- answers every request (fail open: p0f, or DUNNO), says why in its log,
-- and exits 0 on SIGTERM. The Redis is a stand-in in a process of its own
-- (spec/support_fake_redis.lua), p0f the scripted fake.
local lu = require("luaunit")
local fake = require("p0f.fake")
local support = require("support")
local ps = require("policyd_support")
local stand_in = require("support_fake_redis")
local child = require("support_child")

local WINXP = "203.0.113.7"
local RULES = {
  [WINXP] = { os_name = "Windows", os_flavor = "XP", distance = 12, link_type = "DSL" },
  ["*"] = "nomatch",
}

local function opts_for(p0f_socket, redis_port, redis_timeout)
  return {
    socket = p0f_socket, timeout = 2, reject = { "Windows XP" }, request_timeout = 5,
    cache_size = 0, -- every request goes to Redis, not to the in-process cache
    redis = { host = "127.0.0.1", port = redis_port, timeout = redis_timeout },
  }
end

-- The daemon's exit status, explained, for failure messages.
local function stopped(srv)
  local status, log = ps.stop(srv)
  return status, child.describe(status) .. "; log:\n" .. log:sub(-3000), log
end

-- ---- a hung Redis and SIGTERM ---------------------------------------------------

TestHungRedis = {}

function TestHungRedis:setUp()
  self.fake = fake.start{ rules = RULES }
  self.redis = assert(stand_in.spawn(stand_in.HANG))
end

function TestHungRedis:tearDown()
  if self.srv then ps.stop(self.srv) end
  ps.stop(self.redis)
  self.fake:stop()
end

-- Start the daemon, send one request that waits on the hung Redis, then
-- SIGTERM. Returns the exit status, its explanation, the answer and the log.
function TestHungRedis:term_while_waiting(redis_timeout, shutdown_timeout)
  local opts = opts_for(self.fake.socket, self.redis.port, redis_timeout)
  opts.shutdown_timeout = shutdown_timeout
  self.srv = assert(ps.start(opts))
  local c = ps.connect(self.srv.port)
  local before = stand_in.commands(self.redis)
  assert(c:send(ps.request{ client_address = WINXP }))
  lu.assertTrue(support.wait_until(function() return stand_in.commands(self.redis) > before end, 200, 0.02),
    "the request reached Redis")
  local srv = self.srv
  self.srv = nil
  local status, why, log = stopped(srv)
  local answer, err = ps.answer(c)
  c:close()
  return status, why, answer or err, log
end

-- Three tries, each exit 0 with the request in flight at the signal and
-- answered DUNNO (no new lookup once stopping).
function TestHungRedis:assert_three_clean_exits(redis_timeout, shutdown_timeout)
  for try = 1, 3 do
    local status, why, answer, log = self:term_while_waiting(redis_timeout, shutdown_timeout)
    why = "try " .. try .. ": " .. why
    lu.assertEquals(status, 0, why)
    lu.assertNotNil(log:find("1 requests in flight", 1, true), why)
    lu.assertEquals(answer, "DUNNO", why)
  end
end

-- The Redis deadline passes during the shutdown grace: the command's
-- timeout callback answers the last request, which finishes the shutdown
-- and closes Redis from inside that callback (a use after free, exit 139,
-- before the Redis connection was our own).
function TestHungRedis:test_sigterm_then_the_redis_deadline_exits_0()
  self:assert_three_clean_exits(2.5, 10)
end

-- The shutdown grace ends first: closing Redis cancels the waiting command,
-- whose callback answers the request from inside the close.
function TestHungRedis:test_sigterm_then_the_grace_ends_exits_0()
  self:assert_three_clean_exits(60, 2)
end

-- ---- a Redis that says more than it was asked -------------------------------------

TestLyingRedis = {}

function TestLyingRedis:setUp()
  self.fake = fake.start{ rules = RULES }
end

function TestLyingRedis:tearDown()
  if self.srv then ps.stop(self.srv) end
  if self.redis then ps.stop(self.redis) end
  self.fake:stop()
end

-- Requests from 4 connections at once, 10 rounds of them spread over more
-- than the reconnect backoff (1 s), so Redis is reconnected and lies again:
-- every request is answered from p0f (REJECT), Redis being no help.
-- Returns the daemon's log.
function TestLyingRedis:serve_through(answer, late)
  self.redis = assert(stand_in.spawn(answer, { late = late }))
  self.srv = assert(ps.start(opts_for(self.fake.socket, self.redis.port, 0.5)))
  local conns = {}
  for i = 1, 4 do conns[i] = ps.connect(self.srv.port) end
  for round = 1, 10 do
    for _, c in ipairs(conns) do assert(c:send(ps.request{ client_address = WINXP })) end
    for i, c in ipairs(conns) do
      local a, err = ps.answer(c)
      if not a then
        local srv = self.srv
        self.srv = nil
        lu.fail(string.format("round %d, connection %d: %s; the daemon: %s", round, i, err, select(2, stopped(srv))))
      end
      lu.assertStrContains(a, "REJECT")
    end
    -- a late reply finds nothing waiting for it (it would be taken for
    -- the reply to a command sent meanwhile)
    support.sleep(0.25)
  end
  self.asked = stand_in.commands(self.redis)
  lu.assertTrue(self.asked >= 2, "Redis was asked again after a drop: " .. self.asked)
  -- still up, and still answering a newcomer
  lu.assertTrue(ps.alive(self.srv))
  local other = ps.connect(self.srv.port)
  lu.assertStrContains(ps.ask(other, { client_address = WINXP }), "REJECT")
  other:close()
  for _, c in ipairs(conns) do c:close() end
  local srv = self.srv
  self.srv = nil
  local status, why, log = stopped(srv)
  lu.assertEquals(status, 0, why)
  return log
end

-- The cause is in the log as a warning, once per dropped connection (not
-- once per request), and the logger's rate limit applies to it.
function TestLyingRedis:assert_cause_logged(log)
  local lines = 0
  for line in log:gmatch("[^\n]+") do
    if line:find("redis sent a reply nobody asked for", 1, true) then
      lu.assertStrContains(line, "warning: ")
      lines = lines + 1
    end
  end
  lu.assertTrue(lines >= 1 and lines <= self.asked,
    string.format("%d lines for %d commands; log:\n%s", lines, self.asked, log:sub(-2000)))
end

-- Two replies to every command (hiredis' async layer asserted: exit 134).
function TestLyingRedis:test_over_answering_redis()
  self:assert_cause_logged(self:serve_through(stand_in.OVER_ANSWER))
end

-- The right reply, then an unasked +OK a little later (the same abort).
function TestLyingRedis:test_a_late_ok()
  self:assert_cause_logged(self:serve_through(stand_in.NIL, stand_in.LATE_OK))
end

os.exit(support.run(lu))
