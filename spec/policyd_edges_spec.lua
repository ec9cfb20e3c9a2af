--- p0f-policyd at its edges, as a hostile or careless peer finds them:
-- a long line in one read, a flood of empty requests, a client that never
-- reads, SIGTERM with p0f hung, a failing publish. The daemon runs as a
-- process against a scripted fake p0f, except where only the inside can
-- make a step fail.
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")
local support = require("support")
local ps = require("policyd_support")
local protocol = require("p0f.policy_protocol")

local WINXP = "203.0.113.7"
local HANG = "192.0.2.99"

local RULES = {
  [WINXP] = { os_name = "Windows", os_flavor = "XP", distance = 12, link_type = "DSL" },
  [HANG] = "hang",
  ["*"] = "nomatch",
}

local function base_opts(sock)
  return { socket = sock, timeout = 1, reject = { "Windows XP" }, request_timeout = 5 }
end

-- Every line the daemon wrote went through its logger (timestamp, ident).
local function foreign_lines(log)
  local out = {}
  for line in log:gmatch("[^\n]+") do
    if not line:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d p0f%-policyd: %a+: ") then
      out[#out + 1] = line
    end
  end
  return out
end

local function count(text, needle)
  local n, pos = 0, 1
  while true do
    local i = text:find(needle, pos, true)
    if not i then return n end
    n, pos = n + 1, i + #needle
  end
end

TestEdges = {}

function TestEdges:setUp()
  self.fake = fake.start{ rules = RULES }
end

function TestEdges:tearDown()
  if self.srv then ps.stop(self.srv) end
  self.fake:stop()
end

function TestEdges:test_max_line_holds_for_a_line_in_one_read()
  local got = {}
  local parser = protocol.parser{ max_line = 4096 }
  parser:feed("a=1\nccert_subject=" .. string.rep("y", 5000) .. "\nb=2\n\n",
    function(attrs, problem) got[#got + 1] = { attrs = attrs, problem = problem } end)
  lu.assertEquals(#got, 1)
  lu.assertEquals(got[1].problem, "line too long")
  lu.assertEquals(got[1].attrs, { a = "1", b = "2" })
  -- the daemon: a request carrying it is not trusted (DUNNO, not REJECT)
  self.srv = assert(ps.start(base_opts(self.fake.socket)))
  local c = ps.connect(self.srv.port)
  lu.assertEquals(ps.ask(c, { client_address = WINXP, ccert_subject = string.rep("y", 5000) }), "DUNNO")
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  lu.assertStrContains(ps.read(self.srv.log), "line too long")
  c:close()
end

function TestEdges:test_a_flood_of_empty_requests_logs_a_bounded_number_of_lines()
  self.srv = assert(ps.start(base_opts(self.fake.socket)))
  local c = ps.connect(self.srv.port)
  local n, batch = 100000, 1000
  -- in batches, read as they come: a client that reads is never dropped
  for _ = 1, n / batch do
    assert(c:send(string.rep("\n", batch)))
    for _ = 1, batch do lu.assertEquals(ps.answer(c), "DUNNO") end
  end
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  local log = ps.read(self.srv.log)
  local lines = count(log, "unknown request type")
  lu.assertTrue(lines >= 1 and lines <= 100, lines .. " warning lines for " .. n .. " empty requests")
  lu.assertStrContains(log, "more like this suppressed")
  c:close()
end

function TestEdges:test_a_client_that_never_reads_is_dropped_through_the_log_only()
  self.srv = assert(ps.start(base_opts(self.fake.socket)))
  local c = ps.connect(self.srv.port)
  -- garbage requests are answered at once: the answers pile up unread
  c:settimeout(2)
  local chunk = string.rep("x\n\n", 20000)
  for _ = 1, 200 do
    local ok = c:send(chunk)
    if not ok then break end
  end
  local log = support.wait_until(function()
    local text = ps.read(self.srv.log)
    return text:find("not reading its answers", 1, true) and text
  end, 200, 0.05)
  lu.assertNotNil(log, "the reader was dropped")
  support.sleep(0.2)
  log = ps.read(self.srv.log)
  lu.assertNil(log:find("closed timer", 1, true), log:sub(1, 2000))
  lu.assertEquals(foreign_lines(log), {})
  lu.assertTrue(ps.alive(self.srv))
  c:close()
  local other = ps.connect(self.srv.port)
  lu.assertStrContains(ps.ask(other, { client_address = WINXP }), "REJECT")
  other:close()
end

function TestEdges:test_shutdown_with_p0f_hung_takes_shutdown_timeout_in_total()
  local opts = base_opts(self.fake.socket)
  opts.timeout, opts.shutdown_timeout = 30, 3
  self.srv = assert(ps.start(opts))
  local c = ps.connect(self.srv.port)
  assert(c:send(ps.request{ client_address = HANG, protocol_state = "DATA" }))
  support.wait_until(function() return #self.fake:queries() > 0 end, 100, 0.05)
  local dt, status = ps.elapsed(function() return ps.stop(self.srv) end)
  self.srv = nil
  lu.assertEquals(status, 0)
  lu.assertEquals(ps.answer(c), "DUNNO")
  -- answering (2 s) and the drain of what p0f owes (1 s) together; the
  -- drain used to come on top (4 s and more)
  lu.assertTrue(dt >= 2.9 and dt < 3.8, string.format("shutdown took %.2f s", dt))
  c:close()
end

-- ---- inside the server: a publish that raises -------------------------------------

TestSettle = {}

function TestSettle:test_a_raising_publish_does_not_cost_the_answer()
  local f = fake.start{ rules = RULES }
  local policyd = require("p0f.policyd")
  local log, lines = support.recording_log()
  local loop = p0f.loop()
  local server = assert(policyd.new({ socket = f.socket, timeout = 2, publish = true,
    redis = "127.0.0.1:" .. support.free_port(), redis_timeout = 0.2 }, { loop = loop, log = log }))
  assert(server:start())
  server.shared.put = function() error("publish exploded") end
  local answers = {}
  local function ask()
    server:lookup(WINXP, function(result, err)
      answers[#answers + 1] = result and result.os_name or err
      if #answers == 2 then loop:stop() end
    end)
  end
  ask()
  ask() -- a second request for the same address waits on the same lookup
  local guard = loop:timer(10, function() loop:stop() end)
  loop:run()
  guard:close()
  server:shutdown()
  loop:run()
  f:stop()
  lu.assertEquals(answers, { "Windows", "Windows" })
  lu.assertStrContains(table.concat(lines, "\n"), "publish exploded")
end

-- A callback with no handler of its own that raises (here the connection
-- limit's, around the guarded accept) goes to the daemon's log through the
-- loop's on_error, not to stderr.
function TestSettle:test_a_raising_loop_callback_is_logged()
  local f = fake.start{ rules = RULES }
  local log, lines = support.recording_log()
  local server = assert(require("p0f.policyd").new({ socket = f.socket, listen = "127.0.0.1:0" },
    { log = log }))
  assert(server:start())
  server.pool._admit = function() error("admit exploded") end
  local c = ps.connect(server:port())
  local logged = function() return table.concat(lines, "\n"):find("admit exploded", 1, true) ~= nil end
  local guard = server.loop:timer(10, function() server.loop:stop() end)
  local poll = server.loop:timer(0.05, function() if logged() then server.loop:stop() end end, 0.05)
  server.loop:run()
  guard:close()
  poll:close()
  c:close()
  server:shutdown()
  server.loop:run()
  f:stop()
  lu.assertStrContains(table.concat(lines, "\n"), "err in a loop callback: ")
  lu.assertTrue(logged(), table.concat(lines, "\n"))
end

os.exit(support.run(lu))
