--- The p0f v3 wire format the way the other filters write it: plain Lua 5.4,
-- string.pack / string.unpack, no C. The peer baseline of the benchmark
-- (per-connection queries) and of the decode row. Lua 5.3+ only.
local plain = {}

local QMAGIC, RMAGIC = 0x50304601, 0x50304602
local STATUS = { [0x00] = "badquery", [0x10] = "ok", [0x20] = "nomatch" }

local function ipv4_bytes(a)
  local b1, b2, b3, b4 = a:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not b1 then return nil end
  return string.char(tonumber(b1), tonumber(b2), tonumber(b3), tonumber(b4))
end

local function ipv6_bytes(a)
  local head, tail = a:match("^(.-)::(.*)$")
  local groups = {}
  local function add(part)
    for g in part:gmatch("[^:]+") do groups[#groups + 1] = tonumber(g, 16) end
  end
  if head then
    add(head)
    local n = #groups
    local rest = {}
    for g in tail:gmatch("[^:]+") do rest[#rest + 1] = tonumber(g, 16) end
    for _ = 1, 8 - n - #rest do groups[#groups + 1] = 0 end
    for _, g in ipairs(rest) do groups[#groups + 1] = g end
  else
    add(a)
  end
  if #groups ~= 8 then return nil end
  return string.pack(">I2I2I2I2I2I2I2I2", table.unpack(groups))
end

--- 21 bytes: magic (host order), type, 16 address bytes.
function plain.encode_query(addr)
  local b = ipv4_bytes(addr)
  if b then return string.pack("=I4 B c16", QMAGIC, 4, b) end
  b = ipv6_bytes(addr)
  if b then return string.pack("=I4 B c16", QMAGIC, 6, b) end
  return nil, "not an IP address"
end

local FMT = "=I4 I4 I4 I4 I4 I4 I4 I4 I4 i2 B B c32 c32 c32 c32 c32 c32"

local function cstr(s) return (s:match("^[^%z]*")) end

--- 232 bytes -> the same table shape as p0f.decode.
function plain.decode(b)
  if #b ~= 232 then return nil, "short reply" end
  local magic, status, first_seen, last_seen, total_conn, uptime_min, up_mod_days,
    last_nat, last_chg, distance, bad_sw, os_match_q,
    os_name, os_flavor, http_name, http_flavor, link_type, language = string.unpack(FMT, b)
  if magic ~= RMAGIC or not STATUS[status] then return nil, "bad magic" end
  local r = { status = STATUS[status] }
  if status ~= 0x10 then return r end
  r.first_seen, r.last_seen, r.total_conn = first_seen, last_seen, total_conn
  r.uptime_min, r.up_mod_days, r.last_nat, r.last_chg = uptime_min, up_mod_days, last_nat, last_chg
  if distance ~= 255 and distance ~= -1 then r.distance = distance end
  r.bad_sw, r.os_match_q = bad_sw, os_match_q
  r.os_name, r.os_flavor = cstr(os_name), cstr(os_flavor)
  r.http_name, r.http_flavor = cstr(http_name), cstr(http_flavor)
  r.link_type, r.language = cstr(link_type), cstr(language)
  r.os = r.os_flavor ~= "" and (r.os_name .. " " .. r.os_flavor) or r.os_name
  r.fuzzy = os_match_q & 1 ~= 0
  r.generic = os_match_q & 2 ~= 0
  return r
end

--- The raw reply to one query, on a connection of its own.
function plain.query_raw(path, addr, timeout)
  local unix = require("socket.unix")
  local q, err = plain.encode_query(addr)
  if not q then return nil, err end
  local s = unix()
  s:settimeout(timeout or 5)
  local ok
  ok, err = s:connect(path)
  if not ok then s:close() return nil, err end
  ok, err = s:send(q)
  if not ok then s:close() return nil, err end
  local b
  b, err = s:receive(232)
  s:close()
  return b, err
end

--- One query on a connection of its own, as the per-connection filters do.
function plain.query(path, addr, timeout)
  local b, err = plain.query_raw(path, addr, timeout)
  if not b then return nil, err end
  return plain.decode(b)
end

return plain
