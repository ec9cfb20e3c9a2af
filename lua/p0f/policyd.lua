--- p0f.policyd: a Postfix policy-delegation server on the libev loop.
--
-- Every decision comes from p0f.filter; this file does the protocol, the
-- connections, the cache and the lookups:
--
--   local server = assert(policyd.new(opts [, { loop =, log = }]))
--   server:start()        -- listen (nil, err on failure)
--   server.loop:run()     -- until server:shutdown() has finished
--
-- Which answer belongs to which SMTP stage (protocol_state):
--   - a reject/defer rule: REJECT / DEFER_IF_PERMIT at any stage the server
--     is asked at (hook it in smtpd_recipient_restrictions: RCPT);
--   - the header: PREPEND only at DATA (smtpd_data_restrictions), which
--     Postfix asks once per message; at RCPT it would repeat once per
--     recipient, and END-OF-MESSAGE cannot PREPEND at all;
--   - everything else, and every failure: DUNNO (fail open, with a log line).
local p0f = require("p0f")
local cache = require("p0f.cache")
local filter = require("p0f.filter")
local protocol = require("p0f.policy_protocol")
local config = require("p0f.config")
local plog = require("p0f.log")
local pserver = require("p0f.server")

local policyd = {}

local Server = {}
Server.__index = Server

--- fn wrapped for the loop: an error in it goes to the log, not to the
-- loop's stderr reporter (stderr is not where a daemon's log is).
function Server:_guard(what, fn)
  local log = self.log
  return function(...)
    local ok, err = pcall(fn, ...)
    if not ok then log:err("in a %s callback: %s", what, tostring(err)) end
  end
end

