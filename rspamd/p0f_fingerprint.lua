--[[
p0f_fingerprint: passive OS fingerprints from a p0f daemon, for rspamd.

Copy this file into rspamd's user plugin directory (/etc/rspamd/plugins.d/)
and configure the `p0f_fingerprint` section, e.g. in
/etc/rspamd/rspamd.conf.local:

  p0f_fingerprint {
    socket = "/var/run/p0f.sock";
    timeout = 5s;
    symbol = "P0F";
    patterns { WINDOWS = "^Windows.*"; }
  }

It takes the options of rspamd's built-in `p0f` module (which stays
disabled: a plugin or section named `p0f` would collide with it). The work
is done by the p0f rock (require "p0f.rspamd"); rspamd ignores
options.lua_cpath, so this file extends package.path and package.cpath
itself from `lua_path` and `lua_cpath`: directories (or ';'-separated
lists of them, or Lua search templates with '?'), by default LuaRocks'
5.1 install tree under /usr/local, then Debian's Lua 5.1 directories
(/usr/share/lua/5.1, /usr/lib/<triplet>/lua/5.1: the lua-p0f package).
]]--

local N = "p0f_fingerprint"

if confighelp then
  rspamd_config:add_example(nil, N,
    "Passive OS fingerprinting through p0f (the p0f rock)",
    [[
p0f_fingerprint {
  socket = "/var/run/p0f.sock";   # p0f -s; leave out to only read Redis
  timeout = 5s;                   # whole lookup: cache + p0f
  symbol = "P0F";
  symbol_fail = "P0F_FAIL";
  patterns {
    WINDOWS = "^Windows.*";
    DISTANCE10 { pattern = "^distance=10$"; score = 1.0; }
  }
  # header = "X-OS-Fingerprint";
  expire = 7200;
  prefix = "p0f";
  # servers = "127.0.0.1:6379";   # Redis cache (or the global redis section)
  # lua_path = "/usr/local/share/lua/5.1";
  # lua_cpath = "/usr/local/lib/lua/5.1";
}
]])
  return
end

local rspamd_logger = require "rspamd_logger"
local lua_util = require "lua_util"

-- LuaRocks' system tree first, then where Debian's lua-p0f puts the rock:
-- /usr/share/lua/5.1 and the multiarch C directory, taken from LuaJIT's own
-- search path (/usr/lib/x86_64-linux-gnu/lua/5.1/?.so on amd64).
local DEFAULT_LUA_PATH = { "/usr/local/share/lua/5.1", "/usr/share/lua/5.1" }
local DEFAULT_LUA_CPATH = { "/usr/local/lib/lua/5.1" }
for t in package.cpath:gmatch("[^;]+") do
  local dir = t:match("^(/usr/lib/[^/]+/lua/5%.1)/%?%.so$")
  if dir and dir ~= DEFAULT_LUA_CPATH[1] then DEFAULT_LUA_CPATH[#DEFAULT_LUA_CPATH + 1] = dir end
end
DEFAULT_LUA_CPATH[#DEFAULT_LUA_CPATH + 1] = "/usr/lib/lua/5.1"

--- "dir" -> dir/?.lua;dir/?/init.lua (or dir/?.so); templates stay as given.
local function templates(value, suffixes)
  local out = {}
  local items = type(value) == "table" and value or { value }
  for _, item in ipairs(items) do
    for part in tostring(item):gmatch("[^;]+") do
      if part:find("?", 1, true) then
        out[#out + 1] = part
      else
        part = part:gsub("/+$", "")
        for _, sfx in ipairs(suffixes) do out[#out + 1] = part .. sfx end
      end
    end
  end
  return out
end

-- Ours first, moved ahead if already there: rspamd's own search path has
-- other modules named p0f.
local function prepend(path, list)
  local out, seen = {}, {}
  for _, t in ipairs(list) do
    if not seen[t] then seen[t], out[#out + 1] = true, t end
  end
  for t in path:gmatch("[^;]+") do
    if not seen[t] then seen[t], out[#out + 1] = true, t end
  end
  return table.concat(out, ";")
end

local opts = rspamd_config:get_all_opt(N)
if not opts then
  lua_util.disable_module(N, "config")
  return
end

package.path = prepend(package.path,
  templates(opts.lua_path or DEFAULT_LUA_PATH, { "/?.lua", "/?/init.lua" }))
package.cpath = prepend(package.cpath,
  templates(opts.lua_cpath or DEFAULT_LUA_CPATH, { "/?.so" }))

local ok, glue = pcall(require, "p0f.rspamd")
if not ok then
  rspamd_logger.errx(rspamd_config, "%s: cannot load the p0f rock (%s); "
    .. "set lua_path/lua_cpath in the %s section", N, glue, N)
  lua_util.disable_module(N, "fail")
  return
end

local plugin, err = glue.register(rspamd_config, opts, N)
if not plugin then
  rspamd_logger.errx(rspamd_config, "%s: %s", N, err)
  lua_util.disable_module(N, "config")
  return
end
rspamd_logger.infox(rspamd_config, "%s: p0f socket %s, Redis %s, timeout %s s, rock %s", N,
  plugin.socket or "(none)", plugin.redis_params and "on" or "off", plugin.f.opts.timeout,
  package.searchpath and package.searchpath("p0f.core", package.cpath) or "loaded")
