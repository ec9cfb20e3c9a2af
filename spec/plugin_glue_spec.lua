--- p0f.rspamd without rspamd: the glue driven through stand-ins for
-- rspamd_config, the task, rspamd_tcp and lua_redis, so its decisions
-- (reads in pieces, the deadline, cache order, Redis commands, skips,
-- what is applied to the task) are checked under every Lua quickly.
-- rspamd_jit_spec.lua runs the same plugin inside a real rspamd.
local lu = require("luaunit")
local p0f = require("p0f")

-- rspamd's regexp module, as far as the glue uses it (Lua patterns here).
package.preload["rspamd_regexp"] = function()
  return { create_cached = function(pattern, flags)
    if pattern:find("%[$") then return nil end -- "invalid"
    return { match = function(_, s)
      if flags == "i" then return s:lower():find(pattern:lower()) ~= nil end
      return s:find(pattern) ~= nil
    end }
  end }
end

local glue = require("p0f.rspamd")

local WINDOWS = p0f.encode_response({ status = "ok", os_name = "Windows",
  os_flavor = "7 or 8", distance = 12, link_type = "DSL", uptime_min = 90 })
local NOMATCH = p0f.encode_response({ status = "nomatch" })

-- ---- stand-ins -----------------------------------------------------------

local unpack = table.unpack or unpack

