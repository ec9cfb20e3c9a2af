--- p0f.filter: options, skip rules, patterns, header, reject/defer, verdicts.
local lu = require("luaunit")
local p0f = require("p0f")
local filter = require("p0f.filter")

-- A decoded result as the daemon would give it (through the real codec).
local function result(t)
  t.status = t.status or "ok"
  return assert(p0f.decode(p0f.encode_response(t)))
end

local WIN = { os_name = "Windows", os_flavor = "7 or 8", link_type = "DSL",
              distance = 12, uptime_min = 60 }
local LINUX = { os_name = "Linux", os_flavor = "2.2.x-3.x", link_type = "Ethernet or modem",
                distance = 10 }

local function new(opts, hooks)
  local f, err = filter.new(opts, hooks)
  lu.assertNotNil(f, err)
  return f
end

local function bad(opts, name)
  local f, err = filter.new(opts)
  lu.assertNil(f)
  lu.assertStrContains(err, "p0f: bad option '" .. name)
  return err
end

local function symbol(v, name)
  for _, s in ipairs(v.symbols) do
    if s.name == name then return s end
  end
  return nil
end

-- ---- options ---------------------------------------------------------------

TestOptions = {}

function TestOptions:test_defaults()
  local f = new()
  local o = f.opts
  lu.assertEquals(o.socket, "/var/run/p0f.sock")
  lu.assertEquals(o.timeout, 5)
  lu.assertEquals(o.symbol, "P0F")
  lu.assertEquals(o.symbol_fail, "P0F_FAIL")
  lu.assertEquals(o.expire, 7200)
  lu.assertEquals(o.nomatch_expire, 300)
  lu.assertEquals(o.prefix, "p0f")
  lu.assertEquals(o.cache_size, 10000)
  lu.assertTrue(o.skip_local)
  lu.assertTrue(o.skip_authenticated)
  lu.assertNil(o.header)
  lu.assertEquals(o.patterns, {})
  lu.assertStrContains(o.reject_message, "${os}")
  lu.assertStrContains(o.defer_message, "${os}")
  lu.assertIs(new({}).opts.symbol, "P0F")
end

function TestOptions:test_given_values_kept()
  local f = new{
    socket = "/run/p0f/api.sock", timeout = 2, symbol = "OSFP", symbol_fail = "OSFP_FAIL",
    expire = 600, nomatch_expire = 60, prefix = "fp:", cache_size = 5,
    skip_local = false, skip_authenticated = false, header = "X-P0F",
    reject = { "Windows XP" }, defer = "/^Windows/", enabled = true,
    reject_message = "no ${os}", defer_message = "later ${os}",
  }
  local o = f.opts
  lu.assertEquals({ o.socket, o.timeout, o.symbol, o.symbol_fail, o.expire, o.nomatch_expire,
                    o.prefix, o.cache_size, o.skip_local, o.skip_authenticated, o.header },
                  { "/run/p0f/api.sock", 2, "OSFP", "OSFP_FAIL", 600, 60, "fp:", 5,
                    false, false, "X-P0F" })
  lu.assertEquals(o.reject, { "Windows XP" })
  lu.assertEquals(o.defer, { "/^Windows/" }) -- a single string becomes a list
  lu.assertTrue(o.enabled)
end

function TestOptions:test_caller_table_not_modified()
  local opts = { timeout = "5s" }
  new(opts)
  lu.assertEquals(opts, { timeout = "5s" })
end

function TestOptions:test_timeout_forms()
  -- rspamd's UCL hands `timeout = 5s;` over as the number 5, `"5s"` as a string.
  lu.assertEquals(new{ timeout = "5s" }.opts.timeout, 5)
  lu.assertEquals(new{ timeout = "500ms" }.opts.timeout, 0.5)
  lu.assertEquals(new{ timeout = "2" }.opts.timeout, 2)
  lu.assertEquals(new{ timeout = "1min" }.opts.timeout, 60)
  lu.assertEquals(new{ timeout = 0.25 }.opts.timeout, 0.25)
  lu.assertEquals(new{ expire = "2h" }.opts.expire, 7200)
end

function TestOptions:test_nomatch_expire_default_bounded_by_expire()
  lu.assertEquals(new{ expire = 60 }.opts.nomatch_expire, 60)
  lu.assertEquals(new{ expire = 86400 }.opts.nomatch_expire, 300)
  lu.assertEquals(new{ nomatch_expire = 0 }.opts.nomatch_expire, 0) -- 0: not cached
