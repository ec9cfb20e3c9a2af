--- The Debian packages: built with dpkg-buildpackage from a copy of the
-- checkout (so no build files land in it), checked by lintian (no errors),
-- installed with apt, then used as an administrator would:
--   p0f-query asks a real p0f on lo;
--   p0f-policyd runs from the installed files with the packaged config, as
--   its system user (p0f socket and listen address overridden), and answers;
--   p0f-mux runs the same way in front of the real p0f, and p0f-query, as
--   another user, asks through it;
--   rspamd loads the packaged plugin, which finds the packaged modules by its
--   default search paths;
-- and the packages are purged again at the end, whatever happened.
-- Installs system-wide: root only, and refuses to touch packages that were
-- installed before it started.
local lu = require("luaunit")
local support = require("support")
local q, run = support.quote, support.capture
local ps = require("policyd_support")
local H = require("rspamd.harness")
local fake = require("p0f.fake")

local src = assert(os.getenv("P0F_SOURCE_DIR"), "P0F_SOURCE_DIR not set (run through ctest)")
local PACKAGES = { "lua-p0f", "p0f-policyd", "p0f-mux" }

--- A command with the suite's Lua paths removed: only what is installed.
local function clean(cmd)
  return "env -u LUA_PATH -u LUA_CPATH " .. cmd
end

local function installed(pkg)
  local out = run("dpkg-query -W -f='${Status}' " .. pkg)
  return out:find("install ok installed", 1, true) ~= nil
end

local dir, we_installed, setup_error, multiarch, p0fd

--- Purge what we installed. true, or false and why.
local function remove_packages()
  if not we_installed then return true end
  local out = run("apt-get purge -y -q -o DPkg::Lock::Timeout=300 " .. table.concat(PACKAGES, " "))
  for _, pkg in ipairs(PACKAGES) do
    if installed(pkg) then return false, "could not remove " .. pkg .. ":\n" .. out end
  end
  we_installed = false
  return true
end

local function setup()
  if not support.is_root() then error("needs root: it installs the packages with apt") end
  for _, pkg in ipairs(PACKAGES) do
    if installed(pkg) then
      error(pkg .. " was installed before this test; it will not replace or remove it")
    end
  end
  multiarch = run("dpkg-architecture -qDEB_HOST_MULTIARCH"):match("^(%S+)")
  dir = support.tmpname(".deb")
  -- A copy of the checkout: tracked and new files, not ignored ones (build dirs).
  local out, ok = run(string.format("mkdir -p %s/src && cd %s && git ls-files -co --exclude-standard"
    .. " | tar -cf - -T - | tar -xf - -C %s/src", q(dir), q(src), q(dir)))
  assert(ok, out)
  out, ok = run(string.format("cd %s/src && dpkg-buildpackage -b -us -uc", q(dir)))
  assert(ok, "dpkg-buildpackage failed:\n" .. out)
  local changes = run("ls " .. q(dir) .. "/*.changes"):match("^(%S+)")
  out = run("lintian " .. q(changes))
  io.stdout:write("lintian:\n", out)
  assert(not out:find("\nE: ") and not out:find("^E: "), "lintian reports errors:\n" .. out)
  we_installed = true
  out, ok = run(string.format("cd %s && apt-get install -y -q --no-install-recommends "
    .. "-o DPkg::Lock::Timeout=300 ./lua-p0f_*.deb ./p0f-policyd_*.deb ./p0f-mux_*.deb", q(dir)))
  assert(ok, "apt-get install failed:\n" .. out)
end

TestDeb = {}

function TestDeb.setupClass()
  local ok, err = pcall(setup)
  if not ok then setup_error = tostring(err) end
end

function TestDeb.teardownClass()
  support.stop_p0f(p0fd)
end

local function ready()
  lu.assertNil(setup_error)
end

