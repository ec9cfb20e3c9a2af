--- p0f.cache: where p0f answers are kept between lookups.
--
-- What is cached is the raw 232-byte p0f reply, keyed by the canonical
-- address (p0f.normalize: "::ffff:1.2.3.4" and "1.2.3.4" are one host).
-- The Redis layout is the one rspamd's built-in p0f module uses, so both
-- can share a Redis: key "<prefix><address>" (no separator, e.g.
-- "p0f203.0.113.7"), value the raw reply, with an expiry.
--
--   local cache = require("p0f.cache")
--   cache.key(prefix, addr)      -> prefix .. canonical address | nil, err, "EINVAL"
--   cache.ttl(opts, status)      -> seconds | nil (do not store)
--       "ok": opts.expire (7200); "nomatch": opts.nomatch_expire
--       (min(expire, 300) by default); anything else: never stored.
--
--   local lru = cache.lru{ size = 10000, expire = 7200, nomatch_expire = 300 }
--   lru:get(addr [, now])               -> raw | nil
--   lru:put(addr, raw, status [, now])  -> true | false (not stored)
--   lru:count()                         -> entries held (expired ones included)
--   lru:clear()
--
--   local backend = cache.redis(call, opts)   -- opts: prefix, expire, nomatch_expire
--   backend:get(addr, function(raw_or_nil, err) end)
--   backend:put(addr, raw, status [, function(ok, err) end])
--     `call(args, cb)` is the host's asynchronous Redis command:
--     args = { "GET", key } or { "SET", key, raw, "EX", ttl }, cb(err, reply).
--     The callback runs exactly once; a raising `call` or a dead Redis
--     comes back as an error to it, never as a raise (fail open).
--
-- `now` is seconds (any clock, as long as the same one is used throughout);
-- os.time() when omitted.
local p0f = require("p0f")
local options = require("p0f.options")

local cache = {}

cache.DEFAULT_SIZE = 10000
cache.DEFAULT_EXPIRE = 7200
cache.NOMATCH_EXPIRE_MAX = 300

local RESPONSE_SIZE = p0f.RESPONSE_SIZE

--- The storage key of an address: prefix .. canonical text.
function cache.key(prefix, addr)
  local canon, msg, code = p0f.normalize(addr)
  if not canon then return nil, msg, code end
  return (prefix or "") .. canon
end

--- How long an answer with this status is kept, or nil: not stored.
function cache.ttl(opts, status)
  opts = opts or {}
  local expire = opts.expire or cache.DEFAULT_EXPIRE
  local ttl
  if status == "ok" then
    ttl = expire
  elseif status == "nomatch" then
    ttl = opts.nomatch_expire
    if ttl == nil then ttl = math.min(expire, cache.NOMATCH_EXPIRE_MAX) end
  end
  if not ttl or ttl <= 0 then return nil end
  return ttl
end

-- The expiries of a cache: what cache.ttl reads, checked once, so that a
-- TTL is always a number Redis and the clock arithmetic can use (a raise
-- from put() would cost the lookup that called it its answer).
local function expiries(opts, fname)
  local out = {}
  for _, k in ipairs({ "expire", "nomatch_expire" }) do
    local v = opts[k]
    if v ~= nil then
      local s, want = options.check_seconds(v, k == "nomatch_expire")
      if not s then
        error(string.format("bad argument #2 to '%s' (%s: %s expected, got %s)", fname, k, want,
          options.describe(v)), 3)
      end
      out[k] = s
    end
  end
  return out
end

-- ---- in-process LRU with expiry ------------------------------------------
--
-- A hash from key to node plus a doubly linked list in recency order
-- (head = most recent); bounded by `size`, evicting from the tail.

local Lru = {}
Lru.__index = Lru

