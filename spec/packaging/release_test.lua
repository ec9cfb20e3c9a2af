--- The release: scripts/release.sh makes the tarball, the release rockspec
-- and the src.rock from git; `luarocks install ./p0f-X.Y.Z-1.src.rock`
-- works with no network (in a network namespace of its own) for Lua 5.4
-- and for Lua 5.1 run by LuaJIT, each into a fresh tree; from each tree
-- `require("p0f")` loads, `p0f-query --help` and `p0f-mux --help` run and
-- p0f-query asks a real p0f on lo. Needs root (p0f sniffs, unshare makes the namespace).
local lu = require("luaunit")
local support = require("support")
local q, run = support.quote, support.capture
local function read(path) return assert(support.read_file(path), path) end

local src = assert(os.getenv("P0F_SOURCE_DIR"), "P0F_SOURCE_DIR not set (run through ctest)")

local version = read(src .. "/CMakeLists.txt"):match("project%(lua%-p0f VERSION ([%d%.]+)")
local dir, files, p0fd

TestRelease = {}

function TestRelease.setupClass()
  assert(version, "no project(lua-p0f VERSION X.Y.Z) in CMakeLists.txt")
  dir = support.tmpname(".release")
  -- The checkout as it is, tracked changes included (a commit object
  -- that touches neither the index nor the working tree), else HEAD.
  local ref = run("git -C " .. q(src) .. " stash create"):match("^(%x+)%s*$") or "HEAD"
  local out, ok = run(string.format("bash %s/scripts/release.sh --ref %s %s", q(src), ref, q(dir .. "/dist")))
  assert(ok, "release.sh failed:\n" .. out)
  files = {
    tarball = dir .. "/dist/lua-p0f-" .. version .. ".tar.gz",
    rockspec = dir .. "/dist/p0f-" .. version .. "-1.rockspec",
    rock = dir .. "/dist/p0f-" .. version .. "-1.src.rock",
  }
end

function TestRelease.teardownClass()
  support.stop_p0f(p0fd)
  if dir and dir:match("%.release$") then support.sh("rm -rf " .. q(dir)) end
end

function TestRelease.test_one_version_everywhere()
  -- debian/changelog and CHANGELOG.md name the CMake version.
  local deb = read(src .. "/debian/changelog"):match("^lua%-p0f %(([^)]+)%)")
  lu.assertEquals(deb:match("^([^-]+)"), version)
  lu.assertStrContains(read(src .. "/CHANGELOG.md"), "\n## " .. version .. "\n")
  -- The development rockspec stays scm-1.
  lu.assertStrContains(read(src .. "/p0f-scm-1.rockspec"), '\nversion = "scm-1"\n')
end