end

function TestOptions:test_bad_values_name_the_option()
  lu.assertStrContains(bad({ timeout = "soon" }, "timeout"),
    "positive number of seconds expected, got string")
  bad({ timeout = 0 }, "timeout")
  bad({ timeout = -1 }, "timeout")
  bad({ timeout = "5 parsecs" }, "timeout")
  bad({ timeout = true }, "timeout")
  bad({ timeout = 0 / 0 }, "timeout")
  bad({ timeout = math.huge }, "timeout")
  bad({ socket = 5 }, "socket")
  bad({ socket = "" }, "socket")
  bad({ symbol = "" }, "symbol")
  bad({ symbol = "P0F X" }, "symbol")
  bad({ symbol = 1 }, "symbol")
  bad({ symbol_fail = {} }, "symbol_fail")
  bad({ expire = "never" }, "expire")
  bad({ expire = 0 }, "expire")
  bad({ nomatch_expire = -5 }, "nomatch_expire")
  bad({ prefix = 7 }, "prefix")
  bad({ cache_size = -1 }, "cache_size")
  bad({ cache_size = 1.5 }, "cache_size")
  bad({ cache_size = "big" }, "cache_size")
  bad({ skip_local = "yes" }, "skip_local")
  bad({ skip_authenticated = 1 }, "skip_authenticated")
  bad({ enabled = "true" }, "enabled")
  bad({ header = "X-OS Fingerprint" }, "header")
  bad({ header = "X-OS:" }, "header")
  bad({ header = "" }, "header")
  bad({ header = true }, "header")
  bad({ reject_message = 1 }, "reject_message")
  bad({ defer_message = "" }, "defer_message")
  bad({ reject = 5 }, "reject")
  bad({ reject = { "Windows", 5 } }, "reject")
  bad({ reject = { "" } }, "reject")
  bad({ defer = { os = "Windows" } }, "defer")
  bad({ patterns = "^Windows" }, "patterns")
  bad({ patterns = { [1] = "^Windows" } }, "patterns")
  bad({ patterns = { WIN = 5 } }, "patterns.WIN")
  bad({ patterns = { WIN = { pattern = 5 } } }, "patterns.WIN.pattern")
  bad({ patterns = { WIN = { score = 1 } } }, "patterns.WIN.pattern")
  bad({ patterns = { WIN = { pattern = "^W", score = "high" } } }, "patterns.WIN.score")
  bad({ patterns = { WIN = { pattern = "^W", field = "language" } } }, "patterns.WIN.field")
  lu.assertStrContains(bad({ patterns = { WIN = { pattern = "^W", scor = 1 } } }, "patterns.WIN"),
    "unknown key 'scor'")
end

function TestOptions:test_invalid_regex_names_the_option()
  lu.assertStrContains(bad({ patterns = { WIN = "^(Windows" } }, "patterns.WIN"),
    "invalid regular expression")
  bad({ patterns = { WIN = { pattern = "[a-" } } }, "patterns.WIN")
  bad({ reject = { "Windows XP", "/(xp/" } }, "reject")
  bad({ defer = "/+/" }, "defer")
end

function TestOptions:test_unknown_options_named()
  local f, err = filter.new{ symbl = "P0F" }
  lu.assertNil(f)
  lu.assertEquals(err, "p0f: unknown option 'symbl'")
  f, err = filter.new{ symbl = "P0F", expiry = 1 }
  lu.assertNil(f)
  lu.assertEquals(err, "p0f: unknown options 'expiry', 'symbl'")
  f, err = filter.new{ [1] = "x" }
  lu.assertNil(f)
  lu.assertStrContains(err, "unknown option")
end

function TestOptions:test_rspamd_module_keys_accepted()
  -- What an rspamd module section may hold besides our options: `enabled`
  -- and the Redis settings lua_redis reads from the module's own section.
  local f = new{ enabled = true, servers = "127.0.0.1:6379", db = 2, password = "x",
                 timeout = 1, redis = { servers = "127.0.0.1" } }
  lu.assertEquals(f.opts.servers, "127.0.0.1:6379")
  -- `enabled` is the host's business: a filter built with false still works
  f = new{ enabled = false }
  lu.assertEquals(f:verdict(result(LINUX)).status, "ok")
end

