--- The codec through the Lua API (no I/O): p0f.encode_query, decode,
-- encode_response, decode_query, normalize and their p0f.v2 counterparts.
-- Wire vectors are built here byte by byte at the offsets of p0f's own
-- api.h (struct p0f_api_query / p0f_api_response, the layout src/p0f_codec.c
-- writes and reads), never with the encoder under test. No string.pack: LuaJIT has
-- none, and these tests run under both Lua 5.4 and LuaJIT.
local lu = require("luaunit")
local p0f = require("p0f")

---------------------------------------------------------------------------
-- byte helpers: integers in host order, as the daemon writes them

-- The daemon is local, so its integers are in this machine's byte order.
-- Find that order without the code under test.
local host_le
if string.pack then
  host_le = string.pack("=I4", 1):byte(1) == 1
else
  host_le = require("ffi").abi("le")
end

local function bytes_of(v, n)
  local t = {}
  for i = 1, n do
    t[i] = v % 256
    v = (v - t[i]) / 256
  end
  if not host_le then
    local r = {}
    for i = 1, n do r[i] = t[n + 1 - i] end
    t = r
  end
  return string.char((table.unpack or unpack)(t))
end

local function u32(v) return bytes_of(v % 4294967296, 4) end
local function u16(v) return bytes_of(v % 65536, 2) end -- negative: two's complement
local function u8(v) return string.char(v % 256) end

