--- What closing a p0f.loop does to the objects on it (every one released,
-- owed callbacks called with ECANCELED, use afterwards refused), closing
-- from nested runs and on the shared default loop, and where errors raised
-- by callbacks go (loop:on_error). Each case runs in a child interpreter,
-- so a crash fails one test instead of the runner.
local lu = require("luaunit")
local fake = require("p0f.fake")
local R = require("support_redis")
local child = require("support_child")

local srv = fake.start{ rules = { ["*"] = "echo" } } -- a scripted p0f for the loop clients

TestLoopClose = {}

-- ---- loop:close() outside run(): every object on the loop goes with it ------

function TestLoopClose.test_close_releases_every_object_on_the_loop()
  local server = assert(R.start())
  local ok, r = pcall(child.survives, child.PRELUDE .. child.CONNECT .. [[
    local loop = p0f.loop()
    local conn
    local l = loop:listen("127.0.0.1:0", function(x) conn = x x:start(function() end) end)
    local port = l:port()
    local peer = connect(port)
    for _ = 1, 200 do
      if conn then break end
      loop:run_once()
    end
    assert(conn, "not accepted")
    local fired = false
    local t = loop:timer(0, function() fired = true end)
    local c = loop:client{ socket = SOCK }
    local codes = {}
    c:query("192.0.2.1", function(_, _, code) codes[#codes + 1] = "client " .. tostring(code) end)
    local rd = loop:redis{ port = PORT }
    rd:command({ "PING" }, function(_, _, code) codes[#codes + 1] = "redis " .. tostring(code) end)

    loop:close()
    table.sort(codes)
    print("owed: " .. table.concat(codes, ", "))
    print("timer: " .. tostring(t) .. ", again: " .. tostring((select(2, pcall(t.again, t)))))
    print("listener: " .. tostring(l))
    print("conn: " .. tostring(conn))
    print("peer reads: " .. tostring((select(2, peer:receive(1)))))
    local late = require("socket").tcp()
    late:settimeout(2)
    print("connect: " .. tostring((select(2, late:connect("127.0.0.1", port)))))
    print("client: " .. tostring((select(2, pcall(c.query, c, "192.0.2.2", function() end)))))
    print("redis: " .. tostring((select(2, pcall(rd.command, rd, { "PING" }, function() end)))))
    -- closing each again, and collecting them, has nothing left to do
    t:close() l:close() conn:close() c:close() rd:close()
    t, l, conn, c, rd = nil
    collectgarbage()
    collectgarbage()
    print("timer fired: " .. tostring(fired))
  ]], { SOCK = srv.socket, PORT = server.port })
  R.stop(server)
  if not ok then error(r, 0) end
  lu.assertEquals(r.out, table.concat({
    "owed: client ECANCELED, redis ECANCELED",
    "timer: p0f.timer (closed), again: attempt to use a closed timer",
    "listener: p0f.listener (127.0.0.1:0, closed)",
    "conn: p0f.conn (127.0.0.1, closed)",
    "peer reads: closed",
    "connect: connection refused",
    "client: attempt to use a closed p0f client",
    "redis: attempt to use a closed redis connection",
    "timer fired: false",
    "child reached its end\n" }, "\n"))
end

function TestLoopClose.test_client_closed_again_by_its_ECANCELED_callbacks()
  -- Each owed callback closes the client again while its close() is still
  -- delivering: every one is called once, and nothing is freed twice.
  local r = child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    local c = loop:client{ socket = SOCK }
    local codes = {}
    for i = 1, 3 do
      c:query("192.0.2." .. i, function(_, _, code) codes[#codes + 1] = code c:close() end)
    end
    c:close()
    print("codes=" .. table.concat(codes, ","))
    loop:close()
  ]], { SOCK = srv.socket })
  lu.assertStrContains(r.out, "codes=ECANCELED,ECANCELED,ECANCELED\n")
end

-- ---- closing from inside run() --------------------------------------------------

function TestLoopClose.test_close_inside_a_nested_run()
  -- The inner run() returns, the outer one too; the libev loop is destroyed
  -- only then.
  local r = child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    loop:timer(0, function()
      loop:timer(0, function() loop:close() collectgarbage() end)
      print("inner run returned " .. tostring(loop:run()))
      print("inside: " .. tostring(loop))
    end)
    loop:timer(10, function() end) -- keeps it running: only the close ends it
    print("outer run returned " .. tostring(loop:run()))
    print("after: " .. tostring((select(2, pcall(loop.run, loop)))))
  ]])
  lu.assertStrMatches(r.out, "inner run returned false\ninside: p0f.loop %(closed%)\nouter run returned false\n"
    .. "after: [^\n]*attempt to use a closed p0f loop\nchild reached its end\n")
