/*
 * The few Lua 5.2+ API functions the module uses, for Lua 5.1 and LuaJIT.
 * (Debian's lua-compat53 refuses 5.4, and we only need these.)
 */
#ifndef P0F_COMPAT_H
#define P0F_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502

#ifndef LUA_OK
#define LUA_OK 0
#endif

/* LuaJIT 2.1 already has some of these; ours are static inline (every
 * binding file includes this, not every one uses it) and prefixed. */
static inline void p0f_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
	luaL_checkstack(L, nup + 1, "too many upvalues");
	for (; l->name != NULL; l++) {
		int i;
		for (i = 0; i < nup; i++)
			lua_pushvalue(L, -nup);
		lua_pushcclosure(L, l->func, nup);
		lua_setfield(L, -(nup + 2), l->name);
	}
	lua_pop(L, nup);
}

#define p0f_rawlen(L, i) lua_objlen(L, (i))
#define p0f_newlib(L, l) (lua_newtable(L), p0f_setfuncs(L, (l), 0))

#else

#define p0f_setfuncs luaL_setfuncs
#define p0f_rawlen(L, i) lua_rawlen(L, (i))
#define p0f_newlib luaL_newlib

#endif

#endif