-- strncpy onto the wire: NUL padded, no terminator when full
local function str(s, width)
  assert(#s <= width)
  return s .. ("\0"):rep(width - #s)
end

local function is_integer(x)
  if math.type then return math.type(x) == "integer" end
  return type(x) == "number" and x % 1 == 0 -- 5.1/LuaJIT: no integer subtype
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- Expect exactly nil, a message string, the given code.
local function assert_fails(code, ...)
  local n = select("#", ...)
  local v, msg, c = ...
  lu.assertEquals(n, 3)
  lu.assertNil(v)
  lu.assertIsString(msg)
  lu.assertEquals(c, code)
  return msg
end

---------------------------------------------------------------------------
-- vectors

local FULL32 = "10.9 or newer (sometimes iPhone " -- 32 chars: no NUL on the wire
assert(#FULL32 == 32)

-- A v3 reply; every field overridable; defaults all distinct.
local function reply(f)
  f = f or {}
  local function g(k, d) if f[k] == nil then return d end return f[k] end
  local b = u32(g("magic", 0x50304602)) .. u32(g("status", 0x10))
    .. u32(g("first_seen", 1700000001)) .. u32(g("last_seen", 1700000002))
    .. u32(g("total_conn", 3)) .. u32(g("uptime_min", 0xfedcba98))
    .. u32(g("up_mod_days", 49)) .. u32(g("last_nat", 1700000005))
    .. u32(g("last_chg", 1700000006)) .. u16(g("distance", 7))
    .. u8(g("bad_sw", 2)) .. u8(g("os_match_q", 3))
    .. str(g("os_name", "Linux"), 32) .. str(g("os_flavor", "2.2.x-3.x"), 32)
    .. str(g("http_name", "Firefox"), 32) .. str(g("http_flavor", "10.x or newer"), 32)
    .. str(g("link_type", "Ethernet or modem"), 32) .. str(g("language", "German"), 32)
  assert(#b == 232)
  return b
end

-- A v3 query: IPv4 in the first 4 of 16 address bytes.
local function query(family, addr_bytes)
  return u32(0x50304601) .. u8(family) .. addr_bytes .. ("\0"):rep(16 - #addr_bytes)
end

-- A v2 reply (144 bytes, natural alignment, padding at 133 and 138..139).
local function reply2(f)
  f = f or {}
  local function g(k, d) if f[k] == nil then return d end return f[k] end
  local b = u32(g("magic", 0x0defaced)) .. u32(g("id", 0xcafef00d)) .. u8(g("type", 0))
    .. str(g("genre", "Linux"), 20) .. str(g("detail", "2.6 (newer, 1)"), 40)
    .. u8(g("dist", 12)) .. str(g("link", "ethernet/modem"), 30)
    .. str(g("tos", "low latency"), 30)
    .. u8(g("fw", 1)) .. u8(g("nat", 0)) .. u8(g("real", 1)) .. u8(g("pad1", 0))
    .. u16(g("score", -7)) .. u16(g("mflags", 0xbeef)) .. u8(g("pad2", 0)) .. u8(g("pad2", 0))
    .. u32(g("uptime", 4321))
  assert(#b == 144)
  return b
end

---------------------------------------------------------------------------

TestEncodeQuery = {}

function TestEncodeQuery.test_ipv4_layout()
  local q = p0f.encode_query("192.0.2.7")
  lu.assertEquals(#q, 21)
  lu.assertEquals(p0f.QUERY_SIZE, 21)
  lu.assertEquals(q:sub(1, 4), u32(0x50304601))
  lu.assertEquals(q:byte(5), 4)
  lu.assertEquals(q:sub(6, 9), "\192\0\2\7")
  lu.assertEquals(q:sub(10), ("\0"):rep(12))
end

function TestEncodeQuery.test_ipv6_spellings()
  local doc = "\32\1\13\184" .. ("\0"):rep(11) .. "\1" -- 2001:db8::1
  for _, text in ipairs{ "2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
                         "2001:DB8::1", "2001:db8:0:0::1" } do
    lu.assertEquals(p0f.encode_query(text), query(6, doc), text)
  end
  lu.assertEquals(p0f.encode_query("::"), query(6, ("\0"):rep(16)))
  lu.assertEquals(p0f.encode_query("::1"), query(6, ("\0"):rep(15) .. "\1"))
  lu.assertEquals(p0f.encode_query("2001:db8:1:2:3:4:5:ABCD"),
    query(6, "\32\1\13\184\0\1\0\2\0\3\0\4\0\5\171\205"))
end

function TestEncodeQuery.test_mapped_goes_as_ipv4()
  -- p0f stores such peers as IPv4: sent as type 6 they never match.
  lu.assertEquals(p0f.encode_query("::ffff:1.2.3.4"), query(4, "\1\2\3\4"))
  lu.assertEquals(p0f.encode_query("::FFFF:1.2.3.4"), query(4, "\1\2\3\4"))
  lu.assertEquals(p0f.encode_query("::ffff:102:304"), query(4, "\1\2\3\4"))
  -- The NAT64 prefix is not a mapping: it stays IPv6.
  lu.assertEquals(p0f.encode_query("64:ff9b::1.2.3.4"),
    query(6, "\0\100\255\155" .. ("\0"):rep(8) .. "\1\2\3\4"))
end

local BAD_ADDRESSES = { "", "garbage", "1.2.3", "1.2.3.4.5", "256.1.1.1", "[::1]",
  "fe80::1%eth0", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\0", "1.2.3.4\0.5", "::1::",
  "1:2:3:4:5:6:7:8:9", ("1"):rep(1000), "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555" }

function TestEncodeQuery.test_rejects()
  for _, text in ipairs(BAD_ADDRESSES) do
    assert_fails("EINVAL", p0f.encode_query(text))
  end
  local msg = assert_fails("EINVAL", p0f.encode_query("not-an-ip"))
  lu.assertStrContains(msg, "not-an-ip")
end

function TestEncodeQuery.test_longest_spelling_accepted()
  local q = p0f.encode_query("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")
  lu.assertEquals(q, query(6, ("\255"):rep(16)))
end

function TestEncodeQuery.test_bad_types_raise()
  lu.assertError(p0f.encode_query)
  lu.assertError(p0f.encode_query, nil)
  lu.assertError(p0f.encode_query, {})
  lu.assertError(p0f.encode_query, true)
end

---------------------------------------------------------------------------

TestDecode = {}

function TestDecode.test_every_field()
  lu.assertEquals(p0f.RESPONSE_SIZE, 232)
  local r = assert(p0f.decode(reply()))
  lu.assertEquals(r.status, "ok")
  lu.assertEquals(r.first_seen, 1700000001)
  lu.assertEquals(r.last_seen, 1700000002)
  lu.assertEquals(r.total_conn, 3)
  lu.assertEquals(r.uptime_min, 0xfedcba98) -- above 2^31: unsigned
  lu.assertEquals(r.up_mod_days, 49)
  lu.assertEquals(r.last_nat, 1700000005)
  lu.assertEquals(r.last_chg, 1700000006)
  lu.assertEquals(r.distance, 7)
  lu.assertEquals(r.bad_sw, 2)
  lu.assertEquals(r.os_match_q, 3)
  lu.assertEquals(r.os_name, "Linux")
  lu.assertEquals(r.os_flavor, "2.2.x-3.x")
  lu.assertEquals(r.http_name, "Firefox")
  lu.assertEquals(r.http_flavor, "10.x or newer")
  lu.assertEquals(r.link_type, "Ethernet or modem")
  lu.assertEquals(r.language, "German")
  -- conveniences
  lu.assertEquals(r.os, "Linux 2.2.x-3.x")
  lu.assertTrue(r.fuzzy)
  lu.assertTrue(r.generic)
end

function TestDecode.test_integers_are_integers()
  local r = assert(p0f.decode(reply()))
  for _, k in ipairs{ "first_seen", "last_seen", "total_conn", "uptime_min", "up_mod_days",
                      "last_nat", "last_chg", "distance", "bad_sw", "os_match_q" } do
    lu.assertTrue(is_integer(r[k]), k .. " is not an integer: " .. tostring(r[k]))
  end
end

function TestDecode.test_match_quality_bits()
  local r = assert(p0f.decode(reply{ os_match_q = 1, os_flavor = "" }))
  lu.assertTrue(r.fuzzy)
  lu.assertFalse(r.generic)
  lu.assertEquals(r.os, "Linux") -- no trailing space without a flavour
  r = assert(p0f.decode(reply{ os_match_q = 2 }))
  lu.assertFalse(r.fuzzy)
  lu.assertTrue(r.generic)
  r = assert(p0f.decode(reply{ os_match_q = 0 }))
  lu.assertFalse(r.fuzzy)
  lu.assertFalse(r.generic)
end

function TestDecode.test_nomatch_and_badquery_carry_only_the_status()
  -- Fields are filled on the wire here; the result must still hold none.
  for status, name in pairs{ [0x20] = "nomatch", [0x00] = "badquery" } do
    local r = assert(p0f.decode(reply{ status = status }))
    lu.assertEquals(r.status, name)
    lu.assertEquals(count_keys(r), 1, name)
  end
end

function TestDecode.test_unknown_status()
  for _, status in ipairs{ 0x01, 0x11, 0x30, 0x10000010, 0xffffffff } do
    assert_fails("EPROTO", p0f.decode(reply{ status = status }))
  end
end

function TestDecode.test_wrong_magic()
  assert_fails("EPROTO", p0f.decode(reply{ magic = 0x50304601 })) -- the query's
  assert_fails("EPROTO", p0f.decode(reply{ magic = 0x02463050 })) -- byte-swapped
  assert_fails("EPROTO", p0f.decode(("\0"):rep(232)))
  assert_fails("EPROTO", p0f.decode(("\1\2\3\4"):rep(58)))
end

function TestDecode.test_wrong_lengths()
  local good = reply()
  for _, s in ipairs{ "", good:sub(1, 1), good:sub(1, 231), good .. "\0", good .. good } do
    local msg = assert_fails("EPROTO", p0f.decode(s))
    lu.assertStrContains(msg, tostring(#s))
  end
end

function TestDecode.test_unterminated_strings()
  local r = assert(p0f.decode(reply{ os_name = FULL32, os_flavor = FULL32, http_name = FULL32,
    http_flavor = FULL32, link_type = FULL32, language = FULL32 }))
  for _, k in ipairs{ "os_name", "os_flavor", "http_name", "http_flavor", "link_type",
                      "language" } do
    lu.assertEquals(r[k], FULL32, k)
  end
  -- bytes after a terminator are not part of the value
  r = assert(p0f.decode(reply{ os_name = "Linux\0junk" }))
  lu.assertEquals(r.os_name, "Linux")
end

function TestDecode.test_distance()
  lu.assertNil(assert(p0f.decode(reply{ distance = 255 })).distance) -- p0f's u8 -1
  lu.assertNil(assert(p0f.decode(reply{ distance = -1 })).distance)
  lu.assertNil(assert(p0f.decode(reply{ distance = 300 })).distance)
  lu.assertEquals(assert(p0f.decode(reply{ distance = 0 })).distance, 0)
  lu.assertEquals(assert(p0f.decode(reply{ distance = 126 })).distance, 126)
end

function TestDecode.test_bad_types_raise()
  lu.assertError(p0f.decode)
  lu.assertError(p0f.decode, nil)
  lu.assertError(p0f.decode, {})
end

---------------------------------------------------------------------------

TestEncodeResponse = {}

local FIELDS = { status = "ok", first_seen = 1700000001, last_seen = 1700000002,
  total_conn = 3, uptime_min = 0xfedcba98, up_mod_days = 49, last_nat = 1700000005,
  last_chg = 1700000006, distance = 7, bad_sw = 2, os_match_q = 3, os_name = "Linux",
  os_flavor = "2.2.x-3.x", http_name = "Firefox", http_flavor = "10.x or newer",
  link_type = "Ethernet or modem", language = "German" }

function TestEncodeResponse.test_wire_layout()
  lu.assertEquals(p0f.encode_response(FIELDS), reply())
end

function TestEncodeResponse.test_round_trip()
  local r = assert(p0f.decode(p0f.encode_response(FIELDS)))
  for k, v in pairs(FIELDS) do lu.assertEquals(r[k], v, k) end
  -- a decoded result is valid input (caches store and replay them)
  lu.assertEquals(p0f.encode_response(r), reply())
end

function TestEncodeResponse.test_defaults_and_unknown_distance()
  local b = p0f.encode_response{ os_name = "Linux" }
  lu.assertEquals(#b, 232)
  lu.assertEquals(b:sub(5, 8), u32(0x10))    -- status defaults to ok
  lu.assertEquals(b:sub(37, 38), u16(255))   -- unknown distance, as p0f sends it
  lu.assertNil(assert(p0f.decode(b)).distance)
end

function TestEncodeResponse.test_other_statuses()
  for status, code in pairs{ nomatch = 0x20, badquery = 0x00 } do
    local b = p0f.encode_response{ status = status, os_name = "Linux", distance = 3 }
    lu.assertEquals(b, u32(0x50304602) .. u32(code) .. ("\0"):rep(224))
  end
  -- A numeric status goes out as is: how tests make an unknown one.
  local b = p0f.encode_response{ status = 0x30 }
  lu.assertEquals(b:sub(5, 8), u32(0x30))
  assert_fails("EPROTO", p0f.decode(b))
end

function TestEncodeResponse.test_long_strings_truncated_to_32()
  local b = p0f.encode_response{ os_name = FULL32 .. "or iPad)", os_flavor = "x" }
  lu.assertEquals(b:sub(41, 72), FULL32)
  lu.assertEquals(b:sub(73, 73), "x") -- not spilled into the next field
  lu.assertEquals(assert(p0f.decode(b)).os_name, FULL32)
end

function TestEncodeResponse.test_bad_input_raises()
  lu.assertError(p0f.encode_response)
  lu.assertError(p0f.encode_response, "ok")
  lu.assertErrorMsgContains("status", p0f.encode_response, { status = "maybe" })
  lu.assertErrorMsgContains("os_name", p0f.encode_response, { os_name = 5 })
  lu.assertErrorMsgContains("first_seen", p0f.encode_response, { first_seen = "soon" })
end

---------------------------------------------------------------------------

TestDecodeQuery = {}

function TestDecodeQuery.test_hand_built()
  local a, fam = p0f.decode_query(query(4, "\192\0\2\7"))
  lu.assertEquals(a, "192.0.2.7")
  lu.assertEquals(fam, 4)
  lu.assertTrue(is_integer(fam))
  a, fam = p0f.decode_query(query(6, "\32\1\13\184" .. ("\0"):rep(11) .. "\1"))
  lu.assertEquals(a, "2001:db8::1")
  lu.assertEquals(fam, 6)
end

function TestDecodeQuery.test_round_trip()
  for text, want in pairs{ ["10.0.0.1"] = "10.0.0.1", ["::FFFF:10.0.0.1"] = "10.0.0.1",
                           ["2001:DB8:0::1"] = "2001:db8::1", ["::"] = "::" } do
    lu.assertEquals(p0f.decode_query(p0f.encode_query(text)), want)
  end
end

function TestDecodeQuery.test_rejects()
  local q = query(4, "\1\2\3\4")
  assert_fails("EPROTO", p0f.decode_query(q:sub(1, 20)))
  assert_fails("EPROTO", p0f.decode_query(q .. "\0"))
  assert_fails("EPROTO", p0f.decode_query(""))
  assert_fails("EPROTO", p0f.decode_query(u32(0x50304602) .. q:sub(5)))
  assert_fails("EPROTO", p0f.decode_query(q:sub(1, 4) .. "\5" .. q:sub(6)))
  lu.assertError(p0f.decode_query, {})
end

---------------------------------------------------------------------------

TestNormalize = {}

function TestNormalize.test_canonical_family_scope()
  local cases = {
    { "192.0.2.7", "192.0.2.7", 4, "public" },
    { "127.0.0.1", "127.0.0.1", 4, "loopback" },
    { "0.0.0.0", "0.0.0.0", 4, "unspecified" },
    { "10.1.2.3", "10.1.2.3", 4, "private" },
    { "172.15.255.255", "172.15.255.255", 4, "public" },
    { "172.16.0.1", "172.16.0.1", 4, "private" },
    { "172.31.255.255", "172.31.255.255", 4, "private" },
    { "172.32.0.1", "172.32.0.1", 4, "public" },
    { "192.168.0.1", "192.168.0.1", 4, "private" },
    { "100.63.255.255", "100.63.255.255", 4, "public" },
    { "100.64.0.0", "100.64.0.0", 4, "private" },
    { "100.127.255.255", "100.127.255.255", 4, "private" },
    { "100.128.0.0", "100.128.0.0", 4, "public" },
    { "169.254.1.1", "169.254.1.1", 4, "linklocal" },
    { "::ffff:192.168.1.1", "192.168.1.1", 4, "private" },
    { "::FFFF:127.0.0.1", "127.0.0.1", 4, "loopback" },
    { "::1", "::1", 6, "loopback" },
    { "0:0:0:0:0:0:0:0", "::", 6, "unspecified" },
    { "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1", 6, "public" },
    { "fc00::1", "fc00::1", 6, "private" },
    { "FDFF::1", "fdff::1", 6, "private" },
    { "fbff::1", "fbff::1", 6, "public" },
    { "fe80::1", "fe80::1", 6, "linklocal" },
    { "febf::1", "febf::1", 6, "linklocal" },
    { "fec0::1", "fec0::1", 6, "public" },
    { "64:ff9b::1.2.3.4", "64:ff9b::102:304", 6, "public" },
  }
  for _, c in ipairs(cases) do
    local canon, fam, scope = p0f.normalize(c[1])
    lu.assertEquals({ canon, fam, scope }, { c[2], c[3], c[4] }, c[1])
    lu.assertTrue(is_integer(fam))
  end
end

function TestNormalize.test_rejects()
  for _, text in ipairs(BAD_ADDRESSES) do
    assert_fails("EINVAL", p0f.normalize(text))
  end
  lu.assertError(p0f.normalize)
  lu.assertError(p0f.normalize, {})
end

---------------------------------------------------------------------------

TestV2 = {}

local Q2 = { src = "192.0.2.7", dst = "198.51.100.25", src_port = 40000, dst_port = 25,
  id = 0x11223344 }

function TestV2.test_query_layout()
  local b = p0f.v2.encode_query(Q2)
  lu.assertEquals(#b, 24)
  lu.assertEquals(b:sub(1, 4), u32(0x0defaced))  -- host order
  lu.assertEquals(b:byte(5), 1)                  -- fingerprint query
  lu.assertEquals(b:sub(6, 8), "\0\0\0")         -- padding
  lu.assertEquals(b:sub(9, 12), u32(0x11223344)) -- id, host order
  lu.assertEquals(b:sub(13, 16), "\192\0\2\7")   -- addresses in network order
  lu.assertEquals(b:sub(17, 20), "\198\51\100\25")
  lu.assertEquals(b:sub(21, 22), u16(40000))     -- ports in host order
  lu.assertEquals(b:sub(23, 24), u16(25))
end

function TestV2.test_query_defaults_and_mapped()
  local b = p0f.v2.encode_query{ src = "::ffff:192.0.2.7", dst = "198.51.100.25",
    src_port = 1, dst_port = 2 }
  lu.assertEquals(b:byte(5), 1)
  lu.assertEquals(b:sub(9, 12), u32(0x70304632))
  lu.assertEquals(b:sub(13, 16), "\192\0\2\7")
  b = p0f.v2.encode_query{ type = 2, src = "1.2.3.4", dst = "5.6.7.8", src_port = 0,
    dst_port = 65535 }
  lu.assertEquals(b:byte(5), 2)
  lu.assertEquals(b:sub(23, 24), u16(65535))
end

function TestV2.test_query_bad_input_raises()
  local function with(k, v)
    local t = {}
    for kk, vv in pairs(Q2) do t[kk] = vv end
    t[k] = v
    return t
  end
  lu.assertError(p0f.v2.encode_query)
  lu.assertError(p0f.v2.encode_query, "192.0.2.7")
  lu.assertErrorMsgContains("src", p0f.v2.encode_query, with("src", "2001:db8::1"))
  lu.assertErrorMsgContains("dst", p0f.v2.encode_query, with("dst", "garbage"))
  lu.assertErrorMsgContains("dst", p0f.v2.encode_query, with("dst", false))
  lu.assertErrorMsgContains("src_port", p0f.v2.encode_query, with("src_port", nil))
  lu.assertErrorMsgContains("dst_port", p0f.v2.encode_query, with("dst_port", 65536))
  lu.assertErrorMsgContains("dst_port", p0f.v2.encode_query, with("dst_port", -1))
  lu.assertErrorMsgContains("src_port", p0f.v2.encode_query, with("src_port", 1.5))
end

function TestV2.test_decode_query()
  local q = assert(p0f.v2.decode_query(p0f.v2.encode_query(Q2)))
  lu.assertEquals(q, { type = 1, id = 0x11223344, src = "192.0.2.7", dst = "198.51.100.25",
    src_port = 40000, dst_port = 25 })
  local b = p0f.v2.encode_query(Q2)
  assert_fails("EPROTO", p0f.v2.decode_query(b:sub(1, 23)))
  assert_fails("EPROTO", p0f.v2.decode_query(b .. "\0"))
  assert_fails("EPROTO", p0f.v2.decode_query(u32(0x50304601) .. b:sub(5)))
end

function TestV2.test_decode_every_field()
  local r = assert(p0f.v2.decode(reply2()))
  lu.assertEquals(r, { status = "ok", id = 0xcafef00d, genre = "Linux",
    detail = "2.6 (newer, 1)", distance = 12, link = "ethernet/modem", tos = "low latency",
    firewall = true, nat = false, real = true, score = -7, mflags = 0xbeef,
    uptime_hours = 4321, os = "Linux 2.6 (newer, 1)" })
  for _, k in ipairs{ "id", "distance", "score", "mflags", "uptime_hours" } do
    lu.assertTrue(is_integer(r[k]), k)
  end
end

function TestV2.test_padding_ignored()
  lu.assertEquals(assert(p0f.v2.decode(reply2{ pad1 = 0x77, pad2 = 0x77 })),
    assert(p0f.v2.decode(reply2())))
end

function TestV2.test_unknown_markers()
  local r = assert(p0f.v2.decode(reply2{ dist = -1, score = -100, uptime = -1, detail = "" }))
  lu.assertNil(r.distance)
  lu.assertNil(r.score)
  lu.assertNil(r.uptime_hours)
  lu.assertEquals(r.os, "Linux")
  -- other negative values are kept where the field is signed
  r = assert(p0f.v2.decode(reply2{ score = -99, uptime = 0 }))
  lu.assertEquals(r.score, -99)
  lu.assertEquals(r.uptime_hours, 0)
end

function TestV2.test_flags_are_booleans()
  local r = assert(p0f.v2.decode(reply2{ fw = 0, nat = 2, real = 0 }))
  lu.assertFalse(r.firewall)
  lu.assertTrue(r.nat)
  lu.assertFalse(r.real)
end

function TestV2.test_full_width_strings()
  local g, d, l, t = ("G"):rep(20), ("D"):rep(40), ("L"):rep(30), ("T"):rep(30)
  local r = assert(p0f.v2.decode(reply2{ genre = g, detail = d, link = l, tos = t }))
  lu.assertEquals({ r.genre, r.detail, r.link, r.tos }, { g, d, l, t })
end

function TestV2.test_other_types()
  for ty, name in pairs{ [1] = "badquery", [2] = "nomatch" } do
    local r = assert(p0f.v2.decode(reply2{ type = ty }))
    lu.assertEquals(r, { status = name, id = 0xcafef00d })
  end
end

function TestV2.test_rejects()
  assert_fails("EPROTO", p0f.v2.decode(reply2{ type = 3 }))
  assert_fails("EPROTO", p0f.v2.decode(reply2{ magic = 0xedacef0d }))
  assert_fails("EPROTO", p0f.v2.decode(reply():sub(1, 144))) -- a v3 reply, cut
  local good = reply2()
  for _, s in ipairs{ "", good:sub(1, 143), good .. "\0", ("\255"):rep(144) } do
    assert_fails("EPROTO", p0f.v2.decode(s))
  end
  lu.assertError(p0f.v2.decode, {})
end

function TestV2.test_encode_response_layout()
  local fields = { status = "ok", id = 0xcafef00d, genre = "Linux", detail = "2.6 (newer, 1)",
    distance = 12, link = "ethernet/modem", tos = "low latency", firewall = true,
    nat = false, real = true, score = -7, mflags = 0xbeef, uptime_hours = 4321 }
  lu.assertEquals(p0f.v2.encode_response(fields), reply2())
  -- and what decode gives back is accepted as input
  lu.assertEquals(p0f.v2.encode_response(assert(p0f.v2.decode(reply2()))), reply2())
end

function TestV2.test_encode_response_defaults()
  local b = p0f.v2.encode_response{ status = "nomatch", id = 9 }
  lu.assertEquals(b, reply2{ type = 2, id = 9, genre = "", detail = "", dist = -1,
    link = "", tos = "", fw = 0, real = 0, score = -100, mflags = 0, uptime = -1 })
  lu.assertEquals(assert(p0f.v2.decode(b)), { status = "nomatch", id = 9 })
  lu.assertError(p0f.v2.encode_response, "ok")
end

-- Regression: numbers outside a field's range used to reach C integer
-- conversions whose result is undefined (caught by UBSan); now they raise.
TestFieldRanges = {}

function TestFieldRanges.test_v3_fields_out_of_range_raise()
  local bad = {
    { first_seen = -1 }, { first_seen = 2 ^ 32 + 5 }, { distance = 1e10 },
    { bad_sw = 0 / 0 }, { os_match_q = 256 }, { status = -1 }, { total_conn = 1.5 },
  }
  for _, t in ipairs(bad) do
    local field = next(t)
    lu.assertErrorMsgContains("bad field '" .. field .. "'", p0f.encode_response, t)
  end
  -- the edges themselves are fine
  local r = p0f.decode(p0f.encode_response{ first_seen = 2 ^ 32 - 1, distance = 255, bad_sw = 255 })
  lu.assertEquals(r.first_seen, 2 ^ 32 - 1)
  lu.assertNil(r.distance)
end

function TestFieldRanges.test_v2_fields_out_of_range_raise()
  local conn = { src = "192.0.2.1", src_port = 1, dst = "192.0.2.2", dst_port = 25 }
  for k, v in pairs{ src_port = 0 / 0, dst_port = 70000, id = -1, type = 300 } do
    local c = {}
    for kk, vv in pairs(conn) do c[kk] = vv end
    c[k] = v
    lu.assertErrorMsgContains("bad field '" .. k .. "'", p0f.v2.encode_query, c)
  end
  for k, v in pairs{ score = 1e6, mflags = -1, uptime_hours = 2 ^ 31, id = 2 ^ 33 } do
    lu.assertErrorMsgContains("bad field '" .. k .. "'", p0f.v2.encode_response, { [k] = v })
  end
end

os.exit(lu.LuaUnit.run())
