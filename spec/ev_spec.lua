--- The libev driver: queries with callbacks on a loop.
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")
local support = require("spec.support")

local srv

TestEv = {}

function TestEv.setupClass()
  srv = fake.start{ rules = {
    ["203.0.113.7"] = "hang",
    ["203.0.113.8"] = { os_name = "Windows", os_flavor = "7 or 8", distance = 12 },
    ["*"] = "echo",
  } }
end

function TestEv.teardownClass()
  srv:stop()
end

function TestEv.test_callbacks_and_run_returns()
  local loop = p0f.loop()
  local c = loop:client{ socket = srv.socket, timeout = 5 }
  local got = {}
  for i = 1, 500 do
    local addr = "192.0.2." .. (i % 250 + 1)
    assert(c:query(addr, function(r, err, code)
      got[#got + 1] = r and r.os_name == addr or (err .. code)
    end))
  end
  lu.assertEquals(#got, 0) -- callbacks never run inside query()
  lu.assertEquals(c:pending(), 500)
  loop:run() -- returns once nothing is pending, although the connection stays open
  lu.assertEquals(#got, 500)
  for i = 1, 500 do lu.assertTrue(got[i] == true, tostring(got[i])) end
  lu.assertEquals(c:pending(), 0)
  c:close()
  loop:close()
end

function TestEv.test_results_and_errors()
  local loop = p0f.loop()
  local c = loop:client{ socket = srv.socket, timeout = 0.3 }
  local win, hung
  local t0 = support.now() -- before the deadlines start
  c:query("203.0.113.8", function(r) win = r end)
  c:query("203.0.113.7", function(r, err, code) hung = { r, err, code } end)
  loop:run()
  local took = support.now() - t0
  lu.assertEquals(win.os, "Windows 7 or 8")
  lu.assertEquals(win.distance, 12)
  lu.assertNil(hung[1])
  lu.assertEquals(hung[3], "ETIMEDOUT")
  lu.assertStrContains(hung[2], srv.socket)
  lu.assertTrue(took >= 0.3 and took < 5, "took " .. took)
  local r, _, code = c:query("not an address", function() end)
  lu.assertNil(r)
  lu.assertEquals(code, "EINVAL")
  c:close()
  loop:close()
end

function TestEv.test_error_in_callback_is_reported_and_loop_goes_on()
  local loop = p0f.loop()
  local reported = {}
  local c = loop:client{ socket = srv.socket, on_error = function(msg) reported[#reported + 1] = msg end }
  local after = 0
  c:query("192.0.2.1", function() error("boom") end)
  for i = 2, 5 do c:query("192.0.2." .. i, function() after = after + 1 end) end
  loop:run()
  lu.assertEquals(after, 4)
  lu.assertEquals(#reported, 1)
  lu.assertStrContains(reported[1], "boom")
  c:close()
  loop:close()
end

function TestEv.test_objects_live_while_queries_are_in_flight()
  local loop = p0f.loop()
  local seen = 0
  do
    local c = loop:client{ socket = srv.socket }
    for i = 1, 20 do c:query("192.0.2." .. i, function(r) seen = seen + (r and 1 or 0) end) end
  end -- every reference to the client is gone now
  collectgarbage()
  collectgarbage()
  loop:run()
  lu.assertEquals(seen, 20)
  collectgarbage()
  loop:close()
end

function TestEv.test_chained_queries_and_close_from_callback()
  local loop = p0f.loop()
  local c = loop:client{ socket = srv.socket }
  local order = {}
  local late
  c:query("192.0.2.1", function(r)
    order[#order + 1] = r.os_name
    c:query("192.0.2.2", function(r2)
      order[#order + 1] = r2.os_name
      c:query("203.0.113.7", function(_, _, code) late = code end) -- hangs
      c:close() -- from inside a callback: pending ones are cancelled
      collectgarbage()
    end)
  end)
  loop:run()
  lu.assertEquals(order, { "192.0.2.1", "192.0.2.2" })
  lu.assertEquals(late, "ECANCELED")
  lu.assertErrorMsgContains("closed", c.query, c, "192.0.2.3", function() end)
  loop:close()
end

function TestEv.test_cancel()
  local loop = p0f.loop()
  local c = loop:client{ socket = srv.socket }
  local called = false
  local h = c:query("192.0.2.9", function() called = true end)
  c:cancel(h)
  local ok = false
  c:query("192.0.2.10", function(r) ok = r.os_name == "192.0.2.10" end)
  loop:run()
  lu.assertFalse(called)
  lu.assertTrue(ok)
  c:close()
  loop:close()
end

function TestEv.test_p0f_down_fails_fast_in_the_loop()
  local loop = p0f.loop()
  local c = loop:client{ socket = support.tmpname(".none"), timeout = 10 }
  local code
  c:query("192.0.2.1", function(_, _, cd) code = cd end)
  lu.assertNil(code)
  local t0 = support.now()
  loop:run()
  lu.assertEquals(code, "ENOENT")
  lu.assertTrue(support.now() - t0 < 5) -- long before the 10 s deadline
  c:close()
  loop:close()
end

function TestEv.test_run_once_and_default_loop()
  local loop = p0f.loop("default")
  local c = loop:client{ socket = srv.socket }
  local r
  c:query("192.0.2.77", function(res) r = res end)
  for _ = 1, 100 do
    if r then break end
    loop:run_once()
  end
  lu.assertEquals(r.os_name, "192.0.2.77")
  lu.assertStrContains(tostring(loop), "default")
  c:close()
  loop:close()
  lu.assertError(p0f.loop, "bogus")
end

function TestEv.test_loop_close_closes_clients()
  local loop = p0f.loop()
  local c = loop:client{ socket = srv.socket }
  loop:close()
  lu.assertErrorMsgContains("closed", c.query, c, "192.0.2.1", function() end)
  lu.assertErrorMsgContains("closed", loop.run, loop)
end

os.exit(lu.LuaUnit.run())