function TestDeb.test_files_where_debian_wants_them()
  ready()
  for _, path in ipairs({
    "/usr/share/lua/5.4/p0f/init.lua", "/usr/share/lua/5.1/p0f/init.lua",
    "/usr/lib/" .. multiarch .. "/lua/5.4/p0f/core.so", "/usr/lib/" .. multiarch .. "/lua/5.1/p0f/core.so",
    "/usr/bin/p0f-query", "/usr/bin/p0f-policyd", "/usr/share/lua-p0f/rspamd/p0f_fingerprint.lua",
    "/lib/systemd/system/p0f-policyd.service", "/etc/p0f-policyd.conf",
    "/usr/bin/p0f-mux", "/lib/systemd/system/p0f-mux.service", "/etc/p0f-mux.conf",
  }) do
    lu.assertTrue(os.rename(path, path) ~= nil, path .. " not installed")
  end
  lu.assertStrContains(run("dpkg-query -W -f='${Conffiles}' p0f-policyd"), "/etc/p0f-policyd.conf")
  lu.assertStrContains(run("dpkg-query -W -f='${Conffiles}' p0f-mux"), "/etc/p0f-mux.conf")
  for _, daemon in ipairs({ { "p0f-policyd", "Postfix policy server" }, { "p0f-mux", "one connection" } }) do
    local name, words = daemon[1], daemon[2]
    lu.assertStrMatches(run("getent passwd " .. name), (name:gsub("%-", "%%-")) .. ":x:%d+:%d+:.*\n")
    -- `man NAME` works, from the package.
    lu.assertStrContains(run("MANPATH=/usr/share/man man -w " .. name), "/usr/share/man/man8/" .. name .. ".8")
    local page, ok = run("MANPATH=/usr/share/man MANWIDTH=80 man " .. name)
    lu.assertTrue(ok, page)
    lu.assertStrContains(page, words)
  end
  lu.assertStrContains(run("MANPATH=/usr/share/man man -w p0f-query"), "/usr/share/man/man1/p0f-query.1")
end

function TestDeb.test_modules_load_for_both_luas()
  ready()
  for _, pair in ipairs({ { "lua5.4", "5.4" }, { "luajit", "5.1" } }) do
    local lua, abi = pair[1], pair[2]
    local out, ok = run(clean(lua .. " -e " .. q("local p0f = require('p0f') assert(#p0f.encode_query('::1') == 21)"
      .. " print(package.searchpath('p0f.core', package.cpath), package.searchpath('p0f', package.path))")))
    lu.assertTrue(ok, out)
    lu.assertStrContains(out, "/usr/lib/" .. multiarch .. "/lua/" .. abi .. "/p0f/core.so")
    lu.assertStrContains(out, "/usr/share/lua/" .. abi .. "/p0f/init.lua")
    -- The fake p0f for users' own tests: the packaged p0f-fake, found
    -- next to p0f/core.so.
    out, ok = run(clean("-u P0F_FAKE " .. lua .. " -e " .. q("local f = require('p0f.fake').start{ rules = { ['*'] = 'echo' } }"
      .. " local r = require('p0f').query(f.socket, '192.0.2.9') f:stop() print(r.status, r.os_name)")))
    lu.assertTrue(ok, out)
    lu.assertStrContains(out, "ok\t192.0.2.9")
  end
end

function TestDeb.test_p0f_query_asks_a_real_p0f()
  ready()
  local err
  p0fd, err = support.start_p0f()
  lu.assertNotNil(p0fd, err)
  lu.assertNotNil(support.learn(p0fd, "127.0.0.1"), "p0f did not learn 127.0.0.1")
  local out, ok = run(clean("/usr/bin/p0f-query --socket " .. q(p0fd.socket) .. " 127.0.0.1"))
  lu.assertTrue(ok, out)
  lu.assertStrMatches(out, "127%.0%.0%.1\n  status +ok\n.*os_name +Linux\n.*")
end

--- A fake p0f that knows a remote Windows host (the real one on lo only
-- knows loopback, which the packaged config skips without a lookup).
local function windows_p0f()
  return fake.start{ rules = {
    ["203.0.113.7"] = { os_name = "Windows", os_flavor = "7 or 8", distance = 12, link_type = "DSL" },
  } }
end

