--- A Redis stand-in on a p0f loop, for what a real redis-server will not do
-- on demand: never answer, answer garbage, answer twice, answer late. It
-- parses the RESP commands it receives (arrays of bulk strings, as hiredis
-- sends them) and answers each with `answer`, or not at all when `answer`
-- is nil.
--
--   local stand = require("support_fake_redis").start(loop, "$-1\r\n$-1\r\n")
--   local r = loop:redis{ port = stand.port, timeout = 0.3 }
--   ... stand.commands (how many arrived) ... stand:close()
--
-- opts (both optional):
--   late = bytes    also written on the connection `late_after` seconds
--                   after each batch of answers (a reply nobody waits for)
--   on_commands(n)  called with the running count after each batch
--
-- For a daemon under test (a process of its own) the stand-in must keep
-- serving while the test blocks on its sockets: M.spawn runs it in a child
-- process (see below).
local M = {}

M.HANG = nil
M.GARBAGE = "?this is not RESP\r\n"
M.OVER_ANSWER = "$-1\r\n$-1\r\n" -- two null replies for one command
M.NIL = "$-1\r\n"                -- the right answer to a GET of a missing key
M.LATE_OK = "+OK\r\n"            -- a status reply, as SET gets, sent unasked

-- Remove the complete commands at the front of buf: their count, the rest.
local function take_commands(buf)
  local n = 0
  while true do
    local argc, pos = buf:match("^%*(%d+)\r\n()")
    if not argc then return n, buf end
    for _ = 1, tonumber(argc) do
      local len, at = buf:match("^%$(%d+)\r\n()", pos)
      if not len or at + tonumber(len) + 1 > #buf then return n, buf end
      pos = at + tonumber(len) + 2
    end
    buf = buf:sub(pos)
    n = n + 1
  end
end

--- Listen on a loopback port of `loop`. Returns { port =, commands =, close = }.
function M.start(loop, answer, opts)
  opts = opts or {}
  local stand = { commands = 0, conns = {} }
  stand.listener = assert(loop:listen("127.0.0.1:0", function(conn)
    local buf = ""
    stand.conns[#stand.conns + 1] = conn
    local function late()
      if not conn:closed() then conn:write(opts.late) end
    end
    conn:start(function(c, data)
      local n
      n, buf = take_commands(buf .. data)
      stand.commands = stand.commands + n
      if answer then
        for _ = 1, n do c:write(answer) end
      end
      if n > 0 and opts.late then loop:timer(opts.late_after or 0.05, late) end
      if n > 0 and opts.on_commands then opts.on_commands(stand.commands) end
    end, function() end)
  end))
  stand.port = stand.listener:port()
  function stand.close()
    stand.listener:close()
    for _, c in ipairs(stand.conns) do c:close() end
  end
  return stand
end

-- The child's program: the stand-in on its own loop, announcing its port
-- the way p0f-policyd does (so policyd_support's spawn finds it), then the
-- running count of commands, one line each. It leaves when the test that
-- started it is gone, so a test that dies leaves no stand-in behind.
local CHILD = [[
local answer, late, late_after, parent = ...
local p0f = require("p0f")
local fake = require("p0f.fake")
local loop = p0f.loop()
loop:timer(1, function() if not fake.pid_alive(parent) then loop:stop() end end, 1)
local stand = require("support_fake_redis").start(loop, answer, { late = late, late_after = late_after,
  on_commands = function(n) io.stdout:write("commands ", n, "\n") io.stdout:flush() end })
io.stdout:write("listening on 127.0.0.1:", stand.port, " (redis stand-in)\n")
io.stdout:flush()
loop:run()
]]

--- The stand-in in a process of its own ($P0F_LUA, with the test's
-- environment). Returns a handle for policyd_support (.port, .pid, .log;
-- stop it with ps.stop(handle)), or nil and its output.
function M.spawn(answer, opts)
  opts = opts or {}
  local ps = require("policyd_support")
  local s = ps.files()
  local function lit(v) return v == nil and "nil" or string.format("%q", v) end
  require("support").write_file(s.conf, string.format("return (loadstring or load)(%s)(%s, %s, %s, %d)\n",
    lit(CHILD), lit(answer), lit(opts.late), lit(opts.late_after), require("p0f.fake").own_pid()))
  return ps.spawn(s, assert(os.getenv("P0F_LUA"), "P0F_LUA not set (run through ctest)") .. " " .. s.conf)
end

--- How many commands the spawned stand-in has received so far.
function M.commands(s)
  local n = 0
  for c in require("policyd_support").read(s.log):gmatch("commands (%d+)") do n = tonumber(c) end
  return n
end

return M
