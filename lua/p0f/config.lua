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
local filter = require("p0f.filter")

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
  max_connections = 1000,
  shutdown_timeout = 2,         -- on SIGTERM, answer what is in flight for at most this long
}

local function describe(v)
  if type(v) == "string" then return string.format("string %q", v) end
  if type(v) == "number" or type(v) == "boolean" then return type(v) .. " " .. tostring(v) end
  return type(v)
end

local function bad(name, want, v)
  return nil, string.format("p0f-policyd: bad option '%s': %s expected, got %s", name, want, describe(v))
end

--- Read a configuration file. nil, message on a missing file or a syntax error.
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
  local ok, rerr = pcall(chunk)
  if not ok then return nil, "p0f-policyd: " .. tostring(rerr) end
  return env
end

local function seconds(name, v, allow_zero)
  local s = filter.seconds(v)
  if not s or s ~= s or s < 0 or (s == 0 and not allow_zero) or s > 86400 * 365 then
    return bad(name, "positive number of seconds", v)
  end
  return s
end

local function integer(name, v, lo, hi)
  if type(v) ~= "number" or v % 1 ~= 0 or v < lo or v > hi then
    return bad(name, string.format("integer from %d to %d", lo, hi), v)
  end
  return v
end

--- "host:port", "[v6]:port", "unix:/path" or a table -> { host=, port=, timeout= }.
function config.redis_address(v, timeout)
  if type(v) == "table" then
    local t = { host = v.host or "127.0.0.1", port = v.port or 6379, timeout = v.timeout or timeout }
    if type(t.host) ~= "string" or type(t.port) ~= "number" then return bad("redis", "{ host = string, port = number }", v) end
    t.timeout = filter.seconds(t.timeout)
    if not t.timeout or t.timeout <= 0 then return bad("redis.timeout", "positive number of seconds", v.timeout) end
    return t
  end
  if type(v) ~= "string" or v == "" then return bad("redis", "address (host:port or unix:/path)", v) end
  if v:match("^unix:") or v:match("^/") then return { host = v, timeout = timeout } end
  local host, port = v:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = v:match("^([^:]+):(%d+)$") end
  if not host then host, port = v:match("^([^:]+)$"), "6379" end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then
    return bad("redis", "address (host:port or unix:/path)", v)
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
  if type(d.listen) ~= "string" or d.listen == "" then return bad("listen", "address (host:port or unix:/path)", d.listen) end
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
  if not require("p0f.log").LEVELS[d.log_level] then
    return bad("log_level", "err, warning, notice, info or debug", d.log_level)
  end
  if type(d.syslog_facility) ~= "string" or not (d.syslog_facility:match("^local[0-7]$")
      or d.syslog_facility == "mail" or d.syslog_facility == "daemon" or d.syslog_facility == "user") then
    return bad("syslog_facility", "mail, daemon, user or local0..local7", d.syslog_facility)
  end
  for _, name in ipairs({ "request_timeout", "idle_timeout", "shutdown_timeout" }) do
    d[name], err = seconds(name, d[name])
    if not d[name] then return nil, err end
  end
  d.max_line, err = integer("max_line", d.max_line, 256, 1048576)
  if not d.max_line then return nil, err end
  d.max_attrs, err = integer("max_attrs", d.max_attrs, 8, 10000)
  if not d.max_attrs then return nil, err end
  d.max_connections, err = integer("max_connections", d.max_connections, 1, 1000000)
  if not d.max_connections then return nil, err end
  return d, rest
end

return config
