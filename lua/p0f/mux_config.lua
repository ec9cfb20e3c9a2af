--- p0f.mux_config: the options of p0f-mux, their defaults and their checks.
--
-- The file format is p0f-policyd's (Lua assignments, read by
-- p0f.config.load: data, not a script); the names are the ones the rest of
-- the project uses (socket, timeout, cache_size, expire, nomatch_expire,
-- listen, listen_mode, log ...).
--
--   local mc = require("p0f.mux_config")
--   local opts = assert(mc.load(path))   -- nil, err on a missing file or bad syntax
--   local d, err = mc.check(opts)        -- every option validated, defaults filled in
local config = require("p0f.config")
local filter = require("p0f.filter")
local plog = require("p0f.log")

local mc = {}

local IDENT = "p0f-mux"
local YEAR = 86400 * 365

--- Every option: its default and what it may be. kind: "seconds" (a number
-- or "5s"/"500ms"; zero only where `zero` says so), "integer" (lo..hi),
-- "string", or "choice" (one of `values`).
mc.OPTIONS = {
  listen = { "unix:/run/p0f-mux.sock", "string" },     -- unix:/path (or 127.0.0.1:PORT)
  listen_mode = { 438, "integer", 0, 4095 },           -- 438 = 0666, as p0f's own socket
  socket = { "/var/run/p0f.sock", "string" },           -- p0f's API socket (p0f -s)
  timeout = { 2, "seconds" },                           -- one upstream lookup, queue included
  max_inflight = { 64, "integer", 1, 65536 },           -- queries on the wire to p0f
  max_queue = { 10000, "integer", 0, 10000000 },        -- more lookups waiting for a slot
  max_clients = { 4096, "integer", 1, 1000000 },        -- client connections (closing ones count)
  max_pending = { 256, "integer", 1, 65536 },           -- unanswered queries per client; then not read
  max_output = { 131072, "integer", 4096, 67108864 },   -- unread reply bytes per client
  close_timeout = { 10, "seconds" },                    -- a client we close gets this long to read the rest
  idle_timeout = { 0, "seconds", zero = true },         -- 0: idle clients are kept
  shutdown_timeout = { 2, "seconds" },                  -- SIGTERM: the whole shutdown, drain included
  cache_size = { 10000, "integer", 0, 10000000 },       -- 0: no cache
  expire = { 7200, "seconds", zero = true },            -- seconds an "ok" answer is cached
  nomatch_expire = { false, "seconds", zero = true },   -- default: min(expire, 300)
  log = { "stderr", "choice", values = { stderr = true, syslog = true } },
  log_level = { "info", "choice", values = plog.LEVELS },
  syslog_facility = { "daemon", "choice", values = {
    mail = true, daemon = true, user = true, local0 = true, local1 = true, local2 = true,
    local3 = true, local4 = true, local5 = true, local6 = true, local7 = true } },
}

local function describe(v)
  if type(v) == "string" then return string.format("string %q", v) end
  if type(v) == "number" or type(v) == "boolean" then return type(v) .. " " .. tostring(v) end
  return type(v)
end

local function wrong(name, want, v)
  return nil, string.format("%s: bad option '%s': %s expected, got %s", IDENT, name, want, describe(v))
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- One option's value, checked and normalised; nil, err if wrong.
local function check_one(name, spec, v)
  local kind = spec[2]
  if kind == "string" then
    if type(v) ~= "string" or v == "" then return wrong(name, "non-empty string", v) end
    return v
  elseif kind == "integer" then
    local lo, hi = spec[3], spec[4]
    if type(v) ~= "number" or v % 1 ~= 0 or v < lo or v > hi then
      return wrong(name, string.format("integer from %d to %d", lo, hi), v)
    end
    return v
  elseif kind == "seconds" then
    local s = filter.seconds(v)
    if not s or s ~= s or s < 0 or s > YEAR or (s == 0 and not spec.zero) then
      return wrong(name, (spec.zero and "non-negative" or "positive") .. " number of seconds (at most a year)", v)
    end
    return s
  end
  if type(v) ~= "string" or not spec.values[v] then
    return wrong(name, table.concat(sorted_keys(spec.values), ", "), v)
  end
  return v
end

--- Read a configuration file (p0f.config's format and sandbox).
function mc.load(path)
  local t, err = config.load(path)
  if not t then return nil, (tostring(err):gsub("^p0f%-policyd: ", IDENT .. ": ")) end
  return t
end

--- Validate opts (a table of option = value): the options with every
-- default filled in, or nil and a message naming the first bad option.
function mc.check(opts)
  local d = {}
  for k in pairs(opts) do
    if not mc.OPTIONS[k] then
      return nil, string.format("%s: unknown option '%s'", IDENT, tostring(k))
    end
  end
  for _, name in ipairs(sorted_keys(mc.OPTIONS)) do
    local spec = mc.OPTIONS[name]
    local v = opts[name]
    if v == nil then v = spec[1] end
    if v ~= false then
      local err
      d[name], err = check_one(name, spec, v)
      if d[name] == nil then return nil, err end
    end
  end
  if not d.nomatch_expire then d.nomatch_expire = math.min(d.expire, 300) end
  return d
end

return mc
