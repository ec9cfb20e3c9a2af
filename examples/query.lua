-- Ask p0f about one address, the simplest way (blocking, one connection).
--   lua5.4 examples/query.lua [SOCKET] [ADDRESS]
local p0f = require("p0f")

local socket = arg[1] or "/var/run/p0f.sock"
local addr = arg[2] or "127.0.0.1"

local r, err, code = p0f.query(socket, addr, { timeout = 2 })
if not r then
  io.stderr:write(err, " (", code, ")\n")
  os.exit(1)
end
if r.status ~= "ok" then
  print(addr .. ": " .. r.status) -- "nomatch": p0f has not seen this host
  os.exit(0)
end
print(string.format("%s runs %s (%s match), %s hops away, link %q, seen %d times",
  addr, r.os ~= "" and r.os or "an unknown OS", r.generic and "generic" or "exact",
  r.distance or "?", r.link_type, r.total_conn))
