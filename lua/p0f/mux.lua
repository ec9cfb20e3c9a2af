--- p0f.mux: many p0f API clients, one connection to p0f.
--
-- p0f serves at most 20 API connections (-S) and most filters open one per
-- lookup. The multiplexer listens on its own socket, speaks the unchanged
-- p0f v3 API there (21-byte queries, 232-byte replies, in order per
-- connection, pipelining allowed) to any number of clients, and asks p0f
-- over ONE persistent pipelined connection (the loop client: deadlines,
-- reconnect with backoff, drain before close).
--
--   local server = assert(mux.new(opts [, { loop =, log = }]))
--   assert(server:start())
--   server:handle_signals()   -- TERM/INT: shut down; USR1: stats line
--   server.loop:run()         -- until the shutdown has finished
--
-- Per query: the LRU cache, else a lookup of the same address already
-- under way (coalescing), else a new upstream query. Replies go out in
-- query order, consecutive ready ones in one write. A query that cannot be
-- answered (p0f down, hung past `timeout`, lying, or the upstream queue
-- full) closes that client's connection after the replies before it:
-- what a client sees when p0f itself is down, so its own fail-open path
-- takes over. The wire format is the codec's business (p0f.decode_query,
-- p0f.encode_response); nothing here knows a byte offset.
local p0f = require("p0f")
local cache = require("p0f.cache")
local mc = require("p0f.mux_config")
local plog = require("p0f.log")
local pserver = require("p0f.server")

local mux = {}

local QUERY_SIZE = p0f.QUERY_SIZE
local SWEEP_EVERY = 0.25 -- seconds between checks of deadlines

local Mux = {}
Mux.__index = Mux

--- mux.new(opts [, env]) -> server | nil, err. opts: the options of
-- p0f.mux_config; env.loop, env.log: injected.
function mux.new(opts, env)
  env = env or {}
  local d, err = mc.check(opts or {})
  if not d then return nil, err end
  local self = setmetatable({
    d = d,
    loop = env.loop or p0f.loop("default"),
    log = env.log or plog.new{ target = d.log, level = d.log_level,
                               ident = "p0f-mux", facility = d.syslog_facility },
    conns = {},          -- client state by conn object
    waiting = {},        -- address -> { cs1, slot1, cs2, slot2, ... } of one upstream lookup
    upstream_pending = 0, -- upstream lookups not settled yet (on the wire + queued)
    unanswered = 0,      -- client queries not yet written or failed
    scratch = {},        -- replies gathered for one write
    stats = { accepted = 0, dropped = 0, queries = 0, upstream = 0,
              cache_hits = 0, coalesced = 0, failures = 0 },
  }, Mux)
  -- an injected loop keeps its owner's reporter
  if not env.loop then pserver.log_loop_errors(self.loop, self.log) end
  -- the connection limits (p0f.server): counts, pipelining, output, closing
  self.pool = pserver.pool{ loop = self.loop, log = self.log, what = "client",
    max_connections = d.max_clients, limit_name = "max_clients", max_pending = d.max_pending,
    max_output = d.max_output, close_timeout = d.close_timeout }
  if d.cache_size > 0 and (d.expire > 0 or d.nomatch_expire > 0) then
    self.lru = cache.lru{ size = d.cache_size, expire = d.expire, nomatch_expire = d.nomatch_expire }
  end
  return self
end

--- The stats line: key=value pairs.
function Mux:stats_line()
  local s = self.stats
  return string.format("clients=%d queries=%d upstream=%d cache_hits=%d coalesced=%d failures=%d"
    .. " accepted=%d refused=%d dropped=%d cached=%d",
    self.pool.open, s.queries, s.upstream, s.cache_hits, s.coalesced, s.failures,
    s.accepted, self.pool.refused, s.dropped, self.lru and self.lru:count() or 0)
end

-- ---- clients ---------------------------------------------------------------

-- Forget a client. Its queries still under way upstream go on (their
-- answers fill the cache) but are not written anywhere.
-- now: free the fd and the buffered output at once (a client that does
-- not read would otherwise hold both until it goes away).
function Mux:_drop(cs, why, now)
  if cs.dead then return end
  cs.dead = true
  self.conns[cs.conn] = nil
  self.unanswered = self.unanswered - (cs.tail - cs.head)
  if why then
    self.stats.dropped = self.stats.dropped + 1
    self.pool:log_limited("drop:" .. why, "warning", "client %s: %s; closing it", cs.peer, why)
  end
  -- a close writes what is buffered first: until then it still counts
  -- against max_clients, for at most close_timeout
  self.pool:close(cs.conn, now)
end

