--- p0f.options: the checks every option table shares (p0f.filter,
-- p0f.config, p0f.cache and any daemon built on them).
--
-- Each check accepts only what the code behind it can use: a number that
-- passes here never turns into NaN, infinity, a float where an integer is
-- needed, or a value the C layer refuses later at start.
--
--   options.describe(v)                 -> 'string "x"', "number 1e+300", "table"
--   options.seconds(v)                  -> seconds from 5 / "5s" / "500ms" | nil
--   options.check_seconds(v, allow_zero) -> seconds | nil, what was expected
--   options.check_integer(v, lo, hi)     -> v | nil, what was expected
--   options.unix_path(addr)             -> the path of "unix:/p" or "/p" | nil
--   options.check_address(addr)          -> true | nil, what is wrong
local options = {}

--- The longest duration anything accepts: the C layer refuses longer ones
-- (its timers and clients) and Redis wants an expiry it can add to now.
options.SECONDS_MAX = 86400 * 365
--- sun_path holds 108 bytes, the NUL included.
options.UNIX_PATH_MAX = 107

function options.describe(v)
  local t = type(v)
  if t == "string" then return string.format("string %q", v) end
  if t == "number" or t == "boolean" then return t .. " " .. tostring(v) end
  return t
end

local TIME_UNITS = { ms = 0.001, s = 1, sec = 1, m = 60, min = 60, h = 3600, d = 86400 }

--- Seconds from a number or an rspamd-style time string ("5", "5s",
-- "500ms", "1.5min", "2h"). rspamd's UCL hands `timeout = 5s;` to Lua as a
-- number, a quoted "5s" as a string: both are accepted. No range check.
function options.seconds(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  local num, unit = v:match("^%s*([%d%.]+)%s*(%a*)%s*$")
  num = tonumber(num)
  if not num then return nil end
  if unit == "" then return num end
  local mul = TIME_UNITS[unit:lower()]
  return mul and num * mul or nil
end

--- A duration from 0 (if allowed) or just above it to SECONDS_MAX.
function options.check_seconds(v, allow_zero)
  local s = options.seconds(v)
  -- `not (s >= 0)` is true for NaN as well
  if not s or not (s >= 0) or (s == 0 and not allow_zero) or s > options.SECONDS_MAX then
    local want = (allow_zero and "non-negative" or "positive") .. " number of seconds"
    if s then want = string.format("%s up to %d", want, options.SECONDS_MAX) end
    return nil, want
  end
  return s
end

--- An integer from lo to hi (NaN, infinities and fractions refused).
function options.check_integer(v, lo, hi)
  if type(v) ~= "number" or not (v >= lo and v <= hi) or v % 1 ~= 0 then
    return nil, string.format("integer from %d to %d", lo, hi)
  end
  return v
end

function options.unix_path(addr)
  if type(addr) ~= "string" then return nil end
  if addr:sub(1, 5) == "unix:" then return addr:sub(6) end
  if addr:sub(1, 1) == "/" then return addr end
  return nil
end

local function check_path(path)
  if path == "" then return nil, "an empty socket path" end
  if #path > options.UNIX_PATH_MAX then
    return nil, string.format("a socket path of %d bytes (at most %d)", #path, options.UNIX_PATH_MAX)
  end
  return true
end

--- A listening address as the loop's listen() takes it: "unix:/path",
-- "/path", "[v6]:port", "v4:port", "*:port" or "port". Host names are not
-- resolved (a daemon listens on an address).
function options.check_address(addr)
  if type(addr) ~= "string" or addr == "" then return nil, "not an address" end
  local path = options.unix_path(addr)
  if path then return check_path(path) end
  local host, port = addr:match("^%[(.*)%]:([^:]*)$")
  if not host then host, port = addr:match("^(.*):([^:]*)$") end
  if not host then host, port = "*", addr end
  if not (port:match("^%d+$") and tonumber(port) <= 65535) then
    return nil, "a port from 0 to 65535"
  end
  if host ~= "*" and host ~= "" and not require("p0f").normalize(host) then
    return nil, string.format("an IP address, not %q (names are not resolved)", host)
  end
  return true
end

--- A UNIX socket path to connect to (p0f's -s, a Redis socket).
function options.check_socket_path(path)
  if type(path) ~= "string" then return nil, "a socket path" end
  return check_path(options.unix_path(path) or path)
end

return options
