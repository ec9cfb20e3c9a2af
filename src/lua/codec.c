/*
 * codec.c: the codec functions of p0f.core (v3 and the legacy v2, no I/O)
 * and the blocking one-shot queries (a connection of their own).
 */
#include <errno.h>
#include <string.h>

#include "lp0f.h"
#include "p0f_blocking.h"

/* Fields of the v2 tables (not hot: the v3 result uses response.c). */
static void set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, k);
}

static uint32_t status_of(lua_State *L, int t)
{
	const char *s;
	uint32_t st = P0F_STATUS_OK;

	lua_getfield(L, t, "status");
	if (lua_type(L, -1) == LUA_TNUMBER) {
		lua_pop(L, 1);
		return (uint32_t)lp0f_opt_int(L, t, "status", 0, 0, LP0F_U32_MAX);
	} else if (!lua_isnil(L, -1)) {
		s = luaL_checkstring(L, -1);
		if (strcmp(s, "ok") == 0)
			st = P0F_STATUS_OK;
		else if (strcmp(s, "nomatch") == 0)
			st = P0F_STATUS_NOMATCH;
		else if (strcmp(s, "badquery") == 0)
			st = P0F_STATUS_BADQUERY;
		else
			luaL_error(L, "bad field 'status' (ok, nomatch, badquery or a number expected)");
	}
	lua_pop(L, 1);
	return st;
}

/* ---- codec functions ---------------------------------------------------- */

static const char *check_addr(lua_State *L, int i, struct p0f_addr *a, int *rc)
{
	size_t len;
	const char *s = luaL_checklstring(L, i, &len);
	*rc = p0f_addr_parse(s, len, a);
	return s;
}

static int l_encode_query(lua_State *L)
{
	struct p0f_addr a;
	uint8_t q[P0F_QUERY_LEN];
	int rc;
	const char *s = check_addr(L, 1, &a, &rc);

	if (rc != 0)
		return lp0f_push_err(L, rc, lua_pushfstring(L, "'%s'", s));
	p0f_query_encode(&a, q);
	lua_pushlstring(L, (const char *)q, sizeof q);
	return 1;
}

static int l_decode_query(lua_State *L)
{
	size_t len;
	const uint8_t *b = (const uint8_t *)luaL_checklstring(L, 1, &len);
	struct p0f_addr a;
	char text[P0F_ADDR_TEXT_MAX];

	if (p0f_query_decode(b, len, &a) != 0 || p0f_addr_format(&a, text, sizeof text) != 0)
		return lp0f_push_err(L, EPROTO, "not a p0f v3 query");
	lua_pushstring(L, text);
	lua_pushinteger(L, a.family);
	return 2;
}

static int l_decode(lua_State *L)
{
	size_t len;
	const uint8_t *b = (const uint8_t *)luaL_checklstring(L, 1, &len);
	struct p0f_response r;

	if (len != P0F_RESP_LEN) {
		lua_pushnil(L);
		lua_pushfstring(L, "malformed reply: %d bytes, a p0f v3 reply has %d",
		                (int)len, P0F_RESP_LEN);
		lua_pushstring(L, "EPROTO");
		return 3;
	}
	if (p0f_response_decode(b, len, &r) != 0)
		return lp0f_push_err(L, EPROTO, "bad magic or status");
	lp0f_push_response(L, &r, lua_upvalueindex(1));
	return 1;
}

static int l_encode_response(lua_State *L)
{
	struct p0f_response r;
	uint8_t out[P0F_RESP_LEN];

	luaL_checktype(L, 1, LUA_TTABLE);
	memset(&r, 0, sizeof r);
	r.status = status_of(L, 1);
	r.first_seen = (uint32_t)lp0f_opt_int(L, 1, "first_seen", 0, 0, LP0F_U32_MAX);
	r.last_seen = (uint32_t)lp0f_opt_int(L, 1, "last_seen", 0, 0, LP0F_U32_MAX);
	r.total_conn = (uint32_t)lp0f_opt_int(L, 1, "total_conn", 0, 0, LP0F_U32_MAX);
	r.uptime_min = (uint32_t)lp0f_opt_int(L, 1, "uptime_min", 0, 0, LP0F_U32_MAX);
	r.up_mod_days = (uint32_t)lp0f_opt_int(L, 1, "up_mod_days", 0, 0, LP0F_U32_MAX);
	r.last_nat = (uint32_t)lp0f_opt_int(L, 1, "last_nat", 0, 0, LP0F_U32_MAX);
	r.last_chg = (uint32_t)lp0f_opt_int(L, 1, "last_chg", 0, 0, LP0F_U32_MAX);
	r.distance = (int)lp0f_opt_int(L, 1, "distance", -1, -1, 255);
	r.bad_sw = (uint8_t)lp0f_opt_int(L, 1, "bad_sw", 0, 0, 255);
	r.os_match_q = (uint8_t)lp0f_opt_int(L, 1, "os_match_q", 0, 0, 255);
	lp0f_opt_str(L, 1, "os_name", r.os_name, sizeof r.os_name);
	lp0f_opt_str(L, 1, "os_flavor", r.os_flavor, sizeof r.os_flavor);
	lp0f_opt_str(L, 1, "http_name", r.http_name, sizeof r.http_name);
	lp0f_opt_str(L, 1, "http_flavor", r.http_flavor, sizeof r.http_flavor);
	lp0f_opt_str(L, 1, "link_type", r.link_type, sizeof r.link_type);
	lp0f_opt_str(L, 1, "language", r.language, sizeof r.language);
	p0f_response_encode(&r, out);
	lua_pushlstring(L, (const char *)out, sizeof out);
	return 1;
}

