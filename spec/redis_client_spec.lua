--- loop:redis, the Redis connection object on the loop: against a real
-- redis-server (started here, stopped by PID), and against a stand-in on the
-- loop for what a real one will not do on demand (hang, garbage, answering
-- twice). Closing from callbacks, GC, and the loop going first run in a
-- child interpreter.
local lu = require("luaunit")
local p0f = require("p0f")
local R = require("support_redis")
local child = require("support_child")
local stand_in = require("support_fake_redis")

local server, why = R.start()
if not server then
  io.stderr:write("redis_client_spec: cannot start redis-server: ", tostring(why), "\n")
  os.exit(1) -- a missing server is a failure, not a pass
end
local PORT = server.port

-- A callback that records each call's arguments in `log`.
local function recorder(log)
  return function(...) log[#log + 1] = { n = select("#", ...), ... } end
end

TestRedisClient = {}

function TestRedisClient:setUp()
  self.loop = p0f.loop()
  R.command(R.client(PORT), "FLUSHALL")
end

function TestRedisClient:tearDown()
  self.loop:close()
end

function TestRedisClient:test_commands_and_every_reply_type()
  local r = self.loop:redis{ port = PORT }
  local log = {}
  lu.assertStrContains(tostring(r), "p0f.redis (127.0.0.1:" .. PORT .. ", not connected)")
  lu.assertTrue(r:command({ "SET", "k", "v\0\r\nx" }, recorder(log)))
  r:command({ "GET", "k" }, recorder(log))
  r:command({ "INCR", "n" }, recorder(log))
  r:command({ "GET", "missing" }, recorder(log))
  r:command({ "MGET", "k", "missing" }, recorder(log))
  r:command({ "NOSUCHCOMMAND", 1, 2.5 }, recorder(log))
  lu.assertEquals(#log, 0) -- never from inside command()
  lu.assertEquals(r:pending(), 6)
  lu.assertTrue(child.pump(self.loop, function() return #log == 6 end, 10))
  lu.assertEquals(r:pending(), 0)
  lu.assertTrue(r:connected())
  lu.assertStrContains(tostring(r), "connected)")
  lu.assertEquals(log[1], { n = 2, nil, "OK" })
  lu.assertEquals(log[2], { n = 2, nil, "v\0\r\nx" })
  lu.assertEquals(log[3], { n = 2, nil, 1 })
  lu.assertEquals(log[4].n, 2)
  lu.assertNil(log[4][1])
  lu.assertNil(log[4][2])
  lu.assertEquals(log[5], { n = 2, nil, { "v\0\r\nx", false } })
  lu.assertEquals(log[6].n, 3)
  lu.assertStrContains(log[6][1], "redis at 127.0.0.1:" .. PORT .. ": ERR unknown command")
  lu.assertNil(log[6][2])
  lu.assertEquals(log[6][3], "EREDIS")
  r:close()
end

function TestRedisClient:test_close_cancels_pending_now_and_is_idempotent()
  local r = self.loop:redis{ port = PORT }
  local log = {}
  r:command({ "PING" }, recorder(log))
  r:command({ "PING" }, recorder(log))
  r:close()
  lu.assertEquals(#log, 2) -- called back inside close()
  for _, call in ipairs(log) do
    lu.assertEquals(call.n, 3)
    lu.assertStrContains(call[1], "redis at 127.0.0.1:" .. PORT)
    lu.assertEquals(call[3], "ECANCELED")
  end
  r:close()
  lu.assertStrContains(tostring(r), "closed")
  lu.assertErrorMsgContains("closed redis", r.command, r, { "PING" }, function() end)
  lu.assertErrorMsgContains("closed redis", r.pending, r)
  lu.assertErrorMsgContains("closed redis", r.connected, r)
  self.loop:run() -- nothing left: returns
  lu.assertEquals(#log, 2)
end

function TestRedisClient:test_nobody_listening_is_ECONNREFUSED()
  local r = self.loop:redis{ port = require("support").free_port(), backoff = 60 }
  local log = {}
  r:command({ "PING" }, recorder(log))
  lu.assertTrue(child.pump(self.loop, function() return #log == 1 end, 10))
  lu.assertEquals(log[1][3], "ECONNREFUSED")
  r:command({ "PING" }, recorder(log)) -- within the backoff: at once, from the loop
  lu.assertEquals(#log, 1)
  lu.assertTrue(child.pump(self.loop, function() return #log == 2 end, 10))
  lu.assertEquals(log[2][3], "ECONNREFUSED")
  r:close()
end

function TestRedisClient:test_hung_redis_times_out()
  local stand = stand_in.start(self.loop, stand_in.HANG)
  local r = self.loop:redis{ port = stand.port, timeout = 0.2 }
  local log = {}
  r:command({ "GET", "k" }, recorder(log))
  lu.assertTrue(child.pump(self.loop, function() return #log == 1 end, 10))
  lu.assertEquals(stand.commands, 1) -- it arrived, and was not answered
  lu.assertEquals(log[1].n, 3)
  lu.assertStrContains(log[1][1], "did not answer in time")
  lu.assertEquals(log[1][3], "ETIMEDOUT")
  r:close()
  stand.close()
end

-- A reply nobody asked for fails no command: on_drop is where it shows.
function TestRedisClient:test_on_drop_says_why_the_connection_went()
  local stand = stand_in.start(self.loop, stand_in.OVER_ANSWER)
  local log, drops = {}, {}
  local r = self.loop:redis{ port = stand.port, on_drop = recorder(drops) }
  r:command({ "GET", "k" }, recorder(log))
  lu.assertTrue(child.pump(self.loop, function() return #drops == 1 end, 10))
  lu.assertEquals(log[1], { n = 2 }) -- its own reply: a miss
  lu.assertEquals(drops[1].n, 2)
  lu.assertStrContains(drops[1][1], "redis at 127.0.0.1:" .. stand.port .. ": redis sent a reply nobody asked for")
  lu.assertEquals(drops[1][2], "EPROTO")
  r:close()
  stand.close()
  -- a hung one: the deadline is the cause
  stand = stand_in.start(self.loop, stand_in.HANG)
  r = self.loop:redis{ port = stand.port, timeout = 0.2, on_drop = recorder(drops) }
  r:command({ "GET", "k" }, recorder(log))
  lu.assertTrue(child.pump(self.loop, function() return #drops == 2 end, 10))
  lu.assertEquals(drops[2][2], "ETIMEDOUT")
  r:close()
  stand.close()
  lu.assertEquals(#drops, 2) -- close() is not a drop
  lu.assertErrorMsgContains("on_drop", self.loop.redis, self.loop, { on_drop = "log" })
end

function TestRedisClient:test_bad_commands_raise()
  local r = self.loop:redis{ port = PORT }
  local cb = function() end
  lu.assertErrorMsgContains("1 to 64", r.command, r, {}, cb)
  local many = {}
  for i = 1, 65 do many[i] = "x" end
  lu.assertErrorMsgContains("1 to 64", r.command, r, many, cb)
  lu.assertErrorMsgContains("strings and numbers", r.command, r, { "GET", {} }, cb)
  lu.assertErrorMsgContains("function expected", r.command, r, { "PING" }, "cb")
  lu.assertErrorMsgContains("table expected", r.command, r, "PING", cb)
  lu.assertEquals(r:pending(), 0)
  r:close()
end

function TestRedisClient:test_bad_options_raise()
  local loop = self.loop
  for _, bad in ipairs{ 0, -1, 65536, 70000 } do
    lu.assertErrorMsgContains("port", loop.redis, loop, { port = bad })
  end
  for _, k in ipairs{ "timeout", "backoff" } do
    for _, bad in ipairs{ 0, -1, 0 / 0, math.huge, -math.huge, 1e300, "1" } do
      lu.assertErrorMsgContains(k, loop.redis, loop, { [k] = bad })
    end
  end
  lu.assertErrorMsgContains("host", loop.redis, loop, { host = 6379 })
  lu.assertErrorMsgContains("table expected", loop.redis, loop, "127.0.0.1")
  local closed = p0f.loop()
  closed:close()
  lu.assertErrorMsgContains("closed p0f loop", closed.redis, closed, {})
end

-- NaN and huge ports are range-checked before any conversion.
local function port_in_child(port_src)
  local r = child.run(child.PRELUDE .. [[
    local loop = p0f.loop()
    local ok, err = pcall(loop.redis, loop, { port = ]] .. port_src .. [[ })
    print("ok=" .. tostring(ok), "err=" .. tostring(err))
  ]])
  local why = port_src .. ": " .. child.describe(r.status) .. "; " .. r.out .. r.err:sub(1, 800)
  lu.assertEquals(r.status, 0, why)
  lu.assertStrContains(r.out, "ok=false", false, why)
  lu.assertStrContains(r.out, "port", false, why)
end

function TestRedisClient.test_nan_port_raises()
  port_in_child("0 / 0")
end

function TestRedisClient.test_huge_ports_raise()
  port_in_child("1e300")
  port_in_child("-1e300")
  port_in_child("math.huge")
  port_in_child("2^32 + 6379")
end

-- ---- in a child: errors in callbacks, GC, closing from callbacks -------------

local CHILD = child.PRELUDE .. [[
local stand_in = require("support_fake_redis")
local calls = {}
local function counted(name, also)
  return function(err, reply, code)
    calls[name] = (calls[name] or 0) + 1
    print(name .. ": err=" .. tostring(err) .. " reply=" .. tostring(reply) .. " code=" .. tostring(code))
    if also then also(err, reply, code) end
  end
end
local function print_calls(...)
  for _, name in ipairs{ ... } do print(name .. " called " .. tostring(calls[name] or 0) .. " times") end
end
]]

function TestRedisClient.test_error_in_callback_is_reported_and_the_loop_goes_on()
  local r = child.survives(CHILD .. [[
    local loop = p0f.loop()
    local g = guard(loop)
    local r = loop:redis{ port = PORT }
    r:command({ "PING" }, function() error("boom from a redis callback") end)
    r:command({ "PING" }, counted("second", function() r:close() g:close() end))
    loop:run()
    print_calls("second")
  ]], { PORT = PORT })
  lu.assertStrContains(r.err, "boom from a redis callback")
  lu.assertStrContains(r.out, "second: err=nil reply=PONG")
  lu.assertStrContains(r.out, "second called 1 times")
end

function TestRedisClient.test_collected_with_commands_owed()
  local r = child.survives(CHILD .. [[
    local loop = p0f.loop()
    local g = guard(loop)
    do
      local r = loop:redis{ port = PORT }
      for i = 1, 10 do r:command({ "PING" }, counted("ping")) end
      r:command({ "PING" }, function() loop:stop() end)
    end
    collectgarbage()
    collectgarbage()
    loop:run()
    print_calls("ping")
  ]], { PORT = PORT })
  lu.assertStrContains(r.out, "ping called 10 times")
  lu.assertNotStrContains(r.out, "guard fired")
end

function TestRedisClient.test_close_inside_a_reply_callback_with_others_pending()
  local r = child.survives(CHILD .. [[
    local loop = p0f.loop()
    local r = loop:redis{ port = PORT }
    r:command({ "PING" }, counted("first", function() r:close() collectgarbage() end))
    for i = 1, 5 do r:command({ "PING" }, counted("other" .. i)) end
    loop:run()
    print_calls("first", "other1", "other2", "other3", "other4", "other5")
  ]], { PORT = PORT })
  lu.assertStrContains(r.out, "first called 1 times")
  for i = 1, 5 do
    lu.assertStrContains(r.out, "other" .. i .. " called 1 times")
  end
  lu.assertStrContains(r.out, "code=ECANCELED")
end

-- A child where `r` talks to a stand-in answering `answer` (a field of
-- support_fake_redis) with this command `timeout`; `body` sends commands
-- (done() closes everything), then the loop runs and the callbacks named in
-- `names` report how often they ran.
local function against_stand_in(answer, timeout, body, names)
  return child.survives(CHILD .. string.format([[
    local loop = p0f.loop()
    local g = guard(loop)
    local stand = stand_in.start(loop, stand_in.%s)
    local r = loop:redis{ port = stand.port, timeout = %s }
    local function done() r:close() stand.close() g:close() end
  ]], answer, timeout) .. body .. [[
    loop:run()
    print_calls("]] .. table.concat(names, '", "') .. [[")
  ]])
end

function TestRedisClient.test_close_inside_the_ETIMEDOUT_callback_of_a_hung_redis()
  local r = against_stand_in("HANG", 0.2, [[
    r:command({ "GET", "k" }, counted("hung", function() done() collectgarbage() end))
  ]], { "hung" })
  lu.assertStrContains(r.out, "code=ETIMEDOUT")
  lu.assertStrContains(r.out, "hung called 1 times")
end

function TestRedisClient.test_close_inside_the_ETIMEDOUT_callback_with_others_pending()
  local r = against_stand_in("HANG", 0.2, [[
    r:command({ "GET", "a" }, counted("first", done))
    r:command({ "GET", "b" }, counted("second"))
    r:command({ "GET", "c" }, counted("third"))
  ]], { "first", "second", "third" })
  lu.assertStrContains(r.out, "first called 1 times")
  lu.assertStrContains(r.out, "second called 1 times")
  lu.assertStrContains(r.out, "third called 1 times")
end

function TestRedisClient.test_garbage_answer_is_a_clear_error()
  local r = against_stand_in("GARBAGE", 2, [[
    r:command({ "GET", "k" }, counted("garbled", done))
  ]], { "garbled" })
  lu.assertStrContains(r.out, "garbled called 1 times")
  lu.assertStrMatches(r.out, ".*garbled: err=redis at 127%.0%.0%.1:%d+: [^\n]+ reply=nil code=E%u+\n.*")
end

function TestRedisClient.test_over_answering_redis_does_not_abort_the_process()
  local r = against_stand_in("OVER_ANSWER", 0.5, [[
    r:command({ "GET", "a" }, counted("first"))
    r:command({ "GET", "b" }, counted("second"))
    loop:timer(1, done)
  ]], { "first", "second" })
  lu.assertStrContains(r.out, "first called 1 times")
  lu.assertStrContains(r.out, "second called 1 times")
  lu.assertNotStrContains(r.out, "guard fired")
end

function TestRedisClient.test_close_inside_on_drop()
  local r = against_stand_in("OVER_ANSWER", 2, [[
    r:close()
    r = loop:redis{ port = stand.port, on_drop = counted("dropped", function() done() collectgarbage() end) }
    r:command({ "GET", "k" }, counted("get"))
  ]], { "get", "dropped" })
  lu.assertStrContains(r.out, "get called 1 times")
  lu.assertStrContains(r.out, "dropped called 1 times")
  -- counted() prints on_drop's (message, code) as err= and reply=
  lu.assertStrContains(r.out, "nobody asked for reply=EPROTO")
end

function TestRedisClient.test_close_after_loop_close()
  local r = child.survives(CHILD .. [[
    local loop = p0f.loop()
    local r = loop:redis{ port = PORT }
    r:command({ "PING" }, counted("owed"))
    loop:close()
    r:close()
    r:close()
    print_calls("owed")
    print("tostring=" .. tostring(r))
  ]], { PORT = PORT })
  lu.assertStrContains(r.out, "owed called 1 times")
  lu.assertStrContains(r.out, "code=ECANCELED")
  lu.assertStrContains(r.out, "tostring=p0f.redis (127.0.0.1:" .. PORT .. ", closed)")
end

function TestRedisClient.test_close_of_a_connected_redis_after_loop_close()
  child.survives(CHILD .. [[
    local loop = p0f.loop()
    local r = loop:redis{ port = PORT }
    r:command({ "PING" }, function() loop:stop() end)
    loop:run() -- connected now, idle
    loop:close()
    r:close()
  ]], { PORT = PORT })
end

function TestRedisClient.test_collected_after_loop_close()
  child.survives(CHILD .. [[
    local loop = p0f.loop()
    do
      local r = loop:redis{ port = PORT }
      r:command({ "PING" }, function() loop:stop() end)
      loop:run()
      r:close()
    end
    do
      local r = loop:redis{ port = PORT }
      r:command({ "PING" }, function() loop:stop() end)
      loop:run()
      loop:close()
    end
    collectgarbage()
    collectgarbage()
  ]], { PORT = PORT })
end

local rc = lu.LuaUnit.run()
R.stop(server)
os.exit(rc)
