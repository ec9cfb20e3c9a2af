--- The rspamd plugin inside a real rspamd (3.4, Debian's), scanning with
-- rspamc: symbols and options, pattern scores, headers in the milter reply,
-- the Redis cache (keys, TTLs, shared with rspamd's built-in module), skip
-- rules, IPv6, and fail-open with p0f down, hung, closing or lying, all
-- against the scripted fake p0f (rspamd_real_jit_spec.lua: a real p0f).
--
-- Runs under LuaJIT only (the *_jit_spec naming rule in spec/CMakeLists.txt):
-- rspamd embeds LuaJIT and loads the p0f.core built for it.
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")
local support = require("support")
local sredis = require("support_redis")
local H = require("rspamd.harness")

local TIMEOUT = 2 -- seconds: the plugin's timeout in these configs
local MARGIN = 5  -- generous: proves the timeout is honoured, not a speed

local WINDOWS = { os_name = "Windows", os_flavor = "7 or 8", distance = 12,
                  link_type = "DSL", uptime_min = 90 }

-- ---- shared components: one fake p0f, one Redis --------------------------

local srv = fake.start({ rules = {
  ["203.0.113.7"] = WINDOWS,
  ["203.0.113.30"] = { os_name = "Linux", os_flavor = "3.11 and newer", distance = 5,
                       link_type = "Ethernet or modem" },
  ["203.0.113.31"] = { os_name = "Linux", os_flavor = "3.11 and newer", distance = 5,
                       link_type = "Ethernet or modem" },
  ["203.0.113.20"] = WINDOWS,
  ["203.0.113.40"] = { os_name = "OpenBSD", os_flavor = "5.x", distance = 9 },
  ["203.0.113.8"] = "hang",
  ["203.0.113.10"] = { action = "reply", bytes = string.rep("\255", p0f.RESPONSE_SIZE) },
  ["203.0.113.11"] = { action = "split", reply = { os_name = "Solaris", os_flavor = "10",
                                                   distance = 3 } },
  ["203.0.113.12"] = "close",
  ["203.0.113.13"] = "badquery",
  ["192.168.1.5"] = WINDOWS,
  ["2001:db8::7"] = { os_name = "Linux", os_flavor = "2.2.x-3.x", distance = 7,
                      link_type = "IPv6/IPIP" },
  ["*"] = "nomatch",
} })
local redis = assert(sredis.start())
local rcall = sredis.client(redis.port, 2)

local function rcmd(...) return sredis.command(rcall, ...) end

local function queried(addr)
  local n = 0
  for _, a in ipairs(srv:queries()) do
    if a == addr then n = n + 1 end
  end
  return n
end

local function squash(s) return (tostring(s):gsub("%s+", " ")) end

local function assert_fail_only(res, code)
  lu.assertNotNil(res.symbols.P0F_FAIL, "no P0F_FAIL in " .. res.text)
  lu.assertNil(res.symbols.P0F)
  lu.assertStrContains(res.symbols.P0F_FAIL[1], "(" .. code .. ")")
  -- The scan itself went on: a normal reply, no reject, within the bound.
  lu.assertEquals(res.reply.action, "no action")
  lu.assertTrue(res.elapsed < TIMEOUT + MARGIN, "scan took " .. res.elapsed .. " s")
end

-- ---- fake p0f, Redis cache, header, patterns ------------------------------

TestFake = {}

function TestFake.setupClass()
  TestFake.rspamd = H.start({ section = string.format([[
  socket = "%s";
  timeout = %ds;
  servers = "127.0.0.1:%d";
  header = "X-P0f-Fingerprint";
  reject = "/^OpenBSD/";
  patterns {
    WINDOWS = "^Windows";
    P0F_DSL { pattern = "^link=DSL$"; score = 2.5; }
    P0F_FAR { pattern = "^distance=1[0-9]$"; score = 0.5; field = "distance"; }
  }]], srv.socket, TIMEOUT, redis.port) })
end

function TestFake.teardownClass()
  if TestFake.rspamd then TestFake.rspamd:stop() end
end

function TestFake:test_symbol_and_options()
  local res = self.rspamd:scan({ ip = "203.0.113.7" })
  lu.assertEquals({ res.symbols.P0F[1], res.symbols.P0F[2], res.symbols.P0F[3] },
    { "Windows 7 or 8", "link=DSL", "distance=12" })
  lu.assertNil(res.symbols.P0F_FAIL)
  lu.assertTrue(queried("203.0.113.7") >= 1)
end

-- rspamd needs only p0f.core: p0f.ev (libev, hiredis, of which rspamd has
-- its own copies) is never loaded, even after lookups and a cache hit.
function TestFake:test_p0f_ev_never_loaded()
  local rs = TestFake.rspamd
  for _ = 1, 2 do
    local res = rs:scan({ ip = "203.0.113.7" })
    lu.assertNotNil(res.symbols.P0F, res.text)
    lu.assertNotNil(res.symbols.P0F_PROBE, "no probe in " .. res.text)
    lu.assertItemsEquals({ res.symbols.P0F_PROBE[1], res.symbols.P0F_PROBE[2] },
      { "p0f.core=loaded", "p0f.ev=absent" })
  end
end

function TestFake:test_pattern_symbols_and_scores()
  local res = self.rspamd:scan({ ip = "203.0.113.7" })
  lu.assertEquals(res.symbols.WINDOWS[1], "Windows 7 or 8")
  lu.assertEquals(res.symbols.P0F_DSL[1], "link=DSL")
  lu.assertEquals(res.symbols.P0F_DSL.score, 2.5)
  lu.assertEquals(res.symbols.P0F_FAR[1], "distance=12")
  lu.assertEquals(res.symbols.P0F_FAR.score, 0.5)
  lu.assertAlmostEquals(res.reply.score, 3.0, 1e-6)
  -- A pattern that does not match gives no symbol.
  res = self.rspamd:scan({ ip = "203.0.113.30" })
  lu.assertNil(res.symbols.WINDOWS)
  lu.assertNil(res.symbols.P0F_DSL)
  lu.assertNil(res.symbols.P0F_FAR)
end

function TestFake:test_headers_in_milter_reply()
  local res = self.rspamd:scan({ ip = "203.0.113.7" })
  local hdrs = H.added_headers(res)
  -- Ours (option `header`), earlier copies removed.
  lu.assertEquals(hdrs["X-P0f-Fingerprint"], "Windows 7 or 8, link=DSL, distance=12")
  lu.assertEquals(res.reply.milter.remove_headers["X-P0f-Fingerprint"], 0)
  -- rspamd's milter_headers x-os-fingerprint routine, from the mempool variable.
  lu.assertEquals(squash(hdrs["X-OS-Fingerprint"]),
    "Windows 7 or 8, (up: 90 min), (distance 12, link: DSL)")
end

function TestFake:test_redis_key_ttl_and_cache_hit()
  local addr = "203.0.113.31"
  local before = queried(addr)
  local res = self.rspamd:scan({ ip = addr })
  lu.assertEquals(res.symbols.P0F[1], "Linux 3.11 and newer")
  lu.assertEquals(queried(addr), before + 1)
  -- The built-in module's layout: "<prefix><addr>" holding the raw reply.
  local raw = rcmd("GET", "p0f" .. addr)
  lu.assertEquals(type(raw) == "string" and #raw, p0f.RESPONSE_SIZE)
  local decoded = p0f.decode(raw)
  lu.assertEquals(decoded.os, "Linux 3.11 and newer")
  local ttl = rcmd("TTL", "p0f" .. addr)
  lu.assertTrue(ttl > 7000 and ttl <= 7200, "ttl " .. tostring(ttl))
  -- Again: answered from the cache, p0f is not asked.
  local again = self.rspamd:scan({ ip = addr })
  lu.assertEquals(again.symbols.P0F, res.symbols.P0F)
  lu.assertEquals(queried(addr), before + 1)
end

function TestFake:test_nomatch_cached_briefly_without_symbols()
  local addr = "198.51.100.99"
  local res = self.rspamd:scan({ ip = addr })
  lu.assertNil(res.symbols.P0F)
  lu.assertNil(res.symbols.P0F_FAIL)
  lu.assertEquals(queried(addr), 1)
  local ttl = rcmd("TTL", "p0f" .. addr)
  lu.assertTrue(ttl > 0 and ttl <= 300, "ttl " .. tostring(ttl))
end

function TestFake:test_fingerprint_from_redis_only()
  -- Published by another machine (or rspamd's built-in module): p0f here
  -- has never seen the host, the cached reply is used as it is.
  local addr = "198.51.100.30"
  rcmd("SET", "p0f" .. addr, p0f.encode_response({ status = "ok", os_name = "FreeBSD",
    os_flavor = "9.x", distance = 7 }), "EX", "600")
  local res = self.rspamd:scan({ ip = addr })
  lu.assertEquals({ res.symbols.P0F[1], res.symbols.P0F[2], res.symbols.P0F[3] },
    { "FreeBSD 9.x", "link=unknown", "distance=7" })
  lu.assertEquals(queried(addr), 0)
end

function TestFake:test_ipv6_sender()
  local res = self.rspamd:scan({ ip = "2001:db8::7" })
  lu.assertEquals({ res.symbols.P0F[1], res.symbols.P0F[2], res.symbols.P0F[3] },
    { "Linux 2.2.x-3.x", "link=IPv6/IPIP", "distance=7" })
  lu.assertEquals(queried("2001:db8::7"), 1)
  lu.assertEquals(#rcmd("GET", "p0f2001:db8::7"), p0f.RESPONSE_SIZE)
end

function TestFake:test_ipv4_mapped_sender()
  -- A dual-stack MTA hands rspamd ::ffff:a.b.c.d; p0f knows the host as IPv4.
  local res = self.rspamd:scan({ ip = "::ffff:203.0.113.7" })
  lu.assertEquals(res.symbols.P0F[1], "Windows 7 or 8")
  lu.assertEquals(queried("::ffff:203.0.113.7"), 0)
end

function TestFake:test_authenticated_sender_skipped()
  local res = self.rspamd:scan({ ip = "203.0.113.20", user = "alice" })
  lu.assertNil(res.symbols.P0F)
  lu.assertNil(res.symbols.P0F_FAIL)
  lu.assertEquals(queried("203.0.113.20"), 0)
  -- The same sender unauthenticated is looked up.
  res = self.rspamd:scan({ ip = "203.0.113.20" })
  lu.assertEquals(res.symbols.P0F[1], "Windows 7 or 8")
end

function TestFake:test_local_senders_skipped()
  for _, ip in ipairs({ "192.168.1.5", "127.0.0.1", "::1" }) do
    local res = self.rspamd:scan({ ip = ip })
    lu.assertNil(res.symbols.P0F, ip)
    lu.assertNil(res.symbols.P0F_FAIL, ip)
    lu.assertEquals(queried(ip), 0, ip)
  end
end

function TestFake:test_split_reply()
  local res = self.rspamd:scan({ ip = "203.0.113.11" })
  lu.assertEquals(res.symbols.P0F[1], "Solaris 10")
end

function TestFake:test_reject_by_os()
  local res = self.rspamd:scan({ ip = "203.0.113.40" })
  lu.assertEquals(res.symbols.P0F[1], "OpenBSD 5.x")
  lu.assertEquals(res.reply.action, "reject")
  lu.assertStrContains(squash(res.text), "OpenBSD 5.x")
end

function TestFake:test_hung_p0f_fails_open()
  local res = self.rspamd:scan({ ip = "203.0.113.8" })
  assert_fail_only(res, "ETIMEDOUT")
  lu.assertTrue(res.elapsed >= TIMEOUT * 0.9, "gave up early: " .. res.elapsed .. " s")
end

function TestFake:test_garbage_reply_fails_open()
  local res = self.rspamd:scan({ ip = "203.0.113.10" })
  assert_fail_only(res, "EPROTO")
  lu.assertNil(rcmd("GET", "p0f203.0.113.10")) -- never cached
end

function TestFake:test_closing_p0f_fails_open()
  local res = self.rspamd:scan({ ip = "203.0.113.12" })
  assert_fail_only(res, "ECONNRESET")
end

function TestFake:test_badquery_fails_open_with_an_error_name()
  assert_fail_only(self.rspamd:scan({ ip = "203.0.113.13" }), "EINVAL")
end

function TestFake:test_fail_logged()
  self.rspamd:scan({ ip = "203.0.113.12" })
  lu.assertStrContains(self.rspamd:log(), "p0f_fingerprint: lookup of 203.0.113.12 failed")
end

-- ---- p0f down and Redis down ----------------------------------------------

TestDown = {}

function TestDown.setupClass()
  TestDown.socket = support.tmpname(".nop0f.sock")
  TestDown.rspamd = H.start({ section = string.format([[
  socket = "%s";
  timeout = %ds;
  servers = "127.0.0.1:%d";]], TestDown.socket, TIMEOUT, H.free_port()),
    -- A score set the usual rspamd way wins over the plugin's default 0.
    extra = 'group "p0f" { symbols { "P0F_FAIL" { weight = 0.25; } } }' })
end

function TestDown.teardownClass()
  if TestDown.rspamd then TestDown.rspamd:stop() end
end

-- p0f up but saturated: its listen queue full, connect() fails with
-- EAGAIN; rspamd reports it as it reports a dead p0f ("cannot connect").
-- A listener that accepts nothing stands in (a real p0f must not be
-- driven into that state), at the socket path this rspamd asks.
function TestDown:test_busy_p0f_is_told_from_a_dead_one()
  local unix = require("socket.unix")
  local l = assert(unix())
  assert(l:bind(TestDown.socket))
  assert(l:listen(0))
  local queued = assert(unix())
  queued:settimeout(0)
  queued:connect(TestDown.socket)
  local ok, err = pcall(function()
    local res = self.rspamd:scan({ ip = "203.0.113.7" })
    assert_fail_only(res, "EAGAIN")
    lu.assertStrContains(squash(res.symbols.P0F_FAIL[1]), "listen queue is full")
    -- the listener gone, its socket file left behind: p0f is not running
    queued:close()
    l:close()
    res = self.rspamd:scan({ ip = "203.0.113.7" })
    assert_fail_only(res, "ECONNREFUSED")
  end)
  queued:close()
  l:close()
  os.remove(TestDown.socket)
  if not ok then error(err, 0) end
end

function TestDown:test_no_socket_fails_open()
  local res = self.rspamd:scan({ ip = "203.0.113.7" })
  assert_fail_only(res, "ENOENT")
  lu.assertEquals(res.symbols.P0F_FAIL.score, 0.25)
end

-- ---- Redis hung (stopped): fingerprints still come from p0f ----------------

TestHungRedis = {}

function TestHungRedis.setupClass()
  TestHungRedis.redis = assert(sredis.start())
  assert(support.sh("kill -STOP " .. TestHungRedis.redis.pid))
  TestHungRedis.rspamd = H.start({ section = string.format([[
  socket = "%s";
  timeout = %ds;
  servers = "127.0.0.1:%d";]], srv.socket, TIMEOUT, TestHungRedis.redis.port) })
end

function TestHungRedis.teardownClass()
  if TestHungRedis.rspamd then TestHungRedis.rspamd:stop() end
  if TestHungRedis.redis then
    support.sh("kill -CONT " .. TestHungRedis.redis.pid)
    sredis.stop(TestHungRedis.redis)
  end
end

function TestHungRedis:test_p0f_answers_within_the_timeout()
  local res = self.rspamd:scan({ ip = "203.0.113.7" })
  lu.assertEquals(res.symbols.P0F[1], "Windows 7 or 8")
  lu.assertNil(res.symbols.P0F_FAIL)
  lu.assertTrue(res.elapsed < TIMEOUT + MARGIN, "scan took " .. res.elapsed .. " s")
end

function TestHungRedis:test_hung_p0f_and_hung_redis_fail_open()
  local res = self.rspamd:scan({ ip = "203.0.113.8" })
  assert_fail_only(res, "ETIMEDOUT")
end

-- ---- Redis only: no socket, fingerprints published elsewhere --------------

TestRedisOnly = {}

function TestRedisOnly.setupClass()
  TestRedisOnly.rspamd = H.start({ section = string.format([[
  timeout = %ds;
  servers = "127.0.0.1:%d";
  prefix = "p0fshared:";]], TIMEOUT, redis.port) })
end

function TestRedisOnly.teardownClass()
  if TestRedisOnly.rspamd then TestRedisOnly.rspamd:stop() end
end

function TestRedisOnly:test_reads_published_fingerprints()
  rcmd("SET", "p0fshared:198.51.100.40", p0f.encode_response({ status = "ok",
    os_name = "Windows", os_flavor = "XP", distance = 14, link_type = "DSL" }), "EX", "600")
  local res = self.rspamd:scan({ ip = "198.51.100.40" })
  lu.assertEquals({ res.symbols.P0F[1], res.symbols.P0F[2], res.symbols.P0F[3] },
    { "Windows XP", "link=DSL", "distance=14" })
  -- Unknown to Redis: nothing to say, and nothing failed.
  res = self.rspamd:scan({ ip = "198.51.100.41" })
  lu.assertNil(res.symbols.P0F)
  lu.assertNil(res.symbols.P0F_FAIL)
  lu.assertEquals(queried("198.51.100.41"), 0)
end

local rc = lu.LuaUnit.run()
srv:stop()
sredis.stop(redis)
os.exit(rc)
