--- p0f.config: the policy server's configuration file.
--
-- The file is Lua assignments, with the option names the rest of the
-- project uses (so a block from an rspamd p0f.conf reads the same):
--
--   listen = "127.0.0.1:10040"
--   socket = "/var/run/p0f.sock"
--   header = "X-p0f-OS"
--   reject = { "Windows XP", "/^Windows 9/" }
--
-- It runs with no globals at all (no os, io, require): data, not a script.
-- config.load(path) -> table | nil, err; config.split(opts) separates the
-- server's own options (validated here) from the filter's (p0f.filter
-- validates those, unknown names included).
local options = require("p0f.options")
local plog = require("p0f.log")

local unpack = table.unpack or unpack -- luacheck: ignore unpack (5.1)

local config = {}

--- The server's own options and their defaults.
config.DEFAULTS = {
  listen = "127.0.0.1:10040",   -- host:port, [v6]:port or unix:/path
  listen_mode = 0,              -- permissions of a UNIX listening socket (e.g. 438 = 0666)
  redis = false,                -- "host:port", "unix:/path" or { host=, port=, timeout= }
  redis_timeout = 0.5,          -- seconds for one Redis command
  publish = false,              -- write every fingerprint seen to Redis
  log = "stderr",               -- or "syslog"
  log_level = "info",           -- err, warning, notice, info, debug
  syslog_facility = "mail",
  request_timeout = 10,         -- a begun request must end within this
  idle_timeout = 1200,          -- a connection with no request open (Postfix's max_idle is 300)
  max_line = 4096,              -- bytes of one attribute line
  max_attrs = 128,              -- attributes in one request
  max_connections = 1000,       -- connections at once (ones we are closing count)
  max_pending = 64,             -- unanswered requests per connection; then it is not read
  max_output = 262144,          -- bytes of answers a client has not read; then it is dropped
  close_timeout = 10,           -- a connection we close gets this long to read its last answers
  shutdown_timeout = 2,         -- on SIGTERM, the whole shutdown (drain of p0f included)
}

local function bad(name, want, v)
  return nil, string.format("p0f-policyd: bad option '%s': %s expected, got %s", name, want,
    options.describe(v))
end

--- What running a configuration file may cost: it is data, so a loop
-- that never ends (`while true do end`) is an error, not a hang, and so is
-- a loop that doubles a string until the machine runs out of memory. A
-- real file runs a few thousand instructions and allocates kilobytes.
config.MAX_INSTRUCTIONS = 1000000
config.MAX_MEMORY_KB = 65536 -- growth of the Lua heap while the file runs

-- Run a loaded chunk (whose source name is `source`) under those budgets.
-- A count hook works on PUC Lua and on LuaJIT's interpreter; compiled
-- LuaJIT code skips hooks, so the chunk is kept out of the JIT.
--   - The hook looks every STEP instructions: a string that doubles each
--     time round a loop grows at most 2^(STEP/3) times past the memory
--     budget before it is stopped.
--   - It raises only while the file's own code runs. The hook is still set
--     for a few instructions of this function after the chunk returns; a
--     budget running out there must not raise outside the pcall (and leave
--     the hook and the string metatable as the chunk had them).
--   - The chunk sees no globals, but ("x"):method reaches the string
--     library through the string metatable, and one C call (a backtracking
--     find or gsub, a huge rep) runs as one instruction: neither budget can
--     stop it. So no string methods while the chunk runs.
local STEP = 10
local function run_bounded(chunk, source)
  local jit = rawget(_G, "jit")
  if jit and jit.off then jit.off(chunk, true) end
  local left = config.MAX_INSTRUCTIONS / STEP
  local mem_max = collectgarbage("count") + config.MAX_MEMORY_KB
  local old = { debug.gethook() }
  local smt = getmetatable("")
  local methods = smt and smt.__index
  if smt then
    smt.__index = function() error("string methods are not available in a configuration file", 2) end
  end
  debug.sethook(function()
    left = left - 1
    local why = (left < 0 and "configuration runs too long (a loop that never ends?)")
      or (collectgarbage("count") > mem_max and "configuration uses too much memory")
    if why and debug.getinfo(2, "S").source == source then error(why, 2) end
  end, "", STEP)
  local ok, err = pcall(chunk)
  debug.sethook(unpack(old))
  if smt then smt.__index = methods end
  return ok, err
end

--- Read a configuration file. nil, message on a missing file, a syntax
-- error, or a chunk that raises or runs too long.
function config.load(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "p0f-policyd: cannot read configuration: " .. tostring(err) end
  local text = f:read("*a")
  f:close()
  if text:byte(1) == 27 then return nil, "p0f-policyd: " .. path .. ": binary chunks are not accepted" end
  local env = {}
  local chunk, perr
  if setfenv then -- Lua 5.1 / LuaJIT
    chunk, perr = loadstring(text, "@" .. path)
    if chunk then setfenv(chunk, env) end
  else
    chunk, perr = load(text, "@" .. path, "t", env)
  end
  if not chunk then return nil, "p0f-policyd: " .. tostring(perr) end
  local ok, rerr = run_bounded(chunk, "@" .. path)
  if not ok then return nil, "p0f-policyd: " .. tostring(rerr) end
  return env
end

local function seconds(name, v)
  local s, want = options.check_seconds(v)
  if not s then return bad(name, want, v) end
  return s
end

local function integer(name, v, lo, hi)
  local n, want = options.check_integer(v, lo, hi)
  if not n then return bad(name, want, v) end
  return n
end

local REDIS_ADDRESS = "address (host:port or unix:/path)"

local function redis_host(host)
  if type(host) ~= "string" or host == "" then return nil, "host name, address or unix:/path" end
  if options.unix_path(host) then return options.check_socket_path(host) end
  return true
end

--- "host:port", "[v6]:port", "unix:/path" or a table -> { host=, port=, timeout= }.
-- Host names are fine here: hiredis resolves them.
function config.redis_address(v, timeout)
  if type(v) == "table" then
    local t = { host = v.host or "127.0.0.1", port = v.port or 6379 }
    local ok, what = redis_host(t.host)
    if not ok then return bad("redis.host", what, t.host) end
    local err
    t.port, err = integer("redis.port", t.port, 1, 65535)
    if not t.port then return nil, err end
    t.timeout, err = seconds("redis.timeout", v.timeout or timeout)
    if not t.timeout then return nil, err end
    return t
  end
  if type(v) ~= "string" or v == "" then return bad("redis", REDIS_ADDRESS, v) end
  if options.unix_path(v) then
    local ok, what = redis_host(v)
    if not ok then return bad("redis", "UNIX socket path", what) end
    return { host = v, timeout = timeout }
  end
  local host, port = v:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = v:match("^([^:]+):(%d+)$") end
  if not host then host, port = v:match("^([^:]+)$"), "6379" end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then
    return bad("redis", REDIS_ADDRESS, v)
  end
  return { host = host, port = port, timeout = timeout }
end

--- Split options into (server options, filter options); nil, message if
-- a server option is wrong. Filter options are validated by filter.new.
function config.split(opts)
  local d, rest = {}, {}
  for k, v in pairs(opts) do
    if config.DEFAULTS[k] ~= nil then d[k] = v else rest[k] = v end
  end
  for k, v in pairs(config.DEFAULTS) do
    if d[k] == nil then d[k] = v end
  end
  local err
  local lok, lwhat = options.check_address(d.listen)
  if not lok then
    return nil, string.format("p0f-policyd: bad option 'listen': address (host:port or unix:/path) expected, got %s: %s",
      options.describe(d.listen), lwhat)
  end
  d.listen_mode, err = integer("listen_mode", d.listen_mode, 0, 4095)
  if not d.listen_mode then return nil, err end
  d.redis_timeout, err = seconds("redis_timeout", d.redis_timeout)
  if not d.redis_timeout then return nil, err end
  if d.redis then
    d.redis, err = config.redis_address(d.redis, d.redis_timeout)
    if not d.redis then return nil, err end
  end
  if type(d.publish) ~= "boolean" then return bad("publish", "boolean", d.publish) end
  if d.publish and not d.redis then
    return nil, "p0f-policyd: bad option 'publish': needs 'redis' (where to publish)"
  end
  if d.log ~= "stderr" and d.log ~= "syslog" then return bad("log", '"stderr" or "syslog"', d.log) end
  if not plog.LEVELS[d.log_level] then
    return bad("log_level", plog.LEVEL_NAMES, d.log_level)
  end
  if not plog.FACILITIES[d.syslog_facility] then
    return bad("syslog_facility", plog.FACILITY_NAMES, d.syslog_facility)
  end
  for _, name in ipairs({ "request_timeout", "idle_timeout", "shutdown_timeout", "close_timeout" }) do
    d[name], err = seconds(name, d[name])
    if not d[name] then return nil, err end
  end
  d.max_line, err = integer("max_line", d.max_line, 256, 1048576)
  if not d.max_line then return nil, err end
  d.max_attrs, err = integer("max_attrs", d.max_attrs, 8, 10000)
  if not d.max_attrs then return nil, err end
  d.max_connections, err = integer("max_connections", d.max_connections, 1, 1000000)
  if not d.max_connections then return nil, err end
  d.max_pending, err = integer("max_pending", d.max_pending, 1, 65536)
  if not d.max_pending then return nil, err end
  d.max_output, err = integer("max_output", d.max_output, 4096, 67108864)
  if not d.max_output then return nil, err end
  return d, rest
end

return config