function TestOptions:test_programmer_errors_raise()
  lu.assertErrorMsgContains("table expected", filter.new, "opts")
  lu.assertErrorMsgContains("table expected", filter.new, {}, 5)
  lu.assertErrorMsgContains("table expected", function() new():verdict(nil) end)
  lu.assertErrorMsgContains("p0f result expected", function() new():verdict({}) end)
end

-- ---- skip rules --------------------------------------------------------------

TestSkip = {}

function TestSkip:test_public_addresses_are_looked_up()
  local f = new()
  local reason, addr, family = f:skip{ ip = "203.0.113.7" }
  lu.assertNil(reason)
  lu.assertEquals({ addr, family }, { "203.0.113.7", 4 })
  reason, addr, family = f:skip{ ip = "2001:DB8:0:0::1" }
  lu.assertNil(reason)
  lu.assertEquals({ addr, family }, { "2001:db8::1", 6 })
  -- IPv4-mapped comes out as the IPv4 address p0f stores
  reason, addr, family = f:skip{ ip = "::ffff:203.0.113.7" }
  lu.assertNil(reason)
  lu.assertEquals({ addr, family }, { "203.0.113.7", 4 })
end

function TestSkip:test_local_addresses()
  local f = new()
  local cases = {
    ["127.0.0.1"] = "loopback address", ["127.9.9.9"] = "loopback address",
    ["::1"] = "loopback address", ["::ffff:127.0.0.1"] = "loopback address",
    ["10.1.2.3"] = "private address", ["172.16.0.1"] = "private address",
    ["192.168.1.1"] = "private address", ["::ffff:192.168.1.1"] = "private address",
    ["fd00::1"] = "private address", ["fc00::5"] = "private address",
    ["169.254.1.1"] = "link-local address", ["fe80::1"] = "link-local address",
    ["::ffff:169.254.0.9"] = "link-local address",
    ["0.0.0.0"] = "unspecified address", ["::"] = "unspecified address",
  }
  for ip, why in pairs(cases) do
    lu.assertEquals(f:skip{ ip = ip }, why, ip)
  end
end

function TestSkip:test_bad_addresses()
  local f = new{ skip_local = false, skip_authenticated = false }
  for _, ip in ipairs{ "junk", "", "1.2.3", "1.2.3.4.5", " 1.2.3.4", "fe80::1%eth0" } do
    lu.assertEquals(f:skip{ ip = ip }, "not an IP address", ip)
  end
  lu.assertEquals(f:skip{}, "not an IP address")
  lu.assertEquals(f:skip(), "not an IP address")
  lu.assertEquals(f:skip{ ip = 5 }, "not an IP address")
end

function TestSkip:test_authenticated_user()
  local f = new()
  lu.assertEquals(f:skip{ ip = "203.0.113.7", user = "alice" }, "authenticated sender")
  lu.assertNil(f:skip{ ip = "203.0.113.7", user = "" }) -- Postfix sends an empty sasl_username
  lu.assertNil(f:skip{ ip = "203.0.113.7", user = nil })
end

function TestSkip:test_rules_turned_off()
  local f = new{ skip_local = false }
  local reason, addr = f:skip{ ip = "::ffff:127.0.0.1" }
  lu.assertNil(reason)
  lu.assertEquals(addr, "127.0.0.1")
  lu.assertNil(f:skip{ ip = "10.0.0.1" })
  lu.assertNil(f:skip{ ip = "fe80::1" })
  lu.assertEquals(f:skip{ ip = "10.0.0.1", user = "alice" }, "authenticated sender")
  f = new{ skip_authenticated = false }
  lu.assertNil(f:skip{ ip = "203.0.113.7", user = "alice" })
  lu.assertEquals(f:skip{ ip = "127.0.0.1", user = "alice" }, "loopback address")
end

-- ---- verdicts ----------------------------------------------------------------

TestVerdict = {}

function TestVerdict:test_ok_symbol_and_fields()
  local v = new():verdict(result(LINUX), { ip = "203.0.113.7" })
  lu.assertEquals(v.status, "ok")
  lu.assertEquals(v.symbols, { { name = "P0F",
    options = { "Linux 2.2.x-3.x", "link=Ethernet or modem", "distance=10" } } })
  lu.assertNil(v.header)
  lu.assertNil(v.action)
  lu.assertEquals(v.fields.os, "Linux 2.2.x-3.x")
  lu.assertEquals(v.fields.link, "Ethernet or modem")
  lu.assertEquals(v.fields.distance, 10)
  lu.assertNil(v.fields.uptime)
  lu.assertNil(v.error)
  lu.assertEquals(new():verdict(result(WIN)).fields.uptime, 3600)
