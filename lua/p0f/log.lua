--- p0f.log: one line per event, to stderr or to syslog, for any daemon of
-- the project.
--
--   local log = require("p0f.log").new{ target = "stderr" | "syslog",
--     level = "info", ident = "p0f-policyd", facility = "mail",
--     rate_limit = { lines = 20, seconds = 10 } | false, clock = os.time }
--   log:warning("p0f at %s: %s", path, err)   -- also :err :notice :info :debug
--
-- Rate limit: warnings and errors are what a peer can provoke at will (a
-- flood of garbage lines, a dead backend asked once per request), so each
-- cause -- the format string of the call -- gets at most `lines` lines per
-- `seconds`, plus one that says the rest are suppressed; they are counted,
-- and the first line of that cause in a later period says how many. notice, info and debug lines are
-- the daemon's own record and are never dropped.
local log = {}

local LEVELS = { err = 3, warning = 4, notice = 5, info = 6, debug = 7 }
log.LEVELS = LEVELS
log.LEVEL_NAMES = "err, warning, notice, info or debug"

--- The syslog facilities a daemon may log to (the C side maps the names).
log.FACILITIES = { mail = true, daemon = true, user = true }
for i = 0, 7 do log.FACILITIES["local" .. i] = true end
log.FACILITY_NAMES = "mail, daemon, user or local0..local7"

log.RATE_LINES = 20
log.RATE_SECONDS = 10
local LIMITED = { err = true, warning = true }

local Logger = {}
Logger.__index = Logger

local function to_stderr(self, level, msg)
  io.stderr:write(os.date("%Y-%m-%dT%H:%M:%S "), self.ident, ": ", level, ": ", msg, "\n")
  io.stderr:flush()
end

-- syslog is a service of the C module for the daemons, not part of the
-- client API `require("p0f")` gives programs: it is taken from p0f.core.
local function syslog()
  return require("p0f.core")
end

local function to_syslog(self, level, msg) -- luacheck: ignore self
  syslog().syslog(level, msg)
end

function log.new(opts)
  opts = opts or {}
  local rl = opts.rate_limit
  if rl == nil then rl = {} end
  local self = setmetatable({
    ident = opts.ident or "p0f",
    max = LEVELS[opts.level or "info"] or LEVELS.info,
    write = to_stderr,
    clock = opts.clock or os.time,
    limit = rl and { lines = rl.lines or log.RATE_LINES, seconds = rl.seconds or log.RATE_SECONDS },
    causes = {},   -- format string -> { start =, n =, suppressed = }
    ncauses = 0,
  }, Logger)
  if opts.target == "syslog" then
    syslog().syslog_open(self.ident, opts.facility or "mail")
    self.write = to_syslog
  end
  return self
end

function Logger:enabled(level)
  return LEVELS[level] <= self.max
end

-- The rate limiter's answer for one line of this cause: false (drop it),
-- or true and the number of lines dropped before it.
function Logger:_admit(cause)
  local now = self.clock()
  local c = self.causes[cause]
  if not c then
    -- Causes are format strings of the code, a fixed set; the bound only
    -- guards against a caller that formats its own text into `fmt`.
    if self.ncauses >= 1000 then self.causes, self.ncauses = {}, 0 end
    c = { start = now, n = 0, suppressed = 0 }
    self.causes[cause] = c
    self.ncauses = self.ncauses + 1
  end
  if now - c.start >= self.limit.seconds then
    c.start, c.n = now, 0
  end
  if c.n > self.limit.lines then
    c.suppressed = c.suppressed + 1
    return false
  end
  c.n = c.n + 1
  if c.n > self.limit.lines then
    -- the first line over the limit gets out, saying what happens next
    return true, 0, string.format(" (rate limit: more like this suppressed for up to %gs)",
      self.limit.seconds)
  end
  local dropped = c.suppressed
  c.suppressed = 0
  return true, dropped
end

function Logger:log(level, fmt, ...)
  if LEVELS[level] > self.max then return end
  local dropped, note = 0, nil
  if self.limit and LIMITED[level] then
    local admitted
    admitted, dropped, note = self:_admit(fmt)
    if not admitted then return end
  end
  local ok, msg = pcall(string.format, fmt, ...)
  if not ok then msg = fmt end
  if dropped > 0 then
    msg = string.format("%s (%d more like this suppressed)", msg, dropped)
  end
  if note then msg = msg .. note end
  -- one event, one line: nothing a peer sends can forge another
  self:write(level, (msg:gsub("[%c]", "?")))
end

for level in pairs(LEVELS) do
  Logger[level] = function(self, fmt, ...) return self:log(level, fmt, ...) end
end

return log
