rockspec_format = "3.0"
package = "p0f"
version = "scm-1"
source = {
  url = "git+https://example.invalid/lua-p0f.git",
}
description = {
  summary = "p0f v3 (and v2) client for Lua and mail filters: codec, nonblocking pipelined client, libev driver",
  detailed = [[
    Queries the p0f passive OS fingerprinting daemon over its UNIX socket
    API without blocking, on one persistent pipelined connection, and turns
    the answers into verdicts for mail filters (rspamd, Postfix policy).
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
-- libev and hiredis (libev-dev, libhiredis-dev) are needed for p0f.ev only
-- (p0f.loop, p0f-policyd): without them the build makes p0f.core alone,
-- which is all the rspamd plugin and the clients load.
build = {
  type = "cmake",
  variables = {
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_BUILD_TYPE = "Release",
    BUILD_TESTING = "OFF",
    P0F_INSTALL_PROGRAMS = "OFF",
  },
  copy_directories = { "rspamd", "examples", "docs" },
  install = {
    bin = {
      ["p0f-query"] = "bin/p0f-query",
      ["p0f-policyd"] = "bin/p0f-policyd",
      ["p0f-mux"] = "bin/p0f-mux",
    },
  },
}
