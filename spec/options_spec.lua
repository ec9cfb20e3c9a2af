--- Every numeric option of p0f.filter, p0f.cache, p0f.config and
-- p0f-policyd accepts only what the code behind it can use; and
-- `p0f-policyd --check-config` refuses what would fail at start, and ends
-- on a configuration that never does.
local lu = require("luaunit")
local filter = require("p0f.filter")
local cache = require("p0f.cache")
local config = require("p0f.config")
local policyd = require("p0f.policyd")
local ps = require("policyd_support")

local NAN, INF = 0 / 0, math.huge
local UNUSABLE = { NAN, INF, -INF, 1e300, -1 }
local FRACTIONS = { 0.5, 1.5 }

local function each(list, extra, fn)
  for _, v in ipairs(list) do fn(v) end
  for _, v in ipairs(extra or {}) do fn(v) end
end

-- ---- p0f.filter ------------------------------------------------------------

TestFilterRanges = {}

function TestFilterRanges:test_seconds()
  for _, name in ipairs({ "timeout", "expire", "nomatch_expire" }) do
    each(UNUSABLE, nil, function(v)
      local f, err = filter.new{ [name] = v }
      lu.assertNil(f, name .. " = " .. tostring(v) .. " accepted")
      lu.assertStrContains(err, "bad option '" .. name .. "'")
    end)
  end
  -- the C client refuses a timeout over a year at start: refused here first
  lu.assertNil(filter.new{ timeout = 1e9 })
  lu.assertNil(filter.new{ timeout = "400d" })
  lu.assertNotNil(filter.new{ timeout = "365d", expire = 86400 * 365, nomatch_expire = 0 })
end

function TestFilterRanges:test_cache_size_and_scores()
  each(UNUSABLE, FRACTIONS, function(v)
    lu.assertNil(filter.new{ cache_size = v }, "cache_size = " .. tostring(v))
  end)
  lu.assertNil(filter.new{ cache_size = 1e8 })
  lu.assertNotNil(filter.new{ cache_size = 0 })
  for _, v in ipairs({ NAN, INF, -INF, 1e300 }) do
    local f, err = filter.new({ patterns = { WIN = { pattern = "Windows", score = v } } },
      { regex = function() return function() return false end end })
    lu.assertNil(f, "score = " .. tostring(v))
    lu.assertStrContains(err, "patterns.WIN.score")
  end
end

function TestFilterRanges:test_socket_path_fits_a_sockaddr()
  local f, err = filter.new{ socket = "/" .. string.rep("s", 200) }
  lu.assertNil(f)
  lu.assertStrContains(err, "bad option 'socket'")
  lu.assertNotNil(filter.new{ socket = "/" .. string.rep("s", 106) })
end

-- ---- p0f.cache ---------------------------------------------------------------

TestCacheRanges = {}

function TestCacheRanges:test_expiries_refused_at_construction()
  local call = function(_, cb) cb(nil, "OK") end
  each(UNUSABLE, nil, function(v)
    lu.assertErrorMsgContains("expire", cache.lru, { expire = v })
    lu.assertErrorMsgContains("expire", cache.redis, call, { expire = v })
    lu.assertErrorMsgContains("nomatch_expire", cache.redis, call, { nomatch_expire = v })
  end)
  each({ NAN, INF, -1 }, FRACTIONS, function(v)
    lu.assertErrorMsgContains("size", cache.lru, { size = v })
  end)
end

function TestCacheRanges:test_put_never_raises()
  -- What a valid expiry turns into: an integer TTL for Redis.
  local sent
  local r = cache.redis(function(args, cb) sent = args cb(nil, "OK") end, { expire = 0.2 })
  local raw = require("p0f").encode_response{ status = "ok", os_name = "Linux" }
  local ok
  r:put("192.0.2.1", raw, "ok", function(x) ok = x end)
  lu.assertTrue(ok)
  lu.assertEquals(sent[5], "1")
end

-- ---- p0f.config / p0f-policyd ---------------------------------------------------

TestConfigRanges = {}

local function split(opts)
  local d, err = config.split(opts)
  return d, err
end

function TestConfigRanges:test_seconds_and_integers()
  local names = {
    redis_timeout = {}, request_timeout = {}, idle_timeout = {}, shutdown_timeout = {},
    close_timeout = {},
    listen_mode = FRACTIONS, max_line = FRACTIONS, max_attrs = FRACTIONS, max_connections = FRACTIONS,
    max_pending = FRACTIONS, max_output = FRACTIONS,
  }
  for name, extra in pairs(names) do
    each(UNUSABLE, extra, function(v)
      local d, err = split{ [name] = v }
      lu.assertNil(d, name .. " = " .. tostring(v) .. " accepted")
      lu.assertStrContains(err, "'" .. name .. "'")
    end)
  end
end

function TestConfigRanges:test_redis_table()
  for _, port in ipairs({ 0, 70000, NAN, INF, 6379.5, "6379" }) do
    local d, err = split{ redis = { host = "127.0.0.1", port = port } }
    lu.assertNil(d, "redis port " .. tostring(port) .. " accepted")
    lu.assertStrContains(err, "redis.port")
  end
  each(UNUSABLE, nil, function(v)
    local d, err = split{ redis = { host = "127.0.0.1", timeout = v } }
    lu.assertNil(d, "redis timeout " .. tostring(v) .. " accepted")
    lu.assertStrContains(err, "redis.timeout")
  end)
  lu.assertNil(split{ redis = "unix:/" .. string.rep("r", 200) })
  lu.assertNil(split{ redis = { host = "/" .. string.rep("r", 200) } })
  local d = assert(split{ redis = { host = "redis.example", port = 6380, timeout = "250ms" } })
  lu.assertEquals(d.redis, { host = "redis.example", port = 6380, timeout = 0.25 })
