-- The pollable client inside cqueues: cqueues.poll() waits on any object
-- with :pollfd(), :events() and :timeout(), so each coroutine blocks only
-- itself while all share one connection to p0f.
--   lua5.4 examples/cqueues.lua [SOCKET] ADDRESS...
local cqueues = require("cqueues")
local p0f = require("p0f")

local socket = arg[1] or "/var/run/p0f.sock"
local addrs = {}
for i = 2, #arg do addrs[#addrs + 1] = arg[i] end
if #addrs == 0 then addrs = { "127.0.0.1", "::1", "192.0.2.1" } end

local c = assert(p0f.client{ socket = socket, timeout = 2 })

local function ask(addr)
  local h = assert(c:submit(addr))
  while true do
    c:step()
    local r, err, code = c:fetch(h)
    if code ~= "EAGAIN" then return r, err, code end
    cqueues.poll(c)
  end
end

local cq = cqueues.new()
for _, addr in ipairs(addrs) do
  cq:wrap(function()
    local r, err, code = ask(addr)
    print(addr, r and (r.status .. " " .. (r.os or "")) or (err .. " (" .. code .. ")"))
  end)
end
assert(cq:loop())
c:close()
