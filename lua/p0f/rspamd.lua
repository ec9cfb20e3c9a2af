--- p0f.rspamd: the rspamd side of the p0f plugin.
--
-- The plugin file users copy into rspamd (rspamd/p0f_fingerprint.lua) only
-- finds this module and calls
--
--   require("p0f.rspamd").register(rspamd_config, opts, "p0f_fingerprint")
--
-- which validates the options (p0f.filter), registers the symbols and the
-- prefilter that looks each sender up:
--
--   in-process LRU -> Redis (optional) -> p0f (optional socket)
--
-- rspamd owns its event loop (a patched libev), so no I/O of p0f.core is
-- used here: the query goes out through rspamd_tcp, Redis through
-- lua_redis, and only the codec (encode_query / decode) comes from C.
-- Whatever fails (p0f down, hung or lying, Redis down, the deadline), the
-- scan goes on with the fail symbol and a log line.
local p0f = require("p0f")
local filter = require("p0f.filter")
local cache = require("p0f.cache")

local M = {}

M.CHECK_SYMBOL = "P0F_FINGERPRINT_CHECK"
M.GROUP = "p0f"

-- Options of the plugin file, not of the filter.
M.PLUGIN_KEYS = { lua_path = true, lua_cpath = true }

--- Whether a process listens on the UNIX socket at `path` (Linux: a line of
-- /proc/net/unix with the listening flag __SO_ACCEPTCON, 0x10000). nil when
-- it cannot be told.
function M.listening(path, proc_file)
  local f = io.open(proc_file or "/proc/net/unix", "rb")
  if not f then return nil end
  local found = false
  for line in f:lines() do
    -- Num: RefCount Protocol Flags Type St Inode Path
    local flags, p = line:match("^%x+: %x+ %x+ (%x+) %x+ %x+ %d+ (.+)$")
    if p == path and math.floor(tonumber(flags, 16) / 0x10000) % 2 == 1 then
      found = true
      break
    end
  end
  f:close()
  return found
end

--- rspamd's tcp error texts -> the error names the rest of the project uses.
-- When connect() fails rspamd says only "cannot connect" (the errno goes to
-- its own log), so the socket path is looked at: no file is ENOENT (p0f not
-- running, or without -s); a file nobody listens on is ECONNREFUSED (p0f
-- gone); a listener is there, so its queue is full: EAGAIN (p0f up, busy).
function M.error_code(message, socket)
  local m = tostring(message or ""):lower()
  if socket and m:find("cannot connect", 1, true) then
    local f, err = io.open(socket, "rb")
    if f then f:close() end
    if not f and tostring(err):lower():find("no such file", 1, true) then return "ENOENT" end
    if M.listening(socket) then return "EAGAIN" end
  end
  if m:find("timeout", 1, true) or m:find("timed out", 1, true) then return "ETIMEDOUT" end
  if m:find("no such file", 1, true) then return "ENOENT" end
  if m:find("permission denied", 1, true) then return "EACCES" end
  if m:find("resource temporarily unavailable", 1, true) then return "EAGAIN" end
  if m:find("refused", 1, true) or m:find("cannot connect", 1, true) then
    return "ECONNREFUSED"
  end
  if m:find("terminated", 1, true) or m:find("eof", 1, true)
      or m:find("reset", 1, true) then
    return "ECONNRESET"
  end
  return "EIO"
end

-- What a failed connect means, for the failure text.
local CONNECT_MEANS = {
  ENOENT = "no socket file: p0f not running, or without -s",
  ECONNREFUSED = "nobody listens: p0f not running",
  EAGAIN = "p0f is up but its listen queue is full (busy)",
}

--- The failure text and code of an rspamd tcp error.
function M.tcp_failure(message, socket)
  local code = M.error_code(message, socket)
  local text = "p0f: " .. tostring(message)
  if CONNECT_MEANS[code] and tostring(message):lower():find("cannot connect", 1, true) then
    text = text .. ": " .. CONNECT_MEANS[code]
  end
  return text, code
end