static int l_normalize(lua_State *L)
{
	struct p0f_addr a;
	char text[P0F_ADDR_TEXT_MAX];
	int rc;
	const char *s = check_addr(L, 1, &a, &rc);

	if (rc != 0 || p0f_addr_format(&a, text, sizeof text) != 0)
		return lp0f_push_err(L, EINVAL, lua_pushfstring(L, "'%s'", s));
	lua_pushstring(L, text);
	lua_pushinteger(L, a.family);
	lua_pushstring(L, p0f_scope_name(p0f_addr_scope(&a)));
	return 3;
}

/* ---- blocking queries ----------------------------------------------------- */

static int l_query(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	size_t len;
	const char *addr = luaL_checklstring(L, 2, &len);
	double timeout;
	struct p0f_result res;
	int rc;

	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	timeout = lp0f_opt_seconds(L, 3, "timeout", 5);
	rc = p0f_query_once(path, addr, len, timeout, lp0f_opt_seconds(L, 3, "drain", 0.5), &res);
	if (rc == EINVAL)
		return lp0f_push_err(L, rc, lua_pushfstring(L, "'%s'", addr));
	if (rc != 0)
		return lp0f_push_err(L, rc, lua_pushfstring(L, "p0f at %s", path));
	lp0f_push_response(L, &res.resp, lua_upvalueindex(1));
	return 1;
}

/* ---- v2 ------------------------------------------------------------------- */

static void v2_addr(lua_State *L, int t, const char *k, uint8_t out[4])
{
	struct p0f_addr a;
	size_t len;
	const char *s;

	lua_getfield(L, t, k);
	s = lua_tolstring(L, -1, &len);
	if (lua_type(L, -1) != LUA_TSTRING || p0f_addr_parse(s, len, &a) != 0 || a.family != 4)
		luaL_error(L, "bad field '%s' (IPv4 address expected: p0f v2 has no IPv6)", k);
	memcpy(out, a.bytes, 4);
	lua_pop(L, 1);
}

static uint16_t v2_port(lua_State *L, int t, const char *k)
{
	lua_Number n = lp0f_opt_num(L, t, k, -1);
	if (!lp0f_is_int((double)n, 0, 65535))
		luaL_error(L, "bad field '%s' (port number expected)", k);
	return (uint16_t)n;
}

static void check_v2_query(lua_State *L, int t, struct p0f2_query *q)
{
	luaL_checktype(L, t, LUA_TTABLE);
	memset(q, 0, sizeof *q);
	q->type = (uint8_t)lp0f_opt_int(L, t, "type", 1, 0, 255);
	q->id = (uint32_t)lp0f_opt_int(L, t, "id", 0x70304632, 0, LP0F_U32_MAX);
	v2_addr(L, t, "src", q->src_ad);
	v2_addr(L, t, "dst", q->dst_ad);
	q->src_port = v2_port(L, t, "src_port");
	q->dst_port = v2_port(L, t, "dst_port");
}

static void push_v2(lua_State *L, const struct p0f2_response *r)
{
	lua_createtable(L, 0, 14);
	set_str(L, "status", p0f2_type_name(r->type));
	set_int(L, "id", r->id);
	if (r->type != P0F2_OK)
		return;
	set_str(L, "genre", r->genre);
	set_str(L, "detail", r->detail);
	if (r->dist >= 0)
		set_int(L, "distance", r->dist);
	set_str(L, "link", r->link);
	set_str(L, "tos", r->tos);
	set_bool(L, "firewall", r->fw);
	set_bool(L, "nat", r->nat);
	set_bool(L, "real", r->real);
	if (r->score != -100)
		set_int(L, "score", r->score);
	set_int(L, "mflags", r->mflags);
	if (r->uptime >= 0)
		set_int(L, "uptime_hours", r->uptime);
	if (r->detail[0])
		lua_pushfstring(L, "%s %s", r->genre, r->detail);
	else
		lua_pushstring(L, r->genre);
	lua_setfield(L, -2, "os");
}

static int l_v2_encode_query(lua_State *L)
{
	struct p0f2_query q;
	uint8_t out[P0F2_QUERY_LEN];
	check_v2_query(L, 1, &q);
	p0f2_query_encode(&q, out);
	lua_pushlstring(L, (const char *)out, sizeof out);
	return 1;
}

