-- A client that half-closes (shutdown of its sending side) after its request
-- still gets the answer when a lookup is in flight: the conn object reports
-- end-of-file to Lua (on_eof) instead of closing, and the server closes once
-- the answers owed are written.
-- Run: from the source tree with the ctest environment (see spec/CMakeLists.txt).
local lu = require("luaunit")
local fake = require("p0f.fake")
local support = require("support")
local ps = require("policyd_support")

local SLOW = "192.0.2.77"

TestHalfClose = {}

function TestHalfClose:test_answer_after_the_client_half_closes()
  local f = fake.start{ rules = { [SLOW] = { action = "delay", ms = 500,
    reply = { os_name = "Windows", os_flavor = "XP" } }, ["*"] = "nomatch" } }
  local srv = assert(ps.start{ socket = f.socket, timeout = 5, reject = { "Windows XP" } })
  local c = ps.connect(srv.port)
  assert(c:send(ps.request{ client_address = SLOW }))
  assert(c:shutdown("send"))
  local answer, err = ps.answer(c)
  c:close()
  lu.assertEquals(ps.stop(srv), 0)
  f:stop()
  lu.assertStrContains(tostring(answer), "REJECT", tostring(err))
end

os.exit(support.run(lu))
