--- loop:listen: TCP and UNIX listeners, the accept callback, close (also
-- inside the callback), GC while listening, bad addresses, backlogs and
-- modes. Risky cases run in a child interpreter.
local lu = require("luaunit")
local p0f = require("p0f")
local socket = require("socket")
local support = require("support")
local child = require("support_child")

local connect = child.connect

TestListener = {}

function TestListener:setUp()
  self.loop = p0f.loop()
end

function TestListener:tearDown()
  self.loop:close()
end

function TestListener:test_accepts_tcp_with_the_connection_and_peer()
  local got = {}
  local l = assert(self.loop:listen("127.0.0.1:0", function(...) got[#got + 1] = { ... } end))
  local port = l:port()
  lu.assertTrue(port > 0 and port < 65536)
  lu.assertStrContains(tostring(l), "p0f.listener (127.0.0.1:0, listening)")
  local c1, c2 = connect(port), connect(port)
  lu.assertTrue(child.pump(self.loop, function() return #got == 2 end, 10))
  for _, args in ipairs(got) do
    lu.assertEquals(#args, 2)
    lu.assertStrContains(tostring(args[1]), "p0f.conn (127.0.0.1, ")
    lu.assertEquals(args[2], "127.0.0.1")
    -- not started inside the callback: nobody reads it, so it is closed
    lu.assertTrue(args[1]:closed())
  end
  lu.assertEquals({ c1:receive(1) }, { nil, "closed", "" })
  c1:close()
  c2:close()
  l:close()
  self.loop:run() -- nothing left to keep it running
end

function TestListener:test_unix_socket_with_mode_removed_on_close()
  local path = support.tmpname(".sock")
  local accepted = 0
  local l = assert(self.loop:listen("unix:" .. path, function() accepted = accepted + 1 end, { mode = 384 }))
  local p = io.popen("stat -c %a " .. path)
  lu.assertEquals(p:read("*l"), "600")
  p:close()
  lu.assertNil(l:port())
  local u = assert(require("socket.unix").stream())
  u:settimeout(5)
  assert(u:connect(path))
  lu.assertTrue(child.pump(self.loop, function() return accepted == 1 end, 10))
  u:close()
  l:close()
  lu.assertNil(io.open(path), "socket file left behind")
end

function TestListener:test_bad_addresses_are_EINVAL()
  local cb = function() end
  for _, addr in ipairs{ "nonsense", "localhost:25", "127.0.0.1:", "127.0.0.1:70000",
                         "127.0.0.1:-1", "127.0.0.1:99999999999999999999", "[::1]25", "unix:" } do
    local l, err, code = self.loop:listen(addr, cb)
    lu.assertNil(l, addr)
    lu.assertEquals(code, "EINVAL", addr)
    lu.assertStrContains(err, "bad listen address", false)
  end
  local l, _, code = self.loop:listen("unix:/" .. string.rep("x", 110), cb)
  lu.assertNil(l)
  lu.assertEquals(code, "EINVAL")
  l, _, code = self.loop:listen(string.rep("1", 300), cb)
  lu.assertNil(l)
  lu.assertEquals(code, "ENAMETOOLONG")
end

function TestListener:test_port_in_use_is_a_runtime_error()
  local a = assert(self.loop:listen("127.0.0.1:0", function() end))
  local b, err, code = self.loop:listen("127.0.0.1:" .. a:port(), function() end)
  lu.assertNil(b)
  lu.assertStrContains(err, "listen on 127.0.0.1:" .. a:port() .. ": Address already in use")
  lu.assertEquals(type(code), "string")
  a:close()
end

function TestListener:test_programmer_errors_raise()
  local loop = self.loop
  lu.assertErrorMsgContains("function expected", loop.listen, loop, "127.0.0.1:0", "cb")
  lu.assertErrorMsgContains("table expected", loop.listen, loop, "127.0.0.1:0", function() end, 5)
  lu.assertErrorMsgContains("backlog", loop.listen, loop, "127.0.0.1:0", function() end, { backlog = "x" })
  local closed = p0f.loop()
  closed:close()
  lu.assertErrorMsgContains("closed p0f loop", closed.listen, closed, "127.0.0.1:0", function() end)
end

function TestListener:test_close_is_idempotent()
  local l = assert(self.loop:listen("127.0.0.1:0", function() end))
  local port = l:port()
  l:close()
  l:close()
  lu.assertNil(l:port())
  lu.assertStrContains(tostring(l), "closed")
  local c = assert(socket.tcp())
  c:settimeout(2)
  lu.assertNil(c:connect("127.0.0.1", port)) -- nobody listens any more
  c:close()
  self.loop:run() -- a closed listener keeps nothing alive
end

-- ---- in a child: callbacks that raise, close, or find the listener collected --

local CONNECT = child.CONNECT

function TestListener.test_error_in_accept_callback_is_reported_and_it_goes_on()
  local r = child.survives(child.PRELUDE .. CONNECT .. [[
    local loop = p0f.loop()
    local g = guard(loop)
    local n = 0
    local l
    l = loop:listen("127.0.0.1:0", function()
      n = n + 1
      if n == 1 then error("boom from on_accept") end
      l:close()
      g:close()
    end)
    local a = connect(l:port())
    loop:run_once()
    local b = connect(l:port())
    loop:run()
    print("n=" .. n)
  ]])
  lu.assertStrContains(r.err, "boom from on_accept")
  lu.assertStrContains(r.out, "n=2")
end

function TestListener.test_close_inside_its_own_accept_callback()
  local r = child.survives(child.PRELUDE .. CONNECT .. [[
    local loop = p0f.loop()
    local n = 0
    local l
    l = loop:listen("127.0.0.1:0", function(conn)
      n = n + 1
      conn:start(function() end)
      l:close()
      l:close()
      collectgarbage()
    end)
    local port = l:port()
    local a, b, c = connect(port), connect(port), connect(port) -- one burst, one accepted
    loop:run_once()
    print("n=" .. n)
    l = nil
    collectgarbage()
    collectgarbage()
  ]])
  lu.assertStrContains(r.out, "n=1")
end

function TestListener.test_collected_while_listening_still_accepts()
  local r = child.survives(child.PRELUDE .. CONNECT .. [[
    local loop = p0f.loop()
    local g = guard(loop)
    local n = 0
    local port
    do
      local l = loop:listen("127.0.0.1:0", function() n = n + 1 loop:stop() end)
      port = l:port()
    end
    collectgarbage()
    collectgarbage()
    local a = connect(port)
    loop:run()
    print("n=" .. n)
  ]])
  lu.assertStrContains(r.out, "n=1")
  lu.assertNotStrContains(r.out, "guard fired")
end

function TestListener.test_listener_outlives_its_loop_close()
  child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    local l = loop:listen("127.0.0.1:0", function() end)
    loop:close()
    l:port()
    tostring(l)
    l:close()
    l = nil
    collectgarbage()
    collectgarbage()
  ]])
end

-- NaN and out-of-range numbers: a clear error, not undefined behaviour.
local function listen_with(opts_src)
  return child.run(child.PRELUDE .. [[
    local loop = p0f.loop()
    local path = os.tmpname()
    os.remove(path)
    local ok, l, err = pcall(loop.listen, loop, "unix:" .. path, function() end, ]] .. opts_src .. [[)
    local p = io.popen("stat -c %a " .. path .. " 2>/dev/null")
    print("ok=" .. tostring(ok), "listener=" .. tostring(l), "err=" .. tostring(err),
          "file_mode=" .. tostring(p:read("*l")))
    p:close()
    if ok and l then l:close() end
    os.remove(path)
  ]])
end

local function assert_raises_naming(opts_src, field)
  local r = listen_with(opts_src)
  local why = opts_src .. ": " .. child.describe(r.status) .. "; " .. r.out .. r.err:sub(1, 800)
  lu.assertEquals(r.status, 0, why)
  lu.assertStrContains(r.out, "ok=false", false, why)
  lu.assertStrContains(r.out, field, false, why)
end

function TestListener.test_on_error_not_a_function_raises()
  assert_raises_naming("{ on_error = 5 }", "on_error")
end

function TestListener.test_mode_minus_one_raises()
  assert_raises_naming("{ mode = -1 }", "mode")
end

function TestListener.test_mode_nan_raises()
  assert_raises_naming("{ mode = 0 / 0 }", "mode")
end

function TestListener.test_mode_huge_raises()
  assert_raises_naming("{ mode = 1e300 }", "mode")
  assert_raises_naming("{ mode = math.huge }", "mode")
  assert_raises_naming("{ mode = 65536 }", "mode")
end

function TestListener.test_backlog_nan_raises()
  assert_raises_naming("{ backlog = 0 / 0 }", "backlog")
end

function TestListener.test_backlog_huge_raises()
  assert_raises_naming("{ backlog = 1e300 }", "backlog")
  assert_raises_naming("{ backlog = -1e300 }", "backlog")
  assert_raises_naming("{ backlog = math.huge }", "backlog")
  assert_raises_naming("{ backlog = 2^31 }", "backlog")
end

function TestListener.test_good_mode_and_backlog_still_work()
  local r = listen_with("{ mode = 432, backlog = 5 }") -- 0660
  lu.assertEquals(r.status, 0, r.err)
  lu.assertStrContains(r.out, "ok=true")
  lu.assertStrContains(r.out, "file_mode=660")
end

os.exit(lu.LuaUnit.run())
