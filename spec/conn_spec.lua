--- p0f.conn, the connections a listener accepts: reading, writing with
-- buffering, the peer going away, close (also inside its callbacks), GC
-- while open. Risky cases run in a child interpreter.
local lu = require("luaunit")
local p0f = require("p0f")
local child = require("support_child")

-- A server-side conn on `loop` and the LuaSocket client at its other end.
-- The snippet is also the preamble of the child scripts below.
local PAIR = child.CONNECT .. [[
local function pair(loop, on_read, on_close, on_eof)
  local conn
  local l = assert(loop:listen("127.0.0.1:0", function(c)
    conn = c
    c:start(on_read, on_close, on_eof)
  end))
  local client = connect(l:port())
  for _ = 1, 500 do
    if conn then break end
    loop:run_nowait()
    socket.sleep(0.01)
  end
  l:close()
  return assert(conn, "not accepted"), client
end
]]
local pair = assert((loadstring or load)(PAIR .. " return pair"))()

TestConn = {}

function TestConn:setUp()
  self.loop = p0f.loop()
end

function TestConn:tearDown()
  self.loop:close()
end

function TestConn:test_echo_with_the_right_callback_arguments()
  local reads = {}
  local conn, client = pair(self.loop, function(...)
    local c, data = ...
    reads[#reads + 1] = { n = select("#", ...), c = c, data = data }
    lu.assertTrue(c:write(data))
  end)
  lu.assertStrContains(tostring(conn), "p0f.conn (127.0.0.1, open)")
  lu.assertEquals(conn:peer(), "127.0.0.1")
  assert(client:send("hello\n"))
  lu.assertTrue(child.pump(self.loop, function() return #reads > 0 end, 10))
  lu.assertEquals(reads[1].n, 2)
  lu.assertIs(reads[1].c, conn)
  lu.assertEquals(reads[1].data, "hello\n")
  lu.assertEquals(client:receive("*l"), "hello")
  client:close()
  conn:close()
end

function TestConn:test_peer_closing_calls_on_close_with_the_conn_only()
  local closed
  local conn, client = pair(self.loop, function() end, function(...) closed = { n = select("#", ...), ... } end)
  client:close()
  lu.assertTrue(child.pump(self.loop, function() return closed end, 10))
  lu.assertEquals(closed.n, 1)
  lu.assertIs(closed[1], conn)
  lu.assertTrue(conn:closed())
  lu.assertStrContains(tostring(conn), "closed")
  self.loop:run() -- a closed conn keeps nothing alive
end

function TestConn:test_half_close_calls_on_eof_and_the_answer_still_goes_out()
  local eof, closed
  local conn, client = pair(self.loop, function() end, function() closed = true end,
    function(...) eof = { n = select("#", ...), ... } end)
  assert(client:send("question\n"))
  client:shutdown("send")
  lu.assertTrue(child.pump(self.loop, function() return eof end, 10))
  lu.assertEquals(eof.n, 1)
  lu.assertIs(eof[1], conn)
  lu.assertNil(closed)
  lu.assertFalse(conn:closed()) -- the fd is kept for the answer
  lu.assertTrue(conn:write("answer\n"))
  conn:close()
  lu.assertTrue(child.pump(self.loop, function() return conn:closed() end, 10))
  lu.assertEquals(client:receive("*l"), "answer")
  lu.assertEquals(select(2, client:receive("*l")), "closed")
  client:close()
end

function TestConn:test_pause_stops_reading_until_resume()
  local got = {}
  local conn, client = pair(self.loop, function(_, data) got[#got + 1] = data end)
  lu.assertFalse(conn:paused())
  conn:pause()
  conn:pause() -- twice is harmless
  lu.assertTrue(conn:paused())
  assert(client:send("held\n"))
  -- a paused conn reads nothing, however long the loop runs
  lu.assertFalse(child.pump(self.loop, function() return #got > 0 end, 0.3))
  conn:resume()
  lu.assertFalse(conn:paused())
  lu.assertTrue(child.pump(self.loop, function() return #got > 0 end, 10))
  lu.assertEquals(table.concat(got), "held\n")
  client:close()
  conn:close()
  conn:resume() -- a closed conn stays closed
  conn:pause()
  lu.assertTrue(conn:closed())
end

function TestConn:test_resume_after_half_close_does_not_read_again()
  local eofs, closed = 0, false
  local conn, client = pair(self.loop, function() end, function() closed = true end,
    function() eofs = eofs + 1 end)
  client:shutdown("send")
  lu.assertTrue(child.pump(self.loop, function() return eofs > 0 end, 10))
  conn:pause()
  conn:resume() -- must not restart the read watcher on a peer at end of file
  lu.assertFalse(child.pump(self.loop, function() return eofs > 1 or closed end, 0.3))
  lu.assertEquals(eofs, 1)
  lu.assertFalse(conn:closed())
  conn:close()
  client:close()
end

function TestConn:test_abort_frees_fd_and_buffer_at_once()
  local conn, client = pair(self.loop, function() end)
  -- more than the socket buffers take: the rest stays in conn's buffer
  local chunk = string.rep("x", 65536)
  for _ = 1, 64 do lu.assertTrue(conn:write(chunk)) end
  self.loop:run_nowait()
  lu.assertTrue(conn:buffered() > 0)
  conn:close() -- graceful: held while the peer does not read
  self.loop:run_nowait()
  lu.assertTrue(conn:buffered() > 0)
  conn:abort()
  lu.assertTrue(conn:closed())
  lu.assertEquals(conn:buffered(), 0)
  conn:abort() -- twice is harmless
  self.loop:run() -- nothing left to keep the loop alive
  client:close()
end

function TestConn:test_reset_calls_on_close_with_message_and_code()
  local closed
  local _, client = pair(self.loop, function() end, function(...) closed = { n = select("#", ...), ... } end)
  client:setoption("linger", { on = true, timeout = 0 }) -- close() sends RST
  client:close()
  lu.assertTrue(child.pump(self.loop, function() return closed end, 10))
  lu.assertEquals(closed.n, 3)
  lu.assertEquals(type(closed[2]), "string")
  lu.assertEquals(closed[3], "ECONNRESET")
end

function TestConn:test_big_write_is_buffered_and_close_waits_for_it()
  local conn, client = pair(self.loop, function() end)
  local big = string.rep("0123456789abcdef", 4 * 65536) -- 4 MB, more than the socket takes
  lu.assertTrue(conn:write(big))
  lu.assertTrue(conn:buffered() > 0)
  conn:close() -- no more reading; the fd goes once the output is written
  lu.assertTrue(conn:closed())
  lu.assertEquals({ conn:write("more") }, { nil, "connection closed: broken pipe", "EPIPE" })
  client:settimeout(0)
  local got, eof = {}, false
  lu.assertTrue(child.pump(self.loop, function()
    local data, err, partial = client:receive(65536)
    got[#got + 1] = data or partial
    eof = err == "closed"
    return eof
  end, 20))
  lu.assertEquals(#table.concat(got), #big)
  lu.assertTrue(table.concat(got) == big)
  lu.assertEquals(conn:buffered(), 0)
  client:close()
end

function TestConn:test_programmer_errors_raise()
  local conn, client = pair(self.loop, function() end)
  lu.assertErrorMsgContains("already started", conn.start, conn, function() end)
  lu.assertErrorMsgContains("string expected", conn.write, conn, {})
  conn:close()
  conn:close() -- idempotent
  lu.assertErrorMsgContains("closed connection", conn.start, conn, function() end)
  lu.assertEquals({ conn:write("x") }, { nil, "connection closed: broken pipe", "EPIPE" })
  lu.assertEquals(conn:buffered(), 0)
  lu.assertEquals(conn:peer(), "127.0.0.1")
  client:close()
end

function TestConn:test_accepted_but_not_started_is_closed()
  local got
  local l = assert(self.loop:listen("127.0.0.1:0", function(c) got = c end))
  local client = child.connect(l:port())
  lu.assertTrue(child.pump(self.loop, function() return got end, 10))
  lu.assertTrue(got:closed())
  lu.assertErrorMsgContains("closed connection", got.start, got, function() end)
  lu.assertEquals({ client:receive(1) }, { nil, "closed", "" })
  client:close()
  l:close()
end

-- ---- in a child: callbacks that raise or close, GC, the loop going first -----

function TestConn.test_error_in_on_read_is_reported_and_reading_goes_on()
  local r = child.survives(child.PRELUDE .. PAIR .. [[
    local loop = p0f.loop()
    local g = guard(loop)
    local n = 0
    local conn, client = pair(loop, function(c, data)
      n = n + 1
      if n == 1 then error("boom from on_read") end
      c:close()
      g:close()
    end)
    client:send("a")
    loop:run_once()
    client:send("b")
    loop:run()
    print("n=" .. n)
  ]])
  lu.assertStrContains(r.err, "boom from on_read")
  lu.assertStrContains(r.out, "n=2")
end

function TestConn.test_error_in_on_close_is_reported()
  local r = child.survives(child.PRELUDE .. PAIR .. [[
    local loop = p0f.loop()
    local conn, client = pair(loop, function() end, function() error("boom from on_close") end)
    client:close()
    loop:run()
    print("closed=" .. tostring(conn:closed()))
  ]])
  lu.assertStrContains(r.err, "boom from on_close")
  lu.assertStrContains(r.out, "closed=true")
end

function TestConn.test_close_inside_its_own_callbacks()
  local r = child.survives(child.PRELUDE .. PAIR .. [[
    local loop = p0f.loop()
    local n = 0
    do
      local conn, client = pair(loop, function(c, data)
        n = n + 1
        c:write("bye")
        c:close()
        c:close()
        collectgarbage()
        collectgarbage()
      end)
      client:send("x")
      loop:run()
      print("reply=" .. tostring(client:receive(3)))
    end
    do
      local conn, client = pair(loop, function() end, function(c)
        n = n + 1
        c:close()
        collectgarbage()
      end)
      client:close()
      loop:run()
    end
    collectgarbage()
    print("n=" .. n)
  ]])
  lu.assertStrContains(r.out, "reply=bye")
  lu.assertStrContains(r.out, "n=2")
end

function TestConn.test_collected_while_open_still_reads()
  local r = child.survives(child.PRELUDE .. PAIR .. [[
    local loop = p0f.loop()
    local client
    do
      local _
      _, client = pair(loop, function(c, data) c:write(data) c:close() end)
    end
    collectgarbage()
    collectgarbage()
    client:send("still here")
    loop:run()
    print("echo=" .. tostring(client:receive(10)))
  ]])
  lu.assertStrContains(r.out, "echo=still here")
end

function TestConn.test_conn_outlives_its_loop_close()
  child.survives(child.PRELUDE .. PAIR .. [[
    local loop = p0f.loop()
    local conn, client = pair(loop, function() end)
    conn:write(string.rep("x", 4 * 1024 * 1024)) -- something buffered
    loop:close()
    conn:buffered()
    conn:write("more")
    tostring(conn)
    conn:close()
    conn:close()
    conn = nil
    collectgarbage()
    collectgarbage()
    client:close()
  ]])
end

function TestConn.test_collected_with_output_buffered_at_exit()
  child.survives(child.PRELUDE .. PAIR .. [[
    local loop = p0f.loop()
    local _, client = pair(loop, function() end)
    _:write(string.rep("x", 4 * 1024 * 1024))
    _ = nil
    collectgarbage()
    collectgarbage()
    -- and the whole state goes at exit with the loop and the conn open
  ]])
end

os.exit(lu.LuaUnit.run())