end

function TestLoopClose.test_two_default_loops_closed_inside_a_run_of_one()
  -- Both p0f.loop objects share libev's default loop: it must outlive the
  -- run() that is still walking it, and a later one starts afresh.
  local r = child.survives(child.PRELUDE .. [[
    local d1, d2 = p0f.loop("default"), p0f.loop("default")
    d2:timer(3600, function() end)
    d1:timer(0, function() d1:close() d2:close() collectgarbage() end)
    d1:timer(3600, function() end)
    print("run returned " .. tostring(d1:run()))
    local d3 = p0f.loop("default")
    local fired = false
    d3:timer(0.01, function() fired = true end)
    d3:run()
    print("fired=" .. tostring(fired))
    d3:close()
  ]])
  lu.assertStrContains(r.out, "run returned false\nfired=true\n")
end

function TestLoopClose.test_closing_one_default_loop_leaves_the_other_running()
  local r = child.survives(child.PRELUDE .. [[
    local d1, d2 = p0f.loop("default"), p0f.loop("default")
    d1:timer(3600, function() end) -- d1's: goes with d1
    local n = 0
    d2:timer(0.01, function(t) n = n + 1 if n == 3 then t:stop() end end, 0.01)
    d1:close()
    print("run returned " .. tostring(d2:run()) .. ", n=" .. n)
    d2:close()
  ]])
  lu.assertStrContains(r.out, "run returned false, n=3\n")
end

-- ---- loop:on_error: where errors raised by callbacks go ------------------------

function TestLoopClose.test_errors_in_callbacks_go_to_on_error()
  local r = child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    local seen = {}
    loop:on_error(function(msg) seen[#seen + 1] = msg end)
    local dropped = loop:timer(3600, function() end)
    dropped:close()
    loop:timer(0, function() error("boom in a timer", 0) end)
    loop:timer(0, function() dropped:again() end) -- after a drop
    loop:run()
    -- outside run(): the callbacks a close() calls
    local c = loop:client{ socket = SOCK }
    c:query("192.0.2.1", function() error("boom when cancelled", 0) end)
    c:close()
    loop:close()
    table.sort(seen)
    print(table.concat(seen, "\n"))
  ]], { SOCK = srv.socket })
  lu.assertStrMatches(r.out, "error in query callback: boom when cancelled\n"
    .. "error in timer callback: [^\n]*attempt to use a closed timer\n"
    .. "error in timer callback: boom in a timer\nchild reached its end\n")
  lu.assertEquals(r.err, "") -- nothing bypassed the handler
end

function TestLoopClose.test_on_error_that_raises_and_on_error_removed()
  local r = child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    loop:on_error(function(msg) error("handler broke on: " .. msg, 0) end)
    loop:timer(0, function() error("first", 0) end)
    loop:run()
    loop:on_error(nil)
    loop:timer(0, function() error("second", 0) end)
    loop:run()
    print("bad: " .. tostring((select(2, pcall(loop.on_error, loop, 42)))))
    loop:close()
  ]])
  lu.assertEquals(r.err, "p0f: error in on_error: handler broke on: error in timer callback: first\n"
    .. "p0f: error in timer callback: first\n"
    .. "p0f: error in timer callback: second\n")
  lu.assertStrMatches(r.out, "bad: [^\n]*function expected.*")
end

function TestLoopClose.test_each_running_loop_reports_to_its_own_handler()
  local r = child.survives(child.PRELUDE .. [[
    local outer, inner = p0f.loop(), p0f.loop()
    local seen = {}
    outer:on_error(function(msg) seen[#seen + 1] = "outer got " .. msg end)
    inner:on_error(function(msg) seen[#seen + 1] = "inner got " .. msg end)
    inner:timer(0, function() error("in inner", 0) end)
    outer:timer(0, function()
      inner:run()
      error("in outer", 0)
    end)
    outer:run()
    print(table.concat(seen, "\n"))
    outer:close()
    inner:close()
  ]])
  lu.assertStrContains(r.out, "inner got error in timer callback: in inner\n"
    .. "outer got error in timer callback: in outer\n")
end

local rc = lu.LuaUnit.run()
srv:stop()
os.exit(rc)