local function fake_env(t)
  t = t or {}
  local env = { now = 100, tcp_calls = {}, redis_calls = {}, logs = {}, headers = {} }
  local function log(level)
    return function(_, fmt, ...)
      local n = select("#", ...)
      local args = { ... }
      for i = 1, n do args[i] = tostring(args[i]) end
      local ok, line = pcall(string.format, fmt, unpack(args, 1, n))
      env.logs[#env.logs + 1] = level .. " " .. (ok and line or fmt)
    end
  end
  env.logger = { warnx = log("warn"), errx = log("err"), infox = log("info"),
    debugm = function(_, _, fmt, ...) log("debug")(nil, fmt, ...) end }
  env.util = { get_ticks = function() return env.now end }
  env.lua_util = { symbols_priorities = { medium = 5 } }
  env.lua_mime = { modify_headers = function(_, alt) env.headers[#env.headers + 1] = alt end }
  -- tcp.request: the test scripts what arrives, as { chunks... } or an error.
  env.tcp = { request = function(req)
    env.tcp_calls[#env.tcp_calls + 1] = req
    local script = env.tcp_script or {}
    if script.connect_error then
      req.callback(script.connect_error)
      return false
    end
    local i = 0
    local conn = {}
    local function deliver()
      i = i + 1
      local step = script[i]
      if step == nil then return end
      if type(step) == "function" then step = step() end
      if step.err then return req.callback(step.err, nil, conn) end
      req.callback(nil, step.data, conn)
    end
    function conn.add_read(_, cb)
      req.callback = cb
      conn.reads = (conn.reads or 0) + 1
      deliver()
    end
    env.last_conn = conn
    deliver()
    return true
  end }
  env.lua_redis = {
    parse_redis_server = function() return t.redis and { timeout = 1.0, shared = true } or nil end,
    register_prefix = function() end,
    redis_make_request = function(_, params, key, is_write, cb, cmd, args)
      env.redis_calls[#env.redis_calls + 1] = { key = key, write = is_write, cmd = cmd,
                                                args = args, params = params }
      local reply = env.redis_store and env.redis_store[key]
      if env.redis_error then cb(env.redis_error) return true end
      if cmd == "GET" then cb(nil, reply) else cb(nil, "OK") end
      return true
    end,
  }
  return env
end

local function fake_cfg()
  local cfg = { symbols = {} }
  function cfg.register_symbol(_, s)
    cfg.symbols[s.name] = s
    return #cfg.symbols + 1
  end
  return cfg
end

local function fake_task(ip, user)
  local task = { results = {}, vars = {}, pre = nil }
  function task.get_from_ip()
    if not ip then return nil end
    return {
      is_valid = function() return true end,
      to_string = function() return ip end,
      is_local = function() return ip:match("^192%.168%.") ~= nil end,
    }
  end
  function task.get_user() return user end
  function task.insert_result(_, name, weight, options)
    task.results[name] = { weight = weight, options = options }
  end
  function task.get_mempool()
    return { set_variable = function(_, name, ...) task.vars[name] = { ... } end }
  end
  function task.set_pre_result(_, r) task.pre = r end
  return task
end

local function setup(section, t)
  local env = fake_env(t)
  local cfg = fake_cfg()
  local plugin, err = glue.register(cfg, section, "p0f_fingerprint", env)
  lu.assertNotNil(plugin, err)
  local check = cfg.symbols[glue.CHECK_SYMBOL].callback
  return env, cfg, plugin, check
end

local function whole(raw) return { { data = raw } } end

-- ---- tests ---------------------------------------------------------------

TestRegister = {}

function TestRegister:test_symbols_registered_with_scores()
  local _, cfg = setup({ socket = "/p0f.sock",
    patterns = { WINDOWS = "^Windows", DSL = { pattern = "^link=DSL$", score = 2.5 } } })
  lu.assertEquals(cfg.symbols[glue.CHECK_SYMBOL].type, "prefilter")
  lu.assertEquals(cfg.symbols.P0F.type, "virtual")
  lu.assertEquals(cfg.symbols.P0F_FAIL.type, "virtual")
  lu.assertEquals(cfg.symbols.DSL.score, 2.5)
  lu.assertEquals(cfg.symbols.WINDOWS.score, 0.0)
  lu.assertStrContains(cfg.symbols[glue.CHECK_SYMBOL].augmentations[1], "timeout=5")
end

function TestRegister:test_bad_options_refused()
  local plugin, err = glue.register(fake_cfg(), { timeout = "soon" }, "p0f_fingerprint",
    fake_env())
  lu.assertNil(plugin)
  lu.assertStrContains(err, "timeout")
  plugin, err = glue.register(fake_cfg(), { sockt = "/x" }, "p0f_fingerprint", fake_env())
  lu.assertNil(plugin)
  lu.assertStrContains(err, "sockt")
  plugin, err = glue.register(fake_cfg(), { patterns = { BAD = "([" } }, "p0f_fingerprint",
    fake_env())
  lu.assertNil(plugin)
  lu.assertStrContains(err, "BAD")
end

function TestRegister:test_plugin_keys_are_not_filter_options()
  local plugin = glue.register(fake_cfg(), { lua_path = "/x", lua_cpath = "/y" },
    "p0f_fingerprint", fake_env())
  lu.assertNotNil(plugin)
end

function TestRegister:test_redis_timeout_capped_in_a_copy()
  local _, _, plugin = setup({ timeout = 1 }, { redis = true })
  lu.assertEquals(plugin.redis_params.timeout, 0.5)
  lu.assertTrue(plugin.redis_params.shared) -- a copy of lua_redis' table
  lu.assertNil(plugin.socket)                -- no socket configured: Redis only
end

TestLookup = {}

function TestLookup:test_reply_in_pieces()
  local env, _, _, check = setup({ socket = "/p0f.sock", header = "X-P0f",
    patterns = { DSL = { pattern = "^link=DSL$", score = 2.5 } } })
  env.tcp_script = { { data = WINDOWS:sub(1, 1) }, { data = WINDOWS:sub(2, 100) },
                     { data = WINDOWS:sub(101) } }
  local task = fake_task("203.0.113.7")
  check(task)
  lu.assertEquals(env.tcp_calls[1].host, "/p0f.sock")
  lu.assertEquals(env.tcp_calls[1].data, p0f.encode_query("203.0.113.7"))
  lu.assertEquals(env.last_conn.reads, 2)
  lu.assertEquals(task.results.P0F.options, { "Windows 7 or 8", "link=DSL", "distance=12" })
  lu.assertEquals(task.results.P0F.weight, 1.0)
  lu.assertEquals(task.results.DSL.options, { "link=DSL" })
  lu.assertEquals(task.vars.os_fingerprint, { "Windows 7 or 8", "DSL", 90, 12 })
  lu.assertEquals(env.headers[1].add["X-P0f"].value, "Windows 7 or 8, link=DSL, distance=12")
  lu.assertEquals(env.headers[1].remove["X-P0f"], 0)
end

function TestLookup:test_deadline_with_a_trickling_reply()
  local env, _, _, check = setup({ socket = "/p0f.sock", timeout = 2 })
  env.tcp_script = { { data = WINDOWS:sub(1, 10) },
    function() env.now = env.now + 3 return { data = WINDOWS:sub(11, 20) } end,
    { data = WINDOWS:sub(21) } }
  local task = fake_task("203.0.113.7")
  check(task)
  lu.assertNil(task.results.P0F)
  lu.assertStrContains(task.results.P0F_FAIL.options[1], "ETIMEDOUT")
  lu.assertEquals(env.tcp_calls[1].timeout, 2)
end

function TestLookup:test_errors_fail_open_with_codes()
  local cases = {
    { { { err = "IO timeout" } }, "ETIMEDOUT" },
    { { { err = "IO read error: connection terminated" } }, "ECONNRESET" },
    { whole(string.rep("x", p0f.RESPONSE_SIZE)), "EPROTO" },
    { { connect_error = "cannot connect to the host: /nonexistent/p0f.sock" }, "ENOENT" },
  }
  for _, c in ipairs(cases) do
    local env, _, _, check = setup({ socket = "/nonexistent/p0f.sock" })
    env.tcp_script = c[1]
    local task = fake_task("203.0.113.7")
    check(task)
    lu.assertNil(task.results.P0F)
    lu.assertStrContains(task.results.P0F_FAIL.options[1], "(" .. c[2] .. ")")
    lu.assertStrContains(env.logs[#env.logs], "lookup of 203.0.113.7 failed")
  end
end

function TestLookup:test_lru_answers_the_second_time()
  local env, _, _, check = setup({ socket = "/p0f.sock" })
  env.tcp_script = whole(WINDOWS)
  check(fake_task("203.0.113.7"))
  local task = fake_task("::ffff:203.0.113.7") -- the same host
  check(task)
  lu.assertEquals(#env.tcp_calls, 1)
  lu.assertEquals(task.results.P0F.options[1], "Windows 7 or 8")
end

function TestLookup:test_redis_read_then_p0f_then_write()
  local env, _, _, check = setup({ socket = "/p0f.sock", prefix = "fp:" }, { redis = true })
  env.redis_store = {}
  env.tcp_script = whole(WINDOWS)
  local task = fake_task("203.0.113.7")
  check(task)
  lu.assertEquals(#env.redis_calls, 2)
  lu.assertEquals(env.redis_calls[1].cmd, "GET")
  lu.assertEquals(env.redis_calls[1].key, "fp:203.0.113.7")
  lu.assertFalse(env.redis_calls[1].write)
  lu.assertEquals(env.redis_calls[2].cmd, "SET")
  lu.assertTrue(env.redis_calls[2].write)
  lu.assertEquals(env.redis_calls[2].args, { "fp:203.0.113.7", WINDOWS, "EX", "7200" })
  lu.assertEquals(task.results.P0F.options[1], "Windows 7 or 8")
end

function TestLookup:test_redis_hit_skips_p0f()
  local env, _, _, check = setup({ socket = "/p0f.sock" }, { redis = true })
  env.redis_store = { ["p0f198.51.100.30"] = WINDOWS }
  local task = fake_task("198.51.100.30")
  check(task)
  lu.assertEquals(#env.tcp_calls, 0)
  lu.assertEquals(task.results.P0F.options[1], "Windows 7 or 8")
end

function TestLookup:test_failed_redis_read_no_write()
  local env, _, _, check = setup({ socket = "/p0f.sock" }, { redis = true })
  env.redis_error = "timeout while connecting the server"
  env.tcp_script = whole(NOMATCH)
  local task = fake_task("203.0.113.7")
  check(task)
  lu.assertEquals(#env.redis_calls, 1)
  lu.assertEquals(#env.tcp_calls, 1)
  lu.assertNil(task.results.P0F)
  lu.assertNil(task.results.P0F_FAIL) -- no match is an answer, not a failure
end

function TestLookup:test_redis_only_miss_is_quiet()
  local env, _, _, check = setup({}, { redis = true })
  env.redis_store = {}
  local task = fake_task("203.0.113.7")
  check(task)
  lu.assertEquals(#env.tcp_calls, 0)
  lu.assertNil(next(task.results))
end

function TestLookup:test_skips()
  local env, _, _, check = setup({ socket = "/p0f.sock" })
  for _, c in ipairs({ { "203.0.113.7", "alice" }, { "192.168.1.5" }, { "127.0.0.1" },
                       { "::1" }, { "not-an-ip" } }) do
    local task = fake_task(c[1], c[2])
    check(task)
    lu.assertNil(next(task.results), c[1])
  end
  check(fake_task(nil))
  lu.assertEquals(#env.tcp_calls, 0)
end

function TestLookup:test_reject_action()
  local env, _, _, check = setup({ socket = "/p0f.sock", reject = "/^windows/",
    reject_message = "no ${os} here" })
  env.tcp_script = whole(WINDOWS)
  local task = fake_task("203.0.113.7")
  check(task)
  lu.assertEquals(task.pre.action, "reject")
  lu.assertEquals(task.pre.message, "no Windows 7 or 8 here")
  lu.assertEquals(task.pre.module, "p0f_fingerprint")
end

function TestLookup:test_internal_error_fails_open()
  local env, _, _, check = setup({ socket = "/p0f.sock" })
  env.tcp_script = { function() error("boom") end }
  local task = fake_task("203.0.113.7")
  check(task)
  lu.assertStrContains(task.results.P0F_FAIL.options[1], "internal error")
end

TestErrorCode = {}

function TestErrorCode:test_names()
  lu.assertEquals(glue.error_code("IO timeout"), "ETIMEDOUT")
  lu.assertEquals(glue.error_code("IO read error: connection terminated"), "ECONNRESET")
  lu.assertEquals(glue.error_code("Socket error detected: Connection refused"), "ECONNREFUSED")
  lu.assertEquals(glue.error_code("Socket error detected: Permission denied"), "EACCES")
  lu.assertEquals(glue.error_code("something else"), "EIO")
  -- "cannot connect": a missing socket file is ENOENT, an existing one refused.
  lu.assertEquals(glue.error_code("cannot connect", "/nonexistent/p0f.sock"), "ENOENT")
  local existing = os.tmpname()
  lu.assertEquals(glue.error_code("cannot connect", existing), "ECONNREFUSED")
  os.remove(existing)
end

-- A UNIX listener that accepts nothing, and one connection already queued.
local function busy_listener()
  local unix = require("socket.unix")
  local path = os.tmpname()
  os.remove(path)
  local l = assert(unix())
  assert(l:bind(path))
  assert(l:listen(0))
  local queued = assert(unix())
  queued:settimeout(0)
  queued:connect(path)
  return path, function() queued:close() l:close() os.remove(path) end
end

function TestErrorCode:test_a_busy_p0f_is_not_a_dead_one()
  -- rspamd says "cannot connect" for both; the errno (EAGAIN: the listen
  -- queue is full) only reaches its own log
  local path, done = busy_listener()
  lu.assertEquals(glue.error_code("cannot connect to the host: " .. path, path), "EAGAIN")
  lu.assertTrue(glue.listening(path))
  done()
  -- the socket file left behind by a dead p0f: nobody listens
  local unix = require("socket.unix")
  local stale = os.tmpname()
  os.remove(stale)
  local s = assert(unix())
  assert(s:bind(stale))
  s:close()
  lu.assertEquals(glue.error_code("cannot connect to the host: " .. stale, stale), "ECONNREFUSED")
  lu.assertFalse(glue.listening(stale))
  os.remove(stale)
end

function TestLookup:test_busy_p0f_fails_open_as_busy()
  local path, done = busy_listener()
  local env, _, _, check = setup({ socket = path })
  env.tcp_script = { connect_error = "cannot connect to the host: " .. path }
  local task = fake_task("203.0.113.7")
  check(task)
  done()
  lu.assertNil(task.results.P0F)
  lu.assertStrContains(task.results.P0F_FAIL.options[1], "listen queue is full")
  lu.assertStrContains(task.results.P0F_FAIL.options[1], "(EAGAIN)")
end

function TestLookup:test_badquery_carries_an_error_name()
  local env, _, _, check = setup({ socket = "/p0f.sock" })
  env.tcp_script = whole(p0f.encode_response({ status = "badquery" }))
  local task = fake_task("203.0.113.7")
  check(task)
  lu.assertNil(task.results.P0F)
  lu.assertStrMatches(task.results.P0F_FAIL.options[1], ".*%(E[A-Z]+%)$")
  lu.assertStrMatches(env.logs[#env.logs], ".*failed: .*%(E[A-Z]+%)$")
end

os.exit(lu.LuaUnit.run())