end

function TestVerdict:test_unknowns_spelled_as_rspamd_does()
  -- p0f knows the host but no OS, no link and no distance (255 on the wire)
  local v = new():verdict(result{ os_name = "", link_type = "", distance = 255 })
  lu.assertEquals(v.symbols[1].options, { "unknown", "link=unknown", "distance=unknown" })
  lu.assertEquals(v.fields.os, "unknown")
  lu.assertNil(v.fields.distance)
  -- an OS without flavour has no trailing space
  v = new():verdict(result{ os_name = "Solaris", distance = 0 })
  lu.assertEquals(v.symbols[1].options, { "Solaris", "link=unknown", "distance=0" })
end

function TestVerdict:test_nomatch_and_badquery()
  local f = new{ header = "X-OS-Fingerprint", reject = "/./" }
  local v = f:verdict(result{ status = "nomatch" })
  lu.assertEquals(v.status, "nomatch")
  lu.assertEquals(v.symbols, {})
  lu.assertNil(v.header)
  lu.assertNil(v.action)
  v = f:verdict(result{ status = "badquery" })
  lu.assertEquals(v.status, "badquery")
  lu.assertEquals(v.symbols[1].name, "P0F_FAIL")
  lu.assertNil(v.action)
  lu.assertNil(v.header)
  lu.assertStrContains(v.error, "bad")
end

