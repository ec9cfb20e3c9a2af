--- p0f-policyd against a scripted fake p0f: the policy protocol, limits,
-- failures, shutdown; and its Redis cache against a real redis-server.
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")
local support = require("support")
local ps = require("policyd_support")

local WINXP = "203.0.113.7"
local LINUX = "198.51.100.5"
local HANG = "192.0.2.99"
local UNKNOWN = "192.0.2.50"

local RULES = {
  [WINXP] = { os_name = "Windows", os_flavor = "XP", distance = 12, link_type = "DSL" },
  [LINUX] = { os_name = "Linux", os_flavor = "3.11 and newer", distance = 3, link_type = "Ethernet or modem" },
  [HANG] = "hang",
  ["*"] = "nomatch",
}

local function base_opts(sock)
  return {
    socket = sock, timeout = 1, header = "X-p0f-OS", reject = { "Windows XP" },
    request_timeout = 1, log_level = "debug",
  }
end

local elapsed = ps.elapsed

-- ---- the protocol, with a fake p0f ---------------------------------------

TestProtocol = {}

function TestProtocol:setUp()
  self.fake = fake.start{ rules = RULES }
  self.srv = assert(ps.start(base_opts(self.fake.socket)))
end

function TestProtocol:tearDown()
  if self.srv then ps.stop(self.srv) end
  self.fake:stop()
end

function TestProtocol:test_actions_by_stage()
  local c = ps.connect(self.srv.port)
  -- a reject rule acts at RCPT ...
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT ")
  -- ... the header only at DATA, never at RCPT
  lu.assertEquals(ps.ask(c, { client_address = LINUX }), "DUNNO")
  lu.assertEquals(ps.ask(c, { client_address = LINUX, protocol_state = "DATA" }),
    "PREPEND X-p0f-OS: Linux 3.11 and newer, link=Ethernet or modem, distance=3")
  lu.assertEquals(ps.ask(c, { client_address = LINUX, protocol_state = "END-OF-MESSAGE" }), "DUNNO")
  -- p0f knows nothing: DUNNO
  lu.assertEquals(ps.ask(c, { client_address = UNKNOWN, protocol_state = "DATA" }), "DUNNO")
  -- skips: authenticated, local, not an address
  lu.assertEquals(ps.ask(c, { client_address = WINXP, sasl_username = "alice" }), "DUNNO")
  lu.assertEquals(ps.ask(c, { client_address = "127.0.0.1" }), "DUNNO")
  lu.assertEquals(ps.ask(c, { client_address = "not-an-ip" }), "DUNNO")
  -- an IPv4-mapped client is the same host
  lu.assertStrContains(ps.ask(c, { client_address = "::ffff:" .. WINXP }), "REJECT ")
  c:close()
end

