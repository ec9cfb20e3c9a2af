--- Risky code in a child interpreter, so that a crash, an abort or a hang
-- fails one test instead of killing the runner; and a bounded way to turn
-- the loop until something happens.
--
-- The child is $P0F_LUA with the environment ctest gives the spec (LUA_PATH,
-- LUA_CPATH and, in the sanitizer run, LD_PRELOAD and ASAN/UBSAN_OPTIONS),
-- so what runs there is the module under test, sanitized when the spec is.
local lu = require("luaunit")
local support = require("support")

local M = {}

local read_file = require("policyd_support").read

local function literal(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

--- What an exit status means, for failure messages.
function M.describe(status)
  if status == 0 then return "exit 0" end
  if status == 124 or status == 137 then return "hung: killed after its time limit" end
  if status and status > 128 then
    local names = { [6] = "SIGABRT", [9] = "SIGKILL", [11] = "SIGSEGV", [7] = "SIGBUS", [8] = "SIGFPE" }
    return "killed by " .. (names[status - 128] or ("signal " .. (status - 128)))
  end
  return "exit " .. tostring(status)
end

--- Run Lua source in a child. `vars` become `local NAME = value` lines in
-- front of it (strings, numbers, booleans). Killed after `limit` seconds
-- (default 20). Returns { status =, out =, err = }: status is the exit
-- status, 128 + N for signal N, 124 or 137 when it was killed for hanging.
function M.run(source, vars, limit)
  local lua = assert(os.getenv("P0F_LUA"), "P0F_LUA not set (run through ctest)")
  local base = support.tmpname()
  local script, out, err = base .. ".lua", base .. ".out", base .. ".err"
  local head = {}
  local names = {}
  for k in pairs(vars or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do head[#head + 1] = "local " .. k .. " = " .. literal(vars[k]) end
  local f = assert(io.open(script, "w"))
  f:write(table.concat(head, "\n"), "\n", source, "\n")
  f:close()
  local p = io.popen(string.format("timeout -k 2 %d %s %s >%s 2>%s </dev/null; echo $?",
    limit or 20, lua, script, out, err))
  local status = tonumber(p:read("*l"))
  p:close()
  local r = { status = status, out = read_file(out), err = read_file(err) }
  os.remove(script)
  os.remove(out)
  os.remove(err)
  return r
end

--- Whether a sanitizer reported something in this stderr text.
local function sanitizer_report(err)
  return err:match("(ERROR: AddressSanitizer[^\n]*)") or err:match("(ERROR: LeakSanitizer[^\n]*)")
    or err:match("([^\n]*runtime error:[^\n]*)")
end

--- Run `source` in a child and assert it got to its end: exit 0, the last
-- line reached, no sanitizer report. Returns the result for more checks.
-- With `exit_now`, the child leaves by os.exit(0) without closing its Lua
-- state: for tests on the default loop, which is process-wide and whose
-- memory LeakSanitizer reports once closing the state unloads libev (that
-- is tested once, in loop_spec).
function M.survives(source, vars, limit, exit_now)
  local tail = "\nio.stdout:write('child reached its end\\n')\n" .. (exit_now and "os.exit(0)\n" or "")
  local r = M.run(source .. tail, vars, limit)
  local report = sanitizer_report(r.err)
  local why = M.describe(r.status) .. "; stderr: " .. r.err:sub(1, 1500)
  lu.assertNil(report, why)
  lu.assertEquals(r.status, 0, why)
  lu.assertStrContains(r.out, "child reached its end", false)
  return r
end

--- Turn `loop` until fn() is truthy, for at most `seconds` (a ticking timer
-- makes each run_once return). Returns whether it came.
function M.pump(loop, fn, seconds)
  local tick = loop:timer(0.01, function() end, 0.01)
  local v = fn()
  for _ = 1, math.floor((seconds or 10) / 0.01) do
    if v then break end
    loop:run_once()
    v = fn()
  end
  tick:close()
  return v ~= nil and v ~= false
end

--- Lua source defining connect(port): a LuaSocket TCP client connected to
-- 127.0.0.1:port (5 s timeout). For child scripts; M.connect is the same here.
M.CONNECT = [[
local socket = require("socket")
local function connect(port)
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect("127.0.0.1", port))
  return c
end
]]
M.connect = assert((loadstring or load)(M.CONNECT .. " return connect"))()

--- A child script's preamble for the loop specs: the module, a loop, and a
-- guard that stops run() after `seconds` so a lost callback cannot hang it.
M.PRELUDE = [[
local p0f = require("p0f")
local function guard(loop, seconds)
  return loop:timer(seconds or 5, function() io.stdout:write("guard fired\n") loop:stop() end)
end
]]

return M
