--- p0f.client: the persistent pipelined connection, driven by hand
-- (submit / step / fetch) against the scripted fake daemon.
local lu = require("luaunit")
local p0f = require("p0f")
local fake = require("p0f.fake")
local support = require("spec.support")

-- Drive a client until every handle is done or `limit` seconds pass.
local function drive(c, handles, limit)
  local results, left = {}, #handles
  local t0 = support.now()
  local done = {}
  while left > 0 do
    c:step()
    for i, h in ipairs(handles) do
      if not done[i] then
        local r, err, code = c:fetch(h)
        if code ~= "EAGAIN" then
          done[i] = true
          left = left - 1
          results[i] = { r = r, err = err, code = code }
        end
      end
    end
    if left > 0 then
      if support.now() - t0 > (limit or 10) then error("drive: still pending after " .. limit .. " s") end
      support.sleep(0.005)
    end
  end
  return results
end

local function submit_all(c, addrs)
  local hs = {}
  for i, a in ipairs(addrs) do hs[i] = assert(c:submit(a)) end
  return hs
end

TestClient = {}

function TestClient.test_pipelined_replies_matched_in_order()
  local srv = fake.start{ rules = { ["*"] = "echo" } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 20, max_inflight = 256 })
  local addrs = {}
  for i = 1, 10000 do
    addrs[i] = (i % 2 == 0) and string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
      or string.format("2001:db8::%x", i)
  end
  local hs = submit_all(c, addrs)
  -- a tight step loop: the pollable object makes progress without blocking
  local got = {}
  local pending = #hs
  local t0 = support.now()
  while pending > 0 do
    c:step()
    for i = 1, #hs do
      if hs[i] then
        local r = c:fetch(hs[i])
        if r then
          got[i] = r.os_name
          hs[i] = false
          pending = pending - 1
        end
      end
    end
    lu.assertTrue(support.now() - t0 < 120, "10,000 queries did not finish")
  end
  for i = 1, #addrs do
    lu.assertEquals(got[i], p0f.normalize(addrs[i]), "reply " .. i .. " went to the wrong query")
  end
  lu.assertEquals(srv:connections(), 1) -- one connection, one p0f API slot
  lu.assertEquals(c:pending(), 0)
  c:close()
  srv:stop()
end

function TestClient.test_many_replies_in_one_read()
  local srv = fake.start{ rules = { ["*"] = "echo" } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 5, max_inflight = 100 })
  local hs = {}
  for i = 1, 100 do hs[i] = c:submit("192.0.2." .. i) end
  c:step() -- connect and write all 100 in one go
  -- let all 100 replies (23,200 bytes) reach the socket buffer: one step reads them all
  support.sleep(0.3)
  c:step()
  local n = 0
  for i, h in ipairs(hs) do
    local r = c:fetch(h)
    if r then
      n = n + 1
      lu.assertEquals(r.os_name, "192.0.2." .. i)
    end
  end
  lu.assertEquals(n, 100)
  c:close()
  srv:stop()
end

function TestClient.test_split_into_single_bytes()
  local srv = fake.start{ rules = {
    ["203.0.113.1"] = { action = "split", reply = { os_name = "Windows", os_flavor = "XP" } },
    ["203.0.113.2"] = { action = "split", reply = { os_name = "Linux", os_flavor = "3.x" } },
  } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 10 })
  local res = drive(c, submit_all(c, { "203.0.113.1", "203.0.113.2", "203.0.113.1" }), 20)
  lu.assertEquals(res[1].r.os, "Windows XP")
  lu.assertEquals(res[2].r.os, "Linux 3.x")
  lu.assertEquals(res[3].r.os, "Windows XP")
  c:close()
  srv:stop()
end

function TestClient.test_hang_times_out_on_time_then_recovers()
  -- 203.0.113.7 is answered only after 1.5 s: p0f being slow, or stuck for a while
  local srv = fake.start{ rules = {
    ["203.0.113.7"] = { action = "delay", ms = 1500, reply = { os_name = "Late" } },
    ["*"] = "echo",
  } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 0.4 })
  local t0 = support.now()
  local res = drive(c, submit_all(c, { "203.0.113.7" }), 10)
  local took = support.now() - t0
  lu.assertEquals(res[1].code, "ETIMEDOUT")
  lu.assertTrue(took >= 0.4 and took < 5, "timed out after " .. took)
  -- the late reply is read and dropped; the next query gets its own answer
  support.sleep(1.3)
  res = drive(c, submit_all(c, { "198.51.100.9" }), 10)
  lu.assertEquals(res[1].r.os_name, "198.51.100.9")
  lu.assertEquals(srv:connections(), 1) -- no reconnect was needed
  c:close()
  srv:stop()
