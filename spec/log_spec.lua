--- p0f.log: levels, one line per event, and the per-cause rate limit any
-- daemon on the loop shares.
local lu = require("luaunit")
local plog = require("p0f.log")

local function logger(opts)
  local now = 1000
  opts = opts or {}
  opts.clock = function() return now end
  local log = plog.new(opts)
  local lines = {}
  log.write = function(_, level, msg) lines[#lines + 1] = level .. " " .. msg end
  return log, lines, function(dt) now = now + dt end
end

TestLog = {}

function TestLog:test_levels_and_one_line_per_event()
  local log, lines = logger{ level = "notice" }
  log:info("not shown")
  log:notice("peer said %s", "a\nb\r\0c")
  lu.assertEquals(lines, { "notice peer said a?b??c" })
  lu.assertFalse(log:enabled("debug"))
  lu.assertTrue(log:enabled("err"))
end

function TestLog:test_rate_limit_per_cause()
  local log, lines, advance = logger{ rate_limit = { lines = 3, seconds = 10 } }
  for i = 1, 50 do log:warning("garbage from %s", "peer" .. i) end
  log:err("another cause %d", 1)
  lu.assertEquals(#lines, 5)
  lu.assertStrContains(lines[4], "rate limit: more like this suppressed for up to 10s")
  lu.assertEquals(lines[5], "err another cause 1")
  advance(10)
  log:warning("garbage from %s", "later")
  lu.assertEquals(lines[6], "warning garbage from later (46 more like this suppressed)")
end

function TestLog:test_own_record_is_never_dropped()
  local log, lines = logger{ level = "debug", rate_limit = { lines = 1, seconds = 10 } }
  for i = 1, 100 do log:info("decision %d", i) end
  for i = 1, 100 do log:debug("detail %d", i) end
  lu.assertEquals(#lines, 200)
end

function TestLog:test_no_limit_when_asked()
  local log, lines = logger{ rate_limit = false }
  for _ = 1, 1000 do log:warning("same") end
  lu.assertEquals(#lines, 1000)
end

function TestLog:test_the_default_limit_bounds_a_flood()
  local log, lines = logger()
  for _ = 1, 100000 do log:warning("unknown request type '%s'; DUNNO", "nil") end
  lu.assertEquals(#lines, plog.RATE_LINES + 1)
end

function TestLog:test_facilities_and_levels_are_listed_once()
  for _, f in ipairs({ "mail", "daemon", "user", "local0", "local7" }) do
    lu.assertTrue(plog.FACILITIES[f], f)
  end
  lu.assertNil(plog.FACILITIES.kern)
  for name in plog.LEVEL_NAMES:gmatch("%a+") do
    if name ~= "or" then lu.assertNotNil(plog.LEVELS[name], name) end
  end
end

os.exit(lu.LuaUnit.run())
