--- p0f.filter: the host-neutral part of a mail filter plugin.
--
-- It turns options into a validated configuration and a decoded p0f result
-- into a verdict (symbols, a header, an action). It does no I/O and knows
-- nothing of the wire format; hosts (rspamd, the Postfix policy server, any
-- Lua program) do the lookup their own way and hand the result here.
--
--   local filter = require("p0f.filter")
--   local f, err = filter.new(opts [, hooks])
--     -- nil, "p0f: bad option 'timeout': positive number of seconds expected, got string"
--     -- hooks.regex = function(pattern, flags) -> matcher(s) -> bool | nil, err
--     --   (flags "" or "i"); by default rspamd's regexp inside rspamd,
--     --   lua-rex-pcre2 elsewhere. See filter.regex_engines.
--   f.opts                        -- validated options, defaults filled in
--     (times in seconds as numbers; reject/defer as lists; patterns as given)
--   f:skip(ctx) -> reason | nil, canonical_addr, family
--     -- ctx = { ip = "203.0.113.7", user = "alice" (authenticated) or nil }
--   f:verdict(result [, ctx]) -> v     -- result as p0f.decode returns it
--   f:failure(message [, code [, ctx]]) -> v   -- the lookup failed: fail open
--
--   v = {
--     status  = "ok" | "nomatch" | "badquery" | "fail",
--     symbols = { { name = "P0F", options = { "Linux 2.2.x-3.x",
--                   "link=Ethernet or modem", "distance=10" }, score = nil },
--                 { name = "WINDOWS", options = { "Windows 7 or 8" }, score = 3.5 } },
--     header  = { name = "X-OS-Fingerprint", value = "..." } or nil,
--     action  = { action = "reject" | "defer", message = "...",
--                 rule = the reject/defer item that matched } or nil,
--     fields  = { os = "Windows 7 or 8", link = "DSL", distance = 12,
--                 uptime = 3600 (seconds) or nil, fuzzy = false, generic = false },
--     error   = "message (CODE)" for "fail" and "badquery", else nil,
--   }
--
-- Options (names as in rspamd's p0f module, so its configs keep working):
--   socket "/var/run/p0f.sock", timeout 5 (or "5s", "500ms"), symbol "P0F",
--   symbol_fail "P0F_FAIL", patterns {}, header nil, expire 7200,
--   nomatch_expire min(expire, 300), prefix "p0f", cache_size 10000,
--   skip_local true, skip_authenticated true, reject/defer nil,
--   reject_message/defer_message (${os} and ${ip} are filled in),
--   enabled (ignored), and rspamd's Redis keys (servers, db, ...: kept, unchecked).
--
-- The three strings patterns see are the ones rspamd's own p0f module emits:
-- the OS ("Linux 2.2.x-3.x", "unknown" when p0f knows none), "link=<type>"
-- ("link=unknown" when empty) and "distance=<n>" ("distance=unknown").
-- reject/defer items: a "/regex/" is searched in the OS string, a phrase
-- must equal it; both ignore case (qpsmtpd's p0f_blocked_operating_systems).
local p0f = require("p0f")
local options = require("p0f.options")

local filter = {}

filter.HEADER_MAX = 256          -- bytes of a header value, after sanitising
filter.FAIL_OPTION_MAX = 128     -- bytes of the reason carried by symbol_fail
filter.CACHE_SIZE_MAX = 10000000 -- LRU entries (about 400 bytes each)
local SCORE_MAX = 1e9            -- a pattern's score: finite, nothing NaN or huge

local DEFAULTS = {
  socket = "/var/run/p0f.sock",
  timeout = 5,
  symbol = "P0F",
  symbol_fail = "P0F_FAIL",
  expire = 7200,
  prefix = "p0f",
  cache_size = 10000,
  skip_local = true,
  skip_authenticated = true,
  reject_message = "Mail from ${os} hosts is not accepted here",
  defer_message = "Mail from ${os} hosts is not accepted now, try again later",
}
filter.DEFAULTS = DEFAULTS

-- Keys rspamd's configuration for a module may carry that are not ours:
-- `enabled`, and the Redis settings lua_redis.parse_redis_server() reads
-- from the module's own section. Accepted and kept, never validated here.
local HOST_KEYS = {
  enabled = true, redis = true,
  servers = true, server = true, read_servers = true, write_servers = true,
  db = true, dbname = true, database = true, password = true, username = true,
  expand_keys = true, sentinels = true, sentinel_masters_pattern = true,
  sentinel_watch_time = true, sentinel_password = true, sentinel_username = true,
}
filter.HOST_KEYS = HOST_KEYS

local FIELDS = { os = true, link = true, distance = true, any = true }

-- ---- regular expression engines ------------------------------------------

--- Each engine: function(pattern, flags) -> matcher | nil, err, where
-- flags is "" or "i" and matcher(s) -> boolean.
filter.regex_engines = {}

function filter.regex_engines.pcre2(pattern, flags)
  local ok, rex = pcall(require, "rex_pcre2")
  if not ok then
    return nil, "no regular expression engine: lua-rex-pcre2 (rex_pcre2) is not installed"
  end
  if flags == "" then
    -- rspamd reads "/re/flags" as a regex with flags: the same config must
    -- mean the same thing outside rspamd.
    local inner, f = pattern:match("^/(.+)/(%a*)$")
    if inner then
      if f:find("[^imsx]") then return nil, "unsupported flags '" .. f .. "'" end
      pattern, flags = inner, f
    end
  end
  local okc, re = pcall(rex.new, pattern, flags ~= "" and flags or nil)
  if not okc then return nil, tostring(re) end
  return function(s) return re:find(s) ~= nil end
end

function filter.regex_engines.rspamd(pattern, flags)
  local rspamd_regexp = require("rspamd_regexp")
  -- With no flags rspamd parses "/re/flags" itself, as its own p0f module
  -- does for patterns; with flags the pattern is taken as it is.
  local re
  if flags == "" then
    re = rspamd_regexp.create_cached(pattern) -- an explicit nil flags is refused
  else
    re = rspamd_regexp.create_cached(pattern, flags)
  end
  if not re then return nil, "invalid regular expression" end
  return function(s) return re:match(s) and true or false end
end

local function default_engine()
  -- rspamd_config is the global rspamd gives every plugin.
  if rawget(_G, "rspamd_config") ~= nil or package.loaded["rspamd_regexp"] then
    return filter.regex_engines.rspamd
  end
  return filter.regex_engines.pcre2
end

-- ---- small helpers -------------------------------------------------------

--- Printable ASCII only: CR/LF/TAB become spaces, any other control or
-- 8-bit byte a "?" (p0f's http and language fields are client-controlled,
-- and an OS name ends up in a header). Bounded to `max` bytes.
function filter.sanitize(s, max)
  s = tostring(s):gsub("[\r\n\t]", " "):gsub("[^\32-\126]", "?")
  s = s:gsub("^ +", ""):gsub(" +$", ""):gsub("  +", " ")
  max = max or filter.HEADER_MAX
  if #s > max then s = s:sub(1, max) end
  return s
end

local function bad(name, what, got)
  return string.format("p0f: bad option '%s': %s expected, got %s", name, what, got)
end

local describe = options.describe

--- Seconds from a number or an rspamd-style time string (see p0f.options).
filter.seconds = options.seconds

local function check_seconds(opts, name, allow_zero)
  local s, want = options.check_seconds(opts[name], allow_zero)
  if not s then return nil, bad(name, want, describe(opts[name])) end
  opts[name] = s
  return true
end

local function check_string(opts, name, allow_empty)
  local v = opts[name]
  if type(v) ~= "string" or (v == "" and not allow_empty) then
    return nil, bad(name, allow_empty and "string" or "non-empty string", describe(v))
  end
  return true
end

local function check_symbol(opts, name)
  local v = opts[name]
  if type(v) ~= "string" or not v:match("^[%w_%-%.]+$") then
    return nil, bad(name, "symbol name (letters, digits, _ - .)", describe(v))
  end
  return true
end

local function check_bool(opts, name)
  if type(opts[name]) ~= "boolean" then
    return nil, bad(name, "boolean", describe(opts[name]))
  end
  return true
end

local function compile(regex, name, pattern, flags)
  local m, err = regex(pattern, flags)
  if not m then
    return nil, string.format("p0f: bad option '%s': invalid regular expression %q: %s",
      name, pattern, tostring(err))
  end
  return m
end

--- patterns = { SYMBOL = "regex" | { pattern =, score =, field = } }
local function check_patterns(opts, regex)
  local v = opts.patterns
  if v == nil then opts.patterns = {} return {} end
  if type(v) ~= "table" then return nil, bad("patterns", "table", describe(v)) end
  local names = {}
  for sym in pairs(v) do
    if type(sym) ~= "string" or not sym:match("^[%w_%-%.]+$") then
      return nil, bad("patterns", "symbol names as keys", describe(sym))
    end
    names[#names + 1] = sym
  end
  table.sort(names) -- a stable order of symbols in verdicts
  local compiled = {}
  for _, sym in ipairs(names) do
    local spec = v[sym]
    local where = "patterns." .. sym
    if type(spec) == "string" then
      spec = { pattern = spec }
    elseif type(spec) ~= "table" then
      return nil, bad(where, "regex string or table", describe(spec))
    end
    for k in pairs(spec) do
      if k ~= "pattern" and k ~= "score" and k ~= "field" then
        return nil, string.format("p0f: bad option '%s': unknown key '%s'", where, tostring(k))
      end
    end
    if type(spec.pattern) ~= "string" or spec.pattern == "" then
      return nil, bad(where .. ".pattern", "regex string", describe(spec.pattern))
    end
    local score = spec.score
    if score ~= nil and (type(score) ~= "number" or not (score >= -SCORE_MAX and score <= SCORE_MAX)) then
      return nil, bad(where .. ".score", "finite number", describe(score))
    end
    local field = spec.field or "any"
    if not FIELDS[field] then
      return nil, bad(where .. ".field", "os, link, distance or any", describe(field))
    end
    local m, err = compile(regex, where, spec.pattern, "")
    if not m then return nil, err end
    compiled[#compiled + 1] = { symbol = sym, match = m, score = spec.score, field = field }
  end
  return compiled
end

--- reject/defer = "phrase" | "/regex/" | a list of them. As qpsmtpd's
-- p0f_blocked_operating_systems: a phrase names a whole OS string, a
-- /regex/ is searched in it; both ignore case.
local function check_os_list(opts, name, regex)
  local v = opts[name]
  if v == nil then return {} end
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" then return nil, bad(name, "list of phrases and /regex/", describe(v)) end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return nil, bad(name, "list of phrases and /regex/", "table with keys") end
  local rules = {}
  for i, item in ipairs(v) do
    if type(item) ~= "string" or item == "" then
      return nil, bad(name, "list of phrases and /regex/", describe(item) .. " at " .. i)
    end
    local re = item:match("^/(.+)/$")
    if re then
      local m, err = compile(regex, name, re, "i")
      if not m then return nil, err end
      rules[#rules + 1] = { text = item, match = m }
    else
      local phrase = item:lower()
      rules[#rules + 1] = { text = item, match = function(s) return s:lower() == phrase end }
    end
  end
  opts[name] = v
  return rules
end

local function check_cache_size(opts)
  local ok, want = options.check_integer(opts.cache_size, 0, filter.CACHE_SIZE_MAX)
  if not ok then return nil, bad("cache_size", want, describe(opts.cache_size)) end
  return true
end

local function check_socket(opts)
  local ok, err = check_string(opts, "socket")
  if not ok then return nil, err end
  local okp, what = options.check_socket_path(opts.socket)
  if not okp then return nil, bad("socket", "UNIX socket path", what) end
  return true
end

local function check_optional_bool(opts, name)
  if opts[name] == nil then return true end
  return check_bool(opts, name)
end

local function check_header(opts)
  local v = opts.header
  -- RFC 5322 field name: printable ASCII except ':'
  if v ~= nil and (type(v) ~= "string" or not v:match("^[\33-\57\59-\126]+$")) then
    return nil, bad("header", "header field name", describe(v))
  end
  return true
end

--- Check and normalise the options in place (defaults already filled in);
-- returns the compiled matchers or nil and the first error.
local function validate(o, regex)
  local steps = {
    { check_socket },
    { check_seconds, "timeout" },
    { check_symbol, "symbol" },
    { check_symbol, "symbol_fail" },
    { check_seconds, "expire" },
    { function(opts)
        if opts.nomatch_expire == nil then opts.nomatch_expire = math.min(opts.expire, 300) end
        return check_seconds(opts, "nomatch_expire", true)
      end },
    { check_string, "prefix", true },
    { check_cache_size },
    { check_bool, "skip_local" },
    { check_bool, "skip_authenticated" },
    { check_optional_bool, "enabled" },
    { check_header },
    { check_string, "reject_message" },
    { check_string, "defer_message" },
  }
  for _, step in ipairs(steps) do
    local ok, err = step[1](o, step[2], step[3])
    if not ok then return nil, err end
  end
  local compiled, err = {}, nil
  compiled.patterns, err = check_patterns(o, regex)
  if not compiled.patterns then return nil, err end
  compiled.reject, err = check_os_list(o, "reject", regex)
  if not compiled.reject then return nil, err end
  compiled.defer, err = check_os_list(o, "defer", regex)
  if not compiled.defer then return nil, err end
  return compiled
end

-- ---- the filter object ---------------------------------------------------

local Filter = {}
Filter.__index = Filter

--- filter.new(opts [, hooks]) -> filter | nil, err
function filter.new(opts, hooks)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  if hooks ~= nil and type(hooks) ~= "table" then
    error("bad argument #2 to 'new' (table expected, got " .. type(hooks) .. ")", 2)
  end
  hooks = hooks or {}
  local regex = hooks.regex or default_engine()

  -- Unknown keys first: a typo is the likeliest mistake.
  local unknown = {}
  for k in pairs(opts or {}) do
    if type(k) ~= "string" or not (DEFAULTS[k] ~= nil or HOST_KEYS[k] or k == "patterns"
        or k == "header" or k == "nomatch_expire" or k == "reject" or k == "defer") then
      unknown[#unknown + 1] = tostring(k)
    end
  end
  if #unknown > 0 then
    table.sort(unknown)
    return nil, "p0f: unknown option" .. (#unknown > 1 and "s" or "") .. " '"
      .. table.concat(unknown, "', '") .. "'"
  end

  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  for k, v in pairs(DEFAULTS) do
    if o[k] == nil then o[k] = v end
  end
  local compiled, err = validate(o, regex)
  if not compiled then return nil, err end
  return setmetatable({ opts = o, _patterns = compiled.patterns, _reject = compiled.reject,
                        _defer = compiled.defer }, Filter)
end

local SKIP_SCOPE = {
  loopback = "loopback address",
  private = "private address",
  linklocal = "link-local address",
  unspecified = "unspecified address",
}

--- Why this sender is not looked up, or nil plus its canonical address
-- and family (IPv4-mapped IPv6 comes out as IPv4, what p0f stores).
function Filter:skip(ctx)
  ctx = ctx or {}
  if self.opts.skip_authenticated and type(ctx.user) == "string" and ctx.user ~= "" then
    return "authenticated sender"
  end
  if type(ctx.ip) ~= "string" then return "not an IP address" end
  local addr, family, scope = p0f.normalize(ctx.ip)
  if not addr then return "not an IP address" end
  if self.opts.skip_local and SKIP_SCOPE[scope] then return SKIP_SCOPE[scope] end
  return nil, addr, family
end

local function template(text, vars)
  return (text:gsub("%${(%w+)}", function(k)
    return vars[k] ~= nil and filter.sanitize(vars[k]) or ""
  end))
end

local function os_action(self, os, ctx)
  local vars = { os = os, ip = ctx and ctx.ip or "" }
  for _, r in ipairs(self._reject) do
    if r.match(os) then
      return { action = "reject", message = template(self.opts.reject_message, vars), rule = r.text }
    end
  end
  for _, r in ipairs(self._defer) do
    if r.match(os) then
      return { action = "defer", message = template(self.opts.defer_message, vars), rule = r.text }
    end
  end
  return nil
end

local function fail_verdict(self, message)
  return {
    status = "fail",
    symbols = { { name = self.opts.symbol_fail,
                  options = { filter.sanitize(message, filter.FAIL_OPTION_MAX) } } },
    fields = {},
    error = message,
  }
end

--- The lookup failed (dead or slow p0f, broken reply, ...): fail open.
function Filter:failure(message, code, ctx) -- luacheck: ignore ctx
  local text = tostring(message or "lookup failed")
  if code then text = text .. " (" .. tostring(code) .. ")" end
  return fail_verdict(self, text)
end

--- The verdict for a decoded p0f result.
function Filter:verdict(result, ctx)
  if type(result) ~= "table" then
    error("bad argument #1 to 'verdict' (table expected, got " .. type(result) .. ")", 2)
  end
  local status = result.status
  if status == "nomatch" then
    return { status = "nomatch", symbols = {}, fields = {} }
  elseif status == "badquery" then
    -- named like every other failure: p0f found the query invalid
    local v = fail_verdict(self, "p0f rejected the query as bad (EINVAL)")
    v.status = "badquery"
    return v
  elseif status ~= "ok" then
    error("bad argument #1 to 'verdict' (p0f result expected, status is "
      .. tostring(status) .. ")", 2)
  end

  local os = filter.sanitize(result.os or "")
  if os == "" then os = "unknown" end
  local link = filter.sanitize(result.link_type or "")
  if link == "" then link = "unknown" end
  local distance = result.distance
  local uptime = (result.uptime_min or 0) > 0 and result.uptime_min * 60 or nil

  local strings = {
    os = os,
    link = "link=" .. link,
    distance = "distance=" .. (distance and string.format("%d", distance) or "unknown"),
  }
  local symbols = { { name = self.opts.symbol,
                      options = { strings.os, strings.link, strings.distance } } }
  for _, p in ipairs(self._patterns) do
    local matched = {}
    for _, field in ipairs({ "os", "link", "distance" }) do
      if (p.field == "any" or p.field == field) and p.match(strings[field]) then
        matched[#matched + 1] = strings[field]
      end
    end
    if #matched > 0 then
      symbols[#symbols + 1] = { name = p.symbol, options = matched, score = p.score }
    end
  end

  local header
  if self.opts.header then
    header = { name = self.opts.header, value = filter.sanitize(
      os .. ", " .. strings.link .. ", " .. strings.distance, filter.HEADER_MAX) }
  end

  return {
    status = "ok",
    symbols = symbols,
    header = header,
    action = os_action(self, os, ctx),
    fields = { os = os, link = link, distance = distance, uptime = uptime,
               fuzzy = result.fuzzy, generic = result.generic },
  }
end

return filter
