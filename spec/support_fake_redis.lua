--- A Redis stand-in on a p0f loop, for what a real redis-server will not do
-- on demand: never answer, answer garbage, answer twice. It parses the RESP
-- commands it receives (arrays of bulk strings, as hiredis sends them) and
-- answers each with `answer`, or not at all when `answer` is nil.
--
--   local stand = require("support_fake_redis").start(loop, "$-1\r\n$-1\r\n")
--   local r = loop:redis{ port = stand.port, timeout = 0.3 }
--   ... stand.commands (how many arrived) ... stand:close()
local M = {}

M.HANG = nil
M.GARBAGE = "?this is not RESP\r\n"
M.OVER_ANSWER = "$-1\r\n$-1\r\n" -- two null replies for one command

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
function M.start(loop, answer)
  local stand = { commands = 0, conns = {} }
  stand.listener = assert(loop:listen("127.0.0.1:0", function(conn)
    local buf = ""
    stand.conns[#stand.conns + 1] = conn
    conn:start(function(c, data)
      local n
      n, buf = take_commands(buf .. data)
      stand.commands = stand.commands + n
      if answer then
        for _ = 1, n do c:write(answer) end
      end
    end)
  end))
  stand.port = stand.listener:port()
  function stand.close()
    stand.listener:close()
    for _, c in ipairs(stand.conns) do c:close() end
  end
  return stand
end

return M
