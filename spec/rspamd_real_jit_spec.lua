--- The rspamd plugin inside a real rspamd with a real p0f on the loopback
-- interface (root). On `lo` p0f only ever sees 127.0.0.x, which the plugin
-- skips as local by default, so the skip rules are turned off here.
--
-- Runs under LuaJIT only (the *_jit_spec naming rule in spec/CMakeLists.txt).
local lu = require("luaunit")
local p0f = require("p0f")
local support = require("support")
local H = require("rspamd.harness")

local TIMEOUT = 2

TestRealP0f = {}

function TestRealP0f.setupClass()
  local d, why = support.start_p0f()
  assert(d, "real p0f: " .. tostring(why))
  TestRealP0f.p0f = d
  local known = support.wait_until(function()
    support.touch("127.0.0.1", 2)
    local r = p0f.query(d.socket, "127.0.0.1", { timeout = 1 })
    return r and r.status == "ok"
  end, 50, 0.1)
  assert(known, "p0f did not learn 127.0.0.1")
  -- Skip rules off: on `lo` only 127.0.0.x exists.
  TestRealP0f.rspamd = H.start({ section = string.format([[
  socket = "%s";
  timeout = %ds;
  skip_local = false;]], d.socket, TIMEOUT) })
end

function TestRealP0f.teardownClass()
  if TestRealP0f.rspamd then TestRealP0f.rspamd:stop() end
  if TestRealP0f.p0f then support.stop_p0f(TestRealP0f.p0f) end
end

function TestRealP0f:test_loopback_sender_fingerprinted()
  local res = self.rspamd:scan({ ip = "127.0.0.1" })
  lu.assertNotNil(res.symbols.P0F, res.text)
  lu.assertStrMatches(res.symbols.P0F[1], "Linux .*")
  lu.assertEquals(res.symbols.P0F[2], "link=unknown")
  lu.assertEquals(res.symbols.P0F[3], "distance=0")
  lu.assertNil(res.symbols.P0F_FAIL)
  lu.assertTrue(support.p0f_alive(self.p0f), "p0f died")
end

os.exit(support.run(lu))
