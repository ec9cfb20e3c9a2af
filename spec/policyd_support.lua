--- Helpers for the policy server specs: run bin/p0f-policyd as a
-- subprocess (by PID), talk the policy protocol with LuaSocket, and reach
-- the private redis-server of spec/support_redis.lua.
local socket = require("socket")
local support = require("support")

local ps = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
ps.quote = quote

local function serialize(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local out = {}
  for k, x in pairs(v) do
    if type(k) == "number" then
      out[#out + 1] = serialize(x)
    else
      out[#out + 1] = string.format("[%q] = %s", k, serialize(x))
    end
  end
  return "{ " .. table.concat(out, ", ") .. " }"
end

function ps.write_config(path, opts)
  local f = assert(io.open(path, "w"))
  for k, v in pairs(opts) do f:write(k, " = ", serialize(v), "\n") end
  f:close()
end

--- A file's text, "" if it is not there (yet).
function ps.read(path)
  return support.read_file(path) or ""
end

--- Run `p0f-policyd --check-config` on a configuration: an options table,
-- or the file's text. Returns the exit status (124: still running after
-- `limit` seconds, killed) and the output.
function ps.check_config(opts, limit)
  local conf = support.tmpname(".conf")
  if type(opts) == "string" then support.write_file(conf, opts) else ps.write_config(conf, opts) end
  local lua, src = os.getenv("P0F_LUA"), os.getenv("P0F_SOURCE_DIR") or "."
  local p = io.popen(string.format("timeout -s KILL %d %s %s/bin/p0f-policyd -c %s --check-config 2>&1; echo \"status=$?\"",
    limit or 60, lua, src, conf))
  local out = p:read("*a")
  p:close()
  os.remove(conf)
  local status = tonumber(out:match("status=(%d+)"))
  if status == 137 then status = 124 end -- killed by timeout
  return status, out
end

--- Start the server with these options (listen defaults to a free port).
-- Returns { pid=, port=, log=, status= } once it listens, or nil, log text.
function ps.start(opts, args, unix_path)
  local s = ps.files()
  opts.listen = opts.listen or "127.0.0.1:0"
  ps.write_config(s.conf, opts)
  local lua = assert(os.getenv("P0F_LUA"), "P0F_LUA not set (run through ctest)")
  local src = os.getenv("P0F_SOURCE_DIR") or "."
  return ps.spawn(s, string.format("%s %s/bin/p0f-policyd -c %s %s", lua, src, s.conf, args or ""),
    unix_path)
end

--- Temporary file names for one server.
function ps.files()
  local base = support.tmpname()
  return { conf = base .. ".conf", log = base .. ".log", pidfile = base .. ".pid",
           statusfile = base .. ".status" }
end

--- Run `command` (a p0f-policyd command line) in the background with the
-- files `s`; wait until it listens. Returns s, or nil and its log.
function ps.spawn(s, command, unix_path)
  local inner = string.format("echo $$ > %s; exec %s", s.pidfile, command)
  support.sh(string.format("(sh -c %s >%s 2>&1; echo $? > %s) </dev/null >/dev/null 2>&1 &",
    quote(inner), s.log, s.statusfile))
  local port = support.wait_until(function()
    local text = ps.read(s.log)
    if unix_path then
      if text:find("listening on unix:", 1, true) then return 0 end
    else
      local p = text:match("listening on [^\n]-:(%d+) ")
      if p then return tonumber(p) end
    end
    if ps.read(s.statusfile) ~= "" then return -1 end
  end, 200, 0.05)
  s.pid = tonumber((ps.read(s.pidfile):match("%d+")))
  if not port or port < 0 then
    local text = ps.read(s.log)
    ps.stop(s)
    return nil, text
  end
  s.port = port
  return s
end

function ps.alive(s)
  return support.pid_alive(s.pid)
end

--- Send SIGTERM (or `sig`) to the server and wait; returns its exit status
-- and its log, all of it (the files are removed).
function ps.stop(s, sig)
  if s.pid then
    support.sh(string.format("kill -%s %d 2>/dev/null", sig or "TERM", s.pid))
    support.wait_until(function() return ps.read(s.statusfile) ~= "" end, 200, 0.05)
    if ps.alive(s) then support.sh("kill -KILL " .. s.pid .. " 2>/dev/null") end
  end
  s.pid = nil
  local status = tonumber((ps.read(s.statusfile):match("%d+")))
  local log = ps.read(s.log)
  os.remove(s.conf)
  os.remove(s.pidfile)
  os.remove(s.statusfile)
  os.remove(s.log)
  return status, log
end

--- How long fn takes (wall clock), then what it returned.
function ps.elapsed(fn)
  local t0 = socket.gettime()
  local a, b, c = fn()
  return socket.gettime() - t0, a, b, c
end

--- How many descriptors a process has open (Linux /proc), nil once it is gone.
function ps.fds(pid)
  local p = io.popen("ls -1 /proc/" .. pid .. "/fd 2>/dev/null")
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n > 0 and n or nil
end

--- A policy client connection.
function ps.connect(port, timeout)
  local c = assert(socket.tcp())
  c:settimeout(timeout or 10)
  assert(c:connect("127.0.0.1", port))
  return c
end

function ps.request(attrs)
  local base = {
    request = "smtpd_access_policy", protocol_state = "RCPT", protocol_name = "ESMTP",
    client_address = "203.0.113.7", client_name = "unknown", helo_name = "example.test",
    sender = "a@example.test", recipient = "b@example.test", queue_id = "", instance = "1.2.3",
  }
  local lines = {}
  for k, v in pairs(base) do
    if attrs[k] == nil then lines[#lines + 1] = k .. "=" .. v end
  end
  for k, v in pairs(attrs) do
    if v ~= false then lines[#lines + 1] = k .. "=" .. v end
  end
  return table.concat(lines, "\n") .. "\n\n"
end

--- Read one answer: the action text, or nil, err.
function ps.answer(c)
  local action
  while true do
    local line, err = c:receive("*l")
    if not line then return nil, err end
    if line == "" then return action end
    action = line:match("^action=(.*)$") or action
  end
end

function ps.ask(c, attrs)
  assert(c:send(ps.request(attrs or {})))
  return ps.answer(c)
end

-- ---- a private redis-server (spec/support_redis.lua) ------------------------------

local sr = require("support_redis")

ps.start_redis = sr.start
ps.stop_redis = sr.stop

--- One blocking Redis command: its reply (bulk string, integer, status) or nil.
function ps.redis_cmd(port, ...)
  local reply
  sr.client(port, 5)({ ... }, function(err, r) if not err then reply = r end end)
  return reply
end

return ps
