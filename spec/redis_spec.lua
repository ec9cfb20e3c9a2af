--- p0f.cache.redis against a real redis-server that this test starts on a
-- loopback port with a private directory and stops by its PID.
local lu = require("luaunit")
local p0f = require("p0f")
local cache = require("p0f.cache")
local R = require("support_redis")
local support = require("support")

local OK = p0f.encode_response{ status = "ok", os_name = "Windows", os_flavor = "7 or 8",
                                link_type = "DSL", distance = 12, uptime_min = 90,
                                language = "\1\255\r\n" }
local NOMATCH = p0f.encode_response{ status = "nomatch" }

local server, err = R.start()
if not server then
  io.stderr:write("redis_spec: cannot start redis-server: ", tostring(err), "\n")
  os.exit(1) -- a missing server is a failure, not a pass
end

local started = { server } -- every server this file started, stopped at the end
local call = R.client(server.port)
local function cmd(...) return R.command(call, ...) end

-- Run an asynchronous backend call that this blocking client completes at once.
local function get(backend, addr)
  local done, raw, e = false, nil, nil
  backend:get(addr, function(r, x) done, raw, e = true, r, x end)
  lu.assertTrue(done)
  return raw, e
end

local function put(backend, addr, raw, status)
  local done, ok, e = false, nil, nil
  backend:put(addr, raw, status, function(o, x) done, ok, e = true, o, x end)
  lu.assertTrue(done)
  return ok, e
end

TestRedis = {}

function TestRedis:setUp()
  cmd("FLUSHALL")
end

function TestRedis:test_store_and_read_back()
  local b = cache.redis(call, { prefix = "p0f", expire = 7200 })
  lu.assertEquals({ put(b, "::ffff:203.0.113.7", OK, "ok") }, { true })
  -- the key is <prefix><canonical address>, the value exactly the 232 raw bytes
  lu.assertEquals(cmd("KEYS", "*"), { "p0f203.0.113.7" })
  local stored = cmd("GET", "p0f203.0.113.7")
  lu.assertEquals(#stored, 232)
  lu.assertEquals(stored, OK)
  lu.assertEquals(cmd("STRLEN", "p0f203.0.113.7"), 232)
  -- read back through either spelling of the address, decodable as it was
  lu.assertEquals(get(b, "203.0.113.7"), OK)
  local raw = get(b, "::ffff:203.0.113.7")
  lu.assertEquals(p0f.decode(raw).os, "Windows 7 or 8")
  lu.assertEquals(p0f.decode(raw).language, "\1\255\r\n") -- binary-safe
end

function TestRedis:test_ttl()
  local b = cache.redis(call, { prefix = "fp:", expire = 7200, nomatch_expire = 300 })
  put(b, "2001:DB8::7", OK, "ok")
  put(b, "198.51.100.9", NOMATCH, "nomatch")
  local ttl = cmd("TTL", "fp:2001:db8::7")
  lu.assertTrue(ttl > 7100 and ttl <= 7200, "TTL " .. tostring(ttl))
  ttl = cmd("TTL", "fp:198.51.100.9")
  lu.assertTrue(ttl > 200 and ttl <= 300, "TTL " .. tostring(ttl))
  lu.assertEquals(get(b, "198.51.100.9"), NOMATCH)
  -- a fractional expire is rounded up, never to 0 (which Redis refuses)
  local c = cache.redis(call, { prefix = "fp:", expire = 0.5 })
  lu.assertEquals({ put(c, "198.51.100.10", OK, "ok") }, { true })
  lu.assertEquals(cmd("TTL", "fp:198.51.100.10"), 1)
end

function TestRedis:test_errors_never_stored()
  local b = cache.redis(call, {})
  lu.assertEquals({ put(b, "198.51.100.1", p0f.encode_response{ status = "badquery" }, "badquery") },
                  { false })
  lu.assertEquals({ put(b, "198.51.100.1", OK, "fail") }, { false })
  lu.assertEquals(cmd("DBSIZE"), 0)
end

function TestRedis:test_miss_and_bad_value()
  local b = cache.redis(call, {})
  local raw, e = get(b, "198.51.100.2")
  lu.assertNil(raw)
  lu.assertNil(e)
  cmd("SET", "p0f198.51.100.3", "not a p0f reply")
  raw, e = get(b, "198.51.100.3")
  lu.assertNil(raw)
  lu.assertStrContains(e, "not 232")
end

function TestRedis:test_reads_what_rspamd_stores()
  -- rspamd's own p0f module: SETEX <prefix><ip:to_string()> <expire> <raw reply>
  cmd("SETEX", "p0f192.0.2.55", "7200", OK)
  lu.assertEquals(get(cache.redis(call, { prefix = "p0f" }), "::ffff:192.0.2.55"), OK)
end

function TestRedis:test_dead_redis_is_an_error_not_a_raise()
  local dead = R.client(support.free_port(), 1)
  local b = cache.redis(dead, {})
  local raw, e = get(b, "198.51.100.4")
  lu.assertNil(raw)
  lu.assertStrContains(e, "redis")
  local ok, e2 = put(b, "198.51.100.4", OK, "ok")
  lu.assertFalse(ok)
  lu.assertStrContains(e2, "redis")
end

function TestRedis:test_redis_dying_between_calls()
  local own = assert(R.start())
  started[#started + 1] = own
  local c = R.client(own.port, 1)
  local b = cache.redis(c, {})
  lu.assertEquals({ put(b, "198.51.100.5", OK, "ok") }, { true })
  local pid = own.pid
  R.stop(own)
  lu.assertFalse(R.alive({ pid = pid }))
  local raw, e = get(b, "198.51.100.5")
  lu.assertNil(raw)
  lu.assertStrContains(e, "redis")
end

local rc = lu.LuaUnit.run()
for _, d in ipairs(started) do R.stop(d) end
os.exit(rc)