function TestRelease.test_tarball_is_git_only()
  local list = run("tar tzf " .. q(files.tarball))
  local prefix = "lua-p0f-" .. version .. "/"
  local n = 0
  for name in list:gmatch("[^\n]+") do
    n = n + 1
    lu.assertEquals(name:sub(1, #prefix), prefix, name)
    lu.assertNil(name:match("/build[^/]*/") or name:match("CMakeCache") or name:match("%.so$"),
      "build file in the tarball: " .. name)
  end
  lu.assertStrContains(list, prefix .. "CMakeLists.txt\n")
  lu.assertStrContains(list, prefix .. "src/lua/core.c\n")
  lu.assertStrContains(list, prefix .. "p0f-scm-1.rockspec\n")
  lu.assertTrue(n > 50, n .. " entries")
end

function TestRelease.test_rockspec_names_the_tarball()
  local spec = read(files.rockspec)
  lu.assertStrContains(spec, '\nversion = "' .. version .. '-1"\n')
  lu.assertStrContains(spec, 'url = "lua-p0f-' .. version .. '.tar.gz"')
  lu.assertStrContains(spec, 'dir = "lua-p0f-' .. version .. '"')
  local md5 = run("md5sum " .. q(files.tarball)):match("^(%x+)")
  lu.assertStrContains(spec, 'md5 = "' .. md5 .. '"')
  -- The rock carries this very rockspec and the tarball.
  local listing = run("unzip -l " .. q(files.rock))
  lu.assertStrContains(listing, "p0f-" .. version .. "-1.rockspec")
  lu.assertStrContains(listing, "lua-p0f-" .. version .. ".tar.gz")
  lu.assertEquals(run("unzip -p " .. q(files.rock) .. " p0f-" .. version .. "-1.rockspec"), spec)
end

--- Install the rock offline into a fresh tree; check it from there.
-- lua: the interpreter; abi: LuaRocks' --lua-version; config: a LuaRocks
-- config file (LuaJIT as the 5.1 interpreter) or nil.
local function install_and_use(lua, abi, config)
  if not support.is_root() then lu.skip("needs root (unshare -n, p0f on lo)") end
  local tree = dir .. "/tree-" .. abi
  local env = config and ("LUAROCKS_CONFIG=" .. q(config) .. " ") or ""
  local out, ok = run(string.format("cd %s && %sunshare -n luarocks --lua-version %s --tree %s install ./%s",
    q(dir .. "/dist"), env, abi, q(tree), "p0f-" .. version .. "-1.src.rock"))
  lu.assertTrue(ok, "offline luarocks install for " .. abi .. " failed:\n" .. out)
  lu.assertStrContains(out, "p0f " .. version .. "-1 is now installed")
  -- CMake's install rules stay inside the tree: the man pages land in the
  -- rock's own directory, not in /usr/local.
  local rockdir = tree .. "/lib/luarocks/rocks-" .. abi .. "/p0f/" .. version .. "-1"
  for _, page in ipairs({ "man1/p0f-query.1", "man8/p0f-policyd.8", "man8/p0f-mux.8" }) do
    lu.assertNotNil(io.open(rockdir .. "/share/man/" .. page), page .. " not in " .. rockdir)
  end

  -- require("p0f") from the tree only (no LUA_PATH/LUA_CPATH from the suite).
  local paths = string.format("package.path=%q package.cpath=%q",
    tree .. "/share/lua/" .. abi .. "/?.lua;" .. tree .. "/share/lua/" .. abi .. "/?/init.lua",
    tree .. "/lib/lua/" .. abi .. "/?.so")
  out, ok = run(string.format("env -u LUA_PATH -u LUA_CPATH %s -e %s", lua, q(paths ..
    " local p0f = require('p0f') assert(#p0f.encode_query('192.0.2.1') == 21)" ..
    " print(package.searchpath and package.searchpath('p0f.core', package.cpath) or 'core')")))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, tree .. "/lib/lua/" .. abi .. "/p0f/core.so")

  -- The command LuaRocks installed, with its wrapper's interpreter.
  local wrapper = tree .. "/bin/p0f-query"
  lu.assertStrContains(read(wrapper), lua)
  out, ok = run("env -u LUA_PATH -u LUA_CPATH " .. q(wrapper) .. " --help")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "usage: p0f-query")
  -- The daemons' wrappers too (p0f-mux answers --help without a config).
  out, ok = run("env -u LUA_PATH -u LUA_CPATH " .. q(tree .. "/bin/p0f-mux") .. " --help")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "p0f-mux")

  -- And a real query, to a real p0f that has seen 127.0.0.1.
  if not p0fd then
    local err
    p0fd, err = support.start_p0f()
    lu.assertNotNil(p0fd, err)
    lu.assertNotNil(support.learn(p0fd, "127.0.0.1"), "p0f did not learn 127.0.0.1")
  end
  out, ok = run(string.format("env -u LUA_PATH -u LUA_CPATH %s --socket %s 127.0.0.1 192.0.2.1",
    q(wrapper), q(p0fd.socket)))
  lu.assertTrue(ok, out)
  lu.assertStrMatches(out, "127%.0%.0%.1\n  status +ok\n.*os_name +Linux\n.*192%.0%.2%.1\n  status +nomatch\n.*")
end

function TestRelease.test_install_lua54()
  install_and_use("/usr/bin/lua5.4", "5.4", nil)
end

function TestRelease.test_install_luajit()
  -- Debian's LuaRocks runs 5.1 rocks with lua5.1; rspamd's Lua is LuaJIT.
  local config = dir .. "/luarocks-luajit.lua"
  local f = assert(io.open(config, "w"))
  f:write('lua_interpreter = "luajit"\nvariables = { LUA_INCDIR = "/usr/include/luajit-2.1" }\n')
  f:close()
  install_and_use("/usr/bin/luajit", "5.1", config)
end

os.exit(support.run(lu))
