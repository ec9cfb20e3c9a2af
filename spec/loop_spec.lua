--- p0f.loop itself: new and default loops, run/run_once/run_nowait/now/stop/
-- close, use after close; and closing the loop from inside its own
-- callbacks, or while objects still hang on it. Risky cases run in a child
-- interpreter.
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")
local R = require("support_redis")
local child = require("support_child")

local unpack = table.unpack or unpack
local srv -- a scripted p0f for the loop clients

TestLoop = {}

function TestLoop.setupClass()
  srv = fake.start{ rules = { ["203.0.113.7"] = "hang", ["*"] = "echo" } }
end

function TestLoop.teardownClass()
  srv:stop()
end

function TestLoop.test_new_and_default_loops()
  local own, new, d = p0f.loop(), p0f.loop("new"), p0f.loop("default")
  lu.assertEquals(tostring(own), "p0f.loop (own)")
  lu.assertEquals(tostring(new), "p0f.loop (own)")
  lu.assertEquals(tostring(d), "p0f.loop (default)")
  lu.assertErrorMsgContains('"new" or "default" expected', p0f.loop, "bogus")
  lu.assertErrorMsgContains("string expected", p0f.loop, {})
  own:close()
  new:close()
end

function TestLoop.test_run_on_an_empty_loop_returns_at_once()
  local loop = p0f.loop()
  lu.assertFalse(loop:run())
  lu.assertFalse(loop:run_once())
  lu.assertFalse(loop:run_nowait())
  loop:close()
end

function TestLoop.test_stop_from_a_callback_then_run_again()
  local loop = p0f.loop()
  local n = 0
  local t = loop:timer(0, function() n = n + 1 if n % 2 == 0 then loop:stop() end end, 0.01)
  lu.assertTrue(loop:run()) -- stopped with the repeating timer still active
  lu.assertEquals(n, 2)
  lu.assertTrue(loop:run())
  lu.assertEquals(n, 4)
  t:close()
  lu.assertFalse(loop:run())
  loop:close()
end

function TestLoop.test_run_once_and_run_nowait_do_one_round()
  local loop = p0f.loop()
  local n = 0
  local t = loop:timer(0, function() n = n + 1 end, 0.01)
  lu.assertTrue(loop:run_once())
  lu.assertEquals(n, 1)
  lu.assertTrue(loop:run_nowait()) -- nothing due yet: back at once
  lu.assertTrue(n <= 2)
  t:close()
  loop:close()
end

function TestLoop.test_now_is_the_loop_time()
  local loop = p0f.loop()
  local before = loop:now()
  lu.assertEquals(type(before), "number")
  local inside
  loop:timer(0.02, function() inside = loop:now() end)
  loop:run()
  lu.assertTrue(inside > before, tostring(inside) .. " <= " .. tostring(before))
  lu.assertTrue(loop:now() >= inside)
  loop:close()
end

function TestLoop.test_close_is_idempotent_and_use_after_close_raises()
  local loop = p0f.loop()
  loop:close()
  loop:close()
  lu.assertEquals(tostring(loop), "p0f.loop (closed)")
  local cb = function() end
  for name, args in pairs{
    run = {}, run_once = {}, run_nowait = {}, now = {}, stop = {},
    client = { { socket = srv.socket } }, listen = { "127.0.0.1:0", cb },
    timer = { 1, cb }, signal = { "USR1", cb }, redis = { {} },
  } do
    lu.assertErrorMsgContains("attempt to use a closed p0f loop", loop[name], loop, unpack(args))
  end
end

-- ---- in a child: closing the loop inside its own callbacks (timer, client,
-- conn, listener, Redis) must neither abort inside libev nor read the freed
-- loop afterwards ------------------------------------------------------------

local CLOSED_CHECK = [[
print("run returned")
print("tostring=" .. tostring(loop))
print("use=" .. tostring(select(2, pcall(loop.timer, loop, 1, function() end))))
]]

local function assert_closed_cleanly(r)
  lu.assertStrContains(r.out, "run returned")
  lu.assertStrContains(r.out, "tostring=p0f.loop (closed)")
  lu.assertStrContains(r.out, "use=")
  lu.assertStrContains(r.out, "attempt to use a closed p0f loop")
end

function TestLoop.test_close_inside_a_timer_callback()
  assert_closed_cleanly(child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    loop:timer(0, function() loop:close() collectgarbage() end)
    local other = loop:timer(0, function() end, 0.01) -- still active after the close
    loop:run()
  ]] .. CLOSED_CHECK))
end

function TestLoop.test_close_inside_a_loop_client_callback()
  assert_closed_cleanly(child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    local c = loop:client{ socket = SOCK }
    c:query("192.0.2.1", function() loop:close() collectgarbage() end)
    c:query("192.0.2.2", function() end)
    c:query("203.0.113.7", function() end) -- never answered
    loop:timer(10, function() end) -- keeps it running: only the close ends it
    loop:run()
  ]] .. CLOSED_CHECK, { SOCK = srv.socket }))
end

