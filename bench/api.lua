--- Benchmark worker for our own Lua API.
--   lua api.lua SOCKET MODE SECONDS DEPTH ADDR...
-- MODE: blocking   p0f.query, a connection per query
--       persistent client:query(addr), one at a time on one connection
--       libev      loop:client{}, DEPTH queries in flight
--       cqueues    client:submit/step/fetch driven by cqueues.poll, DEPTH in flight
--       step       the same with a tight step loop instead of a poller
-- Prints "<queries> <seconds>". Any error aborts: a figure built on failed
-- queries would mean nothing.
local p0f = require("p0f")
local now = require("clock")

local path, mode, seconds, depth = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local addrs = {}
for i = 5, #arg do addrs[#addrs + 1] = arg[i] end
local naddr = #addrs
assert(path and mode and seconds and depth and naddr > 0, "usage: api.lua SOCKET MODE SECONDS DEPTH ADDR...")

local function check(r, err, code)
  if not r then error(string.format("query failed: %s (%s)", tostring(err), tostring(code))) end
  if r.status ~= "ok" and r.status ~= "nomatch" then error("unexpected status " .. tostring(r.status)) end
end

local modes = {}

function modes.blocking(t1)
  local n, opts = 0, { timeout = 5 }
  repeat
    for _ = 1, 100 do
      n = n + 1
      check(p0f.query(path, addrs[n % naddr + 1], opts))
    end
  until now() >= t1
  return n
end

function modes.persistent(t1)
  local c = assert(p0f.client { socket = path })
  local n = 0
  repeat
    for _ = 1, 1000 do
      n = n + 1
      check(c:query(addrs[n % naddr + 1]))
    end
  until now() >= t1
  c:close()
  return n
end

function modes.libev(t1)
  local loop = p0f.loop()
  local c = assert(loop:client { socket = path, max_inflight = depth })
  local sent, got, stop = 0, 0, false
  local done
  local function submit()
    sent = sent + 1
    c:query(addrs[sent % naddr + 1], done)
  end
  function done(r, err, code)
    check(r, err, code)
    got = got + 1
    if got % 1000 == 0 and now() >= t1 then stop = true end
    if not stop then submit() end
  end
  for _ = 1, depth do submit() end
  loop:run()
  assert(got == sent, "libev: queries left unanswered")
  c:close()
  loop:close()
  return got
end

-- The pollable object with a poller of the caller's choice: `wait(c)` blocks
-- until the client's fd is ready or its deadline (or returns at once).
local function pollable(t1, wait, forget)
  local c = assert(p0f.client { socket = path, max_inflight = depth })
  -- The handles in flight, oldest first, in a ring of `depth` slots (a
  -- table indexed by ever-growing counters would move to the hash part and
  -- rehash on every insert once full: the harness must not cost more than
  -- the client).
  local fifo, head, tail = {}, 1, 0
  local sent, got, stop = 0, 0, false
  local function submit()
    sent = sent + 1
    tail = tail + 1
    fifo[(tail - 1) % depth + 1] = assert(c:submit(addrs[sent % naddr + 1]))
  end
  for _ = 1, depth do submit() end
  while got < sent do
    c:step()
    local progressed = false
    -- p0f answers in order, so the oldest handle finishes first.
    while head <= tail do
      local r, err, code = c:fetch(fifo[(head - 1) % depth + 1])
      if not r and code == "EAGAIN" then break end
      check(r, err, code)
      head = head + 1
      got = got + 1
      progressed = true
      if got % 1000 == 0 and now() >= t1 then stop = true end
      if not stop then submit() end
    end
    if not progressed then wait(c) end
  end
  if forget then forget(c) end
  c:close()
  return got
end

function modes.cqueues(t1)
  local cqueues = require("cqueues")
  local cq = cqueues.new()
  local n
  cq:wrap(function()
    -- cqueues must forget the fd before the client closes it.
    n = pollable(t1, function(c) cqueues.poll(c) end,
      function(c) if c:pollfd() then cqueues.cancel(c:pollfd()) end end)
  end)
  assert(cq:loop())
  return n
end

function modes.step(t1)
  return pollable(t1, function() end)
end

local run = assert(modes[mode], "unknown mode " .. tostring(mode))
local t0 = now()
local n = run(t0 + seconds)
print(string.format("%d %.6f", n, now() - t0))
