/*
 * core.c: luaopen_p0f_core, the module rspamd and every client load:
 * the codec, blocking queries, the pollable client and syslog. libc only:
 * the libev loop and its objects are p0f.ev (luaopen_p0f_ev, loop.c).
 */
#include "lp0f.h"

__attribute__((visibility("default"))) int luaopen_p0f_core(lua_State *L);

int luaopen_p0f_core(lua_State *L)
{
	lua_newtable(L);
	lp0f_open_codec(L);
	lp0f_open_client(L);
	lp0f_open_syslog(L);
	lua_pushinteger(L, P0F_RESP_LEN);
	lua_setfield(L, -2, "RESPONSE_SIZE");
	lua_pushinteger(L, P0F_QUERY_LEN);
	lua_setfield(L, -2, "QUERY_SIZE");
	lua_pushstring(L, "0.1.0");
	lua_setfield(L, -2, "_VERSION");
	return 1;
}
