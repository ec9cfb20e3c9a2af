--- p0f: passive OS fingerprints from a p0f daemon, for Lua programs and
-- mail filters. The C part (p0f.core) does the wire format and the I/O;
-- this file gives it its public shape.
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
  loop = core.loop,                    -- ([ "default" ]) -> libev loop

  -- the legacy p0f 2 protocol (p0f -Q)
  v2 = {
    encode_query = core.v2_encode_query,
    decode_query = core.v2_decode_query,
    decode = core.v2_decode,
    encode_response = core.v2_encode_response,
    query = core.v2_query,
  },
}

return p0f
