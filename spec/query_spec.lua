--- p0f.query (blocking, a connection per query) against the scripted fake
-- daemon: every behaviour a real p0f cannot be made to show on demand.
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")
local support = require("spec.support")

local WIN = { os_name = "Windows", os_flavor = "7 or 8", distance = 12, link_type = "DSL",
  uptime_min = 90, up_mod_days = 49, first_seen = 1700000000, last_seen = 1700000100,
  total_conn = 5, last_nat = 0, last_chg = 0, bad_sw = 0, os_match_q = 1,
  http_name = "Firefox", http_flavor = "10.x", language = "German" }

local srv

TestQuery = {}

function TestQuery.setupClass()
  srv = fake.start{ rules = {
    ["203.0.113.1"] = WIN,
    ["203.0.113.2"] = "nomatch",
    ["203.0.113.3"] = "badquery",
    ["203.0.113.4"] = { action = "reply", bytes = ("\1\2\3\4"):rep(58) }, -- 232 bytes, bad magic
    ["203.0.113.5"] = { action = "reply", bytes = p0f.encode_response(WIN):sub(1, 100) },
    ["203.0.113.6"] = { action = "split", reply = WIN },
    ["203.0.113.7"] = "hang",
    ["203.0.113.8"] = "close",
    ["203.0.113.9"] = { action = "half", reply = WIN },
    ["2001:db8::1"] = { os_name = "Linux", os_flavor = "3.x" },
    ["198.51.100.1"] = { action = "delay", ms = 300, reply = WIN },
  } }
end

function TestQuery.teardownClass()
  srv:stop()
end

local function q(addr, opts)
  return p0f.query(srv.socket, addr, opts or { timeout = 2 })
end

function TestQuery.test_ok_every_field()
  local r, err = q("203.0.113.1")
  lu.assertNil(err)
  lu.assertEquals(r.status, "ok")
  for k, v in pairs(WIN) do lu.assertEquals(r[k], v, k) end
  lu.assertEquals(r.os, "Windows 7 or 8")
  lu.assertTrue(r.fuzzy)
  lu.assertFalse(r.generic)
end

function TestQuery.test_nomatch_and_badquery_are_answers()
  lu.assertEquals(q("203.0.113.2"), { status = "nomatch" })
  lu.assertEquals(q("203.0.113.3"), { status = "badquery" })
  -- an address with no rule gets the fake's default: no match
  lu.assertEquals(q("192.0.2.200").status, "nomatch")
end

function TestQuery.test_bad_magic_is_eproto()
  local r, err, code = q("203.0.113.4")
  lu.assertNil(r)
  lu.assertEquals(code, "EPROTO")
  lu.assertStrContains(err, srv.socket)
end

function TestQuery.test_short_reply_then_close_is_an_error()
  -- 100 bytes and nothing more: the fake then waits; the deadline ends it
  local t0 = support.now()
  local r, _, code = q("203.0.113.5", { timeout = 0.5 })
  lu.assertNil(r)
  lu.assertEquals(code, "ETIMEDOUT")
  lu.assertTrue(support.now() - t0 >= 0.5)
end

function TestQuery.test_reply_in_single_bytes()
  local r, err = q("203.0.113.6")
  lu.assertNil(err)
  lu.assertEquals(r.os, "Windows 7 or 8")
  lu.assertEquals(r.language, "German")
end

function TestQuery.test_hang_honours_the_timeout()
  local t0 = support.now()
  local r, err, code = q("203.0.113.7", { timeout = 0.4 })
  local took = support.now() - t0
  lu.assertNil(r)
  lu.assertEquals(code, "ETIMEDOUT")
  lu.assertStrContains(err, "timed out")
  lu.assertTrue(took >= 0.4, "returned before the deadline: " .. took)
  -- generous bound: deadline + the bounded drain (0.5 s) + a loaded machine
  lu.assertTrue(took < 5, "took " .. took)
end

function TestQuery.test_close_without_answer()
  local r, _, code = q("203.0.113.8")
  lu.assertNil(r)
  lu.assertEquals(code, "ECONNRESET")
end

function TestQuery.test_close_mid_reply()
  local r, _, code = q("203.0.113.9")
  lu.assertNil(r)
  lu.assertEquals(code, "ECONNRESET")
end