end

function TestClient.test_queries_behind_a_hung_one_time_out_too()
  local srv = fake.start{ rules = { ["203.0.113.8"] = "hang", ["*"] = "echo" } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 0.3, drain = 0.1 })
  local res = drive(c, submit_all(c, { "192.0.2.1", "203.0.113.8", "192.0.2.2" }), 10)
  lu.assertEquals(res[1].r.os_name, "192.0.2.1")
  lu.assertEquals(res[2].code, "ETIMEDOUT")
  lu.assertEquals(res[3].code, "ETIMEDOUT")
  c:close()
  srv:stop()
end

function TestClient.test_bad_magic_mid_stream_then_reconnect()
  local srv = fake.start{ rules = {
    ["203.0.113.66"] = { action = "reply", bytes = ("\0\1\2\3"):rep(58) },
    ["*"] = "echo",
  } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 5 })
  local res = drive(c, submit_all(c, { "192.0.2.1", "203.0.113.66", "192.0.2.3" }), 10)
  lu.assertEquals(res[1].r.os_name, "192.0.2.1")
  lu.assertEquals(res[2].code, "EPROTO")
  lu.assertStrContains(res[2].err, "malformed")
  lu.assertEquals(res[3].code, "EPROTO") -- on the wire behind it: the stream is lost
  res = drive(c, submit_all(c, { "192.0.2.4" }), 10)
  lu.assertEquals(res[1].r.os_name, "192.0.2.4")
  lu.assertEquals(srv:connections(), 2)
  c:close()
  srv:stop()
end

function TestClient.test_close_in_the_middle_of_a_reply()
  local srv = fake.start{ rules = {
    ["203.0.113.9"] = { action = "half", reply = { os_name = "Cut" } },
    ["*"] = "echo",
  } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 5 })
  local res = drive(c, submit_all(c, { "203.0.113.9" }), 10)
  lu.assertEquals(res[1].code, "ECONNRESET")
  res = drive(c, submit_all(c, { "192.0.2.5" }), 10)
  lu.assertEquals(res[1].r.os_name, "192.0.2.5")
  c:close()
  srv:stop()
end

function TestClient.test_server_restart()
  local path = support.tmpname(".sock")
  local srv = fake.start{ socket = path, rules = { ["*"] = "echo" } }
  local c = assert(p0f.client{ socket = path, timeout = 10 })
  lu.assertEquals(c:query("192.0.2.10").os_name, "192.0.2.10")
  srv:stop()
  -- the daemon is gone: queries fail fast with a clear code, not at the deadline
  local t0 = support.now()
  local r, _, code = c:query("192.0.2.11")
  lu.assertNil(r)
  lu.assertTrue(code == "ECONNRESET" or code == "ENOENT" or code == "ECONNREFUSED", code)
  lu.assertTrue(support.now() - t0 < 5) -- long before the 10 s deadline
  srv = fake.start{ socket = path, rules = { ["*"] = "echo" } }
  -- back: within the bounded backoff (1 s by default) queries succeed again
  local ok = support.wait_until(function()
    local rr = c:query("192.0.2.12")
    return rr and rr.os_name == "192.0.2.12"
  end, 60, 0.05)
  lu.assertTrue(ok, "no reconnect after restart")
  c:close()
  srv:stop()
end

function TestClient.test_socket_missing()
  local c = assert(p0f.client{ socket = support.tmpname(".none"), timeout = 5 })
  local r, err, code = c:query("192.0.2.1")
  lu.assertNil(r)
  lu.assertEquals(code, "ENOENT")
  lu.assertStrContains(err, "no such socket")
  c:close()
end