function TestProtocol:test_many_requests_on_one_connection()
  local c = ps.connect(self.srv.port)
  for i = 1, 200 do
    local addr = i % 2 == 0 and WINXP or LINUX
    local want = addr == WINXP and "^REJECT " or "^PREPEND X%-p0f%-OS: Linux"
    lu.assertStrMatches(ps.ask(c, { client_address = addr, protocol_state = "DATA" }), want .. ".*")
  end
  -- pipelined: several requests in one write, answered in order
  local batch = {}
  for i = 1, 20 do
    batch[#batch + 1] = ps.request{ client_address = i % 2 == 0 and WINXP or UNKNOWN, protocol_state = "DATA" }
  end
  assert(c:send(table.concat(batch)))
  for i = 1, 20 do
    local a = ps.answer(c)
    if i % 2 == 0 then lu.assertStrContains(a, "REJECT") else lu.assertEquals(a, "DUNNO") end
  end
  c:close()
end

function TestProtocol:test_many_connections()
  local conns = {}
  for i = 1, 40 do conns[i] = ps.connect(self.srv.port) end
  for round = 1, 5 do
    for i, c in ipairs(conns) do
      assert(c:send(ps.request{ client_address = (i + round) % 2 == 0 and WINXP or LINUX,
                                protocol_state = "DATA" }))
    end
    for i, c in ipairs(conns) do
      local a = ps.answer(c)
      if (i + round) % 2 == 0 then lu.assertStrContains(a, "REJECT") else lu.assertStrContains(a, "PREPEND") end
    end
  end
  for _, c in ipairs(conns) do c:close() end
  -- one p0f lookup per address: the cache and the shared lookups did the rest
  local n = #self.fake:queries()
  lu.assertTrue(n >= 2 and n <= 4, "p0f queries: " .. n)
end

function TestProtocol:test_garbage_lines()
  local c = ps.connect(self.srv.port)
  assert(c:send("this is not an attribute\n\001\002\003\n=novalue\n" .. ps.request{ client_address = WINXP }))
  lu.assertEquals(ps.answer(c), "DUNNO") -- a request with garbage is not trusted
  assert(c:send("\n")) -- an empty request
  lu.assertEquals(ps.answer(c), "DUNNO")
  assert(c:send(ps.request{ request = "something_else", client_address = WINXP }))
  lu.assertEquals(ps.answer(c), "DUNNO")
  -- the connection is still in step
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  lu.assertStrContains(ps.read(self.srv.log), "garbage line")
  c:close()
end

function TestProtocol:test_overlong_attribute_and_too_many()
  local c = ps.connect(self.srv.port)
  lu.assertEquals(ps.ask(c, { client_address = WINXP, ccert_subject = string.rep("x", 100000) }), "DUNNO")
  local many = { client_address = WINXP }
  for i = 1, 300 do many["x_attr_" .. i] = "v" end
  lu.assertEquals(ps.ask(c, many), "DUNNO")
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  local log = ps.read(self.srv.log)
  lu.assertStrContains(log, "line too long")
  lu.assertStrContains(log, "too many attributes")
  c:close()
end

function TestProtocol:test_unfinished_request_is_dropped()
  local stuck = ps.connect(self.srv.port)
  assert(stuck:send("request=smtpd_access_policy\nclient_address=" .. WINXP .. "\n"))
  local other = ps.connect(self.srv.port)
  -- keep the other connection busy while the first one is stuck
  local t = elapsed(function()
    for _ = 1, 5 do lu.assertStrContains(ps.ask(other, { client_address = WINXP }), "REJECT") end
  end)
  lu.assertTrue(t < 0.9, "others are served while one request hangs")
  -- request_timeout = 1 s: the stuck one is closed within a generous bound
  stuck:settimeout(10)
  local dt, line, err = elapsed(function() return stuck:receive("*l") end)
  lu.assertNil(line)
  lu.assertEquals(err, "closed")
  lu.assertTrue(dt < 5, "dropped after " .. dt .. " s")
  lu.assertStrContains(ps.read(self.srv.log), "request not finished within 1s")
  -- a byte at a time is not a way around the deadline
  local slow = ps.connect(self.srv.port)
  slow:settimeout(0.3)
  local closed = false
  for _ = 1, 40 do
    local ok = slow:send("x")
    if not ok then closed = true break end
    local _, e = slow:receive(1)
    if e == "closed" then closed = true break end
  end
  lu.assertTrue(closed, "a trickling request is dropped too")
  lu.assertStrContains(ps.ask(other, { client_address = LINUX, protocol_state = "DATA" }), "PREPEND")
  other:close()
  stuck:close()
  slow:close()
end

function TestProtocol:test_p0f_hung_fails_open_within_the_timeout()
  local c = ps.connect(self.srv.port)
  local dt, a = elapsed(function() return ps.ask(c, { client_address = HANG, protocol_state = "DATA" }) end)
  lu.assertEquals(a, "DUNNO")
  lu.assertTrue(dt < 4, "DUNNO after " .. dt .. " s (timeout 1 s)")
  lu.assertStrContains(ps.read(self.srv.log), "ETIMEDOUT")
  c:close()
end

function TestProtocol:test_sigterm_exits_zero()
  local c = ps.connect(self.srv.port)
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  local status = ps.stop(self.srv)
  self.srv = nil
  lu.assertEquals(status, 0)
  -- the connection was closed, not left hanging
  c:settimeout(5)
  local line, err = c:receive("*l")
  lu.assertNil(line)
  lu.assertEquals(err, "closed")
  c:close()
end

function TestProtocol:test_sigterm_answers_what_is_in_flight()
  local c = ps.connect(self.srv.port)
  assert(c:send(ps.request{ client_address = HANG, protocol_state = "DATA" }))
  support.sleep(0.2)
  local status = ps.stop(self.srv)
  self.srv = nil
  lu.assertEquals(status, 0)
  lu.assertEquals(ps.answer(c), "DUNNO")
  c:close()
end

-- ---- p0f down, configuration ----------------------------------------------------

TestFailures = {}

function TestFailures:test_p0f_down_means_dunno()
  local srv = assert(ps.start(base_opts(support.tmpname(".nothing.sock"))))
  local c = ps.connect(srv.port)
  local dt, a = elapsed(function() return ps.ask(c, { client_address = WINXP }) end)
  lu.assertEquals(a, "DUNNO")
  lu.assertTrue(dt < 4, "DUNNO after " .. dt .. " s")
  lu.assertEquals(ps.ask(c, { client_address = LINUX, protocol_state = "DATA" }), "DUNNO")
  c:close()
  local log = ps.read(srv.log)
  lu.assertEquals(ps.stop(srv), 0)
  lu.assertStrContains(log, "lookup failed")
  lu.assertStrContains(log, "ENOENT")
  os.remove(srv.log)
end

local run_check = ps.check_config

function TestFailures:test_check_config()
  local status, out = run_check{ socket = "/tmp/p0f.sock", header = "X-p0f-OS", reject = { "/^Windows 9/" } }
  lu.assertEquals(status, 0, out)
  status, out = run_check{ socket = "/tmp/p0f.sock", timout = 3 }
  lu.assertEquals(status, 1)
  lu.assertStrContains(out, "'timout'")
  status, out = run_check{ request_timeout = "soon" }
  lu.assertEquals(status, 1)
  lu.assertStrContains(out, "'request_timeout'")
  status, out = run_check{ reject = { "/(unclosed/" } }
  lu.assertEquals(status, 1)
  lu.assertStrContains(out, "'reject'")
  status, out = run_check{ publish = true }
  lu.assertEquals(status, 1)
  lu.assertStrContains(out, "'publish'")
end

function TestFailures:test_help_and_bad_listen()
  local lua, src = os.getenv("P0F_LUA"), os.getenv("P0F_SOURCE_DIR") or "."
  local p = io.popen(string.format("%s %s/bin/p0f-policyd --help; echo status=$?", lua, src))
  local out = p:read("*a")
  p:close()
  lu.assertStrContains(out, "usage: p0f-policyd")
  lu.assertStrContains(out, "status=0")
  local srv, log = ps.start{ listen = "nowhere:25", socket = "/tmp/x.sock" }
  lu.assertNil(srv)
  -- refused by the configuration check, before anything is opened
  lu.assertStrContains(log, "bad option 'listen'")
  lu.assertStrContains(log, '"nowhere:25"')
end

function TestFailures:test_unix_listener()
  local f = fake.start{ rules = RULES }
  local path = support.tmpname(".policy.sock")
  local opts = base_opts(f.socket)
  opts.listen = "unix:" .. path
  opts.listen_mode = tonumber("666", 8)
  local srv, log = ps.start(opts, nil, path)
  lu.assertNotNil(srv, log)
  local ok, err = pcall(function()
    lu.assertEquals(support.sh("test \"$(stat -c %a " .. path .. ")\" = 666"), true)
    local c = assert(require("socket.unix")())
    c:settimeout(5)
    assert(c:connect(path))
    lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
    c:close()
  end)
  lu.assertEquals(ps.stop(srv), 0)
  f:stop()
  if not ok then error(err, 0) end
  lu.assertFalse(support.sh("test -e " .. path), "the socket file is removed on shutdown")
  os.remove(srv.log)
end

-- ---- Redis: publish, read back, dead Redis -------------------------------------

TestRedis = {}

function TestRedis:setUp()
  self.redis = assert(ps.start_redis())
  self.fake = fake.start{ rules = RULES }
end

function TestRedis:tearDown()
  self.fake:stop()
  ps.stop_redis(self.redis)
end

function TestRedis:test_publish_and_read_back()
  local opts = base_opts(self.fake.socket)
  opts.redis = "127.0.0.1:" .. self.redis.port
  opts.publish = true
  opts.expire = 600
  opts.prefix = "p0f"
  local srv = assert(ps.start(opts))
  local c = ps.connect(srv.port)
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  c:close()
  -- the rspamd key format: <prefix><addr> = the raw 232-byte reply, with a TTL
  local raw = support.wait_until(function() return ps.redis_cmd(self.redis.port, "GET", "p0f" .. WINXP) end, 100, 0.05)
  lu.assertEquals(#raw, p0f.RESPONSE_SIZE)
  local r = assert(p0f.decode(raw))
  lu.assertEquals(r.os, "Windows XP")
  lu.assertEquals(r.distance, 12)
  local ttl = ps.redis_cmd(self.redis.port, "TTL", "p0f" .. WINXP)
  lu.assertTrue(ttl > 0 and ttl <= 600, "ttl " .. tostring(ttl))
  lu.assertEquals(ps.stop(srv), 0)
  os.remove(srv.log)

  -- another gateway whose p0f knows nothing reads it back from Redis
  local blind = fake.start{ rules = { ["*"] = "nomatch" } }
  opts.socket = blind.socket
  opts.publish = false
  local srv2 = assert(ps.start(opts))
  c = ps.connect(srv2.port)
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  -- an address Redis does not have goes to p0f
  lu.assertEquals(ps.ask(c, { client_address = LINUX, protocol_state = "DATA" }), "DUNNO")
  c:close()
  lu.assertEquals(blind:queries(), { LINUX })
  lu.assertEquals(ps.stop(srv2), 0)
  os.remove(srv2.log)
  blind:stop()
end

function TestRedis:test_dead_redis_never_blocks()
  local opts = base_opts(self.fake.socket)
  -- a port nobody listens on: the stopped server's
  ps.stop_redis(self.redis)
  opts.redis = "127.0.0.1:" .. self.redis.port
  opts.publish = true
  local srv = assert(ps.start(opts))
  local c = ps.connect(srv.port)
  local dt = elapsed(function()
    lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
    lu.assertStrContains(ps.ask(c, { client_address = LINUX, protocol_state = "DATA" }), "PREPEND")
  end)
  lu.assertTrue(dt < 4, "answered after " .. dt .. " s")
  c:close()
  lu.assertEquals(ps.stop(srv), 0)
  os.remove(srv.log)
end

function TestRedis:test_hung_redis_never_blocks()
  -- a stopped (SIGSTOP) Redis accepts connections and never answers
  support.sh("kill -STOP " .. self.redis.pid)
  local opts = base_opts(self.fake.socket)
  opts.redis = { host = "127.0.0.1", port = self.redis.port, timeout = 0.3 }
  opts.publish = true
  local srv = assert(ps.start(opts))
  local c = ps.connect(srv.port)
  local dt = elapsed(function()
    lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  end)
  lu.assertTrue(dt < 4, "answered after " .. dt .. " s")
  c:close()
  lu.assertEquals(ps.stop(srv), 0)
  support.sh("kill -CONT " .. self.redis.pid)
  os.remove(srv.log)
end

-- ---- the protocol parser on its own ---------------------------------------------

TestParser = {}

local function parse(chunks, opts)
  local parser = require("p0f.policy_protocol").parser(opts)
  local got = {}
  for _, c in ipairs(chunks) do
    parser:feed(c, function(attrs, problem) got[#got + 1] = { attrs = attrs, problem = problem } end)
  end
  return got, parser
end

function TestParser:test_split_anywhere_and_crlf()
  local text = "request=smtpd_access_policy\r\nclient_address=203.0.113.7\n\nrequest=x\n\n"
  for cut = 1, #text - 1 do
    local got, parser = parse({ text:sub(1, cut), text:sub(cut + 1) })
    lu.assertEquals(#got, 2)
    lu.assertEquals(got[1].attrs, { request = "smtpd_access_policy", client_address = "203.0.113.7" })
    lu.assertNil(got[1].problem)
    lu.assertEquals(got[2].attrs, { request = "x" })
    lu.assertFalse(parser:partial())
  end
end

function TestParser:test_limits_resynchronise()
  local long = "ccert_subject=" .. string.rep("y", 5000)
  local got, parser = parse({ "a=1\n", long:sub(1, 3000), long:sub(3001), "\nb=2\n\nc=3\n" },
    { max_line = 4096 })
  lu.assertEquals(#got, 1)
  lu.assertEquals(got[1].problem, "line too long")
  lu.assertEquals(got[1].attrs, { a = "1", b = "2" })
  lu.assertTrue(parser:partial()) -- c=3 begun, not ended
  got = parse({ "a=1\nb=2\nc=3\n\nd=4\n\n" }, { max_attrs = 2 })
  lu.assertEquals(got[1].problem, "too many attributes")
  lu.assertEquals(got[2].attrs, { d = "4" })
  lu.assertNil(got[2].problem)
  lu.assertEquals(require("p0f.policy_protocol").answer("REJECT a\r\nb"), "action=REJECT a  b\n\n")
end

-- ---- the SpamAssassin rules score what the server prepends -----------------------

TestSpamAssassinRules = {}

local function load_rules()
  local rex = require("rex_pcre2")
  local src = os.getenv("P0F_SOURCE_DIR") or "."
  local rules, scores = {}, {}
  for line in io.lines(src .. "/examples/spamassassin/p0f.cf") do
    local name, header, re, flags = line:match("^header%s+(%S+)%s+(%S+)%s+=~%s+/(.*)/(%a*)%s*$")
    if name then
      lu.assertEquals(header, "X-p0f-OS")
      rules[#rules + 1] = { name = name, re = rex.new(re, flags ~= "" and flags or nil) }
    end
    local sname, score = line:match("^score%s+(%S+)%s+(%S+)")
    if sname then scores[sname] = tonumber(score) end
  end
  return rules, scores
end

-- What SpamAssassin would add for the header p0f-policyd prepends.
local function score_for(result)
  local policyd = require("p0f.policyd")
  local f = assert(require("p0f.filter").new{ header = "X-p0f-OS" })
  result.status = "ok"
  local action = policyd.action_for(f:verdict(p0f.decode(p0f.encode_response(result))), "DATA")
  local value = assert(action:match("^PREPEND X%-p0f%-OS: (.*)$"), action)
  local rules, scores = load_rules()
  local total, hits = 0, {}
  for _, r in ipairs(rules) do
    if r.re:find(value) then
      total = total + assert(scores[r.name], "no score for " .. r.name)
      hits[#hits + 1] = r.name
    end
  end
  return total, table.concat(hits, " ")
end

function TestSpamAssassinRules:test_desktops_up_servers_down()
  local s, hits = score_for{ os_name = "Windows", os_flavor = "XP", link_type = "DSL", distance = 12 }
  lu.assertEquals(hits, "P0F_WINXP")
  lu.assertTrue(s >= 2)
  s, hits = score_for{ os_name = "Windows", os_flavor = "7 or 8" }
  lu.assertEquals(hits, "P0F_WINVISTA")
  lu.assertTrue(s > 0)
  s, hits = score_for{ os_name = "Windows", os_flavor = "NT kernel" }
  lu.assertEquals(hits, "P0F_WINNT")
  s, hits = score_for{ os_name = "Linux", os_flavor = "(Android)" }
  lu.assertEquals(hits, "P0F_ANDROID")
  lu.assertTrue(s > 0)
  s, hits = score_for{ os_name = "Linux", os_flavor = "3.11 and newer", distance = 3 }
  lu.assertEquals(hits, "P0F_LINUX")
  lu.assertTrue(s < 0)
  s, hits = score_for{ os_name = "Solaris", os_flavor = "10" }
  lu.assertEquals(hits, "P0F_UNIX")
  lu.assertTrue(s < 0)
  s, hits = score_for{ os_name = "OpenBSD", os_flavor = "5.x" }
  lu.assertEquals(hits, "P0F_BSD")
  s, hits = score_for{ os_name = "MacOS X", os_flavor = "10.9 or newer (sometimes iPhone or iPad)" }
  lu.assertEquals(hits, "P0F_MACOS")
  s, hits = score_for{ os_name = "" }
  lu.assertEquals(hits, "P0F_UNKNOWN")
  lu.assertTrue(s > 0)
end

-- ---- connection limits ---------------------------------------------------------

TestLimits = {}

function TestLimits:setUp()
  self.fake = fake.start{ rules = RULES }
  local o = base_opts(self.fake.socket)
  o.idle_timeout = 1
  o.max_connections = 2
  self.srv = assert(ps.start(o))
end

function TestLimits:tearDown()
  if self.srv then ps.stop(self.srv) end
  self.fake:stop()
end

function TestLimits:test_idle_connection_is_closed()
  local c = ps.connect(self.srv.port)
  lu.assertStrContains(ps.ask(c, { client_address = WINXP }), "REJECT")
  -- nothing more is asked: closed after idle_timeout (1 s), within a generous bound
  local dt, line, err = elapsed(function() return c:receive("*l") end)
  lu.assertNil(line)
  lu.assertEquals(err, "closed")
  lu.assertTrue(dt > 0.5 and dt < 8, "closed after " .. dt .. " s")
  c:close()
end

function TestLimits:test_connections_beyond_the_limit_are_refused()
  local a, b = ps.connect(self.srv.port), ps.connect(self.srv.port)
  lu.assertStrContains(ps.ask(a, { client_address = WINXP }), "REJECT")
  lu.assertStrContains(ps.ask(b, { client_address = WINXP }), "REJECT")
  -- the third is accepted by the kernel, then closed without an answer
  local c = ps.connect(self.srv.port)
  c:send(ps.request({ client_address = WINXP }))
  local line, err = c:receive("*l")
  lu.assertNil(line)
  lu.assertEquals(err, "closed")
  lu.assertStrContains(ps.read(self.srv.log), "refused: 2 connections open")
  c:close()
  -- the first two still work, and once one goes, a new one is served
  lu.assertStrContains(ps.ask(a, { client_address = WINXP }), "REJECT")
  b:close()
  local ok = support.wait_until(function()
    local d = ps.connect(self.srv.port)
    d:send(ps.request({ client_address = WINXP }))
    local answer = d:receive("*l")
    d:close()
    return answer and answer:find("REJECT", 1, true)
  end, 50, 0.05)
  lu.assertTrue(ok ~= nil, "no connection served after one closed")
  a:close()
end

os.exit(lu.LuaUnit.run())