function cache.lru(opts)
  opts = opts or {}
  local size = opts.size or cache.DEFAULT_SIZE
  if not options.check_integer(size, 0, 2^53) then
    error("bad argument #1 to 'lru' (size: non-negative integer expected)", 2)
  end
  local head = {}
  head.next, head.prev = head, head -- sentinel of a circular list
  return setmetatable({
    size = size,
    opts = expiries(opts, "lru"),
    map = {},
    n = 0,
    head = head,
  }, Lru)
end

local function unlink(node)
  node.prev.next = node.next
  node.next.prev = node.prev
end

local function push_front(head, node)
  node.next = head.next
  node.prev = head
  head.next.prev = node
  head.next = node
end

function Lru:_drop(node)
  unlink(node)
  self.map[node.key] = nil
  self.n = self.n - 1
end

function Lru:get(addr, now)
  local key = cache.key("", addr)
  if not key then return nil end
  local node = self.map[key]
  if not node then return nil end
  if (now or os.time()) >= node.expires then
    self:_drop(node)
    return nil
  end
  unlink(node)
  push_front(self.head, node)
  return node.raw
end

function Lru:put(addr, raw, status, now)
  if type(raw) ~= "string" then
    error("bad argument #2 to 'put' (string expected, got " .. type(raw) .. ")", 2)
  end
  local ttl = cache.ttl(self.opts, status)
  local key = cache.key("", addr)
  if not ttl or not key or self.size == 0 then return false end
  local expires = (now or os.time()) + ttl
  local node = self.map[key]
  if node then
    unlink(node)
    node.raw, node.expires = raw, expires
  else
    if self.n >= self.size then self:_drop(self.head.prev) end
    node = { key = key, raw = raw, expires = expires }
    self.map[key] = node
    self.n = self.n + 1
  end
  push_front(self.head, node)
  return true
end

function Lru:count()
  return self.n
end

function Lru:clear()
  self.map = {}
  self.n = 0
  self.head.next, self.head.prev = self.head, self.head
end

-- ---- Redis ---------------------------------------------------------------

local Redis = {}
Redis.__index = Redis

function cache.redis(call, opts)
  if type(call) ~= "function" then
    error("bad argument #1 to 'redis' (function expected, got " .. type(call) .. ")", 2)
  end
  opts = opts or {}
  return setmetatable({
    call = call,
    prefix = opts.prefix or "p0f",
    opts = expiries(opts, "redis"),
  }, Redis)
end

-- Run a command; `done` gets (err, reply) exactly once, whatever `call` does.
local function run(self, args, done)
  local fired = false
  local function once(err, reply)
    if fired then return end
    fired = true
    done(err, reply)
  end
  local ok, e = pcall(self.call, args, once)
  if not ok then once("redis: " .. tostring(e)) end
end

function Redis:get(addr, cb)
  local key, msg = cache.key(self.prefix, addr)
  if not key then return cb(nil, msg) end
  run(self, { "GET", key }, function(err, reply)
    if err then return cb(nil, tostring(err)) end
    -- A miss is nil, or a null marker of the host's client (userdata, false).
    if type(reply) ~= "string" then return cb(nil) end
    if #reply ~= RESPONSE_SIZE then
      return cb(nil, string.format("redis: cached value under %s is %d bytes, not %d",
        key, #reply, RESPONSE_SIZE))
    end
    cb(reply)
  end)
end

function Redis:put(addr, raw, status, cb)
  cb = cb or function() end
  if type(raw) ~= "string" or #raw ~= RESPONSE_SIZE then
    return cb(false, "not a p0f reply")
  end
  local ttl = cache.ttl(self.opts, status)
  if not ttl then return cb(false) end -- nothing to store, not an error
  local key, msg = cache.key(self.prefix, addr)
  if not key then return cb(false, msg) end
  run(self, { "SET", key, raw, "EX", string.format("%d", math.ceil(ttl)) }, function(err)
    if err then return cb(false, tostring(err)) end
    cb(true)
  end)
end

return cache
