--- p0f: passive OS fingerprints from a p0f daemon, for Lua programs and
-- mail filters. The C part does the wire format and the I/O: p0f.core
-- (libc only: codec, queries, the pollable client) and p0f.ev (the libev
-- loop and what runs on it); this file gives them their public shape.
local core = require("p0f.core")

local p0f = {
  _VERSION = core._VERSION,
  QUERY_SIZE = core.QUERY_SIZE,
  RESPONSE_SIZE = core.RESPONSE_SIZE,

  -- codec: no I/O
  encode_query = core.encode_query,    -- (addr) -> 21 bytes | nil, err, code
  decode = core.decode,                -- (232 bytes) -> result | nil, err, "EPROTO"
  encode_response = core.encode_response, -- (result) -> 232 bytes (fakes, caches)
  decode_query = core.decode_query,    -- (21 bytes) -> addr, family
  normalize = core.normalize,          -- (addr) -> canonical, family, scope

  -- one blocking query, a connection of its own
  query = core.query,                  -- (socket, addr [, {timeout=}]) -> result | nil, err, code

  -- nonblocking: the pollable client and the libev driver
  client = core.client,                -- {socket=, timeout=, max_inflight=, drain=}
  -- loop = ([ "default" ]) -> libev loop: from p0f.ev, loaded on first
  -- use (below), so a program that never runs a loop (rspamd) loads no libev

  -- the legacy p0f 2 protocol (p0f -Q)
  v2 = {
    encode_query = core.v2_encode_query,
    decode_query = core.v2_decode_query,
    decode = core.v2_decode,
    encode_response = core.v2_encode_response,
    query = core.v2_query,
  },
}

-- p0f.loop: p0f.ev is loaded the first time it is asked for, then kept
-- as a plain field.
setmetatable(p0f, {
  __index = function(t, k)
    if k ~= "loop" then return nil end
    local ok, ev = pcall(require, "p0f.ev")
    if not ok then
      error("p0f.loop needs the p0f.ev module (built where libev and hiredis are installed): "
        .. tostring(ev), 2)
    end
    rawset(t, "loop", ev.loop)
    return ev.loop
  end,
})

return p0f