--- The host's services, looked up lazily so this file loads outside rspamd
-- (tests may pass their own in `env`).
local function rspamd_env(env)
  env = env or {}
  return {
    tcp = env.tcp or require("rspamd_tcp"),
    logger = env.logger or require("rspamd_logger"),
    util = env.util or require("rspamd_util"),
    lua_redis = env.lua_redis or require("lua_redis"),
    lua_mime = env.lua_mime or require("lua_mime"),
    lua_util = env.lua_util or require("lua_util"),
  }
end

-- ---- applying a verdict to the task --------------------------------------

local function apply(R, task, st, v)
  for _, s in ipairs(v.symbols or {}) do
    -- Weight 1: the score is the one registered for the symbol.
    task:insert_result(s.name, 1.0, s.options or {})
  end
  if v.status == "ok" and v.fields then
    -- What milter_headers' x-os-fingerprint routine reads:
    -- get_variable('os_fingerprint', 'string, string, double, double').
    local f = v.fields
    task:get_mempool():set_variable("os_fingerprint", f.os or "unknown", f.link or "unknown",
      f.uptime and math.floor(f.uptime / 60) or 0, f.distance or -1)
  end
  if v.header then
    R.lua_mime.modify_headers(task, {
      add = { [v.header.name] = { order = 0, value = v.header.value } },
      remove = { [v.header.name] = 0 }, -- 0: every earlier copy
    })
  end
  if v.action then
    task:set_pre_result({
      action = v.action.action == "reject" and "reject" or "soft reject",
      message = v.action.message,
      module = st.name,
    })
  end
  if v.status == "fail" or v.status == "badquery" then
    R.logger.warnx(task, "%s: lookup of %s failed: %s", st.name, st.addr or "?",
      v.error or v.status)
  else
    R.logger.debugm(st.name, task, "%s: %s -> %s", st.name, st.addr, v.status)
  end
end

-- ---- one lookup ----------------------------------------------------------

local Lookup = {}
Lookup.__index = Lookup

function Lookup:remaining()
  return self.deadline - self.R.util.get_ticks()
end

--- Conclude once, whatever comes later (a late Redis or tcp callback).
function Lookup:finish(v)
  if self.done then return end
  self.done = true
  apply(self.R, self.task, self, v)
end

function Lookup:fail(message, code)
  self:finish(self.f:failure(message, code, self.ctx))
end

