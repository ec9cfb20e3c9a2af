--- p0f.server: the limits every daemon on the p0f loop puts on its
-- clients, in one place (p0f-policyd and p0f-mux both use it).
--
--   local server = require("p0f.server")
--   local pool = server.pool{ loop =, log =, what = "client",
--     max_connections = 1000, limit_name = "max_clients",
--     max_pending = 64, max_output = 262144, close_timeout = 10 }
--   pool:listen(addr, on_accept(conn, peer), { mode =, backlog = })
--   pool:pace(conn, unanswered)  -> true: reading paused (max_pending reached)
--   pool:overflowing(conn)       -> true: more than max_output bytes unread
--   pool:close(conn [, now])     -- we close it (now: abort, free it at once)
--   pool:gone(conn)              -- the peer went away (on_close)
--   pool:shutdown()              -- the daemon is done: no more sweeps
--   pool.open, pool.nclosing, pool.refused, pool.aborted
--   server.shutdown_budget(shutdown_timeout) -> grace, drain
--   server.log_loop_errors(loop, log)
--
-- The rules:
--   - connections at once: at most max_connections, and a connection we
--     closed still counts until its descriptor is really gone (a close
--     writes what is buffered first);
--   - a connection we closed whose peer does not read the rest within
--     close_timeout is aborted: its descriptor and buffer freed;
--   - requests in flight per connection: at most max_pending; there the
--     daemon stops reading it (conn:pause()), so what the peer pipelines
--     waits in the kernel and the peer's sends block, until answers go out;
--   - output: past max_output unread bytes the daemon drops the connection
--     at once (conn:abort());
--   - accept() out of descriptors: the listener pauses (it would spin),
--     the connections we are closing are aborted to free descriptors, and
--     one log line says so;
--   - every log line a peer can provoke is rate-limited per cause.
local server = {}

local LOG_EVERY = 10   -- seconds between two log lines of one cause
local SWEEP_EVERY = 0.1 -- seconds between checks of the connections being closed

local Pool = {}
Pool.__index = Pool

--- How a daemon spends its shutdown_timeout: answering what is in flight
-- (the grace, first value), then closing its p0f client, which waits up to
-- its `drain` (second value) for the replies p0f still owes (closing before
-- they arrive could kill p0f). Together they take at most shutdown_timeout.
-- The drain is never below DRAIN_MIN: a loop client wants a positive one,
-- and half of a tiny shutdown_timeout (5e-324) is 0.
local DRAIN_MAX, DRAIN_MIN = 1, 0.001
function server.shutdown_budget(shutdown_timeout)
  local drain = math.max(DRAIN_MIN, math.min(DRAIN_MAX, shutdown_timeout / 2))
  return math.max(0, shutdown_timeout - drain), drain
end

--- Errors raised by the loop's callbacks that have no handler of their own
-- go to the daemon's log, not to stderr.
function server.log_loop_errors(loop, log)
  loop:on_error(function(msg) log:err("in a loop callback: %s", tostring(msg)) end)
end

function server.pool(opts)
  return setmetatable({
    loop = opts.loop,
    log = opts.log,
    what = opts.what or "connection",
    max_connections = opts.max_connections,
    limit_name = opts.limit_name or "max_connections",
    max_pending = opts.max_pending,
    max_output = opts.max_output,
    close_timeout = opts.close_timeout,
    open = 0,          -- connections accepted and not closed
    closing = {},      -- conn -> deadline: closed by us, output still being written
    nclosing = 0,
    refused = 0,       -- connections refused at max_connections
    aborted = 0,       -- closing connections aborted (close_timeout, out of descriptors)
    limited = {},      -- log cause -> { next =, suppressed = }
  }, Pool)
end

--- A log line at most once per LOG_EVERY seconds per cause, with a count
-- of the ones left out.
function Pool:log_limited(cause, level, fmt, ...)
  local now = self.loop:now()
  local l = self.limited[cause]
  if l and now < l.next then
    l.suppressed = l.suppressed + 1
    return
  end
  local msg = string.format(fmt, ...)
  if l and l.suppressed > 0 then
    msg = string.format("%s (and %d more like it in %gs)", msg, l.suppressed, LOG_EVERY)
  end
  self.limited[cause] = { next = now + LOG_EVERY, suppressed = 0 }
  self.log:log(level, "%s", msg)
