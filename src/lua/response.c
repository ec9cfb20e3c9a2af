/*
 * response.c: a decoded p0f v3 reply as a Lua table, the cheap way. This
 * runs once per query (and is all of p0f.decode), so:
 *   - the table is presized for every field it can get;
 *   - the field names (and the status words) are Lua strings made once per
 *     state and kept in one table, fetched with lua_rawgeti instead of
 *     hashing a C string per field (lua_setfield) on every call;
 *   - a field that is absent (distance unknown, everything but the status
 *     when p0f has no match) costs nothing.
 */
#include <errno.h>
#include <string.h>

#include "lp0f.h"

/* Where the key table lives, for callers without it as an upvalue. */
#define KEYS_NAME "p0f.response_keys"

enum {
	K_STATUS = 1, K_FIRST_SEEN, K_LAST_SEEN, K_TOTAL_CONN, K_UPTIME_MIN,
	K_UP_MOD_DAYS, K_LAST_NAT, K_LAST_CHG, K_DISTANCE, K_BAD_SW, K_OS_MATCH_Q,
	K_OS_NAME, K_OS_FLAVOR, K_HTTP_NAME, K_HTTP_FLAVOR, K_LINK_TYPE,
	K_LANGUAGE, K_OS, K_FUZZY, K_GENERIC,
	K_OK, K_NOMATCH, K_BADQUERY, K_COUNT
};

static const char *const key_names[K_COUNT] = {
	NULL, "status", "first_seen", "last_seen", "total_conn", "uptime_min",
	"up_mod_days", "last_nat", "last_chg", "distance", "bad_sw", "os_match_q",
	"os_name", "os_flavor", "http_name", "http_flavor", "link_type",
	"language", "os", "fuzzy", "generic",
	"ok", "nomatch", "badquery",
};

void lp0f_push_response_keys(lua_State *L)
{
	int i;
	lua_getfield(L, LUA_REGISTRYINDEX, KEYS_NAME);
	if (!lua_isnil(L, -1))
		return;
	lua_pop(L, 1);
	lua_createtable(L, K_COUNT - 1, 0);
	for (i = 1; i < K_COUNT; i++) {
		lua_pushstring(L, key_names[i]);
		lua_rawseti(L, -2, i);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, KEYS_NAME);
}

/* t[keys[k]] = the value on top; the result table is just below it. */
static void set_key(lua_State *L, int keys, int k)
{
	lua_rawgeti(L, keys, k);
	lua_insert(L, -2);
	lua_rawset(L, -3);
}

static void set_int(lua_State *L, int keys, int k, lua_Integer v)
{
	lua_rawgeti(L, keys, k);
	lua_pushinteger(L, v);
	lua_rawset(L, -3);
}

static void set_str(lua_State *L, int keys, int k, const char *s)
{
	lua_rawgeti(L, keys, k);
	lua_pushstring(L, s);
	lua_rawset(L, -3);
}

static void set_bool(lua_State *L, int keys, int k, int v)
{
	lua_rawgeti(L, keys, k);
	lua_pushboolean(L, v);
	lua_rawset(L, -3);
}

/* "name flavor", or the name alone: no format parsing per reply. */
static void push_os(lua_State *L, const struct p0f_response *r)
{
	char buf[2 * P0F_STR_LEN + 2];
	size_t n = strlen(r->os_name), f = strlen(r->os_flavor);

	memcpy(buf, r->os_name, n);
	if (f) {
		buf[n++] = ' ';
		memcpy(buf + n, r->os_flavor, f);
		n += f;
	}
	lua_pushlstring(L, buf, n);
}

void lp0f_push_response(lua_State *L, const struct p0f_response *r, int keys)
{
	if (keys < 0 && keys > LUA_REGISTRYINDEX)
		keys = lua_gettop(L) + keys + 1; /* relative: make it absolute */
	if (r->status != P0F_STATUS_OK) {
		lua_createtable(L, 0, 1);
		lua_rawgeti(L, keys, r->status == P0F_STATUS_NOMATCH ? K_NOMATCH : K_BADQUERY);
		set_key(L, keys, K_STATUS);
		return;
	}
	lua_createtable(L, 0, K_GENERIC);
	lua_rawgeti(L, keys, K_OK);
	set_key(L, keys, K_STATUS);
	set_int(L, keys, K_FIRST_SEEN, r->first_seen);
	set_int(L, keys, K_LAST_SEEN, r->last_seen);
	set_int(L, keys, K_TOTAL_CONN, r->total_conn);
	set_int(L, keys, K_UPTIME_MIN, r->uptime_min);
	set_int(L, keys, K_UP_MOD_DAYS, r->up_mod_days);
	set_int(L, keys, K_LAST_NAT, r->last_nat);
	set_int(L, keys, K_LAST_CHG, r->last_chg);
	if (r->distance != P0F_DIST_UNKNOWN)
		set_int(L, keys, K_DISTANCE, r->distance);
	set_int(L, keys, K_BAD_SW, r->bad_sw);
	set_int(L, keys, K_OS_MATCH_Q, r->os_match_q);
	set_str(L, keys, K_OS_NAME, r->os_name);
	set_str(L, keys, K_OS_FLAVOR, r->os_flavor);
	set_str(L, keys, K_HTTP_NAME, r->http_name);
	set_str(L, keys, K_HTTP_FLAVOR, r->http_flavor);
	set_str(L, keys, K_LINK_TYPE, r->link_type);
	set_str(L, keys, K_LANGUAGE, r->language);
	push_os(L, r);
	set_key(L, keys, K_OS);
	set_bool(L, keys, K_FUZZY, r->os_match_q & P0F_MATCH_FUZZY);
	set_bool(L, keys, K_GENERIC, r->os_match_q & P0F_MATCH_GENERIC);
}

int lp0f_push_result(lua_State *L, const struct p0f_result *r, const char *path)
{
	if (r->err != 0) {
		/* exactly 3 values: callers pass them on as call arguments */
		lp0f_push_err(L, r->err, lua_pushfstring(L, "p0f at %s", path));
		lua_remove(L, -4);
		return 3;
	}
	lp0f_push_response_keys(L);
	lp0f_push_response(L, &r->resp, lua_gettop(L));
	lua_remove(L, -2);
	return 1;
}