--- policyd.new(opts [, env]) -> server | nil, err. opts: the configuration
-- table (server and filter options together). env.loop, env.log: injected.
-- env.baseline: answer DUNNO to everything without looking anything up (the
-- benchmark's ceiling: the same loop, parser and connections).
function policyd.new(opts, env)
  env = env or {}
  local d, rest = config.split(opts or {})
  if not d then return nil, rest end
  local f, ferr = filter.new(rest)
  if not f then return nil, ferr end
  local self = setmetatable({
    d = d,
    filter = f,
    loop = env.loop or p0f.loop("default"),
    log = env.log or plog.new{ target = d.log, level = d.log_level,
                               ident = "p0f-policyd", facility = d.syslog_facility },
    baseline = env.baseline,
    conns = {},       -- connection state by conn object
    inflight = 0,     -- requests waiting for an answer
    waiting = {},     -- address -> callbacks of one lookup under way
    stats = { requests = 0, lookups = 0, hits = 0, failures = 0 },
  }, Server)
  -- an injected loop keeps its owner's reporter
  if not env.loop then pserver.log_loop_errors(self.loop, self.log) end
  -- the connection limits (p0f.server): counts, pipelining, output, closing
  self.pool = pserver.pool{ loop = self.loop, log = self.log, what = "connection from",
    max_connections = d.max_connections, max_pending = d.max_pending,
    max_output = d.max_output, close_timeout = d.close_timeout }
  local fo = f.opts
  if fo.cache_size > 0 then
    self.lru = cache.lru{ size = fo.cache_size, expire = fo.expire, nomatch_expire = fo.nomatch_expire }
  end
  -- Does any stage other than DATA need a lookup at all?
  self.has_rules = (type(fo.reject) == "table" and #fo.reject > 0)
    or (type(fo.defer) == "table" and #fo.defer > 0)
  return self
end

-- ---- lookups ----------------------------------------------------------------

function Server:_redis_call()
  local redis = self.redis
  return function(args, cb)
    redis:command(args, self:_guard("redis", function(err, reply) cb(err, reply) end))
  end
end

function Server:_open_backends()
  local fo = self.filter.opts
  local _, drain = pserver.shutdown_budget(self.d.shutdown_timeout)
  local client, err, code = self.loop:client{
    socket = fo.socket, timeout = fo.timeout, drain = drain,
    on_error = function(msg) self.log:err("in a lookup callback: %s", tostring(msg)) end,
  }
  if not client then return nil, string.format("p0f client for %s: %s (%s)", fo.socket, err, code) end
  self.client = client
  if self.d.redis then
    -- Why Redis went away (a reply nobody asked for fails no request, so
    -- this is the only place it shows); requests meanwhile go to p0f.
    local r, rerr, rcode = self.loop:redis{ host = self.d.redis.host, port = self.d.redis.port,
      timeout = self.d.redis.timeout, on_drop = self:_guard("redis", function(msg, code)
        self.log:warning("%s (%s); asking p0f without it for now", msg, code)
      end) }
    if not r then return nil, string.format("redis: %s (%s)", rerr, rcode) end
    self.redis = r
    self.shared = cache.redis(self:_redis_call(), { prefix = fo.prefix, expire = fo.expire,
                                                    nomatch_expire = fo.nomatch_expire })
  end
  return true
end

-- Hand one lookup's outcome to everyone who asked for that address.
function Server:_settle(addr, result, err, code)
  local cbs = self.waiting[addr]
  self.waiting[addr] = nil
  if not cbs then return end
  for i = 1, #cbs do cbs[i](result, err, code) end
end

-- Keep a p0f answer: the LRU, and Redis when publishing. Whatever goes
-- wrong here is logged; it must never cost the waiting requests their answer.
function Server:_remember(addr, result)
  local ok, err = pcall(function()
    local raw = p0f.encode_response(result)
    if self.lru then self.lru:put(addr, raw, result.status) end
    if self.d.publish and result.status == "ok" then
      self.shared:put(addr, raw, result.status, function(put_ok, perr)
        if not put_ok and perr then self.log:warning("%s: publishing to redis failed: %s", addr, perr) end
      end)
    end
  end)
  if not ok then self.log:err("%s: caching the answer failed: %s", addr, tostring(err)) end
end

function Server:_ask_p0f(addr)
  self.stats.lookups = self.stats.lookups + 1
  local h, err, code = self.client:query(addr, function(result, qerr, qcode)
    if result then self:_remember(addr, result) end
    self:_settle(addr, result, qerr, qcode)
  end)
  if not h then self:_settle(addr, nil, err, code) end
end

--- lookup(addr, cb(result | nil, err, code)): LRU, then Redis, then p0f.
-- Lookups of one address already under way are shared, not repeated.
function Server:lookup(addr, cb)
  if self.lru then
    local raw = self.lru:get(addr)
    local result = raw and p0f.decode(raw)
    if result then
      self.stats.hits = self.stats.hits + 1
      return cb(result)
    end
  end
  local cbs = self.waiting[addr]
  if cbs then
    cbs[#cbs + 1] = cb
    return
  end
  self.waiting[addr] = { cb }
  if not self.shared then return self:_ask_p0f(addr) end
  self.shared:get(addr, function(raw, err)
    local result = raw and p0f.decode(raw)
    if result then
      self.stats.hits = self.stats.hits + 1
      if self.lru then self.lru:put(addr, raw, result.status) end
      return self:_settle(addr, result)
    end
    if err then self.log:debug("%s: redis: %s", addr, err) end
    if self.stopping then return self:_settle(addr, nil, "shutting down", "ECANCELED") end
    self:_ask_p0f(addr)
  end)
end

-- ---- decisions ----------------------------------------------------------------

-- The Postfix action for a verdict at this stage.
local function action_for(v, state)
  if v.action then
    local text = v.action.message or ""
    if v.action.action == "reject" then return "REJECT " .. text end
    if v.action.action == "defer" then return "DEFER_IF_PERMIT " .. text end
  end
  if state == "DATA" and v.header then
    return "PREPEND " .. v.header.name .. ": " .. v.header.value
  end
  return "DUNNO"
end
policyd.action_for = action_for

-- Decide one request; answer(action) is called exactly once.
function Server:decide(attrs, problem, answer)
  self.stats.requests = self.stats.requests + 1
  if self.baseline then return answer("DUNNO") end
  local client = attrs.client_address or "?"
  if problem then
    self.log:warning("request from %s: %s; DUNNO", client, problem)
    return answer("DUNNO")
  end
  if attrs.request ~= "smtpd_access_policy" then
    self.log:warning("unknown request type '%s'; DUNNO", tostring(attrs.request))
    return answer("DUNNO")
  end
  if self.stopping then return answer("DUNNO") end
  local state = attrs.protocol_state or ""
  if not (state == "DATA" or self.has_rules or self.d.publish) then
    return answer("DUNNO") -- nothing this stage could do with an answer
  end
  local ctx = { ip = attrs.client_address, user = attrs.sasl_username }
  local reason, addr = self.filter:skip(ctx)
  if reason then
    self.log:debug("%s: skipped (%s); DUNNO", client, reason)
    return answer("DUNNO")
  end
  self:lookup(addr, function(result, err, code)
    local v
    if result then
      v = self.filter:verdict(result, ctx)
    else
      v = self.filter:failure(err, code, ctx)
    end
    if v.status == "fail" or v.status == "badquery" then
      self.stats.failures = self.stats.failures + 1
      self.log:warning("%s: lookup failed: %s; DUNNO", addr, tostring(v.error))
      return answer("DUNNO")
    end
    local action = action_for(v, state)
    if v.action then
      self.log:info("%s: %s (%s, rule %s) at %s: %s", addr, v.fields.os or "?", v.status,
        tostring(v.action.rule), state, action)
    else
      self.log:debug("%s: %s at %s: %s", addr, v.fields.os or v.status, state, action)
    end
    answer(action)
  end)
end

-- ---- connections ------------------------------------------------------------------

-- now: free the fd and the buffered output at once (a peer that does not
-- read would otherwise hold both until it goes away).
function Server:_drop(cs, why, now)
  if cs.dead then return end
  cs.dead = true
  if why then self.log:warning("connection from %s: %s; closing it", cs.peer, why) end
  cs.timer:close()
  self.pool:close(cs.conn, now)
  self.conns[cs.conn] = nil
end

-- Answers go out in request order, whichever lookup finishes first.
function Server:_flush(cs)
  while cs.head < cs.tail and cs.slots[cs.head] ~= nil do
    local action = cs.slots[cs.head]
    cs.slots[cs.head] = nil
    cs.head = cs.head + 1
    if not cs.dead then
      cs.conn:write(protocol.answer(action))
    end
  end
  if cs.dead then return end
  if self.pool:overflowing(cs.conn) then
    return self:_drop(cs, "not reading its answers", true)
  end
  -- A half-closed client: close once every answer it is owed is written.
  if cs.eof and cs.head == cs.tail then return self:_drop(cs) end
  -- Answers went out: below max_pending, read again, starting with what
  -- the parser holds (not from inside the parser: it goes on by itself).
  if not cs.feeding and not self.pool:pace(cs.conn, cs.tail - cs.head) then
    self:_feed(cs, "")
  end
end

-- Parse what the client sent. At max_pending unanswered requests the
-- parser holds the rest and reading pauses (p0f.server), so a client that
-- pipelines without reading costs a bounded amount of memory.
function Server:_feed(cs, data)
  if data == "" and not cs.parser:holding() then return end
  local was_partial = cs.parser:partial()
  cs.feeding = true
  cs.parser:feed(data, cs.on_request)
  cs.feeding = false
  -- An answer may have dropped the connection (a peer not reading them).
  if cs.dead then return end
  -- The request deadline runs from a request's first byte, not its last.
  if not (was_partial and cs.parser:partial()) then self:_arm(cs) end
end

function Server:_request(cs, attrs, problem)
  local slot = cs.tail
  cs.tail = cs.tail + 1
  self.inflight = self.inflight + 1
  local done = false
  self:decide(attrs, problem, function(action)
    if done then return end
    done = true
    self.inflight = self.inflight - 1
    cs.slots[slot] = action
    self:_flush(cs)
    if self.stopping then self:_maybe_finish() end
  end)
end

function Server:_arm(cs)
  cs.timer:again(cs.parser:partial() and self.d.request_timeout or self.d.idle_timeout)
end

-- One request parsed: decide it; at max_pending unanswered, stop reading.
function Server:_parsed(cs, attrs, problem)
  if cs.dead then return end
  self:_request(cs, attrs, problem)
  if not cs.dead and self.pool:pace(cs.conn, cs.tail - cs.head) then cs.parser:hold() end
end

function Server:_accept(conn, peer)
  if self.stopping then -- not started: the loop closes it
    self.pool:gone(conn)
    return
  end
  local cs = {
    conn = conn, peer = peer,
    parser = protocol.parser{ max_line = self.d.max_line, max_attrs = self.d.max_attrs },
    slots = {}, head = 1, tail = 1,
  }
  cs.on_request = function(attrs, problem) self:_parsed(cs, attrs, problem) end
  cs.timer = self.loop:timer(self.d.idle_timeout, self:_guard("timer", function()
    if conn:paused() then
      -- not the client's delay: its requests wait for lookups
      self:_arm(cs)
    elseif cs.parser:partial() then
      self:_drop(cs, string.format("request not finished within %gs", self.d.request_timeout))
    else
      self.log:debug("connection from %s idle for %gs; closing it", peer, self.d.idle_timeout)
      self:_drop(cs)
    end
  end))
  self.conns[conn] = cs
  conn:start(self:_guard("read", function(_, data)
    if not cs.dead then self:_feed(cs, data) end
  end), self:_guard("close", function()
    if cs.dead then return end
    cs.dead = true
    cs.timer:close()
    self.conns[conn] = nil
    self.pool:gone(conn)
  end), self:_guard("eof", function()
    -- The client sends no more (shutdown of its side) but may still read.
    cs.eof = true
    self:_flush(cs)
  end))
end

-- ---- life cycle ------------------------------------------------------------------

function Server:start()
  if not self.baseline then
    local ok, err = self:_open_backends()
    if not ok then return nil, err end
  end
  local listener, err = self.pool:listen(self.d.listen,
    self:_guard("accept", function(conn, peer) self:_accept(conn, peer) end),
    { mode = self.d.listen_mode })
  if not listener then return nil, err end
  self.listener = listener
  local where = self.d.listen
  if listener:port() then where = where:gsub(":%d+$", ":" .. listener:port()) end
  self.log:notice("listening on %s (p0f at %s%s)", where, self.filter.opts.socket,
    self.d.redis and string.format(", redis at %s%s", self.d.redis.port and
      (self.d.redis.host .. ":" .. self.d.redis.port) or self.d.redis.host,
      self.d.publish and ", publishing" or "") or "")
  return self
end

--- The bound TCP port (listen on port 0 in tests).
function Server:port()
  return self.listener and self.listener:port()
end

--- Stop accepting; answer what is in flight (at most shutdown_timeout
-- seconds); close everything; make loop:run() return.
function Server:shutdown(why)
  if self.stopping then return end
  self.stopping = true
  self.log:notice("shutting down%s: %d connections, %d requests in flight",
    why and (" (" .. why .. ")") or "", self.pool.open, self.inflight)
  if self.listener then self.listener:close() end
  local grace = pserver.shutdown_budget(self.d.shutdown_timeout)
  self.grace = self.loop:timer(grace, self:_guard("timer", function() self:_finish() end))
  self:_maybe_finish()
end

function Server:_maybe_finish()
  if self.inflight == 0 then self:_finish() end
end

function Server:_finish()
  if self.finished then return end
  self.finished = true
  if self.grace then self.grace:close() end
  -- Closing the client answers its pending lookups (ECANCELED -> DUNNO) and
  -- reads the replies p0f still owes, so p0f never writes to a closed socket.
  if self.client then self.client:close() end
  if self.redis then self.redis:close() end
  for _, cs in pairs(self.conns) do self:_drop(cs) end
  self.pool:shutdown()
  for _, s in ipairs(self.signals or {}) do s:stop() end
  self.log:notice("stopped after %d requests (%d p0f lookups, %d cache hits, %d failures)",
    self.stats.requests, self.stats.lookups, self.stats.hits, self.stats.failures)
  self.loop:stop()
end

--- SIGTERM and SIGINT shut down cleanly (the default loop owns signals).
function Server:handle_signals()
  self.signals = {}
  for _, name in ipairs({ "TERM", "INT" }) do
    self.signals[#self.signals + 1] = self.loop:signal(name, self:_guard("signal", function()
      self:shutdown("SIG" .. name)
    end))
  end
end

return policyd
