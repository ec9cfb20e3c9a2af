--- The complete example of docs/rspamd.md, run: its p0f_fingerprint.conf
-- (p0f socket and Redis pointed at the test's own) inside a real rspamd,
-- and a scan from a fingerprinted sender shows what the page says it shows.
-- Under LuaJIT only (rspamd embeds it), like the other rspamd specs.
local lu = require("luaunit")
local fake = require("p0f.fake")
local support = require("support")
local sredis = require("support_redis")
local H = require("rspamd.harness")

local page = assert(support.read_file(H.source_dir() .. "/docs/rspamd.md"))

--- The body of the first fenced block after `marker` in the page.
local function block_after(marker)
  local at = assert(page:find(marker, 1, true), "docs/rspamd.md has no " .. marker)
  local body = page:match("\n```[^\n]*\n(.-)\n```", at)
  return assert(body, "no code block after " .. marker)
end

TestRspamdDocs = {}

function TestRspamdDocs.test_the_complete_example_does_what_the_page_shows()
  local srv = fake.start{ rules = {
    ["203.0.113.7"] = { os_name = "Windows", os_flavor = "7 or 8", distance = 12, link_type = "DSL" },
  } }
  local redis = assert(sredis.start())
  local conf = block_after("`/etc/rspamd/local.d/p0f_fingerprint.conf`:")
  local n1, n2
  conf, n1 = conf:gsub('\nsocket = "/var/run/p0f.sock";', '\nsocket = "' .. srv.socket .. '";')
  conf, n2 = conf:gsub('\nservers = "127.0.0.1:6379";', '\nservers = "127.0.0.1:' .. redis.port .. '";')
  local ok, r = pcall(function()
    lu.assertEquals({ n1, n2 }, { 1, 1 }, "the example's socket and servers lines moved")
    return H.start{ section = conf }
  end)
  if not ok then
    srv:stop()
    sredis.stop(redis)
    error(r, 0)
  end
  local res = r:scan{ ip = "203.0.113.7" }
  r:stop()
  srv:stop()
  sredis.stop(redis)

  -- "Symbol: NAME (score)[options]" as the page prints them, and nothing
  -- else from the plugin.
  local shown = block_after("A scan from a fingerprinted sender")
  local want = {}
  for name, score, opts in shown:gmatch("Symbol: (%S+) %(([%d.]+)%)%[(.-)%]") do
    want[name] = score .. " " .. opts
  end
  lu.assertNotNil(want.P0F, "no P0F line on the page")
  local got = {}
  for name, s in pairs(res.symbols) do
    -- P0F_PROBE is the test harness's own (which modules the worker loaded).
    if (name:match("^P0F") and name ~= "P0F_PROBE") or name == "WINDOWS" then
      got[name] = string.format("%.2f ", s.score or 0) .. table.concat(s, ", ")
    end
  end
  lu.assertEquals(got, want)
  -- The header the example configures.
  lu.assertEquals(H.added_headers(res)["X-P0f-Fingerprint"], "Windows 7 or 8, link=DSL, distance=12")
end

os.exit(support.run(lu))
