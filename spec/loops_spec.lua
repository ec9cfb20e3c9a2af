--- Any event loop can drive the pollable client: here cqueues and luv, with
-- nothing of ours but :submit/:step/:fetch/:pollfd/:events/:timeout.
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")

local srv

TestLoops = {}

function TestLoops.setupClass()
  srv = fake.start{ rules = {
    ["203.0.113.7"] = "hang",
    ["203.0.113.9"] = { action = "split", reply = { os_name = "Split" } },
    ["*"] = "echo",
  } }
end

function TestLoops.teardownClass()
  srv:stop()
end

local ADDRS = {}
for i = 1, 200 do ADDRS[i] = (i % 3 == 0) and ("2001:db8::" .. i) or ("198.51.100." .. i) end

-- cqueues: cqueues.poll() accepts any object with pollfd/events/timeout.
function TestLoops.test_cqueues()
  local cqueues = require("cqueues")
  local c = p0f.client{ socket = srv.socket, timeout = 10 }
  local cq = cqueues.new()
  local results = {}
  local function ask(addr, client)
    client = client or c
    local h = assert(client:submit(addr))
    while true do
      client:step()
      local r, err, code = client:fetch(h)
      if code ~= "EAGAIN" then return r, err, code end
      cqueues.poll(client)
    end
  end
  for i, addr in ipairs(ADDRS) do
    cq:wrap(function() results[i] = ask(addr) end)
  end
  local hung, split
  cq:wrap(function() split = ask("203.0.113.9") end)
  assert(cq:loop())
  -- a hung query, with a short deadline
  local short = p0f.client{ socket = srv.socket, timeout = 0.3 }
  cq:wrap(function() hung = { ask("203.0.113.7", short) } end)
  assert(cq:loop())
  short:close()
  for i, addr in ipairs(ADDRS) do
    lu.assertEquals(results[i] and results[i].os_name, p0f.normalize(addr))
  end
  lu.assertEquals(hung[3], "ETIMEDOUT")
  lu.assertEquals(split.os_name, "Split")
  c:close()
end

-- luv: a poll handle follows the client's fd (it changes on reconnect),
-- a timer its deadline.
function TestLoops.test_luv()
  local uv = require("luv")
  local c = p0f.client{ socket = srv.socket, timeout = 0.5 }
  local poll, pollfd
  local timer = uv.new_timer()
  local waiting = {} -- handle -> callback

  local function rearm() end
  local function pump()
    c:step()
    for h, cb in pairs(waiting) do
      local r, err, code = c:fetch(h)
      if code ~= "EAGAIN" then
        waiting[h] = nil
        cb(r, err, code)
      end
    end
    rearm()
  end
  rearm = function()
    local fd, ev = c:pollfd(), c:events()
    if poll and (fd ~= pollfd or not ev) then
      poll:stop()
      poll:close()
      poll = nil
    end
    if fd and ev then
      if not poll then
        poll, pollfd = uv.new_poll(fd), fd
      end
      poll:start(ev == "rw" and "rw" or ev, pump)
    end
    timer:stop()
    local t = c:timeout()
    if t and next(waiting) then timer:start(math.floor(t * 1000 + 1), 0, pump) end
  end
  local function query(addr, cb)
    waiting[assert(c:submit(addr))] = cb
    rearm()
  end

  local results, hung = {}, nil
  for i, addr in ipairs(ADDRS) do
    query(addr, function(r) results[i] = r end)
  end
  query("203.0.113.7", function(_, _, code) hung = code end)
  -- stop the loop once nothing is waiting
  local idle = uv.new_idle()
  idle:start(function()
    if not next(waiting) then
      uv.stop()
    end
  end)
  uv.run()
  idle:close()
  timer:close()
  if poll then poll:close() end
  uv.run("nowait")
  for i, addr in ipairs(ADDRS) do
    lu.assertEquals(results[i] and results[i].os_name, p0f.normalize(addr))
  end
  lu.assertEquals(hung, "ETIMEDOUT")
  c:close()
end

os.exit(lu.LuaUnit.run())
