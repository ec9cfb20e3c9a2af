--- p0f.cache: keys, TTLs, the in-process LRU, the Redis backend's contract
-- (against a scripted `call`; redis_spec runs it against a real Redis).
local lu = require("luaunit")
local p0f = require("p0f")
local cache = require("p0f.cache")

local OK = p0f.encode_response{ status = "ok", os_name = "Linux", os_flavor = "3.x", distance = 3 }
local NOMATCH = p0f.encode_response{ status = "nomatch" }

TestKey = {}

function TestKey:test_canonical()
  lu.assertEquals(cache.key("p0f", "203.0.113.7"), "p0f203.0.113.7")
  lu.assertEquals(cache.key("p0f", "::ffff:203.0.113.7"), "p0f203.0.113.7")
  lu.assertEquals(cache.key("p0f", "::FFFF:CB00:7107"), "p0f203.0.113.7")
  lu.assertEquals(cache.key("p0f:", "2001:DB8:0:0:1:0:0:1"), "p0f:2001:db8::1:0:0:1")
  lu.assertEquals(cache.key("", "2001:db8::0:1"), "2001:db8::1")
end

function TestKey:test_bad_address()
  local k, msg, code = cache.key("p0f", "not-an-ip")
  lu.assertNil(k)
  lu.assertStrContains(msg, "not an IP address")
  lu.assertEquals(code, "EINVAL")
end

TestTtl = {}

function TestTtl:test_by_status()
  local o = { expire = 7200, nomatch_expire = 300 }
  lu.assertEquals(cache.ttl(o, "ok"), 7200)
  lu.assertEquals(cache.ttl(o, "nomatch"), 300)
  lu.assertNil(cache.ttl(o, "badquery"))
  lu.assertNil(cache.ttl(o, "fail"))
  lu.assertNil(cache.ttl(o, nil))
end

function TestTtl:test_defaults()
  lu.assertEquals(cache.ttl({}, "ok"), 7200)
  lu.assertEquals(cache.ttl(nil, "nomatch"), 300)
  lu.assertEquals(cache.ttl({ expire = 60 }, "nomatch"), 60) -- never longer than expire
  lu.assertNil(cache.ttl({ nomatch_expire = 0 }, "nomatch")) -- 0: not stored
end

-- ---- LRU ----------------------------------------------------------------------

TestLru = {}

function TestLru:test_get_put()
  local lru = cache.lru{ size = 10 }
  lu.assertNil(lru:get("203.0.113.7", 0))
  lu.assertTrue(lru:put("203.0.113.7", OK, "ok", 0))
  lu.assertEquals(lru:get("203.0.113.7", 1), OK)
  lu.assertEquals(lru:count(), 1)
  -- overwrite keeps one entry
  lu.assertTrue(lru:put("203.0.113.7", NOMATCH, "nomatch", 2))
  lu.assertEquals(lru:get("203.0.113.7", 3), NOMATCH)
  lu.assertEquals(lru:count(), 1)
  lru:clear()
  lu.assertEquals(lru:count(), 0)
  lu.assertNil(lru:get("203.0.113.7", 3))
end

function TestLru:test_key_normalisation()
  local lru = cache.lru{}
  lru:put("::ffff:198.51.100.1", OK, "ok", 0)
  lu.assertEquals(lru:get("198.51.100.1", 0), OK)
  lru:put("2001:DB8::0:0:1", OK, "ok", 0)
  lu.assertEquals(lru:get("2001:db8::1", 0), OK)
  lu.assertEquals(lru:count(), 2)
  lu.assertFalse(lru:put("junk", OK, "ok", 0))
  lu.assertNil(lru:get("junk", 0))
end