function TestVerdict:test_failure_fails_open()
  local f = new{ header = "X-OS-Fingerprint", reject = "/./", symbol_fail = "OS_FAIL" }
  local v = f:failure("timed out after 5 s", "ETIMEDOUT", { ip = "203.0.113.7" })
  lu.assertEquals(v.status, "fail")
  lu.assertEquals(v.symbols, { { name = "OS_FAIL", options = { "timed out after 5 s (ETIMEDOUT)" } } })
  lu.assertNil(v.action)
  lu.assertNil(v.header)
  lu.assertEquals(v.error, "timed out after 5 s (ETIMEDOUT)")
  v = f:failure("connection refused")
  lu.assertEquals(v.symbols[1].options, { "connection refused" })
  -- a failure text with line breaks is still a clean, bounded option
  v = f:failure("line1\r\nline2" .. string.rep("x", 500))
  lu.assertStrMatches(v.symbols[1].options[1], "^line1  ?line2x+$")
  lu.assertTrue(#v.symbols[1].options[1] <= filter.FAIL_OPTION_MAX)
end

-- ---- patterns ------------------------------------------------------------------

TestPatterns = {}

function TestPatterns:test_os_pattern_keeps_main_symbol()
  local v = new{ patterns = { WINDOWS = "^Windows.*", LINUX = "^Linux.*" } }:verdict(result(WIN))
  lu.assertEquals(#v.symbols, 2)
  lu.assertEquals(v.symbols[1].name, "P0F")
  lu.assertEquals(symbol(v, "WINDOWS"), { name = "WINDOWS", options = { "Windows 7 or 8" } })
  lu.assertNil(symbol(v, "LINUX"))
end

function TestPatterns:test_link_pattern()
  local f = new{ patterns = { DSL = "^link=DSL$", ETH = "Ethernet" } }
  local v = f:verdict(result(WIN))
  lu.assertEquals(symbol(v, "DSL").options, { "link=DSL" })
  lu.assertNil(symbol(v, "ETH"))
  v = f:verdict(result(LINUX))
  lu.assertEquals(symbol(v, "ETH").options, { "link=Ethernet or modem" })
  lu.assertNil(symbol(v, "DSL"))
end

function TestPatterns:test_distance_pattern_and_the_rspamd_doc_example()
  -- rspamd's documentation suggests DISTANCE10 = "^distance:10$", but the
  -- string its module emits (and this filter matches) is "distance=10":
  -- with a colon the pattern can never fire. "^distance=10$" does.
  local f = new{ patterns = { DOC_EXAMPLE = "^distance:10$", DISTANCE10 = "^distance=10$" } }
  local v = f:verdict(result(LINUX))
  lu.assertNil(symbol(v, "DOC_EXAMPLE"))
  lu.assertEquals(symbol(v, "DISTANCE10").options, { "distance=10" })
  lu.assertNil(symbol(f:verdict(result(WIN)), "DISTANCE10")) -- distance 12
end

function TestPatterns:test_scores()
  local f = new{ patterns = {
    WINDOWS = { pattern = "^Windows", score = 3.5 },
    FAR = { pattern = "^distance=1[0-9]$", score = -1 },
    PLAIN = "DSL",
  } }
  local v = f:verdict(result(WIN))
  lu.assertEquals(symbol(v, "WINDOWS").score, 3.5)
  lu.assertEquals(symbol(v, "FAR"), { name = "FAR", options = { "distance=12" }, score = -1 })
  lu.assertEquals(symbol(v, "PLAIN"), { name = "PLAIN", options = { "link=DSL" } })
  lu.assertNil(symbol(v, "P0F").score)
  -- symbols come in a stable order: main symbol, then patterns by name
  lu.assertEquals({ v.symbols[1].name, v.symbols[2].name, v.symbols[3].name, v.symbols[4].name },
                  { "P0F", "FAR", "PLAIN", "WINDOWS" })
end

function TestPatterns:test_field_restriction()
  -- "o" is in "Windows", in "link=Ethernet or modem", not in "distance=.."
  local f = new{ patterns = {
    IN_OS = { pattern = "o", field = "os" },
    IN_LINK = { pattern = "o", field = "link" },
    IN_DIST = { pattern = "o", field = "distance" },
    ANYWHERE = { pattern = "o", field = "any" },
    DEFAULT_ANY = { pattern = "o" },
  } }
  local v = f:verdict(result(LINUX))
  lu.assertNil(symbol(v, "IN_OS")) -- "Linux 2.2.x-3.x" has no "o"
  lu.assertEquals(symbol(v, "IN_LINK").options, { "link=Ethernet or modem" })
  lu.assertNil(symbol(v, "IN_DIST"))
  lu.assertEquals(symbol(v, "ANYWHERE").options, { "link=Ethernet or modem" })
  lu.assertEquals(symbol(v, "DEFAULT_ANY").options, { "link=Ethernet or modem" })
  v = f:verdict(result{ os_name = "Windows", os_flavor = "XP", link_type = "Ethernet or modem",
                        distance = 3 })
  lu.assertEquals(symbol(v, "IN_OS").options, { "Windows XP" })
  lu.assertEquals(symbol(v, "ANYWHERE").options, { "Windows XP", "link=Ethernet or modem" })
end

function TestPatterns:test_pcre_syntax()
  -- PCRE, not Lua patterns: alternation, \d, case-insensitive inline flag
  local f = new{ patterns = { OLDWIN = "^Windows (XP|2000)$", NEAR = "^distance=\\d$",
                              CI = "(?i)^LINUX" } }
  local v = f:verdict(result{ os_name = "Windows", os_flavor = "XP", distance = 5 })
  lu.assertNotNil(symbol(v, "OLDWIN"))
  lu.assertNotNil(symbol(v, "NEAR"))
  lu.assertNil(symbol(v, "CI"))
  lu.assertNotNil(symbol(f:verdict(result(LINUX)), "CI"))
end

function TestPatterns:test_slash_form_as_rspamd_reads_it()
  -- rspamd compiles "/re/flags" with those flags; the same config means the
  -- same outside rspamd.
  local f = new{ patterns = { CI = "/^windows/i", CS = "/^windows/" } }
  local v = f:verdict(result(WIN))
  lu.assertEquals(symbol(v, "CI").options, { "Windows 7 or 8" })
  lu.assertNil(symbol(v, "CS"))
  lu.assertStrContains(bad({ patterns = { X = "/^windows/q" } }, "patterns.X"), "flags")
end

function TestPatterns:test_pluggable_engine()
  local seen = {}
  local hooks = { regex = function(pattern, flags)
    seen[#seen + 1] = pattern .. "|" .. flags
    if pattern == "BAD" then return nil, "nope" end
    return function(s) return s:find(pattern, 1, true) ~= nil end
  end }
  local f = new({ patterns = { W = "Windows" }, reject = { "/7 or/", "Windows XP" } }, hooks)
  table.sort(seen)
  lu.assertEquals(seen, { "7 or|i", "Windows|" }) -- /regex/ items ask for caseless
  local v = f:verdict(result(WIN))
  lu.assertNotNil(symbol(v, "W"))
  lu.assertEquals(v.action.action, "reject")
  local g, err = filter.new({ patterns = { W = "BAD" } }, hooks)
  lu.assertNil(g)
  lu.assertStrContains(err, "'patterns.W'")
  lu.assertStrContains(err, "nope")
end

-- ---- header ------------------------------------------------------------------

TestHeader = {}

function TestHeader:test_value()
  local v = new{ header = "X-OS-Fingerprint" }:verdict(result(WIN))
  lu.assertEquals(v.header, { name = "X-OS-Fingerprint",
                              value = "Windows 7 or 8, link=DSL, distance=12" })
end

function TestHeader:test_sanitiser()
  local f = new{ header = "X-OS-Fingerprint" }
  -- CR/LF cannot start a new header line
  local v = f:verdict(result{ os_name = "Evil\r\nBcc: victim@example.org", os_flavor = "1",
                              distance = 1 })
  lu.assertNotStrContains(v.header.value, "\r")
  lu.assertNotStrContains(v.header.value, "\n")
  lu.assertStrContains(v.header.value, "Evil Bcc: victim@example.org 1")
  -- other control characters and 8-bit bytes become "?"
  v = f:verdict(result{ os_name = "A\0B\1C\127D", os_flavor = "\195\169t\233", distance = 1 })
  lu.assertStrMatches(v.header.value, "^[\32-\126]+$")
  lu.assertStrContains(v.header.value, "A")
  lu.assertEquals(v.fields.os, v.header.value:match("^(.-), link="))
  -- the same clean text reaches the symbol options
  lu.assertStrMatches(v.symbols[1].options[1], "^[\32-\126]+$")
  lu.assertEquals(filter.sanitize("a\0b\tc\r\nd\200e"), "a?b c d?e")
  -- bounded length (p0f fields are 31 bytes, but the bound is ours to keep)
  local long = filter.sanitize(string.rep("x", 1000))
  lu.assertEquals(#long, filter.HEADER_MAX)
  lu.assertEquals(filter.HEADER_MAX, 256)
  lu.assertEquals(#filter.sanitize(string.rep("y", 1000), 10), 10)
end

-- ---- reject / defer --------------------------------------------------------

TestActions = {}

function TestActions:test_phrase_is_the_whole_os_ignoring_case()
  -- as qpsmtpd's p0f_blocked_operating_systems: a phrase names an OS string
  local f = new{ reject = { "windows xp" } }
  lu.assertEquals(f:verdict(result{ os_name = "Windows", os_flavor = "XP" }).action.action, "reject")
  lu.assertNil(f:verdict(result{ os_name = "Windows", os_flavor = "XP SP2" }).action)
  lu.assertNil(f:verdict(result(WIN)).action)
end

function TestActions:test_regex_items()
  local f = new{ reject = { "/^windows (xp|2000)/" }, defer = { "/WINDOWS/" } }
  local v = f:verdict(result{ os_name = "Windows", os_flavor = "2000 SP4" })
  lu.assertEquals(v.action.action, "reject") -- reject wins over defer
  v = f:verdict(result(WIN))
  lu.assertEquals(v.action.action, "defer")
  lu.assertNil(f:verdict(result(LINUX)).action)
end

function TestActions:test_messages()
  local f = new{ reject = "Windows 7 or 8" }
  local v = f:verdict(result(WIN), { ip = "203.0.113.7" })
  lu.assertEquals(v.action.message, "Mail from Windows 7 or 8 hosts is not accepted here")
  f = new{ defer = "/linux/", defer_message = "${os} from ${ip}: later" }
  v = f:verdict(result(LINUX), { ip = "203.0.113.7" })
  lu.assertEquals(v.action, { action = "defer", message = "Linux 2.2.x-3.x from 203.0.113.7: later",
                              rule = "/linux/" })
  -- the OS in a message is sanitised like a header
  f = new{ reject = "/evil/" }
  v = f:verdict(result{ os_name = "Evil\r\n550", os_flavor = "x" })
  lu.assertNotStrContains(v.action.message, "\n")
end

function TestActions:test_symbols_still_given_with_an_action()
  local v = new{ reject = "/windows/", header = "X-OS" }:verdict(result(WIN))
  lu.assertEquals(v.symbols[1].name, "P0F")
  lu.assertNotNil(v.header)
  lu.assertEquals(v.action.action, "reject")
end

os.exit(lu.LuaUnit.run())
