--- A real redis-server for the specs, and a tiny blocking RESP client over
-- LuaSocket shaped as the `call(args, cb)` function p0f.cache.redis wants.
local socket = require("socket")
local support = require("support")

local M = {}

local read_file = support.read_file

--- Start a private redis-server on a loopback port. Returns
-- { port =, pid =, dir = } or nil and why.
function M.start()
  if not support.sh("command -v redis-server >/dev/null 2>&1") then
    return nil, "redis-server not installed"
  end
  local dir = support.tmpname(".redis")
  assert(support.sh("mkdir -p " .. dir))
  local d = { dir = dir, port = support.free_port(), pidfile = dir .. "/redis.pid" }
  local ok = support.sh(string.format(
    "env -u LD_PRELOAD redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize yes"
    .. " --pidfile %s --dir %s --logfile %s/redis.log", d.port, d.pidfile, dir, dir))
  if ok then
    d.pid = support.wait_until(function()
      return tonumber(read_file(d.pidfile) or "")
    end, 200, 0.02)
  end
  local up = d.pid and support.wait_until(function()
    local call = M.client(d.port, 1)
    local pong
    call({ "PING" }, function(err, reply) pong = not err and reply == "PONG" end)
    return pong
  end, 200, 0.02)
  if not up then
    local log = read_file(dir .. "/redis.log") or ""
    M.stop(d)
    return nil, "redis-server did not start: " .. log
  end
  return d
end

--- Running, and not a zombie waiting for whoever reaps daemons here.
function M.alive(d)
  return d ~= nil and support.pid_alive(d.pid)
end

--- Stop only the redis-server we started, by its PID, and remove its directory.
function M.stop(d)
  if d.pid then
    support.sh("kill " .. d.pid .. " 2>/dev/null")
    support.wait_until(function() return not M.alive(d) end, 250, 0.02)
    d.pid = nil
  end
  if d.dir and d.dir:match("%.redis$") then
    support.sh("rm -rf " .. d.dir)
  end
end

-- ---- RESP ----------------------------------------------------------------------

local function encode(args)
  local out = { "*" .. #args .. "\r\n" }
  for _, a in ipairs(args) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(out)
end

-- Read one reply: (value) or (nil, err). A nil value with no error is a null.
local function read_reply(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest end
  if kind == "-" then return nil, rest, true end
  if kind == ":" then return tonumber(rest) end
  if kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    local data, e = sock:receive(n + 2)
    if not data then return nil, e end
    return data:sub(1, n)
  end
  if kind == "*" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    local t = {}
    for i = 1, n do
      local v, e = read_reply(sock)
      if e then return nil, e end
      t[i] = v
    end
    return t
  end
  return nil, "bad reply line: " .. line
end

--- call(args, cb): one blocking command per call on a connection kept
-- between calls; cb(err, reply). Never raises for network trouble.
function M.client(port, timeout)
  local sock
  return function(args, cb)
    if not sock then
      local s = socket.tcp()
      s:settimeout(timeout or 2)
      local ok, err = s:connect("127.0.0.1", port)
      if not ok then
        s:close()
        return cb("redis: " .. tostring(err))
      end
      sock = s
    end
    local ok, err = sock:send(encode(args))
    if not ok then
      sock:close()
      sock = nil
      return cb("redis: " .. tostring(err))
    end
    local reply, rerr, server_err = read_reply(sock)
    if rerr and not server_err then
      sock:close()
      sock = nil
      return cb("redis: " .. tostring(rerr))
    end
    if rerr then return cb("redis: " .. rerr) end
    cb(nil, reply)
  end
end

--- The blocking form for assertions: reply or raise.
function M.command(call, ...)
  local args = { ... }
  local done, e, r = false, nil, nil
  call(args, function(err, reply) done, e, r = true, err, reply end)
  assert(done, "callback not run")
  if e then error(e, 2) end
  return r
end

return M