function TestLru:test_evicts_least_recently_used()
  local lru = cache.lru{ size = 3 }
  for i = 1, 3 do lru:put("192.0.2." .. i, OK .. i, "ok", 0) end
  lu.assertEquals(lru:get("192.0.2.1", 0), OK .. 1) -- .1 is now the most recent
  lru:put("192.0.2.4", OK .. 4, "ok", 0)            -- evicts .2, the least recent
  lu.assertEquals(lru:count(), 3)
  lu.assertNil(lru:get("192.0.2.2", 0))
  lu.assertEquals(lru:get("192.0.2.1", 0), OK .. 1)
  lu.assertEquals(lru:get("192.0.2.3", 0), OK .. 3)
  lu.assertEquals(lru:get("192.0.2.4", 0), OK .. 4)
  -- overwriting refreshes recency too: .1 rewritten, then .5 evicts .3
  lru:put("192.0.2.1", OK .. "x", "ok", 0)
  lru:put("192.0.2.5", OK .. 5, "ok", 0)
  lu.assertNil(lru:get("192.0.2.3", 0))
  lu.assertEquals(lru:get("192.0.2.1", 0), OK .. "x")
end

function TestLru:test_bounded_under_many_addresses()
  local lru = cache.lru{ size = 100 }
  for i = 1, 5000 do
    lru:put(string.format("10.%d.%d.1", math.floor(i / 256), i % 256), OK, "ok", 0)
    lu.assertTrue(lru:count() <= 100)
  end
  lu.assertEquals(lru:count(), 100)
  lu.assertEquals(lru:get(string.format("10.%d.%d.1", math.floor(5000 / 256), 5000 % 256), 0), OK)
end

function TestLru:test_ttls()
  local lru = cache.lru{ expire = 7200, nomatch_expire = 300 }
  lru:put("192.0.2.1", OK, "ok", 1000)
  lru:put("192.0.2.2", NOMATCH, "nomatch", 1000)
  lu.assertEquals(lru:get("192.0.2.1", 1000 + 7199), OK)
  lu.assertEquals(lru:get("192.0.2.2", 1000 + 299), NOMATCH)
  lu.assertNil(lru:get("192.0.2.2", 1000 + 300))
  lu.assertNil(lru:get("192.0.2.1", 1000 + 7200))
  lu.assertEquals(lru:count(), 0) -- expired entries are dropped when seen
end

function TestLru:test_default_clock()
  local lru = cache.lru{ expire = 60 }
  lru:put("192.0.2.1", OK, "ok")
  lu.assertEquals(lru:get("192.0.2.1"), OK)
  lu.assertNil(lru:get("192.0.2.1", os.time() + 61))
end

function TestLru:test_errors_never_stored()
  local lru = cache.lru{}
  lu.assertFalse(lru:put("192.0.2.1", "x", "badquery", 0))
  lu.assertFalse(lru:put("192.0.2.1", "x", "fail", 0))
  lu.assertFalse(lru:put("192.0.2.1", "x", nil, 0))
  lu.assertNil(lru:get("192.0.2.1", 0))
  lu.assertEquals(lru:count(), 0)
  local nonomatch = cache.lru{ nomatch_expire = 0 }
  lu.assertFalse(nonomatch:put("192.0.2.1", NOMATCH, "nomatch", 0))
end

function TestLru:test_size_zero_stores_nothing()
  local lru = cache.lru{ size = 0 }
  lu.assertFalse(lru:put("192.0.2.1", OK, "ok", 0))
  lu.assertNil(lru:get("192.0.2.1", 0))
end

function TestLru:test_programmer_errors()
  lu.assertErrorMsgContains("size", cache.lru, { size = -1 })
  lu.assertErrorMsgContains("size", cache.lru, { size = "many" })
  lu.assertErrorMsgContains("string expected", function() cache.lru{}:put("192.0.2.1", nil, "ok") end)
end

-- ---- Redis backend against a scripted `call` -----------------------------------

TestRedisContract = {}

