--- Shared helpers for the specs: sleeping, bounded polling, a real p0f.
local support = {}

local is51 = _VERSION == "Lua 5.1"

function support.sh(cmd)
  local ok = os.execute(cmd)
  if is51 then return ok == 0 end
  return ok == true
end

--- A shell word.
function support.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Run a shell command: its output (stdout and stderr) and whether it exited 0.
function support.capture(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  local status = out:match("exit=(%d+)\n?$")
  return (out:gsub("exit=%d+\n?$", "")), status == "0"
end

function support.sleep(s)
  os.execute(string.format("sleep %.3f", s))
end

--- Wall-clock seconds (sub-second), without LuaSocket.
function support.now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("*l"))
  p:close()
  return t
end

--- Call fn until it returns a truthy value, at most `tries` times `every` s apart.
function support.wait_until(fn, tries, every)
  for _ = 1, tries or 100 do
    local v = fn()
    if v then return v end
    support.sleep(every or 0.05)
  end
  return nil
end

--- A whole file, or nil if it cannot be read.
function support.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function support.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- A loopback TCP port nothing listens on right now (needs LuaSocket).
function support.free_port()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

function support.tmpname(suffix)
  local base = os.tmpname()
  os.remove(base)
  return base .. (suffix or "")
end

--- package.searchpath, which PUC Lua 5.1 lacks.
function support.searchpath(name, path)
  if package.searchpath then return package.searchpath(name, path) end
  local file = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", file)
    local f = io.open(candidate, "rb")
    if f then f:close() return candidate end
  end
end

function support.is_root()
  local p = io.popen("id -u")
  local uid = p:read("*l")
  p:close()
  return uid == "0"
end

--- Make p0f see TCP handshakes from `addr` (127.0.0.1, ::1).
function support.touch(addr, count)
  local bin = assert(os.getenv("P0F_TCP_TOUCH"), "P0F_TCP_TOUCH not set (run through ctest)")
  return support.sh(string.format("%s %s %d", bin, addr, count or 3))
end

local started = {} -- every p0f started here, so none outlives a failed test

--- Start a real p0f on the loopback interface. Returns {socket=, pid=, log=}
-- or nil and why. extra: more p0f arguments (e.g. "-S 1").
--- A logger in the shape of p0f.log that keeps its lines ("level text")
-- in `lines`, for a daemon run in the test's own process.
function support.recording_log()
  local lines = {}
  local log = { enabled = function() return true end }
  for _, level in ipairs({ "err", "warning", "notice", "info", "debug" }) do
    log[level] = function(_, fmt, ...) lines[#lines + 1] = level .. " " .. string.format(fmt, ...) end
  end
  function log.log(self, level, fmt, ...) return self[level](self, fmt, ...) end
  return log, lines
end

function support.start_p0f(extra)
  if not support.is_root() then return nil, "p0f needs root to sniff" end
  if not support.sh("command -v p0f >/dev/null 2>&1") then return nil, "p0f not installed" end
  local base = support.tmpname()
  local d = { socket = base .. ".p0f.sock", log = base .. ".p0f.log" }
  -- A sanitizer preload in the test environment is for our code, not p0f's.
  local p = io.popen(string.format("env -u LD_PRELOAD p0f -i lo -s %s %s >%s 2>&1 & echo $!",
    d.socket, extra or "", d.log))
  d.pid = tonumber(p:read("*l"))
  p:close()
  started[#started + 1] = d
  local ready = support.wait_until(function()
    local text = support.read_file(d.log) or ""
    return text:find("Entered main event loop", 1, true) ~= nil
  end, 200, 0.05)
  if not ready then
    support.stop_p0f(d)
    return nil, "p0f did not start"
  end
  return d
end

--- Make handshakes from `addr` until the p0f `d` knows it (bounded): p0f
-- needs a moment after a connection. Returns its answer, or nil.
function support.learn(d, addr)
  local p0f = require("p0f")
  return support.wait_until(function()
    support.touch(addr, 2)
    local r = p0f.query(d.socket, addr, { timeout = 2 })
    return r and r.status == "ok" and r
  end, 50, 0.1)
end

--- Whether a process runs; a zombie (this machine reaps orphans slowly)
-- counts as gone.
support.pid_alive = require("p0f.fake").pid_alive

function support.p0f_alive(d)
  return d ~= nil and support.pid_alive(d.pid)
end

--- Stop only the p0f we started, by its PID.
function support.stop_p0f(d)
  if not (d and d.pid) then return end
  support.sh("kill " .. d.pid .. " 2>/dev/null")
  support.wait_until(function() return not support.p0f_alive(d) end, 100, 0.02)
  os.remove(d.socket)
  os.remove(d.log)
  d.pid = nil
end

--- Run the luaunit suite, then stop any p0f a failing test left running.
function support.run(lu)
  local rc = lu.LuaUnit.run()
  for _, d in ipairs(started) do
    if d.pid then support.stop_p0f(d) end
  end
  return rc
end

return support
