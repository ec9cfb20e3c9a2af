--- Counting connections to a p0f API socket from /proc (Linux), for the
-- soak test: how many our process holds, and how many p0f holds on its side.
-- A UNIX stream socket is connected when /proc/net/unix shows it in state
-- 03; p0f's accepted sockets carry the API socket's path there, ours none.
local slots = {}

-- inode -> path ("" when unnamed) of every connected UNIX stream socket.
local function connected()
  local t = {}
  for line in io.lines("/proc/net/unix") do
    -- Num RefCount Protocol Flags Type St Inode [Path]
    local typ, st, inode, path = line:match("^%x+: %x+ %x+ %x+ (%x+) (%x+) (%d+) ?(.*)$")
    if typ == "0001" and st == "03" then t[inode] = path end
  end
  return t
end

-- The inodes of the sockets a process has open.
local function socket_inodes(pid)
  local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  local out = {}
  for line in p:lines() do
    local ino = line:match("socket:%[(%d+)%]")
    if ino then out[#out + 1] = ino end
  end
  p:close()
  return out
end

local PID = tostring(assert(require("p0f.fake").own_pid()))

--- Connected UNIX stream sockets of this process (its only ones are to p0f).
function slots.ours()
  local conn, n = connected(), 0
  for _, ino in ipairs(socket_inodes(PID)) do
    if conn[ino] then n = n + 1 end
  end
  return n
end

--- API connections p0f (by PID) holds on `path`: its accepted sockets.
function slots.p0f(pid, path)
  local conn, n = connected(), 0
  for _, ino in ipairs(socket_inodes(pid)) do
    if conn[ino] == path then n = n + 1 end
  end
  return n
end

return slots
