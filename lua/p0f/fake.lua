--- p0f.fake: a scripted p0f daemon for tests (ours, and yours).
--
--   local fake = require("p0f.fake")
--   local srv = fake.start{ rules = {
--     ["203.0.113.7"] = { os_name = "Windows", os_flavor = "7 or 8", distance = 12 },
--     ["203.0.113.8"] = "hang",                        -- never answers
--     ["203.0.113.9"] = { action = "split", reply = { os_name = "Linux" } },
--     ["203.0.113.10"] = { action = "reply", bytes = "garbage" },
--     ["*"] = "nomatch",                               -- everyone else
--   } }
--   ... p0f.query(srv.socket, "203.0.113.7") ...
--   srv:stop()
--
-- A rule is "nomatch", "badquery", "hang", "close" or "echo" (status ok,
-- os_name = the address asked about); or a table of reply
-- fields (as p0f.decode returns them); or { action = ACTION, reply = fields
-- or bytes = raw string, ms = delay } with ACTION one of reply, split
-- (one byte per write), delay, half (half the bytes, then close).
-- The server runs in its own process (the p0f-fake program), so it keeps
-- answering while the test blocks in a query.
local p0f = require("p0f")

local fake = {}
local Server = {}
Server.__index = Server

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- Where the p0f-fake program is: opts.bin, $P0F_FAKE, next to p0f/core.so
-- (where the rock installs it), or the PATH.
function fake.program(bin)
  if bin then return bin end
  local env = os.getenv("P0F_FAKE")
  if env and env ~= "" then return env end
  local so = package.searchpath and package.searchpath("p0f.core", package.cpath)
  if so then
    local beside = so:gsub("core%.so$", "p0f-fake")
    if file_exists(beside) then return beside end
  end
  return "p0f-fake"
end

local function tohex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function reply_bytes(rule, v2)
  local encode = v2 and p0f.v2.encode_response or p0f.encode_response
  if rule.bytes then return rule.bytes end
  if rule.reply then return encode(rule.reply) end
  return encode(rule)
end

local function rule_line(addr, rule, v2)
  if rule == "hang" or rule == "close" or rule == "echo" then
    return addr .. " " .. rule
  end
  if rule == "nomatch" or rule == "badquery" then
    rule = { status = rule }
  end
  if type(rule) ~= "table" then
    error("p0f.fake: bad rule for " .. addr .. ": " .. tostring(rule), 3)
  end
  local action = rule.action or "reply"
  local hex = tohex(reply_bytes(rule, v2))
  if action == "delay" then
    return string.format("%s delay %d %s", addr, assert(rule.ms, "delay needs ms"), hex)
  elseif action == "reply" or action == "split" or action == "half" then
    return string.format("%s %s %s", addr, action, hex)
  end
  error("p0f.fake: unknown action '" .. tostring(action) .. "'", 3)
end

--- Start a fake daemon. opts: rules (table), socket (path; a fresh one in
-- the temporary directory by default), v2 (speak p0f 2), bin (program).
function fake.start(opts)
  opts = opts or {}
  local base = os.tmpname()
  os.remove(base)
  local self = setmetatable({
    socket = opts.socket or (base .. ".sock"),
    script = base .. ".rules",
    log = base .. ".log",
    errlog = base .. ".err",
    v2 = opts.v2 and true or false,
  }, Server)
  local f = assert(io.open(self.script, "w"))
  for addr, rule in pairs(opts.rules or {}) do
    f:write(rule_line(addr, rule, opts.v2), "\n")
  end
  f:close()
  local cmd = table.concat({
    shell_quote(fake.program(opts.bin)), "--daemon",
    "--socket", shell_quote(self.socket),
    "--script", shell_quote(self.script),
    "--log", shell_quote(self.log),
    "--stderr", shell_quote(self.errlog),
    -- the daemon follows this Lua process: nothing is left behind if it dies
    "--parent", tostring(fake.own_pid() or 0),
    opts.v2 and "--v2" or "",
  }, " ")
  local p = assert(io.popen(cmd, "r"))
  local pid = p:read("*l")
  p:close()
  self.pid = tonumber(pid)
  if not self.pid then
    error("p0f.fake: could not start " .. cmd, 2)
  end
  return self
end

--- This process's PID (from /proc/self, which names whoever opens it).
function fake.own_pid()
  local f = io.open("/proc/self/stat", "r")
  if not f then return nil end
  local pid = tonumber((f:read("*l") or ""):match("^(%d+)"))
  f:close()
  return pid
end

local function events(self)
  local out = {}
  local f = io.open(self.log, "r")
  if not f then return out end
  for line in f:lines() do out[#out + 1] = line end
  f:close()
  return out
end

--- Addresses queried so far, in order.
function Server:queries()
  local out = {}
  for _, line in ipairs(events(self)) do
    local addr = line:match("^query (.+)$")
    if addr then out[#out + 1] = addr end
  end
  return out
end

--- How many connections were accepted so far.
function Server:connections()
  local n = 0
  for _, line in ipairs(events(self)) do
    if line == "accept" then n = n + 1 end
  end
  return n
end

--- Whether a process runs. A zombie counts as gone: an orphaned daemon may
-- wait a long time for an init that reaps slowly.
function fake.pid_alive(pid)
  local f = pid and io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local stat = f:read("*l") or ""
  f:close()
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

function Server:alive()
  return fake.pid_alive(self.pid)
end

--- Stop the daemon (by its PID) and wait until it is gone.
function Server:stop()
  if not self.pid then return end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not self:alive() then break end
    os.execute("sleep 0.01")
  end
  self.pid = nil
  -- whatever the daemon said on stderr (a sanitizer report, say) is shown
  local f = io.open(self.errlog, "r")
  if f then
    local text = f:read("*a")
    f:close()
    if text ~= "" then io.stderr:write("p0f-fake: ", text) end
  end
  os.remove(self.script)
  os.remove(self.log)
  os.remove(self.errlog)
end

Server.__gc = Server.stop
Server.__close = Server.stop

return fake