--- Run fn(...) from an rspamd callback: an error of ours is logged and the
-- lookup fails open instead of leaving the message without a verdict.
function Lookup:guard(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then
    self.R.logger.errx(self.task, "%s: internal error: %s", self.name, err)
    if not self.done then pcall(self.fail, self, "internal error", "EIO") end
  end
end

--- A raw 232-byte reply, from p0f or a cache.
function Lookup:answer(raw, source)
  local res, err, code = p0f.decode(raw)
  if not res then
    if source == "p0f" then return self:fail(err, code) end
    -- A bad cache entry is not the sender's fault: ask p0f instead.
    self.R.logger.warnx(self.task, "%s: ignoring bad cached reply for %s: %s",
      self.name, self.addr, err)
    return self:ask_p0f()
  end
  if source == "p0f" then
    self.plugin.lru:put(self.addr, raw, res.status)
    -- Not after a failed GET: a dead or hung Redis would hold the scan again.
    if self.plugin.redis_params and not self.redis_failed then
      self:redis():put(self.addr, raw, res.status, function(ok, perr)
        if not ok and perr then
          self.R.logger.warnx(self.task, "%s: cannot cache %s in Redis: %s",
            self.name, self.addr, perr)
        end
      end)
    end
  elseif source == "redis" then
    self.plugin.lru:put(self.addr, raw, res.status)
  end
  self:finish(self.f:verdict(res, self.ctx))
end

function Lookup:redis()
  local R, task, params = self.R, self.task, self.plugin.redis_params
  -- cache.redis speaks { "GET", key } / { "SET", key, raw, "EX", ttl };
  -- lua_redis wants the key apart and the rest as arguments.
  local function call(args, cb)
    local rest = {}
    for i = 2, #args do rest[#rest + 1] = args[i] end
    local sent = R.lua_redis.redis_make_request(task, params, args[2], args[1] ~= "GET",
      function(err, data)
        if type(data) == "userdata" and data.str then data = data:str() end
        cb(err, data)
      end, args[1], rest)
    if not sent then cb("redis: cannot connect") end
  end
  return cache.redis(call, self.f.opts)
end

function Lookup:ask_p0f()
  if self.done then return end
  if not self.plugin.socket then
    -- Redis only: another machine's p0f publishes, this one only reads.
    return self:finish(self.f:verdict({ status = "nomatch" }, self.ctx))
  end
  local left = self:remaining()
  if left <= 0 then return self:fail("timed out before asking p0f", "ETIMEDOUT") end
  local query, qerr, qcode = p0f.encode_query(self.addr)
  if not query then return self:fail(qerr, qcode) end

  -- Without a stop pattern rspamd hands each read to the callback and drops
  -- the read handler; another conn:add_read() asks for more. Once the reply
  -- is complete no read is added and rspamd ends the connection itself
  -- (closing from inside a partial-mode callback crashes rspamd 3.4).
  local buf, have = {}, 0
  local on_data
  local function read_more(err, data, conn)
    if self.done then return end
    if err then return self:fail(M.tcp_failure(err, self.plugin.socket)) end
    if data then
      local s = tostring(data)
      if #s > 0 then
        buf[#buf + 1] = s
        have = have + #s
      end
    end
    if have >= p0f.RESPONSE_SIZE then
      local raw = table.concat(buf)
      return self:answer(raw:sub(1, p0f.RESPONSE_SIZE), "p0f")
    end
    -- rspamd restarts its I/O timeout on every read: keep our own deadline.
    if self:remaining() <= 0 then
      return self:fail("p0f: reply incomplete at the deadline", "ETIMEDOUT")
    end
    conn:add_read(on_data)
  end
  on_data = function(err, data, conn) self:guard(read_more, err, data, conn) end

  local ok = self.R.tcp.request({
    task = self.task,
    host = self.plugin.socket, -- a path: rspamd connects over a UNIX socket
    data = query,
    read = true,
    timeout = left,
    callback = on_data,
  })
  if not ok and not self.done then
    self:fail(M.tcp_failure("cannot connect to " .. self.plugin.socket, self.plugin.socket))
  end
end

function Lookup:start()
  local raw = self.plugin.lru:get(self.addr)
  if raw then return self:answer(raw, "lru") end
  if self.plugin.redis_params then
    self:redis():get(self.addr, function(cached, err)
      if self.done then return end
      self:guard(function()
        if err then
          self.redis_failed = true
          self.R.logger.warnx(self.task, "%s: Redis lookup of %s failed: %s",
            self.name, self.addr, err)
        end
        if cached then return self:answer(cached, "redis") end
        self:ask_p0f()
      end)
    end)
  else
    self:ask_p0f()
  end
end

-- ---- registration --------------------------------------------------------

--- Patterns compiled by rspamd's own regexp engine (the one its built-in
-- module uses), through p0f.filter's engine; a raising compile becomes an
-- option error instead of a failed plugin load.
function M.regex(pattern, flags)
  local ok, m, err = pcall(filter.regex_engines.rspamd, pattern, flags or "")
  if not ok then return nil, tostring(m) end
  return m, err
end

--- Split a section into filter options and plugin options.
function M.split_options(section)
  local fopts, popts = {}, {}
  for k, v in pairs(section or {}) do
    if M.PLUGIN_KEYS[k] then popts[k] = v else fopts[k] = v end
  end
  return fopts, popts
end

-- Redis servers from this section, else from the global `redis` section;
-- nil without any. lua_redis hands out one cached table per server set,
-- shared with other modules: our timeout goes into a copy.
local function redis_params(R, name, opts)
  local shared = R.lua_redis.parse_redis_server(name)
  if not shared then return nil end
  local params = {}
  for k, v in pairs(shared) do params[k] = v end
  -- The deadline covers the cache as well as p0f: a slow Redis may take
  -- half of it, p0f keeps the rest.
  if not params.timeout or params.timeout > opts.timeout / 2 then
    params.timeout = opts.timeout / 2
  end
  R.lua_redis.register_prefix(opts.prefix .. "*", name, "p0f fingerprint cache",
    { type = "string" })
  return params
end

--- The plugin's state: validated options, its LRU, where to ask.
-- nil, err for bad options.
function M.new_plugin(R, cfg, section, name)
  local f, err = filter.new(M.split_options(section), { regex = M.regex })
  if not f then return nil, err end
  local opts = f.opts
  local plugin = {
    name = name,
    f = f,
    lru = cache.lru({ size = opts.cache_size, expire = opts.expire,
                      nomatch_expire = opts.nomatch_expire }),
    redis_params = redis_params(R, name, opts),
  }
  -- No socket but Redis: another machine's p0f publishes, this one reads.
  -- No socket and no Redis: the default socket.
  if (section and section.socket ~= nil) or not plugin.redis_params then
    plugin.socket = opts.socket
  else
    R.logger.infox(cfg, "%s: no socket configured: reading fingerprints from Redis only", name)
  end
  return plugin
end

--- The prefilter's callback: skip the senders not to look up, start a
-- Lookup for the others; a bug of ours fails open.
function M.checker(R, plugin)
  local f, name, opts = plugin.f, plugin.name, plugin.f.opts
  return function(task)
    local ip = task:get_from_ip()
    if not (ip and ip:is_valid()) then return end
    local ctx = { ip = ip:to_string(), user = task:get_user() }
    -- rspamd's own idea of local networks (options.local_addrs) counts too.
    if opts.skip_local and ip:is_local() then
      R.logger.debugm(name, task, "%s: skipping local sender %s", name, ctx.ip)
      return
    end
    local reason, addr = f:skip(ctx)
    if reason then
      R.logger.debugm(name, task, "%s: skipping %s: %s", name, ctx.ip, reason)
      return
    end
    local st = setmetatable({
      R = R, plugin = plugin, f = f, task = task, ctx = ctx, name = name, addr = addr,
      deadline = R.util.get_ticks() + opts.timeout,
    }, Lookup)
    local ok, e = pcall(st.start, st)
    if not ok then
      -- A bug of ours must not cost the message: report it, fail open.
      R.logger.errx(task, "%s: internal error: %s", name, e)
      if not st.done then st:fail("internal error", "EIO") end
    end
  end
end

--- The prefilter symbol and, under it, the virtual symbols the verdicts
-- insert. Returns the prefilter's id.
function M.register_symbols(cfg, R, plugin, callback)
  local opts = plugin.f.opts
  local id = cfg:register_symbol({
    name = M.CHECK_SYMBOL,
    type = "prefilter",
    callback = callback,
    priority = R.lua_util.symbols_priorities and R.lua_util.symbols_priorities.medium or nil,
    flags = "empty,nostat",
    group = M.GROUP,
    augmentations = { string.format("timeout=%f", opts.timeout) },
  })
  local function virtual(sym, score, description)
    cfg:register_symbol({
      name = sym, type = "virtual", parent = id, flags = "nostat",
      score = score or 0.0, group = M.GROUP, description = description,
    })
  end
  virtual(opts.symbol, 0.0, "OS fingerprint of the sender (p0f)")
  virtual(opts.symbol_fail, 0.0, "p0f lookup failed")
  for sym, spec in pairs(opts.patterns) do
    local score = type(spec) == "table" and spec.score or nil
    virtual(sym, score, "p0f pattern")
  end
  return id
end

--- Register the plugin. cfg: rspamd_config; section: the module's options
-- (rspamd_config:get_all_opt(name)); name: the module name. Returns the
-- plugin state, or nil and an error (the caller disables the module).
function M.register(cfg, section, name, env)
  local R = rspamd_env(env)
  name = name or "p0f_fingerprint"
  local plugin, err = M.new_plugin(R, cfg, section, name)
  if not plugin then return nil, err end
  plugin.id = M.register_symbols(cfg, R, plugin, M.checker(R, plugin))
  return plugin
end

return M