end

function TestConfigRanges:test_listen()
  for _, bad in ipairs({ "localhost:10040", "mail.example:25", "127.0.0.1:65536", "127.0.0.1:",
                         "[::1]:x", "unix:", "unix:/" .. string.rep("l", 200) }) do
    local d, err = split{ listen = bad }
    lu.assertNil(d, "listen = " .. bad .. " accepted")
    lu.assertStrContains(err, "'listen'")
  end
  for _, good in ipairs({ "127.0.0.1:10040", "[::1]:0", "*:10040", "10040", "unix:/run/p.sock",
                          "/run/p.sock" }) do
    lu.assertNotNil(split{ listen = good }, good)
  end
end

function TestConfigRanges:test_huge_expire_with_publish_is_refused()
  -- It used to pass, and then no request for a new address was answered:
  -- the raise in cache.redis:put skipped handing the answer out.
  local server, err = policyd.new{ expire = 1e300, publish = true, redis = "127.0.0.1:6379",
                                   socket = "/tmp/p0f.sock" }
  lu.assertNil(server)
  lu.assertStrContains(err, "bad option 'expire'")
end

-- ---- --check-config ---------------------------------------------------------------

TestCheckConfig = {}

function TestCheckConfig:test_refuses_what_fails_at_start()
  local cases = {
    { { socket = "/tmp/p0f.sock", timeout = 1e9 }, "'timeout'" },
    { { socket = "/tmp/p0f.sock", redis = { host = "127.0.0.1", port = 70000 } }, "redis.port" },
    { { socket = "/tmp/p0f.sock", listen = "localhost:10040" }, "'listen'" },
    { { socket = "/tmp/p0f.sock", listen = "unix:/tmp/" .. string.rep("x", 120) }, "'listen'" },
    { { socket = "/tmp/" .. string.rep("x", 120) }, "'socket'" },
  }
  for _, case in ipairs(cases) do
    local status, out = ps.check_config(case[1])
    lu.assertEquals(status, 1, out)
    lu.assertStrContains(out, case[2])
  end
end

function TestCheckConfig:test_a_loop_that_never_ends_is_an_error()
  for _, text in ipairs({ "while true do end\n", "local t = {} for i = 1, 1e12 do t[i % 7] = i end\n",
                          "local function f() return f() end f()\n" }) do
    local status, out = ps.check_config(text, 120)
    lu.assertEquals(status, 1, text .. out)
    lu.assertStrContains(out, "runs too long")
  end
  -- one C call is one instruction: a backtracking pattern or a huge rep
  -- would escape the count, so string methods are not there at all
  for _, text in ipairs({ "x = ('a'):rep(20):find(('a?'):rep(20) .. ('a'):rep(20))\n",
                          "x = ('a'):rep(2^40)\n" }) do
    local status, out = ps.check_config(text, 120)
    lu.assertEquals(status, 1, text .. out)
    lu.assertStrContains(out, "string methods are not available")
  end
  -- in process: refused, and the methods are back afterwards
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("x = ('a'):upper()\n")
  f:close()
  local t, err = require("p0f.config").load(path)
  os.remove(path)
  lu.assertNil(t)
  lu.assertStrContains(err, "string methods are not available")
  lu.assertEquals(("abc"):upper(), "ABC")
  -- a normal file with a loop in it is fine
  local status, out = ps.check_config("reject = {}\nfor i = 1, 100 do reject[i] = 'OS ' .. i end\n"
    .. "socket = '/tmp/p0f.sock'\n")
  lu.assertEquals(status, 0, out)
end

-- The budget may run out in the few instructions after the chunk returned,
-- with the hook still set: that must not raise outside the protected call
-- (and leave the hook and the string metatable as the chunk had them).
-- Every length of file around the budget, so one of them ends right there.
function TestCheckConfig:test_the_budget_never_escapes_the_load()
  local config = require("p0f.config")
  local saved = config.MAX_INSTRUCTIONS
  config.MAX_INSTRUCTIONS = 1000
  local path = os.tmpname()
  local refused = 0
  for n = 300, 2500 do
    local f = assert(io.open(path, "w"))
    f:write("for i = 1, " .. n .. " do end\n")
    f:close()
    local ok, t, err = pcall(config.load, path)
    if not ok then
      config.MAX_INSTRUCTIONS = saved
      debug.sethook()
      os.remove(path)
      lu.fail(string.format("%d iterations: the load raised: %s", n, tostring(t)))
    end
    if not t then
      refused = refused + 1
      lu.assertStrContains(err, "runs too long")
    end
    lu.assertNil(debug.gethook(), n .. " iterations: hook left set")
    lu.assertEquals(("abc"):upper(), "ABC")
  end
  config.MAX_INSTRUCTIONS = saved
  os.remove(path)
  lu.assertTrue(refused > 0 and refused < 2201, refused .. " of 2201 refused")
end

function TestCheckConfig:test_a_file_that_eats_memory_is_an_error()
  local status, out = ps.check_config("local s = ('x'):len() and 'xxxxxxxxxxxxxxxx'\n", 120)
  lu.assertEquals(status, 1, out) -- (string methods: refused, see above)
  status, out = ps.check_config("local s = 'xxxxxxxxxxxxxxxx'\nfor i = 1, 40 do s = s .. s end\n", 120)
  lu.assertEquals(status, 1, out)
  lu.assertStrContains(out, "too much memory")
end

os.exit(lu.LuaUnit.run())
