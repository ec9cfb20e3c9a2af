--- The persistent client against a real p0f on the loopback interface.
local lu = require("luaunit")
local p0f = require("p0f")
local support = require("spec.support")

local learn = support.learn

TestClientRealP0f = {}

function TestClientRealP0f.test_50000_queries_on_one_connection()
  local d = assert(support.start_p0f())
  lu.assertNotNil(learn(d, "127.0.0.1"), "p0f never learned 127.0.0.1")
  local N = tonumber(os.getenv("P0F_REAL_QUERIES") or "50000")
  local mix = { "127.0.0.1", "192.0.2.55", "2001:db8::55", "::ffff:127.0.0.1" }
  local loop = p0f.loop()
  local c = loop:client{ socket = d.socket, timeout = 30, max_inflight = 64 }
  local ok, nomatch, wrong, failed = 0, 0, 0, 0
  local t0 = support.now()
  for i = 1, N do
    local addr = mix[i % #mix + 1]
    c:query(addr, function(r, err)
      if not r then
        failed = failed + 1
        if failed == 1 then print("first failure: " .. err) end
      elseif addr:find("127.0.0.1", 1, true) then
        if r.status == "ok" and r.os_name == "Linux" then ok = ok + 1 else wrong = wrong + 1 end
      else
        if r.status == "nomatch" then nomatch = nomatch + 1 else wrong = wrong + 1 end
      end
    end)
  end
  loop:run()
  local took = support.now() - t0
  print(string.format("\n%d queries on one connection in %.2f s: %.0f queries/s", N, took, N / took))
  lu.assertEquals(failed, 0)
  lu.assertEquals(wrong, 0)
  lu.assertEquals(ok + nomatch, N)
  lu.assertEquals(ok, N / 2)
  c:close()
  loop:close()
  -- p0f is still alive and answering
  lu.assertTrue(support.p0f_alive(d))
  lu.assertEquals(p0f.query(d.socket, "127.0.0.1", { timeout = 2 }).os_name, "Linux")
  support.stop_p0f(d)
end

function TestClientRealP0f.test_single_slot_held_by_another_connection()
  local d = assert(support.start_p0f("-S 1"))
  lu.assertNotNil(learn(d, "127.0.0.1"), "p0f never learned 127.0.0.1")
  -- another program holds p0f's only API slot
  local holder = p0f.client{ socket = d.socket, timeout = 2 }
  lu.assertEquals(holder:query("127.0.0.1").status, "ok")
  lu.assertTrue(holder:connected())
  -- ours connects (the kernel's backlog takes it) but is not served: it times out cleanly
  local ours = p0f.client{ socket = d.socket, timeout = 0.5 }
  local t0 = support.now()
  local r, err, code = ours:query("127.0.0.1")
  local took = support.now() - t0
  lu.assertNil(r)
  lu.assertEquals(code, "ETIMEDOUT", err)
  lu.assertTrue(took >= 0.5 and took < 5, "took " .. took)
  -- the slot is freed: the same connection is served, the late reply dropped
  holder:close()
  local ok = support.wait_until(function()
    local rr = ours:query("127.0.0.1")
    return rr and rr.status == "ok" and rr.os_name == "Linux"
  end, 40, 0.05)
  lu.assertTrue(ok, "no answer after the slot was freed")
  ours:close()
  lu.assertTrue(support.p0f_alive(d), "p0f died")
  lu.assertEquals(p0f.query(d.socket, "192.0.2.1", { timeout = 2 }).status, "nomatch")
  support.stop_p0f(d)
end

os.exit(support.run(lu))
