--- A private rspamd for the specs: started from spec/rspamd/rspamd.conf.in
-- in a temporary directory, one normal worker on a loopback port, the
-- plugin file copied into its LOCAL_CONFDIR/plugins.d as a user would, and
-- the p0f rock taken from the source tree and the LuaJIT build.
-- Stopped by the PID it was started with.
local support = require("support")
local json = require("cjson.safe")

local H = {}

local read_file, write_file = support.read_file, support.write_file
H.read_file, H.write_file = read_file, write_file

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function H.source_dir()
  return assert(os.getenv("P0F_SOURCE_DIR"), "P0F_SOURCE_DIR not set (run through ctest)")
end

--- The directory holding p0f/core.so of the interpreter running this spec
-- (LuaJIT's under ctest: the one rspamd can load).
function H.cmodule_dir()
  local so = package.searchpath and package.searchpath("p0f.core", package.cpath)
  assert(so, "p0f.core not found on package.cpath")
  return (so:gsub("/p0f/core%.so$", ""))
end

--- Where rspamd finds the rock: the Lua files of the source tree and
-- H.cmodule_dir(); or an installed rock named by P0F_RSPAMD_LUA_PATH and
-- P0F_RSPAMD_LUA_CPATH (e.g. a `luarocks --lua-version=5.1 --tree=DIR make`).
function H.module_dirs()
  local lp, lc = os.getenv("P0F_RSPAMD_LUA_PATH"), os.getenv("P0F_RSPAMD_LUA_CPATH")
  if lp and lp ~= "" and lc and lc ~= "" then return lp, lc end
  return H.source_dir() .. "/lua", H.cmodule_dir()
end

function H.tools_missing()
  for _, tool in ipairs({ "rspamd", "rspamc", "rspamadm" }) do
    if not support.sh("command -v " .. tool .. " >/dev/null 2>&1") then
      return tool .. " not installed (apt-get install rspamd)"
    end
  end
  return nil
end

--- A loopback TCP port nobody listens on now.
H.free_port = support.free_port

local Instance = {}
Instance.__index = Instance

--- Start rspamd. opts.section: the body of the p0f_fingerprint section
-- (without lua_path/lua_cpath, added here unless opts.default_paths);
-- opts.extra: more configuration; opts.workers: normal workers (1).
-- Returns an instance or raises with the log.
function H.start(opts)
  local missing = H.tools_missing()
  if missing then error(missing, 2) end
  local dir = support.tmpname(".rspamd")
  local self = setmetatable({ dir = dir, port = H.free_port() }, Instance)
  for _, sub in ipairs({ "local/plugins.d", "run", "log" }) do
    assert(support.sh("mkdir -p " .. q(dir .. "/" .. sub)))
  end
  local src = H.source_dir()
  local lua_path, lua_cpath = H.module_dirs()
  -- DBDIR lives in the build tree and is kept: rspamd compiles its URL
  -- suffix table (~20 s) only when there is no cached copy there.
  -- P0F_RSPAMD_DBDIR: a test outside the LuaJIT specs shares their copy.
  local dbdir = os.getenv("P0F_RSPAMD_DBDIR") or (H.cmodule_dir() .. "/rspamd-db")
  assert(support.sh("mkdir -p " .. q(dbdir)))
  write_file(dir .. "/local/plugins.d/p0f_fingerprint.lua",
    assert(read_file(src .. "/rspamd/p0f_fingerprint.lua")))
  -- The probe: which p0f modules the worker loaded (P0F_PROBE's options).
  write_file(dir .. "/local/plugins.d/p0f_probe.lua",
    assert(read_file(src .. "/spec/rspamd/p0f_probe.lua")))
  local section = (opts.section or "") .. string.format(
    '\n  lua_path = "%s";\n  lua_cpath = "%s";\n', lua_path, lua_cpath)

  -- An installed package instead: its copy of the plugin (opts.plugin_file)
  -- and the plugin's default search paths (opts.default_paths).
  if opts.plugin_file then
    write_file(dir .. "/local/plugins.d/p0f_fingerprint.lua", assert(read_file(opts.plugin_file)))
  end
  if opts.default_paths then section = opts.section or "" end
  local conf = assert(read_file(src .. "/spec/rspamd/rspamd.conf.in"))
  conf = conf:gsub("@PORT@", tostring(self.port))
  conf = conf:gsub("@WORKERS@", tostring(opts.workers or 1))
  conf = conf:gsub("@SECTION@", function() return section end)
  conf = conf:gsub("@EXTRA@", function() return opts.extra or "" end)
  self.conf = dir .. "/rspamd.conf"
  write_file(self.conf, conf)
  self.vars = table.concat({
    "--var=LOCAL_CONFDIR=" .. q(dir .. "/local"),
    "--var=DBDIR=" .. q(dbdir),
    "--var=RUNDIR=" .. q(dir .. "/run"),
    "--var=LOGDIR=" .. q(dir .. "/log"),
  }, " ")

  -- configtest first: a syntax error is reported as such, not as a timeout.
  local p = io.popen(string.format("rspamadm %s configtest -c %s 2>&1", self.vars, q(self.conf)))
  local out = p:read("*a")
  p:close()
  if not out:find("syntax OK", 1, true) then
    support.sh("rm -rf " .. q(dir))
    error("rspamadm configtest failed:\n" .. out, 2)
  end

  -- opts.installed_only: rspamd without the suite's LUA_PATH/LUA_CPATH,
  -- so it finds only what is installed.
  p = io.popen(string.format("%srspamd -f -i -c %s %s >%s 2>&1 & echo $!",
    opts.installed_only and "env -u LUA_PATH -u LUA_CPATH " or "",
    q(self.conf), self.vars, q(dir .. "/log/stderr.log")))
  self.pid = tonumber(p:read("*l"))
  p:close()
  self.msg = src .. "/spec/rspamd/msg.eml"
  local up = support.wait_until(function()
    if not self:alive() then return false end
    return support.sh(string.format("rspamc -h 127.0.0.1:%d -t 2 symbols %s >/dev/null 2>&1",
      self.port, q(self.msg)))
  end, 600, 0.1)
  local log = self:log()
  if not up or not log:find("init lua module p0f_fingerprint", 1, true) then
    local why = not up and "rspamd did not come up" or "the plugin was not loaded"
    self:stop()
    error(why .. ":\n" .. log .. (read_file(dir .. "/log/stderr.log") or ""), 2)
  end
  return self
end

function Instance:alive()
  return support.pid_alive(self.pid)
end

function Instance:log()
  return read_file(self.dir .. "/log/rspamd.log") or ""
end

--- Scan the test message as if it came from opts.ip (and opts.user, when
-- authenticated). Returns { symbols = { NAME = { options... } }, reply =
-- decoded JSON, elapsed = seconds, text = raw output }.
function Instance:scan(opts)
  local cmd = string.format("rspamc -h 127.0.0.1:%d -t 60 -j --ip %s%s symbols %s 2>&1",
    self.port, q(opts.ip), opts.user and (" --user " .. q(opts.user)) or "",
    q(opts.msg or self.msg))
  local t0 = support.now()
  local p = io.popen(cmd)
  local text = p:read("*a")
  p:close()
  local elapsed = support.now() - t0
  local reply, err = json.decode(text)
  if type(reply) ~= "table" then
    error(string.format("rspamc gave no JSON (%s):\n%s", tostring(err), text), 2)
  end
  local symbols = {}
  for name, s in pairs(reply.symbols or {}) do
    symbols[name] = type(s.options) == "table" and s.options or {}
    symbols[name].score = s.score
  end
  local res = { symbols = symbols, reply = reply, elapsed = elapsed, text = text }
  -- The symbols of every scan, for the record.
  local names = {}
  for name in pairs(symbols) do names[#names + 1] = name end
  table.sort(names)
  local parts = {}
  for _, name in ipairs(names) do
    parts[#parts + 1] = string.format("%s(%.2f){%s}", name, symbols[name].score or 0,
      table.concat(symbols[name], "; "))
  end
  io.stdout:write(string.format("  scan %s%s: %s [%.2f s]\n", opts.ip,
    opts.user and (" user " .. opts.user) or "",
    #parts > 0 and table.concat(parts, ", ") or "(no symbols)", elapsed))
  return res
end

--- The headers rspamd asks the MTA to add (milter.add_headers): name -> value.
function H.added_headers(res)
  local out = {}
  local milter = res.reply.milter
  for name, h in pairs(type(milter) == "table" and milter.add_headers or {}) do
    if type(h) == "table" and h.value then
      out[name] = h.value
    elseif type(h) == "table" and type(h[1]) == "table" then
      out[name] = h[1].value
    else
      out[name] = h
    end
  end
  return out
end

--- Stop the rspamd we started (main process by PID; it takes its workers
-- with it) and remove its directory.
function Instance:stop()
  if self.pid then
    support.sh("kill " .. self.pid .. " 2>/dev/null")
    support.wait_until(function() return not self:alive() end, 300, 0.05)
    if self:alive() then support.sh("kill -9 " .. self.pid .. " 2>/dev/null") end
    self.pid = nil
  end
  if self.dir and self.dir:match("%.rspamd$") and not os.getenv("P0F_KEEP_RSPAMD") then
    support.sh("rm -rf " .. q(self.dir))
  end
end

return H
