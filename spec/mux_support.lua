--- Helpers for the p0f-mux specs: run bin/p0f-mux as a subprocess (by PID)
-- on a UNIX socket of its own, and talk the raw p0f v3 API to it with
-- LuaSocket (the bytes a client sends and gets, not a decoded view).
local p0f = require("p0f")
local support = require("support")
local ps = require("policyd_support")
local unix = require("socket.unix")

local ms = {}

ms.quote = ps.quote

--- Start p0f-mux with these options (listen: a fresh UNIX socket unless
-- given). Returns { pid=, sock=, log=, conf= } once it listens, or nil, log.
function ms.start(opts, args)
  local base = support.tmpname()
  local m = { conf = base .. ".conf", log = base .. ".log", pidfile = base .. ".pid",
              statusfile = base .. ".status", sock = base .. ".mux.sock" }
  opts.listen = opts.listen or ("unix:" .. m.sock)
  m.sock = opts.listen:match("^unix:(.*)$") or m.sock
  opts.log_level = opts.log_level or "debug"
  ps.write_config(m.conf, opts)
  local lua = assert(os.getenv("P0F_LUA"), "P0F_LUA not set (run through ctest)")
  local src = os.getenv("P0F_SOURCE_DIR") or "."
  local inner = string.format("echo $$ > %s; exec %s %s/bin/p0f-mux -c %s %s",
    m.pidfile, lua, src, m.conf, args or "")
  support.sh(string.format("(sh -c %s >%s 2>&1; echo $? > %s) </dev/null >/dev/null 2>&1 &",
    ps.quote(inner), m.log, m.statusfile))
  local up = support.wait_until(function()
    if ps.read(m.log):find("listening on unix:", 1, true) then return 1 end
    if ps.read(m.statusfile) ~= "" then return -1 end
  end, 200, 0.05)
  m.pid = tonumber((ps.read(m.pidfile):match("%d+")))
  if up ~= 1 then
    local text = ps.read(m.log)
    ms.stop(m)
    return nil, text
  end
  return m
end

function ms.alive(m)
  return support.pid_alive(m.pid)
end

function ms.log(m)
  return ps.read(m.log)
end

--- Send a signal (TERM by default) and wait for the exit; its status and
-- its whole log.
function ms.stop(m, sig)
  if m.pid then
    support.sh(string.format("kill -%s %d 2>/dev/null", sig or "TERM", m.pid))
    support.wait_until(function() return ps.read(m.statusfile) ~= "" end, 200, 0.05)
  end
  local log = ps.read(m.log)
  local status = ps.stop(m, sig)
  os.remove(m.sock)
  return status, log
end

--- A signal that does not stop it (USR1).
function ms.signal(m, sig)
  return support.sh(string.format("kill -%s %d", sig, m.pid))
end

--- The last stats line of the log as a table of numbers (key=value).
function ms.stats(m)
  local line
  for l in ms.log(m):gmatch("[^\n]+") do
    if l:find("clients=", 1, true) then line = l end
  end
  if not line then return nil end
  local t = {}
  for k, v in line:gmatch("(%a[%w_]*)=(%d+)") do t[k] = tonumber(v) end
  return t
end

--- A raw client connection (LuaSocket, blocking with a timeout).
function ms.connect(path, timeout)
  local c = assert(unix())
  c:settimeout(timeout or 5)
  assert(c:connect(path))
  return c
end

--- The query bytes for addr (the codec encodes, the test does not).
function ms.q(addr)
  return assert(p0f.encode_query(addr))
end

--- Read one reply: 232 raw bytes, or nil, err ("closed", "timeout").
function ms.reply(c)
  return c:receive(p0f.RESPONSE_SIZE)
end

--- One query, one reply on connection c: the decoded result and the raw bytes.
function ms.ask(c, addr)
  assert(c:send(ms.q(addr)))
  local raw, err = ms.reply(c)
  if not raw then return nil, err end
  return assert(p0f.decode(raw)), raw
end

--- One query on a connection of its own: the decoded result, or nil, err.
function ms.ask_once(path, addr)
  local c = ms.connect(path)
  local res, err = ms.ask(c, addr)
  c:close()
  return res, err
end

--- ms.ask_once again and again (bounded) until an answer comes: the
-- decoded result, or nil.
function ms.answer_eventually(path, addr)
  return support.wait_until(function() return (ms.ask_once(path, addr)) end, 50, 0.1)
end

--- Whether the peer closed c: a read gets "closed" (not a timeout) within t.
function ms.closed_within(c, t)
  c:settimeout(t)
  local data, err, partial = c:receive(p0f.RESPONSE_SIZE)
  while data do data, err, partial = c:receive(p0f.RESPONSE_SIZE) end
  return err == "closed", err, partial
end

return ms
