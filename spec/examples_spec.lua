--- The examples in examples/ run, against the fake daemon, and say what
-- the README says they say.
local lu = require("luaunit")
local fake = require("p0f.fake")

local srv

local function run(script, ...)
  local cmd = { os.getenv("P0F_LUA") or "lua5.4", os.getenv("P0F_SOURCE_DIR") .. "/examples/" .. script, srv.socket }
  for _, a in ipairs({ ... }) do cmd[#cmd + 1] = a end
  local p = io.popen(table.concat(cmd, " ") .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end

TestExamples = {}

function TestExamples.setupClass()
  srv = fake.start{ rules = {
    ["127.0.0.1"] = { os_name = "Linux", os_flavor = "2.2.x-3.x", distance = 0, os_match_q = 2, total_conn = 4 },
    ["::1"] = { os_name = "Linux", os_flavor = "3.x", distance = 0 },
    ["203.0.113.7"] = "hang",
  } }
end

function TestExamples.teardownClass()
  srv:stop()
end

function TestExamples.test_query()
  lu.assertEquals(run("query.lua", "127.0.0.1"),
    '127.0.0.1 runs Linux 2.2.x-3.x (generic match), 0 hops away, link "", seen 4 times\n')
  lu.assertEquals(run("query.lua", "192.0.2.1"), "192.0.2.1: nomatch\n")
end

local function check_three(out)
  lu.assertStrContains(out, "127.0.0.1\tok Linux 2.2.x-3.x")
  lu.assertStrContains(out, "::1\tok Linux 3.x")
  lu.assertStrContains(out, "192.0.2.1\tnomatch")
end

function TestExamples.test_pollable()
  check_three(run("pollable.lua", "127.0.0.1", "::1", "192.0.2.1"))
end

function TestExamples.test_libev()
  check_three(run("libev.lua", "127.0.0.1", "::1", "192.0.2.1"))
  lu.assertStrContains(run("libev.lua", "203.0.113.7"), "timed out (ETIMEDOUT)")
end

function TestExamples.test_cqueues()
  check_three(run("cqueues.lua", "127.0.0.1", "::1", "192.0.2.1"))
end

os.exit(lu.LuaUnit.run())