function TestDeb.test_policyd_answers_with_the_packaged_config()
  ready()
  local p = windows_p0f()
  local files = ps.files()
  -- As its system user, straight from /usr/bin, with /etc/p0f-policyd.conf.
  local s, log = ps.spawn(files, clean(string.format(
    "setpriv --reuid p0f-policyd --regid p0f-policyd --init-groups -- "
    .. "/usr/bin/p0f-policyd -c /etc/p0f-policyd.conf -l 127.0.0.1:0 -s %s", q(p.socket))))
  if not s then p:stop() end
  lu.assertNotNil(s, log)
  local c = ps.connect(s.port)
  local rcpt = ps.ask(c, { protocol_state = "RCPT" })
  local data = ps.ask(c, { protocol_state = "DATA" })
  c:close()
  local status = ps.stop(s)
  p:stop()
  lu.assertEquals(rcpt, "DUNNO")
  -- The packaged config's header.
  lu.assertEquals(data, "PREPEND X-p0f-OS: Windows 7 or 8, link=DSL, distance=12")
  lu.assertEquals(status, 0)
end

function TestDeb.test_mux_answers_with_the_packaged_config()
  ready()
  if not p0fd then
    local err
    p0fd, err = support.start_p0f()
    lu.assertNotNil(p0fd, err)
  end
  lu.assertNotNil(support.learn(p0fd, "127.0.0.1"), "p0f did not learn 127.0.0.1")
  -- Its socket directory as systemd's RuntimeDirectory makes it: owned by
  -- the service user, so that user can create the socket there.
  local files = ps.files()
  local sockdir = support.tmpname(".mux")
  local out, made = run(string.format("mkdir -m 0755 %s && chown p0f-mux:p0f-mux %s", q(sockdir), q(sockdir)))
  lu.assertTrue(made, out)
  local sock = sockdir .. "/p0f-mux.sock"
  -- As its system user, straight from /usr/bin, with /etc/p0f-mux.conf.
  local m, log = ps.spawn(files, clean(string.format(
    "setpriv --reuid p0f-mux --regid p0f-mux --init-groups -- "
    .. "/usr/bin/p0f-mux -c /etc/p0f-mux.conf -l unix:%s -s %s", q(sock), q(p0fd.socket))), sock)
  if not m then support.sh("rm -rf " .. q(sockdir)) end
  lu.assertNotNil(m, log)
  -- The packaged listen_mode lets any user connect.
  local mode = run("stat -c %a " .. q(sock))
  -- A client that is neither root nor p0f-mux, with the installed p0f-query.
  local answer, asked = run(clean("setpriv --reuid nobody --regid nogroup --clear-groups -- "
    .. "/usr/bin/p0f-query --socket " .. q(sock) .. " 127.0.0.1"))
  local status = ps.stop(m)
  support.sh("rm -rf " .. q(sockdir))
  lu.assertEquals(mode, "666\n")
  lu.assertTrue(asked, answer)
  lu.assertStrMatches(answer, "127%.0%.0%.1\n  status +ok\n.*os_name +Linux\n.*")
  lu.assertEquals(status, 0)
end

function TestDeb.test_rspamd_loads_the_packaged_plugin()
  ready()
  lu.assertNil(io.open("/usr/local/lib/lua/5.1/p0f/core.so"),
    "a LuaRocks copy in /usr/local would hide which copy rspamd loads")
  local p = windows_p0f()
  local ok, r = pcall(H.start, {
    plugin_file = "/usr/share/lua-p0f/rspamd/p0f_fingerprint.lua",
    default_paths = true,
    installed_only = true,
    section = string.format('  socket = "%s";\n  timeout = 5s;\n', p.socket),
  })
  if not ok then p:stop() error(r) end
  local res = r:scan({ ip = "203.0.113.7" })
  local log = r:log()
  r:stop()
  p:stop()
  lu.assertStrContains(log, "rock /usr/lib/" .. multiarch .. "/lua/5.1/p0f/core.so")
  lu.assertNotNil(res.symbols.P0F, res.text)
  lu.assertEquals(res.symbols.P0F[1], "Windows 7 or 8")
end

local rc = support.run(lu)
local removed, why = remove_packages()
if not removed then
  io.stderr:write(why, "\n")
  rc = 1
end
if dir and dir:match("%.deb$") then support.sh("rm -rf " .. q(dir)) end
os.exit(rc)
