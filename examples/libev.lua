-- Queries with callbacks on a libev loop: one persistent pipelined
-- connection, a deadline per query, reconnects on its own.
--   lua5.4 examples/libev.lua [SOCKET] ADDRESS...
local p0f = require("p0f")

local socket = arg[1] or "/var/run/p0f.sock"
local addrs = {}
for i = 2, #arg do addrs[#addrs + 1] = arg[i] end
if #addrs == 0 then addrs = { "127.0.0.1", "::1", "192.0.2.1" } end

local loop = p0f.loop()
local c = loop:client{ socket = socket, timeout = 2 }
for _, addr in ipairs(addrs) do
  c:query(addr, function(r, err, code)
    print(addr, r and (r.status .. " " .. (r.os or "")) or (err .. " (" .. code .. ")"))
  end)
end
loop:run() -- returns once every callback has run
c:close()
loop:close()