end

--- Connections that hold a descriptor: open ones and the ones closing.
function Pool:count()
  return self.open + self.nclosing
end

function Pool:_admit(peer)
  if self:count() < self.max_connections then
    self.open = self.open + 1
    return true
  end
  self.refused = self.refused + 1
  self:log_limited("refused", "warning", "%s %s refused: %d connections open (%s %d)",
    self.what, peer, self:count(), self.limit_name, self.max_connections)
  return false
end

--- Listen on addr; on_accept(conn, peer) gets the connections admitted
-- (it must conn:start() them); the others are closed at once.
function Pool:listen(addr, on_accept, opts)
  local lopts = { on_error = function(msg, code) self:_accept_failed(msg, code) end }
  for k, v in pairs(opts or {}) do lopts[k] = v end
  return self.loop:listen(addr, function(conn, peer)
    if self:_admit(peer) then on_accept(conn, peer) end
  end, lopts)
end

-- accept() failed for want of descriptors or memory; the listener pauses.
-- The connections whose peers have not read their last answers are the
-- ones to give up, so the clients waiting in the backlog can be served.
function Pool:_accept_failed(msg, code)
  local freed = 0
  for conn in pairs(self.closing) do
    self:_forget(conn)
    conn:abort()
    freed = freed + 1
  end
  self.aborted = self.aborted + freed
  self:log_limited("accept:" .. tostring(code), "err", "%s (%s); %d closing connections aborted",
    msg, tostring(code), freed)
end

--- Pause reading conn once `unanswered` requests reach max_pending; resume
-- below it. Returns true while paused. A closed or half-closed connection
-- never resumes reading (conn.c keeps it off).
function Pool:pace(conn, unanswered)
  if unanswered >= self.max_pending then
    conn:pause()
    return true
  end
  conn:resume()
  return false
end

--- More than max_output bytes wait for the peer to read them.
function Pool:overflowing(conn)
  return conn:buffered() > self.max_output
end

--- The peer went away: its place is free.
function Pool:gone(conn) -- luacheck: ignore conn
  self.open = self.open - 1
end

--- Close conn ourselves. now: abort (descriptor and buffer freed at once).
-- Otherwise what is buffered is written first; until it is, the
-- connection counts, and after close_timeout it is aborted.
function Pool:close(conn, now)
  self.open = self.open - 1
  if now then return conn:abort() end
  conn:close()
  if conn:buffered() == 0 then return end
  self.closing[conn] = self.loop:now() + self.close_timeout
  self.nclosing = self.nclosing + 1
  if not self.sweeper then
    self.sweeper = self.loop:timer(SWEEP_EVERY, function() self:_sweep() end, SWEEP_EVERY)
  elseif not self.sweeper:active() then
    self.sweeper:again()
  end
end

function Pool:_forget(conn)
  self.closing[conn] = nil
  self.nclosing = self.nclosing - 1
end

-- The closing connections: gone once their output is written (conn.c frees
-- the descriptor then), aborted past their deadline.
function Pool:_sweep()
  local now = self.loop:now()
  local late = 0
  for conn, deadline in pairs(self.closing) do
    if conn:buffered() == 0 then
      self:_forget(conn)
    elseif now >= deadline then
      self:_forget(conn)
      conn:abort()
      late = late + 1
    end
  end
  if late > 0 then
    self.aborted = self.aborted + late
    self:log_limited("close_timeout", "warning",
      "%d closing connections aborted: their peers did not read within close_timeout (%gs)",
      late, self.close_timeout)
  end
  if self.nclosing == 0 and self.sweeper then self.sweeper:stop() end
end

--- The daemon is done with its connections: stop sweeping.
function Pool:shutdown()
  if self.sweeper then self.sweeper:close() end
  self.sweeper = nil
end

return server
