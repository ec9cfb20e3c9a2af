--- os.exit() with queries on the wire must not kill a real p0f.
--
-- os.exit() skips every __gc (PUC 5.4 and LuaJIT alike, unless asked to
-- close the state), so the client's own drain-before-close never runs.
-- p0f does not ignore SIGPIPE: a reply written to a socket whose client is
-- gone kills it. Hundreds of child processes each put queries on the wire
-- and leave by os.exit(); p0f must be alive and answering throughout.
local lu = require("luaunit")
local p0f = require("p0f")
local support = require("spec.support")

-- The child: `kind` "client" (the pollable client, stepped until every
-- query is written) or "loop" (the loop client, leaving from inside the
-- first reply's callback); `how` "exit" (os.exit(0)) or "true"
-- (os.exit(true, false)). Exit 3: the queries never got on the wire.
local CHILD = [[
local p0f = require("p0f")
local sock, n, kind, how = arg[1], tonumber(arg[2]), arg[3], arg[4]
local inflight = n > 64 and n or nil
local function leave()
  if how == "true" then os.exit(true, false) end
  os.exit(0)
end
if kind == "client" then
  local c = assert(p0f.client{ socket = sock, max_inflight = inflight, timeout = 30 })
  for _ = 1, n do assert(c:submit("127.0.0.1")) end
  for _ = 1, 100000 do
    c:step()
    if c:connected() and c:events() == "r" then break end
  end
  if not (c:connected() and c:events() == "r" and c:pending() == n) then os.exit(3) end
  leave()
else
  local loop = p0f.loop()
  local c = loop:client{ socket = sock, max_inflight = inflight, timeout = 30 }
  for _ = 1, n do
    c:query("127.0.0.1", function(r) if r then leave() end os.exit(3) end)
  end
  loop:timer(20, function() os.exit(3) end)
  loop:run()
  os.exit(3)
end
]]

local function child_script()
  local path = support.tmpname(".lua")
  support.write_file(path, CHILD)
  return path
end

--- Run `runs` children in a row, each with `n` queries; stop at the first
-- that fails. Returns how many exited 0 and the first failure's text.
local function children(d, script, runs, n, kind, how)
  local lua = assert(os.getenv("P0F_LUA"), "P0F_LUA not set (run through ctest)")
  local cmd = string.format(
    "ok=0; for i in $(seq %d); do timeout -k 2 30 %s %s %s %d %s %s </dev/null || " ..
    "{ echo \"child $i: exit $?\"; break; }; ok=$((ok+1)); done; echo \"ok=$ok\"",
    runs, lua, support.quote(script), support.quote(d.socket), n, kind, how)
  local out = support.capture(cmd)
  return tonumber(out:match("ok=(%d+)")) or 0, out
end

local function assert_p0f_fine(d, what)
  local r, err = p0f.query(d.socket, "127.0.0.1", { timeout = 5 })
  lu.assertTrue(r ~= nil and support.p0f_alive(d), "p0f died (" .. what .. "): " ..
    tostring(err) .. "; its log:\n" .. (support.read_file(d.log) or ""):sub(-300))
  lu.assertEquals(r.status, "ok")
  lu.assertEquals(r.os_name, "Linux")
end

TestExitDrainRealP0f = {}

function TestExitDrainRealP0f:setUp()
  self.d = assert(support.start_p0f())
  lu.assertNotNil(support.learn(self.d, "127.0.0.1"), "p0f never learned 127.0.0.1")
  self.script = child_script()
end

function TestExitDrainRealP0f:tearDown()
  support.stop_p0f(self.d)
  os.remove(self.script)
end

-- 200 exits with a full default window (64 queries) on the wire.
function TestExitDrainRealP0f:test_200_exits_with_queries_owed()
  local plan = {
    { 100, "client", "exit" }, { 40, "client", "true" },
    { 40, "loop", "exit" }, { 20, "loop", "true" },
  }
  local total = 0
  for _, p in ipairs(plan) do
    local runs, kind, how = p[1], p[2], p[3]
    local ok, out = children(self.d, self.script, runs, 64, kind, how)
    assert_p0f_fine(self.d, kind .. "/" .. how .. ": " .. out)
    lu.assertEquals(ok, runs, kind .. "/" .. how .. ": " .. out)
    total = total + ok
  end
  lu.assertEquals(total, 200)
end

-- 4,000 owed: p0f takes a while to write them all, so the child is long
-- gone unless something reads them at exit.
function TestExitDrainRealP0f:test_4000_owed()
  for _, p in ipairs{ { "client", "exit" }, { "client", "true" }, { "loop", "exit" }, { "loop", "true" } } do
    local ok, out = children(self.d, self.script, 10, 4000, p[1], p[2])
    assert_p0f_fine(self.d, "4000 owed, " .. p[1] .. "/" .. p[2] .. ": " .. out)
    lu.assertEquals(ok, 10, p[1] .. "/" .. p[2] .. ": " .. out)
  end
end

os.exit(support.run(lu))
