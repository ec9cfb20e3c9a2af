--- p0f.log: one line per event, to stderr or to syslog.
--
--   local log = require("p0f.log").new{ target = "stderr" | "syslog",
--     level = "info", ident = "p0f-policyd", facility = "mail" }
--   log:warning("p0f at %s: %s", path, err)   -- also :err :notice :info :debug
local log = {}

local LEVELS = { err = 3, warning = 4, notice = 5, info = 6, debug = 7 }
log.LEVELS = LEVELS

local Logger = {}
Logger.__index = Logger

local function to_stderr(self, level, msg)
  io.stderr:write(os.date("%Y-%m-%dT%H:%M:%S "), self.ident, ": ", level, ": ", msg, "\n")
  io.stderr:flush()
end

local function to_syslog(self, level, msg) -- luacheck: ignore self
  require("p0f.core").syslog(level, msg)
end

function log.new(opts)
  opts = opts or {}
  local self = setmetatable({
    ident = opts.ident or "p0f",
    max = LEVELS[opts.level or "info"] or LEVELS.info,
    write = to_stderr,
  }, Logger)
  if opts.target == "syslog" then
    require("p0f.core").syslog_open(self.ident, opts.facility or "mail")
    self.write = to_syslog
  end
  return self
end

function Logger:enabled(level)
  return LEVELS[level] <= self.max
end

function Logger:log(level, fmt, ...)
  if LEVELS[level] > self.max then return end
  local ok, msg = pcall(string.format, fmt, ...)
  if not ok then msg = fmt end
  -- one event, one line: nothing a peer sends can forge another
  self:write(level, (msg:gsub("[%c]", "?")))
end

for level in pairs(LEVELS) do
  Logger[level] = function(self, fmt, ...) return self:log(level, fmt, ...) end
end

return log