local function scripted(replies)
  local log = {}
  local call = function(args, cb)
    log[#log + 1] = args
    local r = replies[#log] or {}
    if r.raise then error(r.raise) end
    cb(r.err, r.reply)
    if r.twice then cb("late second call", nil) end
  end
  return call, log
end

function TestRedisContract:test_commands()
  local call, log = scripted{ {}, {}, { reply = "OK" } }
  local r = cache.redis(call, { prefix = "p0f", expire = 7200, nomatch_expire = 300 })
  local got = {}
  r:put("::ffff:203.0.113.7", OK, "ok", function(ok, err) got[#got + 1] = { ok, err } end)
  r:put("2001:db8::7", NOMATCH, "nomatch", function(ok, err) got[#got + 1] = { ok, err } end)
  r:get("203.0.113.7", function(raw, err) got[#got + 1] = { raw, err } end)
  lu.assertEquals(log, {
    { "SET", "p0f203.0.113.7", OK, "EX", "7200" },
    { "SET", "p0f2001:db8::7", NOMATCH, "EX", "300" },
    { "GET", "p0f203.0.113.7" },
  })
  lu.assertEquals(got[1], { true })
  lu.assertEquals(got[2], { true })
  lu.assertEquals(#got, 3)
end

function TestRedisContract:test_get_results()
  local call = scripted{ { reply = OK }, { reply = nil }, { reply = false },
                         { err = "connection refused" }, { reply = "short" },
                         { raise = "socket closed" }, { reply = OK, twice = true } }
  local r = cache.redis(call, {})
  local got = {}
  for _ = 1, 7 do
    r:get("203.0.113.7", function(raw, err) got[#got + 1] = { raw = raw, err = err } end)
  end
  lu.assertEquals(#got, 7) -- exactly one callback per get, even when `call` calls twice
  lu.assertEquals(got[1], { raw = OK })
  lu.assertEquals(got[2], {})                           -- a miss
  lu.assertEquals(got[3], {})                           -- a client's null marker
  lu.assertEquals(got[4].err, "connection refused")
  lu.assertNil(got[5].raw)
  lu.assertStrContains(got[5].err, "not 232")
  lu.assertNil(got[6].raw)
  lu.assertStrContains(got[6].err, "socket closed")     -- a raise becomes an error
  lu.assertEquals(got[7], { raw = OK })
end

function TestRedisContract:test_put_not_stored()
  local call, log = scripted{}
  local r = cache.redis(call, { expire = 7200 })
  local got = {}
  local function cb(ok, err) got[#got + 1] = { ok, err } end
  r:put("203.0.113.7", p0f.encode_response{ status = "badquery" }, "badquery", cb)
  r:put("203.0.113.7", OK, "fail", cb)
  r:put("not-an-ip", OK, "ok", cb)
  r:put("203.0.113.7", "short", "ok", cb)
  r:put("203.0.113.7", OK, "badquery") -- no callback is fine
  lu.assertEquals(#log, 0)
  lu.assertEquals(got[1], { false })
  lu.assertEquals(got[2], { false })
  lu.assertFalse(got[3][1])
  lu.assertStrContains(got[3][2], "not an IP address")
  lu.assertFalse(got[4][1])
  lu.assertNotNil(got[4][2])
end

function TestRedisContract:test_put_error()
  local call = scripted{ { err = "READONLY" }, { raise = "boom" } }
  local r = cache.redis(call, {})
  local got = {}
  r:put("203.0.113.7", OK, "ok", function(ok, err) got[#got + 1] = { ok, err } end)
  r:put("203.0.113.7", OK, "ok", function(ok, err) got[#got + 1] = { ok, err } end)
  lu.assertEquals(got[1], { false, "READONLY" })
  lu.assertFalse(got[2][1])
  lu.assertStrContains(got[2][2], "boom")
end

function TestRedisContract:test_get_bad_address()
  local call, log = scripted{}
  local got
  cache.redis(call, {}):get("junk", function(raw, err) got = { raw, err } end)
  lu.assertEquals(#log, 0)
  lu.assertNil(got[1])
  lu.assertStrContains(got[2], "not an IP address")
end

function TestRedisContract:test_programmer_errors()
  lu.assertErrorMsgContains("function expected", cache.redis, nil, {})
end

os.exit(lu.LuaUnit.run())
