--- loop:timer: lifecycle, callbacks, close inside its own callback, GC with
-- a callback owed, bad arguments. Risky cases run in a child interpreter.
local lu = require("luaunit")
local p0f = require("p0f")
local child = require("support_child")

TestTimer = {}

function TestTimer:setUp()
  self.loop = p0f.loop()
end

function TestTimer:tearDown()
  self.loop:close()
end

function TestTimer:test_fires_once_with_the_timer_as_argument()
  local got = {}
  local t = self.loop:timer(0.01, function(...) got[#got + 1] = { ... } end)
  lu.assertTrue(t:active())
  lu.assertEquals(#got, 0) -- never from inside timer()
  self.loop:run() -- returns once the one-shot has fired
  lu.assertEquals(#got, 1)
  lu.assertEquals(#got[1], 1)
  lu.assertIs(got[1][1], t)
  lu.assertFalse(t:active())
end

function TestTimer:test_repeats_until_stopped_in_its_callback()
  local n = 0
  local t
  t = self.loop:timer(0, function(self_)
    n = n + 1
    if n == 3 then self_:stop() end
  end, 0.01)
  self.loop:run()
  lu.assertEquals(n, 3)
  lu.assertFalse(t:active())
  t:stop() -- idempotent
  lu.assertFalse(t:active())
end

function TestTimer:test_again_restarts_a_fired_or_stopped_timer()
  local n = 0
  local t = self.loop:timer(0.01, function() n = n + 1 end)
  self.loop:run()
  lu.assertEquals(n, 1)
  t:again()
  lu.assertTrue(t:active())
  self.loop:run()
  lu.assertEquals(n, 2)
  t:again(0.02)
  t:stop()
  self.loop:run() -- nothing active: returns at once
  lu.assertEquals(n, 2)
  t:again(0)
  self.loop:run()
  lu.assertEquals(n, 3)
end

function TestTimer:test_close_is_idempotent_and_use_after_close_raises()
  local fired = false
  local t = self.loop:timer(0.01, function() fired = true end)
  t:close()
  t:close()
  lu.assertFalse(t:active())
  self.loop:run()
  lu.assertFalse(fired)
  lu.assertErrorMsgContains("closed timer", t.again, t)
  lu.assertErrorMsgContains("closed timer", t.again, t, 1)
end

function TestTimer:test_tostring_names_the_class_and_state()
  local t = self.loop:timer(10, function() end)
  lu.assertStrContains(tostring(t), "p0f.timer")
  lu.assertStrContains(tostring(t), "active")
  t:close()
  lu.assertStrContains(tostring(t), "closed")
end

function TestTimer:test_bad_seconds_raise_clear_errors()
  local cb = function() end
  for _, bad in ipairs{ 0 / 0, -1, -0.001, math.huge, -math.huge, 1e300 } do
    lu.assertErrorMsgContains("seconds", self.loop.timer, self.loop, bad, cb)
    lu.assertErrorMsgContains("seconds", self.loop.timer, self.loop, 1, cb, bad)
  end
  lu.assertErrorMsgContains("number expected", self.loop.timer, self.loop, "soon", cb)
  lu.assertErrorMsgContains("function expected", self.loop.timer, self.loop, 1, "cb")
  local t = self.loop:timer(10, cb)
  lu.assertErrorMsgContains("seconds", t.again, t, 0 / 0)
  lu.assertErrorMsgContains("seconds", t.again, t, -1)
  lu.assertErrorMsgContains("seconds", t.again, t, 1e300)
  t:close()
end

function TestTimer:test_on_a_closed_loop_raises()
  local loop = p0f.loop()
  loop:close()
  lu.assertErrorMsgContains("closed p0f loop", loop.timer, loop, 1, function() end)
end

-- ---- in a child: errors reported on stderr, close and GC from callbacks ------

function TestTimer.test_error_in_callback_is_reported_and_the_loop_goes_on()
  local r = child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    local once, reps = 0, 0
    loop:timer(0, function() error("boom from a timer") end)
    loop:timer(0.02, function() once = once + 1 end)
    -- its own count: two timers due at the same time fire in either order
    local t = loop:timer(0.01, function(t) reps = reps + 1 if reps == 2 then t:stop() end end, 0.01)
    loop:run()
    print("after=" .. once + reps)
  ]])
  lu.assertStrContains(r.err, "boom from a timer")
  lu.assertStrContains(r.out, "after=3")
end

function TestTimer.test_close_inside_its_own_callback()
  local r = child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    local n = 0
    loop:timer(0, function(t)
      n = n + 1
      t:close()
      t:close()
      collectgarbage()
      collectgarbage()
    end, 0.01)
    loop:run() -- a closed repeating timer keeps nothing alive
    print("n=" .. n)
  ]])
  lu.assertStrContains(r.out, "n=1")
end

function TestTimer.test_collected_while_pending_still_fires()
  local r = child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    local n = 0
    do loop:timer(0.02, function() n = n + 1 end) end
    do loop:timer(0.01, function(t) n = n + 1 if n >= 4 then t:stop() end end, 0.01) end
    collectgarbage()
    collectgarbage()
    loop:run()
    print("n=" .. n)
  ]])
  lu.assertStrContains(r.out, "n=4")
end

function TestTimer.test_stopped_timer_collected_then_loop_runs()
  child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    for i = 1, 100 do
      local t = loop:timer(0.001 * i, function() error("stopped, must not fire") end)
      if i % 2 == 0 then t:stop() else t:close() end
    end
    collectgarbage()
    collectgarbage()
    loop:timer(0.15, function() end)
    loop:run()
    collectgarbage()
  ]])
end

function TestTimer.test_timer_outlives_its_loop_close()
  local r = child.survives(child.PRELUDE .. [[
    local loop = p0f.loop()
    local t = loop:timer(10, function() end)
    local u = loop:timer(10, function() end, 1)
    loop:close()
    print("active=" .. tostring(t:active()))
    t:stop()
    print("again=" .. select(2, pcall(u.again, u)))
    u:close()
    t = nil
    u = nil
    collectgarbage()
    collectgarbage()
  ]])
  lu.assertStrContains(r.out, "active=false")
  lu.assertStrContains(r.out, "again=")
  lu.assertStrContains(r.out, "closed")
end

os.exit(lu.LuaUnit.run())