function TestLoop.test_close_inside_a_conn_callback()
  assert_closed_cleanly(child.survives(child.PRELUDE .. child.CONNECT .. [[
    local loop = p0f.loop()
    local l = loop:listen("127.0.0.1:0", function(conn)
      conn:start(function(c) c:write("x") loop:close() collectgarbage() end)
    end)
    local client = connect(l:port())
    client:send("hello")
    loop:timer(10, function() end) -- keeps it running: only the close ends it
    loop:run()
  ]] .. CLOSED_CHECK))
end

function TestLoop.test_close_inside_a_listener_callback()
  assert_closed_cleanly(child.survives(child.PRELUDE .. child.CONNECT .. [[
    local loop = p0f.loop()
    local l = loop:listen("127.0.0.1:0", function(conn)
      conn:start(function() end)
      loop:close()
      collectgarbage()
    end)
    local clients = {}
    for i = 1, 3 do -- several in one accept burst
      clients[i] = connect(l:port())
    end
    loop:run()
  ]] .. CLOSED_CHECK))
end

function TestLoop.test_close_inside_a_redis_callback()
  local server = assert(R.start())
  local ok, r = pcall(child.survives, child.PRELUDE .. [[
    local loop = p0f.loop()
    local r = loop:redis{ port = PORT }
    r:command({ "PING" }, function() loop:close() collectgarbage() end)
    r:command({ "PING" }, function() end)
    loop:run()
  ]] .. CLOSED_CHECK .. [[
    r:close()
  ]], { PORT = server.port })
  R.stop(server)
  if not ok then error(r, 0) end
  assert_closed_cleanly(r)
end

-- ---- in a child: objects dropped or left open -----------------------------------

function TestLoop.test_client_collected_in_its_own_callback_after_cancel_of_a_finished_handle()
  local r = child.survives(child.PRELUDE .. child.CONNECT .. [[
    local loop = p0f.loop()
    local c = loop:client{ socket = SOCK }
    local hs, delivered = {}, 0
    hs[1] = c:query("192.0.2.1", function()
      delivered = delivered + 1
      c:cancel(hs[2]) -- answered already, its callback not run yet
      c = nil        -- the last reference: the client owes nothing now
      collectgarbage()
      collectgarbage()
    end)
    hs[2] = c:query("192.0.2.2", function() delivered = delivered + 1 end)
    loop:run_nowait() -- both queries go out
    socket.sleep(0.3) -- both answers wait in the socket: one read finishes both
    loop:run()
    collectgarbage()
    print("delivered=" .. delivered)
  ]], { SOCK = srv.socket })
  lu.assertStrContains(r.out, "delivered=1")
end

function TestLoop.test_closing_the_default_loop_stops_its_watchers()
  local r = child.run(child.PRELUDE .. [[
    local d = p0f.loop("default")
    local forgotten = d:timer(3600, function() end, 3600)
    d:close()
    local again = p0f.loop("default")
    local fired = false
    again:timer(0.01, function() fired = true end)
    again:run() -- only its own timer is left: it returns once that fired
    print("run returned, fired=" .. tostring(fired))
  ]], nil, 5)
  lu.assertEquals(r.status, 0, child.describe(r.status) .. "; " .. r.err:sub(1, 800))
  lu.assertStrContains(r.out, "run returned, fired=true")
end

function TestLoop.test_everything_left_open_at_exit()
  local server = assert(R.start())
  local ok, err = pcall(child.survives, child.PRELUDE .. child.CONNECT .. [[
    local loop = p0f.loop()
    local t = loop:timer(3600, function() end, 1)
    local c = loop:client{ socket = SOCK }
    c:query("203.0.113.7", function() end)
    local conn
    local l = loop:listen("127.0.0.1:0", function(x) conn = x x:start(function() end) end)
    local client = connect(l:port())
    local r = loop:redis{ port = PORT }
    r:command({ "PING" }, function() end)
    for _ = 1, 100 do
      if conn then break end
      loop:run_once()
    end
    assert(conn, "not accepted")
    conn:write(string.rep("x", 4 * 1024 * 1024))
    r:command({ "BLPOP", "nothing", "0" }, function() end) -- owed at exit
    -- nothing closed: the state goes at exit, finalizers in any order
  ]], { SOCK = srv.socket, PORT = server.port })
  R.stop(server)
  if not ok then error(err, 0) end
end

function TestLoop.test_default_loop_memory_released_when_the_state_closes()
  -- Only a sanitizer sees this one: LeakSanitizer reports what libev
  -- allocated for a default loop that was closed and never destroyed.
  child.survives(child.PRELUDE .. [[
    local d = p0f.loop("default")
    local sig = d:signal("USR1", function() end)
    d:timer(0, function() sig:stop() end)
    d:run()
    d:close()
  ]])
end

function TestLoop.test_loop_dropped_while_its_objects_live()
  child.survives(child.PRELUDE .. [[
    local t, l, r
    do
      local loop = p0f.loop()
      t = loop:timer(0.01, function() end)
      l = loop:listen("127.0.0.1:0", function() end)
      r = loop:redis{ port = 1 }
    end
    collectgarbage()
    collectgarbage()
    t:again()
    l:close()
    r:close()
    t:close()
    collectgarbage()
  ]])
end

os.exit(lu.LuaUnit.run())
