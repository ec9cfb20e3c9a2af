-- Many queries on one persistent connection, driven by hand: submit, then
-- step and fetch. Here a plain poll-free loop with a short sleep; any event
-- loop can instead wait on :pollfd() for :events() up to :timeout().
--   lua5.4 examples/pollable.lua [SOCKET] ADDRESS...
local p0f = require("p0f")

local socket = arg[1] or "/var/run/p0f.sock"
local addrs = {}
for i = 2, #arg do addrs[#addrs + 1] = arg[i] end
if #addrs == 0 then addrs = { "127.0.0.1", "::1", "192.0.2.1" } end

local c = assert(p0f.client{ socket = socket, timeout = 2, max_inflight = 64 })
local handles = {}
for i, addr in ipairs(addrs) do
  handles[i] = assert(c:submit(addr))
end

local left = #addrs
while left > 0 do
  c:step() -- never blocks
  for i, h in ipairs(handles) do
    if h then
      local r, err, code = c:fetch(h)
      if code ~= "EAGAIN" then -- finished: a result, or an error
        print(addrs[i], r and (r.status .. " " .. (r.os or "")) or (err .. " (" .. code .. ")"))
        handles[i] = false
        left = left - 1
      end
    end
  end
  if left > 0 then os.execute("sleep 0.01") end
end
c:close() -- reads any reply p0f still owes before closing