function TestQuery.test_ipv6_and_mapped()
  lu.assertEquals(q("2001:db8::1").os, "Linux 3.x")
  lu.assertEquals(q("2001:0db8:0000::0001").os, "Linux 3.x")
  -- ::ffff:203.0.113.1 is asked as IPv4, which is how p0f stores it
  lu.assertEquals(q("::ffff:203.0.113.1").os, "Windows 7 or 8")
  local asked = srv:queries()
  lu.assertEquals(asked[#asked], "203.0.113.1")
end

function TestQuery.test_slow_answer_within_deadline()
  local r = q("198.51.100.1", { timeout = 3 })
  lu.assertEquals(r.os_name, "Windows")
end

function TestQuery.test_one_connection_per_query()
  local before = srv:connections()
  q("192.0.2.1")
  q("192.0.2.2")
  lu.assertEquals(srv:connections() - before, 2)
end

function TestQuery.test_bad_address()
  local r, err, code = p0f.query(srv.socket, "not-an-ip")
  lu.assertNil(r)
  lu.assertEquals(code, "EINVAL")
  lu.assertStrContains(err, "not-an-ip")
end

function TestQuery.test_missing_socket()
  local r, err, code = p0f.query(support.tmpname(".nosock"), "192.0.2.1")
  lu.assertNil(r)
  lu.assertEquals(code, "ENOENT")
  lu.assertStrContains(err, "is p0f running")
end

function TestQuery.test_not_listening_socket()
  -- a socket file nobody listens on
  local path = support.tmpname(".dead")
  local dead = fake.start{ socket = path }
  dead:stop()
  -- the fake removes its socket on exit; make a stale one like a crashed p0f
  local stale = fake.start{ socket = path }
  support.sh("kill -9 " .. stale.pid)
  support.wait_until(function() return not stale:alive() end)
  local r, _, code = p0f.query(path, "192.0.2.1", { timeout = 1 })
  lu.assertNil(r)
  lu.assertEquals(code, "ECONNREFUSED")
  stale.pid = nil
  os.remove(path)
end

function TestQuery.test_permission_denied()
  if support.is_root() then
    -- root ignores file modes; use a path through a non-directory instead
    local r, _, code = p0f.query("/etc/passwd/p0f.sock", "192.0.2.1")
    lu.assertNil(r)
    lu.assertEquals(code, "ENOTDIR")
    return
  end
  local r, _, code = p0f.query("/root/p0f.sock", "192.0.2.1")
  lu.assertNil(r)
  lu.assertEquals(code, "EACCES")
end

function TestQuery.test_bad_arguments_raise()
  lu.assertErrorMsgContains("bad option 'timeout'", p0f.query, srv.socket, "192.0.2.1", { timeout = -1 })
  lu.assertErrorMsgContains("bad option 'timeout'", p0f.query, srv.socket, "192.0.2.1", { timeout = "x" })
  lu.assertError(p0f.query, nil, "192.0.2.1")
  lu.assertError(p0f.query, srv.socket, {})
end

-- p0f 2: one query per connection, by the connection's 4-tuple
TestQueryV2 = {}

function TestQueryV2.test_v2_against_fake()
  local v2 = fake.start{ v2 = true, rules = {
    ["203.0.113.50"] = { genre = "Windows", detail = "XP SP1+, 2000 SP3", distance = 14,
      link = "pppoe (DSL)", tos = "", firewall = false, nat = true, real = true,
      score = 7, mflags = 2, uptime_hours = 35 },
  } }
  local conn = { src = "203.0.113.50", src_port = 40000, dst = "192.0.2.25", dst_port = 25, id = 77 }
  local r, err = p0f.v2.query(v2.socket, conn, { timeout = 2 })
  lu.assertNil(err)
  lu.assertEquals(r.status, "ok")
  lu.assertEquals(r.id, 77)
  lu.assertEquals(r.os, "Windows XP SP1+, 2000 SP3")
  lu.assertEquals(r.distance, 14)
  lu.assertEquals(r.link, "pppoe (DSL)")
  lu.assertTrue(r.nat)
  lu.assertFalse(r.firewall)
  lu.assertEquals(r.score, 7)
  lu.assertEquals(r.uptime_hours, 35)
  conn.src = "203.0.113.51"
  r = p0f.v2.query(v2.socket, conn, { timeout = 2 })
  lu.assertEquals(r.status, "nomatch")
  lu.assertNil(r.distance)
  lu.assertErrorMsgContains("IPv4", p0f.v2.query, v2.socket,
    { src = "2001:db8::1", src_port = 1, dst = "192.0.2.1", dst_port = 25 })
  v2:stop()
end

function TestQueryV2.test_v2_hang_times_out()
  local v2 = fake.start{ v2 = true, rules = { ["*"] = "hang" } }
  local r, _, code = p0f.v2.query(v2.socket,
    { src = "203.0.113.9", src_port = 1, dst = "192.0.2.1", dst_port = 25 }, { timeout = 0.3 })
  lu.assertNil(r)
  lu.assertEquals(code, "ETIMEDOUT")
  v2:stop()
end

os.exit(lu.LuaUnit.run())
