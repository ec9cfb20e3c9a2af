--- bin/p0f-query with what a client can put into p0f's answers (HTTP
-- fields, language: the client's own bytes): nothing raw reaches a
-- terminal, and --json is valid JSON in valid UTF-8. A scripted fake p0f
-- serves the hostile answers, as a real one cannot on demand.
local lu = require("luaunit")
local fake = require("p0f.fake")
local support = require("support")
local cjson = require("cjson.safe")

local HOSTILE = "192.0.2.66"
local RULES = {
  [HOSTILE] = { os_name = "Linux\27[2J\r", os_flavor = "caf\195\169", http_name = "a\0b",
                http_flavor = "\255\254 \194\133 \127", language = "\"\\\n", distance = 3 },
  ["*"] = "nomatch",
}

local function run(args)
  local lua, src = os.getenv("P0F_LUA"), os.getenv("P0F_SOURCE_DIR") or "."
  local p = io.popen(string.format("%s %s/bin/p0f-query %s 2>&1", lua, src, args))
  local out = p:read("*a")
  p:close()
  return out
end

TestQueryTool = {}

function TestQueryTool:setUp()
  self.fake = fake.start{ rules = RULES }
end

function TestQueryTool:tearDown()
  self.fake:stop()
end

function TestQueryTool:test_text_output_has_no_raw_control_bytes()
  local out = run("-s " .. self.fake.socket .. " " .. HOSTILE)
  -- only the newlines of the output itself, and valid UTF-8 text
  lu.assertNil(out:find("[%z\1-\9\11-\31\127]"), out)
  lu.assertNil(out:find("\255", 1, true), out)
  lu.assertNil(out:find("\194\133", 1, true), out) -- C1 NEL is a control too
  lu.assertStrContains(out, "Linux\\x1b[2J\\x0d")
  lu.assertStrContains(out, "caf\195\169") -- valid UTF-8 is kept
  lu.assertStrContains(out, "\\xff\\xfe \\xc2\\x85 \\x7f")
  lu.assertStrContains(out, "\"\\\\\\x0a")
end

function TestQueryTool:test_json_is_valid_and_escaped()
  local out = run("--json -s " .. self.fake.socket .. " " .. HOSTILE)
  lu.assertNil(out:find("[%z\1-\9\11-\31\127]"), out)
  -- UTF-8 throughout: with its well-formed sequences taken out, no 8-bit byte is left
  local rest = out:gsub("[\194-\223][\128-\191]", ""):gsub("[\224-\239][\128-\191][\128-\191]", "")
    :gsub("[\240-\244][\128-\191][\128-\191][\128-\191]", "")
  lu.assertNil(rest:find("[\128-\255]"), out)
  local obj = assert(cjson.decode(out), out)
  lu.assertEquals(obj.os_name, "Linux\27[2J\r")
  lu.assertEquals(obj.os_flavor, "caf\195\169")
  lu.assertEquals(obj.language, "\"\\\n")
  -- bytes that are not UTF-8 come out as their Latin-1 characters
  lu.assertEquals(obj.http_flavor, "\195\191\195\190 \194\133 \127")
  lu.assertEquals(obj.distance, 3)
end

os.exit(support.run(lu))