function TestClient.test_permission_denied()
  -- root ignores modes: ask as nobody for a socket in a root-only directory
  lu.assertTrue(support.is_root(), "this test needs root (to switch to nobody)")
  local dir = support.tmpname(".dir")
  assert(support.sh("mkdir -m 0700 " .. dir))
  local srv = fake.start{ socket = dir .. "/p0f.sock" }
  -- nobody may not be able to read the build tree: give it a copy of the module
  local mod = support.tmpname(".mod")
  assert(support.sh(string.format("mkdir -m 0755 -p %s/p0f && cp %s %s/p0f/core.so && cp %s %s/p0f/init.lua",
    mod, support.searchpath("p0f.core", package.cpath), mod, support.searchpath("p0f", package.path), mod)))
  local script = mod .. "/ask.lua"
  local f = assert(io.open(script, "w"))
  f:write(string.format([[
    local c = require("p0f").client{ socket = %q }
    local r, err, code = c:query("192.0.2.1")
    io.write(tostring(code))
  ]], srv.socket))
  f:close()
  os.execute("chmod -R a+rX " .. mod)
  local p = io.popen(string.format("cd / && runuser -u nobody -- env LUA_PATH='%s/?.lua;%s/?/init.lua' LUA_CPATH='%s/?.so' %s %s 2>&1",
    mod, mod, mod, os.getenv("P0F_LUA") or "lua5.4", script))
  local out = p:read("*a")
  p:close()
  srv:stop()
  os.execute("rm -rf " .. dir .. " " .. mod)
  lu.assertEquals(out, "EACCES")
end

function TestClient.test_cancel_keeps_the_stream_in_step()
  local srv = fake.start{ rules = { ["*"] = "echo" } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 5 })
  local h1 = c:submit("192.0.2.1")
  local h2 = c:submit("192.0.2.2")
  c:step()
  c:cancel(h1) -- already on the wire: its reply must still be read and dropped
  local res = drive(c, { h2 }, 10)
  lu.assertEquals(res[1].r.os_name, "192.0.2.2")
  lu.assertErrorMsgContains("unknown", c.fetch, c, h1)
  c:close()
  srv:stop()
end

function TestClient.test_pollable_interface()
  local srv = fake.start{ rules = { ["*"] = "echo" } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 5 })
  lu.assertNil(c:pollfd())      -- nothing to do, nothing open
  lu.assertNil(c:timeout())
  local h = c:submit("192.0.2.1")
  lu.assertEquals(c:timeout(), 0 * c:timeout()) -- a number: work is due
  c:step()
  lu.assertIsNumber(c:pollfd())
  lu.assertStrContains(c:events(), "r")
  local r, _, code = c:fetch(h)
  if not r then lu.assertEquals(code, "EAGAIN") end
  lu.assertStrContains(tostring(c), "p0f.client")
  c:close()
  c:close() -- idempotent
  lu.assertErrorMsgContains("closed", c.submit, c, "192.0.2.1")
  srv:stop()
end

function TestClient.test_close_drains_owed_replies()
  -- replies still owed when the client closes are read first: a real p0f
  -- would die of SIGPIPE writing them to a closed socket
  local srv = fake.start{ rules = { ["*"] = { action = "delay", ms = 1000, reply = { os_name = "X" } } } }
  local c = assert(p0f.client{ socket = srv.socket, timeout = 5, drain = 3 })
  for i = 1, 5 do c:submit("192.0.2." .. i) end
  c:step()
  support.sleep(0.05)
  local t0 = support.now()
  c:close()
  local took = support.now() - t0
  lu.assertTrue(took >= 0.5, "close did not wait for the owed replies (" .. took .. " s)")
  -- the fake saw no broken pipe: it logged 5 queries and the close came after
  lu.assertEquals(#srv:queries(), 5)
  srv:stop()
end

function TestClient.test_bad_options_raise()
  lu.assertErrorMsgContains("bad option 'socket'", p0f.client, {})
  lu.assertErrorMsgContains("bad option 'timeout'", p0f.client, { socket = "/x", timeout = 0 })
  lu.assertErrorMsgContains("bad option 'max_inflight'", p0f.client, { socket = "/x", max_inflight = 0 })
  lu.assertErrorMsgContains("bad option 'max_inflight'", p0f.client, { socket = "/x", max_inflight = 1.5 })
  -- closing without reading owed replies can kill p0f: not an option
  lu.assertErrorMsgContains("bad option 'drain'", p0f.client, { socket = "/x", drain = 0 })
  local c = p0f.client{ socket = "/x" }
  local r, _, code = c:submit("999.1.1.1")
  lu.assertNil(r)
  lu.assertEquals(code, "EINVAL")
  c:close()
end

os.exit(lu.LuaUnit.run())
