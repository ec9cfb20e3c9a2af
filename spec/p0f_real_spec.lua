--- Against a real p0f 3.09b that this test starts on the loopback interface.
local lu = require("luaunit")
local p0f = require("p0f")
local support = require("spec.support")

local d

TestRealP0f = {}

function TestRealP0f.setupClass()
  d = assert(support.start_p0f())
end

function TestRealP0f.teardownClass()
  local pid = d.pid
  support.stop_p0f(d) -- only the p0f we started, by its PID
  lu.assertFalse(require("p0f.fake").pid_alive(pid))
end

-- p0f needs a moment after a handshake: ask until it knows the host, bounded.
local function learn(addr)
  return support.learn(d, addr)
end

function TestRealP0f.test_localhost_is_linux()
  local r = learn("127.0.0.1")
  lu.assertNotNil(r, "p0f never learned 127.0.0.1")
  lu.assertEquals(r.status, "ok")
  lu.assertEquals(r.os_name, "Linux")
  lu.assertStrContains(r.os, "Linux")
  lu.assertEquals(r.distance, 0)
  lu.assertTrue(r.total_conn >= 1)
  lu.assertTrue(r.first_seen > 1.6e9 and r.last_seen >= r.first_seen)
end

function TestRealP0f.test_mapped_equals_ipv4()
  local a = learn("127.0.0.1")
  local b = p0f.query(d.socket, "::ffff:127.0.0.1", { timeout = 2 })
  lu.assertEquals(b.status, "ok")
  lu.assertEquals(b.os, a.os)
  lu.assertEquals(b.first_seen, a.first_seen)
end

function TestRealP0f.test_unseen_is_nomatch()
  lu.assertEquals(p0f.query(d.socket, "192.0.2.77", { timeout = 2 }), { status = "nomatch" })
  lu.assertEquals(p0f.query(d.socket, "2001:db8::77", { timeout = 2 }), { status = "nomatch" })
end

function TestRealP0f.test_ipv6_loopback_found()
  local r = learn("::1")
  lu.assertNotNil(r, "p0f never learned ::1")
  lu.assertEquals(r.status, "ok")
  lu.assertEquals(r.distance, 0)
end

function TestRealP0f.test_command_line_tool()
  learn("127.0.0.1")
  local lua = assert(os.getenv("P0F_LUA"))
  local cmd = string.format("%s %s/bin/p0f-query --socket %s --json 127.0.0.1 192.0.2.78",
    lua, os.getenv("P0F_SOURCE_DIR"), d.socket)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  lu.assertStrContains(out, '"address":"127.0.0.1","status":"ok"')
  lu.assertStrContains(out, '"os_name":"Linux"')
  lu.assertStrContains(out, '"address":"192.0.2.78","status":"nomatch"')
  -- a bad address: clear message, exit status 1
  lu.assertFalse(support.sh(string.format("%s %s/bin/p0f-query -s %s nope 2>/dev/null",
    lua, os.getenv("P0F_SOURCE_DIR"), d.socket)))
end

function TestRealP0f.test_p0f_still_alive()
  lu.assertTrue(support.p0f_alive(d))
end

os.exit(support.run(lu))
