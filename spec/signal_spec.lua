--- loop:signal: default loop only, names and numbers, delivery, stop/close,
-- GC while watching, bad signal numbers. Signals are sent to a child
-- interpreter, never to the test runner.
local lu = require("luaunit")
local p0f = require("p0f")
local child = require("support_child")

-- A child's preamble: its own PID, and a way to signal itself.
local SELF = child.PRELUDE .. [[
local own_pid = require("p0f.fake").own_pid()
local function raise(name) os.execute("kill -" .. name .. " " .. own_pid) end
]]

TestSignal = {}

function TestSignal.test_needs_the_default_loop()
  local loop = p0f.loop()
  lu.assertErrorMsgContains("default loop", loop.signal, loop, "USR1", function() end)
  loop:close()
end

function TestSignal.test_names_and_numbers_accepted()
  local d = p0f.loop("default")
  for _, sig in ipairs{ "TERM", "SIGTERM", "INT", "HUP", "QUIT", "USR1", "SIGUSR2", 10, 12 } do
    local s = d:signal(sig, function() end)
    s:stop()
    s:stop() -- idempotent
    s:close()
  end
end

function TestSignal.test_bad_signals_raise_clear_errors()
  local d = p0f.loop("default")
  local cb = function() end
  for _, bad in ipairs{ "KILL", "BOGUS", "", "SIG" } do
    lu.assertErrorMsgContains("TERM, INT, HUP", d.signal, d, bad, cb)
  end
  for _, bad in ipairs{ 0, -1, 65, 1e300, -1e300, math.huge, -math.huge } do
    lu.assertErrorMsgContains("signal number expected", d.signal, d, bad, cb)
  end
  lu.assertErrorMsgContains("function expected", d.signal, d, "USR1", "cb")
  lu.assertErrorMsgContains("expected", d.signal, d, {}, cb)
end

function TestSignal.test_nan_signal_number_raises()
  local r = child.survives(child.PRELUDE .. [[
    local d = p0f.loop("default")
    local ok, err = pcall(d.signal, d, 0 / 0, function() end)
    print("ok=" .. tostring(ok), "err=" .. tostring(err))
  ]], nil, nil, true) -- the default loop: see support_child.survives
  lu.assertStrContains(r.out, "ok=false")
  lu.assertStrContains(r.out, "signal number expected")
end

function TestSignal.test_on_a_closed_loop_raises()
  local r = child.survives(child.PRELUDE .. [[
    local d = p0f.loop("default")
    d:close()
    print(select(2, pcall(d.signal, d, "USR1", function() end)))
  ]], nil, nil, true) -- the default loop: see support_child.survives
  lu.assertStrContains(r.out, "closed p0f loop")
end

function TestSignal.test_tostring_names_the_class()
  local d = p0f.loop("default")
  local s = d:signal("USR2", function() end)
  lu.assertStrContains(tostring(s), "p0f.signal")
  s:close()
  lu.assertStrContains(tostring(s), "closed")
end

-- ---- delivery, in a child ----------------------------------------------------

function TestSignal.test_delivered_with_the_watcher_and_signum()
  local r = child.survives(SELF .. [[
    local d = p0f.loop("default")
    local g = guard(d)
    local got
    local s
    s = d:signal("USR1", function(...)
      got = { ... }
      s:stop()
      g:close()
    end)
    d:timer(0, function() raise("USR1") end)
    d:run()
    print("same=" .. tostring(got[1] == s), "signum=" .. tostring(got[2]), "n=" .. #got)
  ]], nil, nil, true) -- the default loop: see support_child.survives
  lu.assertStrContains(r.out, "same=true")
  lu.assertStrContains(r.out, "signum=10")
  lu.assertNotStrContains(r.out, "guard fired")
end

function TestSignal.test_error_in_callback_is_reported_and_the_loop_goes_on()
  local r = child.survives(SELF .. [[
    local d = p0f.loop("default")
    local g = guard(d)
    local n = 0
    local s
    s = d:signal("USR2", function()
      n = n + 1
      if n == 1 then error("boom from a signal") end
      s:stop()
      g:close()
    end)
    d:timer(0, function() raise("USR2") end)
    d:timer(0.1, function() raise("USR2") end)
    d:run()
    print("n=" .. n)
  ]], nil, nil, true) -- the default loop: see support_child.survives
  lu.assertStrContains(r.err, "boom from a signal")
  lu.assertStrContains(r.out, "n=2")
end

function TestSignal.test_stopped_watcher_gets_nothing_more()
  local r = child.survives(SELF .. [[
    local d = p0f.loop("default")
    local g = guard(d)
    local n, k = 0, 0
    local s = d:signal("USR1", function() n = n + 1 end)
    local keep
    keep = d:signal("USR1", function() k = k + 1 keep:stop() g:close() end)
    s:stop()
    d:timer(0, function() raise("USR1") end)
    d:run()
    print("n=" .. n, "k=" .. k)
  ]], nil, nil, true) -- the default loop: see support_child.survives
  lu.assertStrContains(r.out, "n=0")
  lu.assertStrContains(r.out, "k=1")
end

function TestSignal.test_collected_while_watching_still_delivers()
  local r = child.survives(SELF .. [[
    local d = p0f.loop("default")
    local g = guard(d)
    local n = 0
    do d:signal("USR2", function(s) n = n + 1 s:stop() g:close() end) end
    collectgarbage()
    collectgarbage()
    d:timer(0, function() raise("USR2") end)
    d:run()
    print("n=" .. n)
  ]], nil, nil, true) -- the default loop: see support_child.survives
  lu.assertStrContains(r.out, "n=1")
end

function TestSignal.test_close_inside_its_own_callback_then_collected()
  local r = child.survives(SELF .. [[
    local d = p0f.loop("default")
    local g = guard(d)
    local n = 0
    do
      d:signal("USR1", function(s)
        n = n + 1
        s:close()
        s:close()
        g:close()
        collectgarbage()
        collectgarbage()
      end)
    end
    d:timer(0, function() raise("USR1") end)
    d:run()
    collectgarbage()
    print("n=" .. n)
  ]], nil, nil, true) -- the default loop: see support_child.survives
  lu.assertStrContains(r.out, "n=1")
end

os.exit(lu.LuaUnit.run())