static int l_v2_decode(lua_State *L)
{
	size_t len;
	const uint8_t *b = (const uint8_t *)luaL_checklstring(L, 1, &len);
	struct p0f2_response r;

	if (p0f2_response_decode(b, len, &r) != 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "malformed p0f v2 reply (%d bytes, want %d with magic 0x0defaced)",
		                (int)len, P0F2_RESP_LEN);
		lua_pushstring(L, "EPROTO");
		return 3;
	}
	push_v2(L, &r);
	return 1;
}

static int l_v2_decode_query(lua_State *L)
{
	size_t len;
	const uint8_t *b = (const uint8_t *)luaL_checklstring(L, 1, &len);
	struct p0f2_query q;
	struct p0f_addr a;
	char text[P0F_ADDR_TEXT_MAX];

	if (p0f2_query_decode(b, len, &q) != 0)
		return lp0f_push_err(L, EPROTO, "not a p0f v2 query");
	lua_createtable(L, 0, 6);
	set_int(L, "type", q.type);
	set_int(L, "id", q.id);
	memset(&a, 0, sizeof a);
	a.family = 4;
	memcpy(a.bytes, q.src_ad, 4);
	p0f_addr_format(&a, text, sizeof text);
	set_str(L, "src", text);
	memcpy(a.bytes, q.dst_ad, 4);
	p0f_addr_format(&a, text, sizeof text);
	set_str(L, "dst", text);
	set_int(L, "src_port", q.src_port);
	set_int(L, "dst_port", q.dst_port);
	return 1;
}

static int l_v2_encode_response(lua_State *L)
{
	struct p0f2_response r;
	uint8_t out[P0F2_RESP_LEN];
	const char *st;

	luaL_checktype(L, 1, LUA_TTABLE);
	memset(&r, 0, sizeof r);
	lua_getfield(L, 1, "status");
	st = lua_tostring(L, -1);
	r.type = st == NULL || strcmp(st, "ok") == 0 ? P0F2_OK
	         : strcmp(st, "nomatch") == 0        ? P0F2_NOMATCH
	                                             : P0F2_BADQUERY;
	lua_pop(L, 1);
	r.id = (uint32_t)lp0f_opt_int(L, 1, "id", 0, 0, LP0F_U32_MAX);
	lp0f_opt_str(L, 1, "genre", r.genre, sizeof r.genre);
	lp0f_opt_str(L, 1, "detail", r.detail, sizeof r.detail);
	r.dist = (int)lp0f_opt_int(L, 1, "distance", -1, -1, 127);
	lp0f_opt_str(L, 1, "link", r.link, sizeof r.link);
	lp0f_opt_str(L, 1, "tos", r.tos, sizeof r.tos);
	lua_getfield(L, 1, "firewall");
	r.fw = (uint8_t)lua_toboolean(L, -1);
	lua_getfield(L, 1, "nat");
	r.nat = (uint8_t)lua_toboolean(L, -1);
	lua_getfield(L, 1, "real");
	r.real = (uint8_t)lua_toboolean(L, -1);
	lua_pop(L, 3);
	r.score = (int16_t)lp0f_opt_int(L, 1, "score", -100, -32768, 32767);
	r.mflags = (uint16_t)lp0f_opt_int(L, 1, "mflags", 0, 0, 65535);
	r.uptime = (int32_t)lp0f_opt_int(L, 1, "uptime_hours", -1, -1, 2147483647.0);
	p0f2_response_encode(&r, out);
	lua_pushlstring(L, (const char *)out, sizeof out);
	return 1;
}

static int l_v2_query(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct p0f2_query q;
	struct p0f2_response r;
	int rc;

	check_v2_query(L, 2, &q);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	rc = p0f2_query_once(path, &q, lp0f_opt_seconds(L, 3, "timeout", 5), &r);
	if (rc != 0)
		return lp0f_push_err(L, rc, lua_pushfstring(L, "p0f v2 at %s", path));
	push_v2(L, &r);
	return 1;
}


static const luaL_Reg codec_funcs[] = {
	{ "encode_query", l_encode_query },
	{ "decode_query", l_decode_query },
	{ "decode", l_decode },
	{ "encode_response", l_encode_response },
	{ "normalize", l_normalize },
	{ "query", l_query },
	{ "v2_encode_query", l_v2_encode_query },
	{ "v2_decode_query", l_v2_decode_query },
	{ "v2_decode", l_v2_decode },
	{ "v2_encode_response", l_v2_encode_response },
	{ "v2_query", l_v2_query },
	{ NULL, NULL }
};

/* Into the module table on top; every function gets the response keys
 * as its upvalue 1. */
void lp0f_open_codec(lua_State *L)
{
	lp0f_push_response_keys(L);
	p0f_setfuncs(L, codec_funcs, 1);
}
