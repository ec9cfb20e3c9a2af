/*
 * The Lua binding (src/lp0f.c) on arbitrary bytes, through a real
 * lua_State: decode, v2_decode, normalize, encode_query, decode_query and
 * v2_decode_query. Every one takes a string, so none may raise: a raise,
 * a crash or a broken invariant is a finding. Invariants:
 *  - a result is a table with a known status, or nil, message, code with
 *    the documented code ("EPROTO" for replies, "EINVAL" for addresses);
 *  - encode_response(decode(s)) decodes to an equal table (v3 and v2);
 *  - normalize is idempotent and agrees with encode_query/decode_query.
 * A fresh state per input, as p0f.core must not keep state between calls.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz.h"

int luaopen_p0f_core(lua_State *L);

/* Call core[name](args...) (arguments on top), leaving its results. */
static int call(lua_State *L, int core, const char *name, int nargs)
{
	int base = lua_gettop(L) - nargs;

	lua_getfield(L, core, name);
	lua_insert(L, base + 1);
	lua_call(L, nargs, LUA_MULTRET);
	return lua_gettop(L) - base;
}

/* A failure is exactly nil, a string message, the given code. */
static void check_failure(lua_State *L, int nres, const char *code)
{
	FUZZ_CHECK(nres == 3);
	FUZZ_CHECK(lua_isnil(L, -3));
	FUZZ_CHECK(lua_type(L, -2) == LUA_TSTRING);
	FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), code) == 0);
}

/* Every key of table a has a raw-equal value in table b. */
static void check_subset(lua_State *L, int a, int b)
{
	lua_pushnil(L);
	while (lua_next(L, a) != 0) {
		lua_pushvalue(L, -2);
		lua_rawget(L, b);
		FUZZ_CHECK(lua_rawequal(L, -1, -2));
		lua_pop(L, 2);
	}
}

static int is_status(lua_State *L, int t)
{
	const char *s;
	int ok;

	lua_getfield(L, t, "status");
	s = lua_tostring(L, -1);
	ok = s && (strcmp(s, "ok") == 0 || strcmp(s, "nomatch") == 0 || strcmp(s, "badquery") == 0);
	lua_pop(L, 1);
	return ok;
}

/* decode / encode_response pair (v3 or v2) on the input at index `in`. */
static void check_reply(lua_State *L, int core, int in, const char *dec, const char *enc)
{
	int top = lua_gettop(L), t, t2;
	int n;

	lua_pushvalue(L, in);
	n = call(L, core, dec, 1);
	if (lua_isnil(L, -n)) {
		check_failure(L, n, "EPROTO");
		lua_settop(L, top);
		return;
	}
	FUZZ_CHECK(n == 1 && lua_istable(L, -1));
	t = lua_gettop(L);
	FUZZ_CHECK(is_status(L, t));
	lua_pushvalue(L, t);
	FUZZ_CHECK(call(L, core, enc, 1) == 1 && lua_type(L, -1) == LUA_TSTRING);
	FUZZ_CHECK(call(L, core, dec, 1) == 1 && lua_istable(L, -1));
	t2 = lua_gettop(L);
	check_subset(L, t, t2);
	check_subset(L, t2, t);
	lua_settop(L, top);
}

static void check_address(lua_State *L, int core, int in)
{
	int top = lua_gettop(L), n, ok;

	lua_pushvalue(L, in);
	n = call(L, core, "normalize", 1);
	ok = !lua_isnil(L, -n);
	if (!ok) {
		check_failure(L, n, "EINVAL");
	} else {
		int canon = top + 1;
		FUZZ_CHECK(n == 3 && lua_type(L, canon) == LUA_TSTRING);
		FUZZ_CHECK(lua_tointeger(L, canon + 1) == 4 || lua_tointeger(L, canon + 1) == 6);
		FUZZ_CHECK(lua_type(L, canon + 2) == LUA_TSTRING);
		/* normalize(normalize(s)) == normalize(s) */
		lua_pushvalue(L, canon);
		FUZZ_CHECK(call(L, core, "normalize", 1) == 3);
		FUZZ_CHECK(lua_rawequal(L, -3, canon) && lua_rawequal(L, -2, canon + 1));
		FUZZ_CHECK(lua_rawequal(L, -1, canon + 2));
		lua_pop(L, 3);
		/* decode_query(encode_query(s)) == canonical, family */
		lua_pushvalue(L, in);
		FUZZ_CHECK(call(L, core, "encode_query", 1) == 1 && lua_type(L, -1) == LUA_TSTRING);
		FUZZ_CHECK(call(L, core, "decode_query", 1) == 2);
		FUZZ_CHECK(lua_rawequal(L, -2, canon) && lua_rawequal(L, -1, canon + 1));
	}
	lua_settop(L, top);
	lua_pushvalue(L, in);
	n = call(L, core, "encode_query", 1);
	if (ok)
		FUZZ_CHECK(n == 1 && lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) == 21);
	else
		check_failure(L, n, "EINVAL");
	lua_settop(L, top);
}

static void check_query_decoders(lua_State *L, int core, int in)
{
	int top = lua_gettop(L), n;

	lua_pushvalue(L, in);
	n = call(L, core, "decode_query", 1);
	if (lua_isnil(L, -n))
		check_failure(L, n, "EPROTO");
	else
		FUZZ_CHECK(n == 2 && lua_type(L, -2) == LUA_TSTRING);
	lua_settop(L, top);
	lua_pushvalue(L, in);
	n = call(L, core, "v2_decode_query", 1);
	if (lua_isnil(L, -n))
		check_failure(L, n, "EPROTO");
	else
		FUZZ_CHECK(n == 1 && lua_istable(L, -1));
	lua_settop(L, top);
}

/* Runs protected: arguments are the input string. */
static int run(lua_State *L)
{
	int core;

	lua_pushcfunction(L, luaopen_p0f_core);
	lua_call(L, 0, 1);
	core = lua_gettop(L);
	check_reply(L, core, 1, "decode", "encode_response");
	check_reply(L, core, 1, "v2_decode", "v2_encode_response");
	check_address(L, core, 1);
	check_query_decoders(L, core, 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = luaL_newstate();

	FUZZ_CHECK(L != NULL);
	luaL_openlibs(L);
	lua_pushcfunction(L, run);
	lua_pushlstring(L, (const char *)data, size);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "p0f.core raised on a string input: %s\n",
		        lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
		abort();
	}
	lua_close(L);
	return 0;
}