-- Write the replies that are ready, in query order; a failed one closes
-- the connection after the replies before it.
function Mux:_flush(cs)
  local parts, n, failed = self.scratch, 0, false
  local slots = cs.slots
  while cs.head < cs.tail do
    local v = slots[cs.head]
    if v == nil then break end
    slots[cs.head] = nil
    cs.head = cs.head + 1
    self.unanswered = self.unanswered - 1
    if v == false then failed = true break end
    n = n + 1
    parts[n] = v
  end
  if n > 0 then
    cs.conn:write(n == 1 and parts[1] or table.concat(parts, "", 1, n))
    for i = 1, n do parts[i] = nil end
  end
  if failed then
    self:_drop(cs)
  elseif self.pool:overflowing(cs.conn) then
    self:_drop(cs, "not reading its replies", true)
  elseif not cs.parsing and not self.stopping and (cs.paused or #cs.inbuf >= QUERY_SIZE) then
    self:_parse(cs) -- room again for what it pipelined; reading resumes
  end
  self:_close_if_done(cs)
  if self.stopping then self:_maybe_finish() end
end

-- A client that half-closed (sends no more) is closed once every reply it
-- is owed is written; a query it left unfinished can never complete.
function Mux:_close_if_done(cs)
  if cs.eof and not cs.dead and cs.head == cs.tail then self:_drop(cs) end
end

-- Every upstream lookup ends here, once: its answer (or failure) goes to
-- every client query that waited for it.
function Mux:_settle(addr, result, err, code)
  self.upstream_pending = self.upstream_pending - 1
  local w = self.waiting[addr]
  self.waiting[addr] = nil
  local raw = false
  if result then
    raw = p0f.encode_response(result)
    if self.lru then self.lru:put(addr, raw, result.status) end
  else
    self.pool:log_limited("upstream:" .. tostring(code), "warning",
      "p0f at %s: %s (%s); closing the clients that asked about %s", self.d.socket,
      tostring(err), tostring(code), addr)
  end
  for i = 1, #w, 2 do
    local cs = w[i]
    if not cs.dead then
      if not raw then self.stats.failures = self.stats.failures + 1 end
      cs.slots[w[i + 1]] = raw
      self:_flush(cs)
    end
  end
end

function Mux:_query(cs, addr)
  self.stats.queries = self.stats.queries + 1
  local slot = cs.tail
  cs.tail = slot + 1
  self.unanswered = self.unanswered + 1
  local raw = self.lru and self.lru:get(addr)
  if raw then
    self.stats.cache_hits = self.stats.cache_hits + 1
    cs.slots[slot] = raw
    return self:_flush(cs)
  end
  local w = self.waiting[addr]
  if w then
    self.stats.coalesced = self.stats.coalesced + 1
    w[#w + 1] = cs
    w[#w + 1] = slot
    return
  end
  if self.upstream_pending >= self.d.max_inflight + self.d.max_queue then
    self.stats.failures = self.stats.failures + 1
    self.pool:log_limited("queue", "warning", "%d lookups waiting for p0f (max_inflight + max_queue); "
      .. "closing client %s", self.upstream_pending, cs.peer)
    cs.slots[slot] = false
    return self:_flush(cs)
  end
  self.waiting[addr] = { cs, slot }
  self.upstream_pending = self.upstream_pending + 1
  self.stats.upstream = self.stats.upstream + 1
  local h, err, code = self.client:query(addr, function(result, qerr, qcode)
    self:_settle(addr, result, qerr, qcode)
  end)
  if not h then self:_settle(addr, nil, err, code) end
end

-- Take whole queries from what the client sent, up to max_pending
-- unanswered ones; the rest waits in cs.inbuf, and reading pauses until
-- replies go out (p0f.server), so cs.inbuf holds at most one read more.
function Mux:_parse(cs)
  local buf = cs.inbuf
  local pos, len = 1, #buf
  local max_pending = self.d.max_pending
  cs.parsing = true
  while len - pos + 1 >= QUERY_SIZE and cs.tail - cs.head < max_pending and not cs.dead do
    local addr = p0f.decode_query(len == QUERY_SIZE and buf or buf:sub(pos, pos + QUERY_SIZE - 1))
    pos = pos + QUERY_SIZE
    if not addr then
      cs.parsing = false
      return self:_drop(cs, "not a p0f v3 query (bad magic or address type)")
    end
    self:_query(cs, addr)
  end
  cs.parsing = false
  if cs.dead then return end
  if pos > 1 then buf = buf:sub(pos) end
  cs.inbuf = buf
  local rest = #buf
  local paused = self.pool:pace(cs.conn, cs.tail - cs.head)
  cs.paused = paused -- then a reply written must parse again, to resume
  -- A query cut short must be completed within `timeout`, counted while
  -- the client is read (not while it waits for us).
  if rest % QUERY_SIZE ~= 0 and not paused then
    cs.partial_since = cs.partial_since or self.loop:now()
  else
    cs.partial_since = nil
  end
end

function Mux:_read(cs, data)
  if cs.dead or self.stopping then return end -- stopping: what is already in is answered
  if self.d.idle_timeout > 0 then cs.last_active = self.loop:now() end
  if cs.inbuf == "" then cs.inbuf = data else cs.inbuf = cs.inbuf .. data end
  if not cs.parsing then self:_parse(cs) end
end

function Mux:_accept(conn, peer)
  if self.stopping then -- not started: closed at once
    self.pool:gone(conn)
    return
  end
  self.stats.accepted = self.stats.accepted + 1
  -- A UNIX peer has no address to tell it by: number the connections.
  local cs = { conn = conn, peer = string.format("#%d (%s)", self.stats.accepted, peer),
               inbuf = "", slots = {}, head = 1, tail = 1, last_active = self.loop:now() }
  self.conns[conn] = cs
  conn:start(function(_, data) self:_read(cs, data) end, function()
    -- the peer went away (EOF or an error): the conn is already released
    if cs.dead then return end
    cs.dead = true
    self.conns[conn] = nil
    self.pool:gone(conn)
    self.unanswered = self.unanswered - (cs.tail - cs.head)
    if self.stopping then self:_maybe_finish() end
  end, function()
    -- the peer half-closed: it still reads the replies owed
    cs.eof = true
    self:_close_if_done(cs)
  end)
end

-- Deadlines that need no timer of their own: half-sent queries, idle
-- clients; and the end of a shutdown once the last replies are written.
function Mux:_sweep()
  local now = self.loop:now()
  local idle = self.d.idle_timeout
  local late = {}
  for _, cs in pairs(self.conns) do
    if cs.partial_since and now - cs.partial_since > self.d.timeout then
      late[#late + 1] = { cs, string.format("query not finished within %gs", self.d.timeout) }
    elseif idle > 0 and cs.head == cs.tail and now - cs.last_active > idle then
      late[#late + 1] = { cs }
    end
  end
  for _, l in ipairs(late) do self:_drop(l[1], l[2]) end
  if self.finished and self.pool.nclosing == 0 then self:_stop_loop() end
end

-- ---- life cycle ----------------------------------------------------------------

function Mux:start()
  local d = self.d
  local _, drain = pserver.shutdown_budget(d.shutdown_timeout)
  local client, err, code = self.loop:client{
    socket = d.socket, timeout = d.timeout, max_inflight = d.max_inflight, drain = drain,
    on_error = function(msg) self.log:err("in a lookup callback: %s", tostring(msg)) end,
  }
  if not client then return nil, string.format("p0f client for %s: %s (%s)", d.socket, err, code) end
  self.client = client
  local listener, lerr = self.pool:listen(d.listen, function(conn, peer) self:_accept(conn, peer) end,
    { mode = d.listen_mode, backlog = 1024 })
  if not listener then
    client:close()
    return nil, lerr
  end
  self.listener = listener
  self.sweeper = self.loop:timer(SWEEP_EVERY, function() self:_sweep() end, SWEEP_EVERY)
  local where = d.listen
  if listener:port() then where = where:gsub(":%d+$", ":" .. listener:port()) end
  self.log:notice("listening on %s (p0f at %s; max_inflight %d, cache %d entries)", where, d.socket,
    d.max_inflight, self.lru and d.cache_size or 0)
  return self
end

--- The bound TCP port (listen on port 0 in tests).
function Mux:port()
  return self.listener and self.listener:port()
end

--- Stop accepting; answer the queries already received (for at most
-- shutdown_timeout seconds in all, the drain of p0f included); drain p0f;
-- make loop:run() return.
function Mux:shutdown(why)
  if self.stopping then return end
  self.stopping = true
  self.log:notice("shutting down%s: %d clients, %d queries unanswered, %d lookups at p0f",
    why and (" (" .. why .. ")") or "", self.pool.open, self.unanswered, self.upstream_pending)
  if self.listener then self.listener:close() end
  local grace = pserver.shutdown_budget(self.d.shutdown_timeout)
  self.grace = self.loop:timer(grace, function() self:_finish(true) end)
  self:_maybe_finish()
end

function Mux:_maybe_finish()
  if self.unanswered <= 0 then self:_finish() end
end

function Mux:_finish(forced)
  if self.finished then
    if forced then self:_stop_loop() end -- the grace is over: do not wait for slow readers
    return
  end
  self.finished = true
  -- Closing the client fails what p0f has not answered (those clients are
  -- closed) and reads the replies p0f still owes, so p0f never writes to a
  -- closed socket.
  if self.client then self.client:close() end
  local all = {}
  for _, cs in pairs(self.conns) do all[#all + 1] = cs end
  for _, cs in ipairs(all) do self:_drop(cs) end
  self.log:notice("stopped: %s", self:stats_line())
  if forced or self.pool.nclosing == 0 then return self:_stop_loop() end
  -- else the sweep stops the loop once the last replies are written
end

function Mux:_stop_loop()
  if self.loop_stopped then return end
  self.loop_stopped = true
  if self.grace then self.grace:close() end
  if self.sweeper then self.sweeper:close() end
  self.pool:shutdown()
  for _, s in ipairs(self.signals or {}) do s:stop() end
  self.loop:stop()
end

--- SIGTERM and SIGINT shut down cleanly; SIGUSR1 logs the stats line.
function Mux:handle_signals()
  self.signals = {}
  for _, name in ipairs({ "TERM", "INT" }) do
    self.signals[#self.signals + 1] = self.loop:signal(name, function()
      self:shutdown("SIG" .. name)
    end)
  end
  self.signals[#self.signals + 1] = self.loop:signal("USR1", function()
    self.log:notice("stats: %s", self:stats_line())
  end)
end

return mux
