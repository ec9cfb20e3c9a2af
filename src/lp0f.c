/*
 * lp0f: p0f.core, the Lua binding. The only file that includes lua.h.
 *
 * Conventions (see design notes): programmer errors raise; runtime failures
 * return nil, message, CODE where CODE is an errno name ("ETIMEDOUT" ...).
 * Nothing is opened in luaopen_p0f_core (rspamd forks after loading).
 * Callbacks run under lua_pcall: nothing ever longjmps through ev_run().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "compat.h"
#include "p0f_blocking.h"
#include "p0f_client.h"
#include "p0f_codec.h"
#include "p0f_ev.h"

#define CLIENT_MT "p0f.client"
#define LOOP_MT "p0f.loop"
#define EVCLIENT_MT "p0f.evclient"
#define ZOMBIES "p0f.closed_in_callback"

/* ---- errors ------------------------------------------------------------- */

static const struct {
	int err;
	const char *name, *text;
} errtab[] = {
	{ ETIMEDOUT, "ETIMEDOUT", "timed out" },
	{ ECONNREFUSED, "ECONNREFUSED", "connection refused (is p0f running?)" },
	{ ENOENT, "ENOENT", "no such socket (is p0f running with -s?)" },
	{ EACCES, "EACCES", "permission denied" },
	{ EPROTO, "EPROTO", "malformed reply (not a p0f v3 API socket?)" },
	{ ECONNRESET, "ECONNRESET", "connection closed by p0f" },
	{ ECANCELED, "ECANCELED", "query cancelled" },
	{ EINVAL, "EINVAL", "not an IP address" },
	{ ENOTSOCK, "ENOTSOCK", "not a socket" },
	{ ENAMETOOLONG, "ENAMETOOLONG", "socket path too long" },
	{ ENOBUFS, "ENOBUFS", "too many queries queued" },
	{ ENOMEM, "ENOMEM", "out of memory" },
	{ EAGAIN, "EAGAIN", "query still pending" },
	{ EPIPE, "EPIPE", "broken pipe" },
	{ EMFILE, "EMFILE", "too many open files" },
	{ ENOTDIR, "ENOTDIR", "not a directory in the socket path" },
	{ EPERM, "EPERM", "operation not permitted" },
};

static const char *err_name(int err)
{
	size_t i;
	for (i = 0; i < sizeof errtab / sizeof errtab[0]; i++)
		if (errtab[i].err == err)
			return errtab[i].name;
	return "EIO";
}

static const char *err_text(int err)
{
	size_t i;
	for (i = 0; i < sizeof errtab / sizeof errtab[0]; i++)
		if (errtab[i].err == err)
			return errtab[i].text;
	return strerror(err);
}

/* nil, "<context>: <text>", CODE */
static int push_err(lua_State *L, int err, const char *ctx)
{
	lua_pushnil(L);
	if (ctx)
		lua_pushfstring(L, "%s: %s", ctx, err_text(err));
	else
		lua_pushstring(L, err_text(err));
	lua_pushstring(L, err_name(err));
	return 3;
}

/* Handles are below 2^53: an integer where Lua has them, else exact doubles. */
static void push_handle(lua_State *L, uint64_t h)
{
#if LUA_VERSION_NUM >= 503
	lua_pushinteger(L, (lua_Integer)h);
#else
	lua_pushnumber(L, (lua_Number)h);
#endif
}

/* A submit refused: a bad address names itself; other errors need no context. */
static int push_submit_err(lua_State *L, int err, const char *addr)
{
	return push_err(L, err, err == EINVAL ? lua_pushfstring(L, "'%s'", addr) : NULL);
}

/* ---- tables <-> structs --------------------------------------------------- */

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

static void push_response(lua_State *L, const struct p0f_response *r)
{
	lua_createtable(L, 0, 22);
	set_str(L, "status", p0f_status_name(r->status));
	if (r->status != P0F_STATUS_OK)
		return;
	set_int(L, "first_seen", r->first_seen);
	set_int(L, "last_seen", r->last_seen);
	set_int(L, "total_conn", r->total_conn);
	set_int(L, "uptime_min", r->uptime_min);
	set_int(L, "up_mod_days", r->up_mod_days);
	set_int(L, "last_nat", r->last_nat);
	set_int(L, "last_chg", r->last_chg);
	if (r->distance != P0F_DIST_UNKNOWN)
		set_int(L, "distance", r->distance);
	set_int(L, "bad_sw", r->bad_sw);
	set_int(L, "os_match_q", r->os_match_q);
	set_str(L, "os_name", r->os_name);
	set_str(L, "os_flavor", r->os_flavor);
	set_str(L, "http_name", r->http_name);
	set_str(L, "http_flavor", r->http_flavor);
	set_str(L, "link_type", r->link_type);
	set_str(L, "language", r->language);
	if (r->os_flavor[0])
		lua_pushfstring(L, "%s %s", r->os_name, r->os_flavor);
	else
		lua_pushstring(L, r->os_name);
	lua_setfield(L, -2, "os");
	set_bool(L, "fuzzy", r->os_match_q & P0F_MATCH_FUZZY);
	set_bool(L, "generic", r->os_match_q & P0F_MATCH_GENERIC);
}

static lua_Number opt_num(lua_State *L, int t, const char *k, lua_Number def)
{
	lua_Number v = def;
	lua_getfield(L, t, k);
	if (!lua_isnil(L, -1)) {
		if (!lua_isnumber(L, -1))
			luaL_error(L, "bad field '%s' (number expected, got %s)", k, luaL_typename(L, -1));
		v = lua_tonumber(L, -1);
	}
	lua_pop(L, 1);
	return v;
}

/* An optional integer field in [lo, hi]: anything else (fractions, NaN,
 * out of range) raises, instead of an undefined C conversion. */
static lua_Number opt_int(lua_State *L, int t, const char *k, lua_Number def,
                          lua_Number lo, lua_Number hi)
{
	lua_Number v = opt_num(L, t, k, def);
	if (!(v >= lo && v <= hi) || v != (lua_Number)(long long)v) {
		char range[64]; /* lua_pushfstring has no precision: print it here */
		snprintf(range, sizeof range, "%.0f to %.0f", (double)lo, (double)hi);
		luaL_error(L, "bad field '%s' (integer from %s expected)", k, range);
	}
	return v;
}

#define U32_MAX_N 4294967295.0

/* Copy an optional string field into dst[size], truncated as the wire would. */
static void opt_str(lua_State *L, int t, const char *k, char *dst, size_t size)
{
	size_t len = 0;
	const char *s;
	lua_getfield(L, t, k);
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "bad field '%s' (string expected, got %s)", k, luaL_typename(L, -1));
		s = lua_tolstring(L, -1, &len);
		if (len >= size)
			len = size - 1;
		memcpy(dst, s, len);
	}
	dst[len] = '\0';
	lua_pop(L, 1);
}

static uint32_t status_of(lua_State *L, int t)
{
	const char *s;
	uint32_t st = P0F_STATUS_OK;

	lua_getfield(L, t, "status");
	if (lua_type(L, -1) == LUA_TNUMBER) {
		lua_pop(L, 1);
		return (uint32_t)opt_int(L, t, "status", 0, 0, U32_MAX_N);
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
		return push_err(L, rc, lua_pushfstring(L, "'%s'", s));
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
		return push_err(L, EPROTO, "not a p0f v3 query");
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
		return push_err(L, EPROTO, "bad magic or status");
	push_response(L, &r);
	return 1;
}

static int l_encode_response(lua_State *L)
{
	struct p0f_response r;
	uint8_t out[P0F_RESP_LEN];

	luaL_checktype(L, 1, LUA_TTABLE);
	memset(&r, 0, sizeof r);
	r.status = status_of(L, 1);
	r.first_seen = (uint32_t)opt_int(L, 1, "first_seen", 0, 0, U32_MAX_N);
	r.last_seen = (uint32_t)opt_int(L, 1, "last_seen", 0, 0, U32_MAX_N);
	r.total_conn = (uint32_t)opt_int(L, 1, "total_conn", 0, 0, U32_MAX_N);
	r.uptime_min = (uint32_t)opt_int(L, 1, "uptime_min", 0, 0, U32_MAX_N);
	r.up_mod_days = (uint32_t)opt_int(L, 1, "up_mod_days", 0, 0, U32_MAX_N);
	r.last_nat = (uint32_t)opt_int(L, 1, "last_nat", 0, 0, U32_MAX_N);
	r.last_chg = (uint32_t)opt_int(L, 1, "last_chg", 0, 0, U32_MAX_N);
	r.distance = (int)opt_int(L, 1, "distance", -1, -1, 255);
	r.bad_sw = (uint8_t)opt_int(L, 1, "bad_sw", 0, 0, 255);
	r.os_match_q = (uint8_t)opt_int(L, 1, "os_match_q", 0, 0, 255);
	opt_str(L, 1, "os_name", r.os_name, sizeof r.os_name);
	opt_str(L, 1, "os_flavor", r.os_flavor, sizeof r.os_flavor);
	opt_str(L, 1, "http_name", r.http_name, sizeof r.http_name);
	opt_str(L, 1, "http_flavor", r.http_flavor, sizeof r.http_flavor);
	opt_str(L, 1, "link_type", r.link_type, sizeof r.link_type);
	opt_str(L, 1, "language", r.language, sizeof r.language);
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
		return push_err(L, EINVAL, lua_pushfstring(L, "'%s'", s));
	lua_pushstring(L, text);
	lua_pushinteger(L, a.family);
	lua_pushstring(L, p0f_scope_name(p0f_addr_scope(&a)));
	return 3;
}

/* ---- options -------------------------------------------------------------- */

static void bad_opt(lua_State *L, const char *k, const char *want)
{
	luaL_error(L, "bad option '%s' (%s expected, got %s)", k, want, luaL_typename(L, -1));
}

static double opt_seconds(lua_State *L, int t, const char *k, double def, int allow_zero)
{
	double v = def;
	if (lua_isnoneornil(L, t))
		return def;
	lua_getfield(L, t, k);
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TNUMBER)
			bad_opt(L, k, "number of seconds");
		v = lua_tonumber(L, -1);
		if (!(allow_zero ? v >= 0 : v > 0) || v > 86400.0 * 365)
			bad_opt(L, k, allow_zero ? "non-negative number" : "positive number");
	}
	lua_pop(L, 1);
	return v;
}

static const char *opt_socket(lua_State *L, int t)
{
	const char *s;
	lua_getfield(L, t, "socket");
	if (lua_type(L, -1) != LUA_TSTRING)
		bad_opt(L, "socket", "path string");
	s = lua_tostring(L, -1);
	lua_pop(L, 1); /* still referenced by the options table */
	return s;
}

static void client_opts(lua_State *L, int t, struct p0f_client_opts *o)
{
	memset(o, 0, sizeof *o);
	o->timeout = opt_seconds(L, t, "timeout", 5, 0);
	/* No zero: closing with replies owed can kill p0f (SIGPIPE). */
	o->drain = opt_seconds(L, t, "drain", 1, 0);
	o->backoff_max = opt_seconds(L, t, "backoff_max", 1, 0);
	lua_getfield(L, t, "max_inflight");
	if (!lua_isnil(L, -1)) {
		lua_Number n = lua_tonumber(L, -1);
		if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 65536) || n != (lua_Number)(unsigned)n)
			bad_opt(L, "max_inflight", "integer from 1 to 65536");
		o->max_inflight = (unsigned)n;
	}
	lua_pop(L, 1);
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
	timeout = opt_seconds(L, 3, "timeout", 5, 0);
	rc = p0f_query_once(path, addr, len, timeout, opt_seconds(L, 3, "drain", 0.5, 0), &res);
	if (rc == EINVAL)
		return push_err(L, rc, lua_pushfstring(L, "'%s'", addr));
	if (rc != 0)
		return push_err(L, rc, lua_pushfstring(L, "p0f at %s", path));
	push_response(L, &res.resp);
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
	lua_Number n = opt_num(L, t, k, -1);
	if (!(n >= 0 && n <= 65535) || n != (lua_Number)(int)n)
		luaL_error(L, "bad field '%s' (port number expected)", k);
	return (uint16_t)n;
}

static void check_v2_query(lua_State *L, int t, struct p0f2_query *q)
{
	luaL_checktype(L, t, LUA_TTABLE);
	memset(q, 0, sizeof *q);
	q->type = (uint8_t)opt_int(L, t, "type", 1, 0, 255);
	q->id = (uint32_t)opt_int(L, t, "id", 0x70304632, 0, U32_MAX_N);
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
		return push_err(L, EPROTO, "not a p0f v2 query");
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
	r.id = (uint32_t)opt_int(L, 1, "id", 0, 0, U32_MAX_N);
	opt_str(L, 1, "genre", r.genre, sizeof r.genre);
	opt_str(L, 1, "detail", r.detail, sizeof r.detail);
	r.dist = (int)opt_int(L, 1, "distance", -1, -1, 127);
	opt_str(L, 1, "link", r.link, sizeof r.link);
	opt_str(L, 1, "tos", r.tos, sizeof r.tos);
	lua_getfield(L, 1, "firewall");
	r.fw = (uint8_t)lua_toboolean(L, -1);
	lua_getfield(L, 1, "nat");
	r.nat = (uint8_t)lua_toboolean(L, -1);
	lua_getfield(L, 1, "real");
	r.real = (uint8_t)lua_toboolean(L, -1);
	lua_pop(L, 3);
	r.score = (int16_t)opt_int(L, 1, "score", -100, -32768, 32767);
	r.mflags = (uint16_t)opt_int(L, 1, "mflags", 0, 0, 65535);
	r.uptime = (int32_t)opt_int(L, 1, "uptime_hours", -1, -1, 2147483647.0);
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
	rc = p0f2_query_once(path, &q, opt_seconds(L, 3, "timeout", 5, 0), &r);
	if (rc != 0)
		return push_err(L, rc, lua_pushfstring(L, "p0f v2 at %s", path));
	push_v2(L, &r);
	return 1;
}

/* Registry references: every object that Lua values must outlive (its
 * callbacks, its loop, itself while work is in flight) holds them here. */
static int reg_ref(lua_State *L, int idx)
{
	lua_pushvalue(L, idx);
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void reg_unref(lua_State *L, int *ref)
{
	if (*ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, *ref);
		*ref = LUA_NOREF;
	}
}

/* ---- shared helpers for the objects --------------------------------------- */

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods)
{
	luaL_newmetatable(L, name);
	p0f_setfuncs(L, methods, 0);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "__index");
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);
}

static const char *events_str(int ev)
{
	switch (ev & (P0F_EV_READ | P0F_EV_WRITE)) {
	case P0F_EV_READ: return "r";
	case P0F_EV_WRITE: return "w";
	case P0F_EV_READ | P0F_EV_WRITE: return "rw";
	}
	return NULL;
}

/* Push a finished query the Lua way: result, or nil, message, code. */
static int push_result(lua_State *L, const struct p0f_result *r, const char *path)
{
	if (r->err != 0) {
		/* exactly 3 values: callers pass them on as call arguments */
		push_err(L, r->err, lua_pushfstring(L, "p0f at %s", path));
		lua_remove(L, -4);
		return 3;
	}
	push_response(L, &r->resp);
	return 1;
}

/* ---- p0f.client: the pollable object --------------------------------------- */

struct lclient {
	struct p0f_client *c;
	char path[108];
};

static struct lclient *check_client(lua_State *L)
{
	struct lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);
	if (lc->c == NULL)
		luaL_error(L, "attempt to use a closed p0f client");
	return lc;
}

static uint64_t check_handle(lua_State *L, int i)
{
	lua_Number n = luaL_checknumber(L, i);
	if (!(n >= 1) || n > 9007199254740992.0)
		luaL_argerror(L, i, "query handle expected");
	return (uint64_t)n;
}

static int l_client(lua_State *L)
{
	struct p0f_client_opts o;
	struct lclient *lc;
	const char *path;

	luaL_checktype(L, 1, LUA_TTABLE);
	path = opt_socket(L, 1);
	client_opts(L, 1, &o);
	/* Userdata first, so the C resource is never lost to an allocation error. */
	lc = lua_newuserdata(L, sizeof *lc);
	lc->c = NULL;
	luaL_getmetatable(L, CLIENT_MT);
	lua_setmetatable(L, -2);
	if (strlen(path) >= sizeof lc->path)
		return push_err(L, ENAMETOOLONG, path);
	strcpy(lc->path, path);
	if ((lc->c = p0f_client_new(path, &o)) == NULL)
		return push_err(L, errno, path);
	return 1;
}

static int l_client_submit(lua_State *L)
{
	struct lclient *lc = check_client(L);
	size_t len;
	const char *addr = luaL_checklstring(L, 2, &len);
	uint64_t h;
	int rc = p0f_client_submit(lc->c, addr, len, &h);

	if (rc != 0)
		return push_submit_err(L, rc, addr);
	push_handle(L, h);
	return 1;
}

static int l_client_step(lua_State *L)
{
	struct lclient *lc = check_client(L);
	p0f_client_step(lc->c);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_client_pollfd(lua_State *L)
{
	struct lclient *lc = check_client(L);
	int fd = p0f_client_pollfd(lc->c);
	if (fd < 0)
		lua_pushnil(L);
	else
		lua_pushinteger(L, fd);
	return 1;
}

static int l_client_events(lua_State *L)
{
	struct lclient *lc = check_client(L);
	const char *s = events_str(p0f_client_events(lc->c));
	if (s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
	return 1;
}

static int l_client_timeout(lua_State *L)
{
	struct lclient *lc = check_client(L);
	double t = p0f_client_timeout(lc->c);
	if (t < 0)
		lua_pushnil(L);
	else
		lua_pushnumber(L, t);
	return 1;
}

static int l_client_fetch(lua_State *L)
{
	struct lclient *lc = check_client(L);
	struct p0f_result r;
	int rc = p0f_client_fetch(lc->c, check_handle(L, 2), &r);

	if (rc < 0)
		return luaL_argerror(L, 2, "unknown or already fetched query handle");
	if (rc == 0)
		return push_err(L, EAGAIN, NULL);
	return push_result(L, &r, lc->path);
}

static int l_client_cancel(lua_State *L)
{
	struct lclient *lc = check_client(L);
	p0f_client_cancel(lc->c, check_handle(L, 2));
	return 0;
}

/* Submit and wait (poll) on the persistent connection: one-at-a-time use
 * without an event loop, and without a connection per query. */
static int l_client_query(lua_State *L)
{
	struct lclient *lc = check_client(L);
	size_t len;
	const char *addr = luaL_checklstring(L, 2, &len);
	struct p0f_result r;
	uint64_t h;
	int rc = p0f_client_submit(lc->c, addr, len, &h);

	if (rc != 0)
		return push_submit_err(L, rc, addr);
	p0f_client_await(lc->c, h, &r);
	return push_result(L, &r, lc->path);
}

static int l_client_pending(lua_State *L)
{
	struct lclient *lc = check_client(L);
	lua_pushinteger(L, (lua_Integer)p0f_client_pending(lc->c));
	return 1;
}

static int l_client_connected(lua_State *L)
{
	struct lclient *lc = check_client(L);
	lua_pushboolean(L, p0f_client_connected(lc->c));
	return 1;
}

static int l_client_close(lua_State *L)
{
	struct lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);
	if (lc->c) {
		p0f_client_free(lc->c); /* drains owed replies first */
		lc->c = NULL;
	}
	return 0;
}

static int l_client_tostring(lua_State *L)
{
	struct lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);
	if (lc->c == NULL)
		lua_pushfstring(L, "p0f.client (closed)");
	else
		lua_pushfstring(L, "p0f.client (%s, %s, %d pending)", lc->path,
		                p0f_client_connected(lc->c) ? "connected" : "not connected",
		                (int)p0f_client_pending(lc->c));
	return 1;
}

static const luaL_Reg client_methods[] = {
	{ "submit", l_client_submit },
	{ "step", l_client_step },
	{ "pollfd", l_client_pollfd },
	{ "events", l_client_events },
	{ "timeout", l_client_timeout },
	{ "fetch", l_client_fetch },
	{ "cancel", l_client_cancel },
	{ "query", l_client_query },
	{ "pending", l_client_pending },
	{ "connected", l_client_connected },
	{ "close", l_client_close },
	{ "__gc", l_client_close },
	{ "__close", l_client_close },
	{ "__tostring", l_client_tostring },
	{ NULL, NULL }
};

/* ---- p0f.loop and its clients: the libev driver ---------------------------- */

struct levclient;

struct lloop {
	struct ev_loop *loop;
	int is_default;
	lua_State *L;              /* the thread inside run(), for callbacks */
	struct levclient *clients; /* to detach them if the loop goes first */
};

struct levclient {
	struct p0f_ev e;
	struct p0f_client *c;
	struct lloop *lp;
	struct levclient *next;
	int loop_ref, cbs_ref, self_ref, onerr_ref;
	char path[108];
};

static struct lloop *check_loop(lua_State *L, int i)
{
	struct lloop *lp = luaL_checkudata(L, i, LOOP_MT);
	if (lp->loop == NULL)
		luaL_error(L, "attempt to use a closed p0f loop");
	return lp;
}

static struct levclient *check_evclient(lua_State *L)
{
	struct levclient *ec = luaL_checkudata(L, 1, EVCLIENT_MT);
	if (ec->c == NULL || ec->lp == NULL)
		luaL_error(L, "attempt to use a closed p0f client");
	return ec;
}

static int l_loop(lua_State *L)
{
	const char *which = luaL_optstring(L, 1, "new");
	struct lloop *lp = lua_newuserdata(L, sizeof *lp);

	memset(lp, 0, sizeof *lp);
	luaL_getmetatable(L, LOOP_MT);
	lua_setmetatable(L, -2);
	if (strcmp(which, "default") == 0) {
		lp->loop = ev_default_loop(0);
		lp->is_default = 1;
	} else if (strcmp(which, "new") == 0) {
		lp->loop = ev_loop_new(EVFLAG_AUTO);
	} else {
		return luaL_argerror(L, 1, "\"new\" or \"default\" expected");
	}
	if (lp->loop == NULL)
		return luaL_error(L, "libev could not create a loop");
	return 1;
}

static void report_error(lua_State *L, struct levclient *ec)
{
	/* message on top */
	if (ec->onerr_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, ec->onerr_ref);
		lua_insert(L, -2);
		if (lua_pcall(L, 1, 0, 0) == LUA_OK)
			return;
	}
	fprintf(stderr, "p0f: error in query callback: %s\n",
	        lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
	lua_pop(L, 1);
}

struct delivery {
	struct levclient *ec;
	uint64_t handle;
	const struct p0f_result *res;
};

/*
 * The callbacks of queries in flight live in the array part of a table:
 * [2k+1] the callback, [2k+2] its handle, where k is the record index in the
 * low 24 bits of the handle (p0f_client.c: generation << 24 | index), unique
 * among live queries. Keyed by whole handles, which never repeat, the table
 * lived in its hash part, and with a steady number of queries in flight
 * (a power of two, such as the default 64) every insertion into the full
 * hash part rehashed the whole table.
 */
static int cb_slot(uint64_t h)
{
	return (int)(h & 0xFFFFFFu) * 2 + 1;
}

/* Whether the callback slot at the top of the stack belongs to `h`. */
static int slot_owned_by(lua_State *L, uint64_t h)
{
	return lua_type(L, -1) == LUA_TNUMBER && (uint64_t)lua_tonumber(L, -1) == h;
}

static void slot_clear(lua_State *L, int t, uint64_t h)
{
	lua_pushnil(L);
	lua_rawseti(L, t, cb_slot(h));
	lua_pushnil(L);
	lua_rawseti(L, t, cb_slot(h) + 1);
}

/* Runs under lua_pcall: look up the callback and call it, protected. */
static int deliver_one(lua_State *L)
{
	struct delivery *d = lua_touserdata(L, 1);
	struct levclient *ec = d->ec;
	int nres, t;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ec->cbs_ref);
	t = lua_gettop(L);
	lua_rawgeti(L, t, cb_slot(d->handle) + 1);
	if (!slot_owned_by(L, d->handle))
		return 0; /* cancelled */
	lua_rawgeti(L, t, cb_slot(d->handle));
	slot_clear(L, t, d->handle);
	nres = push_result(L, d->res, ec->path);
	if (lua_pcall(L, nres, 0, 0) != LUA_OK)
		report_error(L, ec);
	return 0;
}

static void on_done(struct p0f_ev *e, uint64_t handle, const struct p0f_result *res, void *ud)
{
	struct levclient *ec = ud;
	lua_State *L = ec->lp ? ec->lp->L : NULL;
	struct delivery d;

	(void)e;
	if (L == NULL)
		return;
	d.ec = ec;
	d.handle = handle;
	d.res = res;
	lua_pushcfunction(L, deliver_one);
	lua_pushlightuserdata(L, &d);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "p0f: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
		lua_pop(L, 1);
	}
}

/* Anchor the client while it owes callbacks; let go when it owes none. */
static void anchor(lua_State *L, struct levclient *ec, int idx)
{
	if (ec->self_ref == LUA_NOREF)
		ec->self_ref = reg_ref(L, idx);
}

static void unanchor_if_idle(lua_State *L, struct levclient *ec)
{
	if (ec->c == NULL || (p0f_client_pending(ec->c) == 0 && p0f_client_finished(ec->c) == 0))
		reg_unref(L, &ec->self_ref);
}

static void on_idle(struct p0f_ev *e, void *ud)
{
	struct levclient *ec = ud;
	(void)e;
	if (ec->lp && ec->lp->L)
		unanchor_if_idle(ec->lp->L, ec);
}

static int l_loop_client(lua_State *L)
{
	struct lloop *lp = check_loop(L, 1);
	struct p0f_client_opts o;
	struct levclient *ec;
	const char *path;

	luaL_checktype(L, 2, LUA_TTABLE);
	path = opt_socket(L, 2);
	client_opts(L, 2, &o);
	lua_getfield(L, 2, "on_error");
	if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
		bad_opt(L, "on_error", "function");
	lua_pop(L, 1);

	ec = lua_newuserdata(L, sizeof *ec);
	memset(ec, 0, sizeof *ec);
	ec->loop_ref = ec->cbs_ref = ec->self_ref = ec->onerr_ref = LUA_NOREF;
	luaL_getmetatable(L, EVCLIENT_MT);
	lua_setmetatable(L, -2);
	if (strlen(path) >= sizeof ec->path)
		return push_err(L, ENAMETOOLONG, path);
	strcpy(ec->path, path);
	lua_newtable(L);
	ec->cbs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ec->loop_ref = reg_ref(L, 1);
	lua_getfield(L, 2, "on_error");
	if (lua_isnil(L, -1))
		lua_pop(L, 1);
	else
		ec->onerr_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if ((ec->c = p0f_client_new(path, &o)) == NULL)
		return push_err(L, errno, path);
	ec->lp = lp;
	ec->next = lp->clients;
	lp->clients = ec;
	p0f_ev_init(&ec->e, lp->loop, ec->c, on_done, on_idle, ec);
	return 1;
}

static int l_evclient_query(lua_State *L)
{
	struct levclient *ec = check_evclient(L);
	size_t len;
	const char *addr = luaL_checklstring(L, 2, &len);
	uint64_t h;
	int rc;

	luaL_checktype(L, 3, LUA_TFUNCTION);
	rc = p0f_client_submit(ec->c, addr, len, &h);
	if (rc != 0)
		return push_submit_err(L, rc, addr);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ec->cbs_ref);
	lua_pushvalue(L, 3);
	lua_rawseti(L, -2, cb_slot(h));
	push_handle(L, h);
	lua_rawseti(L, -2, cb_slot(h) + 1);
	lua_pop(L, 1);
	anchor(L, ec, 1);
	p0f_ev_soon(&ec->e); /* callbacks only ever run from inside the loop */
	push_handle(L, h);
	return 1;
}

static int l_evclient_cancel(lua_State *L)
{
	struct levclient *ec = check_evclient(L);
	uint64_t h = check_handle(L, 2);

	/* Only a query still ours: a stale handle's slot may be reused. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, ec->cbs_ref);
	lua_rawgeti(L, -1, cb_slot(h) + 1);
	if (slot_owned_by(L, h)) {
		p0f_client_cancel(ec->c, h);
		slot_clear(L, lua_gettop(L) - 1, h);
	}
	lua_pop(L, 2);
	unanchor_if_idle(L, ec);
	return 0;
}

static int l_evclient_pending(lua_State *L)
{
	struct levclient *ec = check_evclient(L);
	lua_pushinteger(L, (lua_Integer)(p0f_client_pending(ec->c) + p0f_client_finished(ec->c)));
	return 1;
}

static void loop_unlink(struct levclient *ec)
{
	struct levclient **pp;
	if (ec->lp == NULL)
		return;
	for (pp = &ec->lp->clients; *pp; pp = &(*pp)->next)
		if (*pp == ec) {
			*pp = ec->next;
			break;
		}
	ec->lp = NULL;
}

/* Free every C resource; `L` may call callbacks (close) or not (gc). */
static void evclient_release(lua_State *L, struct levclient *ec, int call_back)
{
	uint64_t h;
	struct p0f_result r;

	if (ec->c == NULL)
		return;
	p0f_ev_detach(&ec->e);
	p0f_client_close(ec->c); /* pending -> ECANCELED, owed replies drained */
	while (p0f_client_next_done(ec->c, &h, &r)) {
		if (call_back && ec->cbs_ref != LUA_NOREF) {
			struct delivery d = { ec, h, &r };
			lua_pushcfunction(L, deliver_one);
			lua_pushlightuserdata(L, &d);
			if (lua_pcall(L, 1, 0, 0) != LUA_OK)
				lua_pop(L, 1);
		}
	}
	p0f_client_free(ec->c);
	ec->c = NULL;
	ec->e.client = NULL;
	loop_unlink(ec);
	reg_unref(L, &ec->cbs_ref);
	reg_unref(L, &ec->loop_ref);
	reg_unref(L, &ec->onerr_ref);
	reg_unref(L, &ec->self_ref);
}

static int l_evclient_close(lua_State *L)
{
	struct levclient *ec = luaL_checkudata(L, 1, EVCLIENT_MT);
	if (ec->c != NULL && ec->e.in_kick) {
		/* Closed from one of its own callbacks: the driver is still
		 * walking this object, so keep it alive until run() returns. */
		lua_getfield(L, LUA_REGISTRYINDEX, ZOMBIES);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushvalue(L, -1);
			lua_setfield(L, LUA_REGISTRYINDEX, ZOMBIES);
		}
		lua_pushvalue(L, 1);
		lua_pushboolean(L, 1);
		lua_rawset(L, -3);
		lua_pop(L, 1);
	}
	evclient_release(L, ec, 1);
	return 0;
}

static int l_evclient_gc(lua_State *L)
{
	struct levclient *ec = luaL_checkudata(L, 1, EVCLIENT_MT);
	evclient_release(L, ec, 0);
	return 0;
}

static int l_evclient_tostring(lua_State *L)
{
	struct levclient *ec = luaL_checkudata(L, 1, EVCLIENT_MT);
	if (ec->c == NULL)
		lua_pushstring(L, "p0f.evclient (closed)");
	else
		lua_pushfstring(L, "p0f.evclient (%s, %d pending)", ec->path,
		                (int)p0f_client_pending(ec->c));
	return 1;
}

static const luaL_Reg evclient_methods[] = {
	{ "query", l_evclient_query },
	{ "cancel", l_evclient_cancel },
	{ "pending", l_evclient_pending },
	{ "close", l_evclient_close },
	{ "__gc", l_evclient_gc },
	{ "__close", l_evclient_close },
	{ "__tostring", l_evclient_tostring },
	{ NULL, NULL }
};

static int run_loop(lua_State *L, int flags)
{
	struct lloop *lp = check_loop(L, 1);
	lua_State *saved = lp->L;
	int more;

	lp->L = L;
	more = ev_run(lp->loop, flags);
	lp->L = saved;
	if (saved == NULL) {
		lua_pushnil(L);
		lua_setfield(L, LUA_REGISTRYINDEX, ZOMBIES);
	}
	lua_pushboolean(L, more);
	return 1;
}

static int l_loop_run(lua_State *L) { return run_loop(L, 0); }
static int l_loop_run_once(lua_State *L) { return run_loop(L, EVRUN_ONCE); }
static int l_loop_run_nowait(lua_State *L) { return run_loop(L, EVRUN_NOWAIT); }

static int l_loop_now(lua_State *L)
{
	struct lloop *lp = check_loop(L, 1);
	lua_pushnumber(L, ev_now(lp->loop));
	return 1;
}

static int l_loop_close(lua_State *L)
{
	struct lloop *lp = luaL_checkudata(L, 1, LOOP_MT);

	if (lp->loop == NULL)
		return 0;
	while (lp->clients)
		evclient_release(L, lp->clients, 0);
	if (!lp->is_default)
		ev_loop_destroy(lp->loop);
	lp->loop = NULL;
	return 0;
}

static int l_loop_tostring(lua_State *L)
{
	struct lloop *lp = luaL_checkudata(L, 1, LOOP_MT);
	lua_pushfstring(L, "p0f.loop (%s)", lp->loop == NULL ? "closed"
	                : lp->is_default ? "default" : "own");
	return 1;
}

static const luaL_Reg loop_methods[] = {
	{ "client", l_loop_client },
	{ "run", l_loop_run },
	{ "run_once", l_loop_run_once },
	{ "run_nowait", l_loop_run_nowait },
	{ "now", l_loop_now },
	{ "close", l_loop_close },
	{ "__gc", l_loop_close },
	{ "__close", l_loop_close },
	{ "__tostring", l_loop_tostring },
	{ NULL, NULL }
};

/* ---- module ---------------------------------------------------------------- */

static const luaL_Reg core_funcs[] = {
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
	{ "client", l_client },
	{ "loop", l_loop },
	{ NULL, NULL }
};

static void server_open(lua_State *L); /* the server side, at the end */
__attribute__((visibility("default"))) int luaopen_p0f_core(lua_State *L);

int luaopen_p0f_core(lua_State *L)
{
	new_class(L, CLIENT_MT, client_methods);
	new_class(L, LOOP_MT, loop_methods);
	new_class(L, EVCLIENT_MT, evclient_methods);
	p0f_newlib(L, core_funcs);
	server_open(L);
	lua_pushinteger(L, P0F_RESP_LEN);
	lua_setfield(L, -2, "RESPONSE_SIZE");
	lua_pushinteger(L, P0F_QUERY_LEN);
	lua_setfield(L, -2, "QUERY_SIZE");
	lua_pushstring(L, "0.1.0");
	lua_setfield(L, -2, "_VERSION");
	return 1;
}

/* ==== server side: listeners, connections, timers, signals, Redis, syslog ===
 *
 * What a small daemon on the loop needs (p0f-policyd uses it; nothing here
 * knows about policies). Same rules as above: every callback runs under
 * lua_pcall from inside run(); an object with work in flight (an open
 * connection, an active timer, a listener, a Redis connection until its
 * close()) is anchored in the registry, so dropping the last Lua reference
 * never frees memory a watcher still points at.
 */
#include <signal.h>
#include <syslog.h>
#include <unistd.h>

#include "p0f_net.h"
#include "p0f_redis.h"

#define LISTENER_MT "p0f.listener"
#define CONN_MT "p0f.conn"
#define TIMER_MT "p0f.timer"
#define SIGNAL_MT "p0f.signal"
#define REDIS_MT "p0f.redis"

#define SRV_READ_MAX 16384
#define SRV_ACCEPT_BURST 32

/* Run body(L, ud) under lua_pcall; report an error that escapes it. */
typedef int (*srv_body_fn)(lua_State *L, void *ud);
struct srv_call {
	srv_body_fn fn;
	void *ud;
};

static int srv_trampoline(lua_State *L)
{
	struct srv_call *c = lua_touserdata(L, 1);
	lua_settop(L, 0);
	return c->fn(L, c->ud);
}

static void srv_protected(lua_State *L, srv_body_fn fn, void *ud)
{
	struct srv_call c;
	if (L == NULL)
		return;
	c.fn = fn;
	c.ud = ud;
	lua_pushcfunction(L, srv_trampoline);
	lua_pushlightuserdata(L, &c);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "p0f: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
		lua_pop(L, 1);
	}
}

/* The function and its nargs arguments are on the stack: call, report errors. */
static void srv_callback(lua_State *L, int nargs, const char *what)
{
	if (lua_pcall(L, nargs, 0, 0) != LUA_OK) {
		fprintf(stderr, "p0f: error in %s callback: %s\n", what,
		        lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
		lua_pop(L, 1);
	}
}


/* The loop is still there to stop watchers on (it may be closed first). */
static struct ev_loop *srv_evloop(struct lloop *lp)
{
	return lp ? lp->loop : NULL;
}

/* ---- connections ---------------------------------------------------------- */

struct lconn {
	struct lloop *lp;
	ev_io rio, wio;
	int fd, started, closing;
	char *out;
	size_t outlen, outoff, outcap;
	int loop_ref, self_ref, onread_ref, onclose_ref;
	char peer[64];
};

static void conn_stop_watchers(struct lconn *c)
{
	struct ev_loop *loop = srv_evloop(c->lp);
	if (loop) {
		ev_io_stop(loop, &c->rio);
		ev_io_stop(loop, &c->wio);
	}
}

/* Close the fd and let go of everything; the userdata stays valid (closed). */
static void conn_release(lua_State *L, struct lconn *c)
{
	if (c->fd < 0 && c->self_ref == LUA_NOREF)
		return;
	conn_stop_watchers(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = c->outcap = 0;
	reg_unref(L, &c->onread_ref);
	reg_unref(L, &c->onclose_ref);
	reg_unref(L, &c->loop_ref);
	reg_unref(L, &c->self_ref);
}

/* Write out what is buffered: 0, or an errno value. */
static int conn_flush(struct lconn *c)
{
	int err = 0;
	while (c->outoff < c->outlen) {
		ssize_t n = p0f_net_write(c->fd, c->out + c->outoff, c->outlen - c->outoff, &err);
		if (n < 0)
			return err;
		c->outoff += (size_t)n;
	}
	c->outoff = c->outlen = 0;
	return 0;
}

/* Peer gone or an error: release, then tell Lua (on_close(conn, msg, code)). */
static void conn_lost(lua_State *L, struct lconn *c, int err)
{
	int has_cb = c->onclose_ref != LUA_NOREF;
	if (has_cb)
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->onclose_ref);
	conn_release(L, c);
	if (!has_cb)
		return;
	lua_pushvalue(L, 1); /* the connection, kept on the body's stack */
	if (err == 0) {
		srv_callback(L, 1, "on_close");
	} else {
		lua_pushstring(L, err_text(err));
		lua_pushstring(L, err_name(err));
		srv_callback(L, 3, "on_close");
	}
}

static int conn_read_body(lua_State *L, void *ud)
{
	struct lconn *c = ud;
	char buf[SRV_READ_MAX];
	int err = 0;
	ssize_t n;

	if (c->self_ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->self_ref); /* index 1: alive while we work */
	n = p0f_net_read(c->fd, buf, sizeof buf, &err);
	if (n < 0 && err == EAGAIN)
		return 0;
	if (n > 0) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->onread_ref);
		lua_pushvalue(L, 1);
		lua_pushlstring(L, buf, (size_t)n);
		srv_callback(L, 2, "on_read");
		return 0;
	}
	conn_lost(L, c, n == 0 ? 0 : err);
	return 0;
}

static int conn_write_body(lua_State *L, void *ud)
{
	struct lconn *c = ud;
	int err;

	if (c->self_ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->self_ref);
	err = conn_flush(c);
	if (err == EAGAIN)
		return 0;
	ev_io_stop(c->lp->loop, &c->wio);
	if (err != 0) {
		conn_lost(L, c, err);
		return 0;
	}
	if (c->closing)
		conn_release(L, c);
	return 0;
}

static void on_conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct lconn *c = w->data;
	(void)loop;
	(void)revents;
	srv_protected(c->lp->L, conn_read_body, c);
}

static void on_conn_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct lconn *c = w->data;
	(void)loop;
	(void)revents;
	srv_protected(c->lp->L, conn_write_body, c);
}

static struct lconn *check_conn(lua_State *L)
{
	return luaL_checkudata(L, 1, CONN_MT);
}

/* conn:start(on_read, on_close): begin reading. */
static int l_conn_start(lua_State *L)
{
	struct lconn *c = check_conn(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TFUNCTION);
	if (c->fd < 0)
		return luaL_error(L, "attempt to use a closed connection");
	if (c->started)
		return luaL_error(L, "connection already started");
	c->started = 1;
	c->onread_ref = reg_ref(L, 2);
	if (!lua_isnoneornil(L, 3))
		c->onclose_ref = reg_ref(L, 3);
	if (srv_evloop(c->lp))
		ev_io_start(c->lp->loop, &c->rio);
	return 0;
}

/* conn:write(data) -> true | nil, message, code. What does not fit now is
 * buffered and written when the peer reads; a write error also shows up as
 * on_close on the read side. */
static int l_conn_write(lua_State *L)
{
	struct lconn *c = check_conn(L);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	int err = 0;

	if (c->fd < 0 || c->closing)
		return push_err(L, EPIPE, "connection closed");
	if (c->outlen == 0) {
		ssize_t n = p0f_net_write(c->fd, s, len, &err);
		if (n < 0 && err != EAGAIN)
			return push_err(L, err, c->peer);
		if (n > 0) {
			s += n;
			len -= (size_t)n;
		}
	}
	if (len > 0) {
		if (c->outoff > 0 && c->outoff == c->outlen)
			c->outoff = c->outlen = 0;
		if (c->outlen + len > c->outcap) {
			size_t cap = c->outcap ? c->outcap : 4096;
			char *p;
			while (cap < c->outlen + len)
				cap *= 2;
			if ((p = realloc(c->out, cap)) == NULL)
				return push_err(L, ENOMEM, c->peer);
			c->out = p;
			c->outcap = cap;
		}
		memcpy(c->out + c->outlen, s, len);
		c->outlen += len;
		if (srv_evloop(c->lp))
			ev_io_start(c->lp->loop, &c->wio);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* conn:close(): stop reading now; close once buffered output is written
 * (at once if there is none). on_close is not called for our own close. */
static int l_conn_close(lua_State *L)
{
	struct lconn *c = check_conn(L);
	if (c->fd < 0)
		return 0;
	if (c->outlen > c->outoff && srv_evloop(c->lp) && !c->closing) {
		c->closing = 1;
		ev_io_stop(c->lp->loop, &c->rio);
		reg_unref(L, &c->onread_ref);
		reg_unref(L, &c->onclose_ref);
		return 0;
	}
	conn_release(L, c);
	return 0;
}

static int l_conn_gc(lua_State *L)
{
	struct lconn *c = check_conn(L);
	conn_stop_watchers(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	return 0;
}

static int l_conn_peer(lua_State *L)
{
	lua_pushstring(L, check_conn(L)->peer);
	return 1;
}

static int l_conn_buffered(lua_State *L)
{
	struct lconn *c = check_conn(L);
	lua_pushinteger(L, (lua_Integer)(c->outlen - c->outoff));
	return 1;
}

static int l_conn_closed(lua_State *L)
{
	struct lconn *c = check_conn(L);
	lua_pushboolean(L, c->fd < 0 || c->closing);
	return 1;
}

static int l_conn_tostring(lua_State *L)
{
	struct lconn *c = check_conn(L);
	lua_pushfstring(L, "p0f.conn (%s, %s)", c->peer, c->fd < 0 ? "closed" : "open");
	return 1;
}

static const luaL_Reg conn_methods[] = {
	{ "start", l_conn_start },
	{ "write", l_conn_write },
	{ "close", l_conn_close },
	{ "peer", l_conn_peer },
	{ "buffered", l_conn_buffered },
	{ "closed", l_conn_closed },
	{ "__gc", l_conn_gc },
	{ "__close", l_conn_close },
	{ "__tostring", l_conn_tostring },
	{ NULL, NULL }
};

/* ---- listeners ------------------------------------------------------------- */

struct llistener {
	struct lloop *lp;
	ev_io io;
	ev_timer pause; /* out of descriptors: stop accepting for a moment */
	int fd;
	int loop_ref, self_ref, cb_ref;
	char addr[P0F_NET_ADDR_MAX];
};

static void listener_stop(struct llistener *ls)
{
	struct ev_loop *loop = srv_evloop(ls->lp);
	if (loop) {
		ev_io_stop(loop, &ls->io);
		ev_timer_stop(loop, &ls->pause);
	}
}

static void listener_release(lua_State *L, struct llistener *ls)
{
	listener_stop(ls);
	if (ls->fd >= 0)
		p0f_net_close_listener(ls->fd, ls->addr);
	ls->fd = -1;
	reg_unref(L, &ls->cb_ref);
	reg_unref(L, &ls->loop_ref);
	reg_unref(L, &ls->self_ref);
}

static int accept_body(lua_State *L, void *ud)
{
	struct llistener *ls = ud;
	int i, err = 0;

	if (ls->self_ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->self_ref); /* 1: the listener */
	for (i = 0; i < SRV_ACCEPT_BURST && ls->fd >= 0; i++) {
		/* The userdata first: an allocation error must not lose a descriptor. */
		struct lconn *c = lua_newuserdata(L, sizeof *c);
		memset(c, 0, sizeof *c);
		c->fd = -1;
		c->loop_ref = c->self_ref = c->onread_ref = c->onclose_ref = LUA_NOREF;
		luaL_getmetatable(L, CONN_MT);
		lua_setmetatable(L, -2);
		c->fd = p0f_net_accept(ls->fd, c->peer, sizeof c->peer, &err);
		if (c->fd < 0) {
			lua_pop(L, 1);
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
				fprintf(stderr, "p0f: accept on %s: %s; pausing\n", ls->addr, strerror(err));
				ev_io_stop(ls->lp->loop, &ls->io);
				ev_timer_set(&ls->pause, 0.5, 0.);
				ev_timer_start(ls->lp->loop, &ls->pause);
				break;
			}
			if (err == EAGAIN)
				break;
			continue; /* ECONNABORTED and friends: that one is gone */
		}
		c->lp = ls->lp;
		ev_io_init(&c->rio, on_conn_read, c->fd, EV_READ);
		ev_io_init(&c->wio, on_conn_write, c->fd, EV_WRITE);
		c->rio.data = c->wio.data = c;
		c->self_ref = reg_ref(L, -1);
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->loop_ref);
		c->loop_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->cb_ref);
		lua_pushvalue(L, -2);
		lua_pushstring(L, c->peer);
		srv_callback(L, 2, "on_accept");
		if (!c->started) /* nobody will read it */
			conn_release(L, c);
		lua_pop(L, 1);
	}
	return 0;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct llistener *ls = w->data;
	(void)loop;
	(void)revents;
	srv_protected(ls->lp->L, accept_body, ls);
}

static void on_accept_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct llistener *ls = w->data;
	(void)revents;
	if (ls->fd >= 0)
		ev_io_start(loop, &ls->io);
}

/* loop:listen(addr, on_accept [, {backlog=, mode=}]) -> listener | nil, msg, code
 * on_accept(conn, peer) must call conn:start(on_read, on_close) to keep it. */
static int l_loop_listen(lua_State *L)
{
	struct lloop *lp = check_loop(L, 1);
	const char *addr = luaL_checkstring(L, 2);
	struct llistener *ls;
	int err = 0, backlog = 128;
	unsigned mode = 0;

	luaL_checktype(L, 3, LUA_TFUNCTION);
	if (!lua_isnoneornil(L, 4)) {
		luaL_checktype(L, 4, LUA_TTABLE);
		backlog = (int)opt_num(L, 4, "backlog", 128);
		mode = (unsigned)opt_num(L, 4, "mode", 0);
	}
	if (strlen(addr) >= P0F_NET_ADDR_MAX)
		return push_err(L, ENAMETOOLONG, addr);
	ls = lua_newuserdata(L, sizeof *ls);
	memset(ls, 0, sizeof *ls);
	ls->fd = -1;
	ls->loop_ref = ls->self_ref = ls->cb_ref = LUA_NOREF;
	luaL_getmetatable(L, LISTENER_MT);
	lua_setmetatable(L, -2);
	strcpy(ls->addr, addr);
	ls->fd = p0f_net_listen(addr, backlog, mode, &err);
	if (ls->fd < 0) {
		if (err == EINVAL) {
			lua_pushnil(L);
			lua_pushfstring(L, "bad listen address '%s' (127.0.0.1:PORT, [::1]:PORT or unix:/path)", addr);
			lua_pushstring(L, "EINVAL");
			return 3;
		}
		lua_pushnil(L);
		lua_pushfstring(L, "listen on %s: %s", addr, strerror(err));
		lua_pushstring(L, err_name(err));
		return 3;
	}
	ls->lp = lp;
	ls->loop_ref = reg_ref(L, 1);
	ls->cb_ref = reg_ref(L, 3);
	ls->self_ref = reg_ref(L, -1);
	ev_io_init(&ls->io, on_accept, ls->fd, EV_READ);
	ev_timer_init(&ls->pause, on_accept_resume, 0., 0.);
	ls->io.data = ls->pause.data = ls;
	ev_io_start(lp->loop, &ls->io);
	return 1;
}

static struct llistener *check_listener(lua_State *L)
{
	return luaL_checkudata(L, 1, LISTENER_MT);
}

static int l_listener_close(lua_State *L)
{
	listener_release(L, check_listener(L));
	return 0;
}

static int l_listener_gc(lua_State *L)
{
	struct llistener *ls = check_listener(L);
	listener_stop(ls);
	if (ls->fd >= 0)
		p0f_net_close_listener(ls->fd, ls->addr);
	ls->fd = -1;
	return 0;
}

/* The TCP port actually bound (useful after listening on port 0). */
static int l_listener_port(lua_State *L)
{
	struct llistener *ls = check_listener(L);
	int port = ls->fd >= 0 ? p0f_net_local_port(ls->fd) : -1;
	if (port < 0)
		lua_pushnil(L);
	else
		lua_pushinteger(L, port);
	return 1;
}

static int l_listener_tostring(lua_State *L)
{
	struct llistener *ls = check_listener(L);
	lua_pushfstring(L, "p0f.listener (%s, %s)", ls->addr, ls->fd < 0 ? "closed" : "listening");
	return 1;
}

static const luaL_Reg listener_methods[] = {
	{ "close", l_listener_close },
	{ "port", l_listener_port },
	{ "__gc", l_listener_gc },
	{ "__close", l_listener_close },
	{ "__tostring", l_listener_tostring },
	{ NULL, NULL }
};

/* ---- timers ------------------------------------------------------------------ */

struct ltimer {
	struct lloop *lp;
	ev_timer t;
	double after, rep;
	int loop_ref, self_ref, cb_ref;
};

static int timer_body(lua_State *L, void *ud)
{
	struct ltimer *t = ud;
	if (t->self_ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref); /* 1: alive while we work */
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->cb_ref);
	lua_pushvalue(L, 1);
	srv_callback(L, 1, "timer");
	if (srv_evloop(t->lp) == NULL || !ev_is_active(&t->t))
		reg_unref(L, &t->self_ref); /* one-shot done (or stopped): not anchored any more */
	return 0;
}

static void on_timer_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ltimer *t = w->data;
	(void)loop;
	(void)revents;
	srv_protected(t->lp->L, timer_body, t);
}

static double check_seconds(lua_State *L, int i)
{
	double v = luaL_checknumber(L, i);
	if (!(v >= 0) || v > 86400.0 * 365)
		luaL_argerror(L, i, "non-negative number of seconds expected");
	return v;
}

/* loop:timer(after, cb [, repeat]) -> timer, started; cb(timer). */
static int l_loop_timer(lua_State *L)
{
	struct lloop *lp = check_loop(L, 1);
	double after = check_seconds(L, 2);
	double rep = lua_isnoneornil(L, 4) ? 0 : check_seconds(L, 4);
	struct ltimer *t;

	luaL_checktype(L, 3, LUA_TFUNCTION);
	t = lua_newuserdata(L, sizeof *t);
	memset(t, 0, sizeof *t);
	t->loop_ref = t->self_ref = t->cb_ref = LUA_NOREF;
	luaL_getmetatable(L, TIMER_MT);
	lua_setmetatable(L, -2);
	t->lp = lp;
	t->after = after;
	t->rep = rep;
	t->loop_ref = reg_ref(L, 1);
	t->cb_ref = reg_ref(L, 3);
	ev_timer_init(&t->t, on_timer_fire, after, rep);
	t->t.data = t;
	ev_timer_start(lp->loop, &t->t);
	t->self_ref = reg_ref(L, -1);
	return 1;
}

static struct ltimer *check_timer(lua_State *L)
{
	return luaL_checkudata(L, 1, TIMER_MT);
}

static int l_timer_stop(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	if (srv_evloop(t->lp))
		ev_timer_stop(t->lp->loop, &t->t);
	reg_unref(L, &t->self_ref);
	return 0;
}

/* timer:again([after]): (re)start, `after` seconds from now. */
static int l_timer_again(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	if (t->cb_ref == LUA_NOREF || srv_evloop(t->lp) == NULL)
		return luaL_error(L, "attempt to use a closed timer");
	if (!lua_isnoneornil(L, 2))
		t->after = check_seconds(L, 2);
	ev_timer_stop(t->lp->loop, &t->t);
	ev_timer_set(&t->t, t->after, t->rep);
	ev_timer_start(t->lp->loop, &t->t);
	if (t->self_ref == LUA_NOREF)
		t->self_ref = reg_ref(L, 1);
	return 0;
}

static int l_timer_active(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	lua_pushboolean(L, srv_evloop(t->lp) != NULL && ev_is_active(&t->t));
	return 1;
}

static int l_timer_close(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	if (srv_evloop(t->lp))
		ev_timer_stop(t->lp->loop, &t->t);
	reg_unref(L, &t->self_ref);
	reg_unref(L, &t->cb_ref);
	reg_unref(L, &t->loop_ref);
	return 0;
}

static int l_timer_gc(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	if (srv_evloop(t->lp))
		ev_timer_stop(t->lp->loop, &t->t);
	return 0;
}

static const luaL_Reg timer_methods[] = {
	{ "stop", l_timer_stop },
	{ "again", l_timer_again },
	{ "active", l_timer_active },
	{ "close", l_timer_close },
	{ "__gc", l_timer_gc },
	{ "__close", l_timer_close },
	{ NULL, NULL }
};

/* ---- signals (default loop only: libev lets one loop own signals) --------- */

struct lsignal {
	struct lloop *lp;
	ev_signal w;
	int loop_ref, self_ref, cb_ref;
};

static const struct {
	const char *name;
	int sig;
} sigtab[] = {
	{ "TERM", SIGTERM }, { "INT", SIGINT }, { "HUP", SIGHUP },
	{ "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
};

static int check_signum(lua_State *L, int i)
{
	size_t k;
	const char *s;
	if (lua_type(L, i) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, i);
		if (n < 1 || n > 64)
			luaL_argerror(L, i, "signal number expected");
		return (int)n;
	}
	s = luaL_checkstring(L, i);
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (k = 0; k < sizeof sigtab / sizeof sigtab[0]; k++)
		if (strcmp(s, sigtab[k].name) == 0)
			return sigtab[k].sig;
	luaL_argerror(L, i, "TERM, INT, HUP, QUIT, USR1, USR2 or a number expected");
	return 0;
}

static int signal_body(lua_State *L, void *ud)
{
	struct lsignal *s = ud;
	if (s->self_ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->cb_ref);
	lua_pushvalue(L, 1);
	lua_pushinteger(L, s->w.signum);
	srv_callback(L, 2, "signal");
	return 0;
}

static void on_signal_fire(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct lsignal *s = w->data;
	(void)loop;
	(void)revents;
	srv_protected(s->lp->L, signal_body, s);
}

/* loop:signal(sig, cb) -> watcher; cb(watcher, signum). */
static int l_loop_signal(lua_State *L)
{
	struct lloop *lp = check_loop(L, 1);
	int sig = check_signum(L, 2);
	struct lsignal *s;

	luaL_checktype(L, 3, LUA_TFUNCTION);
	if (!lp->is_default)
		return luaL_argerror(L, 1, "signals need the default loop (p0f.loop(\"default\"))");
	s = lua_newuserdata(L, sizeof *s);
	memset(s, 0, sizeof *s);
	s->loop_ref = s->self_ref = s->cb_ref = LUA_NOREF;
	luaL_getmetatable(L, SIGNAL_MT);
	lua_setmetatable(L, -2);
	s->lp = lp;
	s->loop_ref = reg_ref(L, 1);
	s->cb_ref = reg_ref(L, 3);
	ev_signal_init(&s->w, on_signal_fire, sig);
	s->w.data = s;
	ev_signal_start(lp->loop, &s->w);
	s->self_ref = reg_ref(L, -1);
	return 1;
}

static struct lsignal *check_signal_w(lua_State *L)
{
	return luaL_checkudata(L, 1, SIGNAL_MT);
}

static int l_signal_stop(lua_State *L)
{
	struct lsignal *s = check_signal_w(L);
	if (srv_evloop(s->lp))
		ev_signal_stop(s->lp->loop, &s->w);
	reg_unref(L, &s->self_ref);
	reg_unref(L, &s->cb_ref);
	reg_unref(L, &s->loop_ref);
	return 0;
}

static int l_signal_gc(lua_State *L)
{
	struct lsignal *s = check_signal_w(L);
	if (srv_evloop(s->lp))
		ev_signal_stop(s->lp->loop, &s->w);
	return 0;
}

static const luaL_Reg signal_methods[] = {
	{ "stop", l_signal_stop },
	{ "close", l_signal_stop },
	{ "__gc", l_signal_gc },
	{ "__close", l_signal_stop },
	{ NULL, NULL }
};

/* loop:stop(): make run() return after the current callbacks. */
static int l_loop_stop(lua_State *L)
{
	struct lloop *lp = check_loop(L, 1);
	ev_break(lp->loop, EVBREAK_ALL);
	return 0;
}

/* ---- Redis ------------------------------------------------------------------- */

struct lredis {
	struct lloop *lp;
	struct p0f_redis *r;
	lua_State *closing_L; /* set while close() fails the pending commands */
	int loop_ref, self_ref;
	char where[280];
};

struct lredis_cmd {
	struct lredis *lr;
	int cb_ref;
};

struct redis_delivery {
	struct lredis_cmd *cmd;
	const redisReply *reply;
	int err;
	const char *errstr;
};

static void push_redis_reply(lua_State *L, const redisReply *r, int depth)
{
	size_t i;
	luaL_checkstack(L, 4, "redis reply too deep");
	switch (r->type) {
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR:
		lua_pushlstring(L, r->str, (size_t)r->len);
		break;
	case REDIS_REPLY_INTEGER:
		lua_pushnumber(L, (lua_Number)r->integer);
		break;
	case REDIS_REPLY_ARRAY:
		if (depth > 8) {
			lua_pushboolean(L, 0);
			break;
		}
		lua_createtable(L, (int)r->elements, 0);
		for (i = 0; i < r->elements; i++) {
			if (r->element[i]->type == REDIS_REPLY_NIL)
				lua_pushboolean(L, 0); /* no holes in the array */
			else
				push_redis_reply(L, r->element[i], depth + 1);
			lua_rawseti(L, -2, (int)i + 1);
		}
		break;
	default:
		lua_pushnil(L);
	}
}

static int redis_deliver_body(lua_State *L, void *ud)
{
	struct redis_delivery *d = ud;
	lua_rawgeti(L, LUA_REGISTRYINDEX, d->cmd->cb_ref);
	if (d->err != 0) {
		lua_pushfstring(L, "redis at %s: %s", d->cmd->lr->where,
		                d->errstr ? d->errstr : err_text(d->err));
		lua_pushnil(L);
		lua_pushstring(L, err_name(d->err));
		srv_callback(L, 3, "redis");
	} else if (d->reply->type == REDIS_REPLY_ERROR) {
		lua_pushfstring(L, "redis at %s: %s", d->cmd->lr->where, d->reply->str);
		lua_pushnil(L);
		lua_pushstring(L, "EREDIS");
		srv_callback(L, 3, "redis");
	} else {
		lua_pushnil(L);
		push_redis_reply(L, d->reply, 0);
		srv_callback(L, 2, "redis");
	}
	return 0;
}

static void redis_done(void *ud, const redisReply *reply, int err, const char *errstr)
{
	struct lredis_cmd *cmd = ud;
	struct lredis *lr = cmd->lr;
	lua_State *L = lr->closing_L ? lr->closing_L : (lr->lp ? lr->lp->L : NULL);
	struct redis_delivery d;

	d.cmd = cmd;
	d.reply = reply;
	d.err = err;
	d.errstr = errstr;
	if (L) {
		srv_protected(L, redis_deliver_body, &d);
		reg_unref(L, &cmd->cb_ref);
	}
	free(cmd);
}

/* loop:redis{host=, port=, timeout=, backoff=} -> redis. Nothing is
 * connected until the first command; it lives until :close(). */
static int l_loop_redis(lua_State *L)
{
	struct lloop *lp = check_loop(L, 1);
	struct p0f_redis_opts o;
	struct lredis *lr;
	const char *host = "127.0.0.1";

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_getfield(L, 2, "host");
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TSTRING)
			bad_opt(L, "host", "string");
		host = lua_tostring(L, -1);
	}
	memset(&o, 0, sizeof o);
	o.host = host;
	o.port = (int)opt_num(L, 2, "port", 6379);
	if (o.port < 1 || o.port > 65535)
		luaL_error(L, "bad option 'port' (1 to 65535 expected)");
	o.timeout = opt_seconds(L, 2, "timeout", 1, 0);
	o.backoff = opt_seconds(L, 2, "backoff", 1, 0);
	lr = lua_newuserdata(L, sizeof *lr);
	memset(lr, 0, sizeof *lr);
	lr->loop_ref = lr->self_ref = LUA_NOREF;
	luaL_getmetatable(L, REDIS_MT);
	lua_setmetatable(L, -2);
	if (host[0] == '/' || strncmp(host, "unix:", 5) == 0)
		snprintf(lr->where, sizeof lr->where, "%s", host);
	else
		snprintf(lr->where, sizeof lr->where, "%s:%d", host, o.port);
	if ((lr->r = p0f_redis_new(lp->loop, &o)) == NULL)
		return push_err(L, errno, host);
	lr->lp = lp;
	lr->loop_ref = reg_ref(L, 1);
	lr->self_ref = reg_ref(L, -1);
	return 1;
}

static struct lredis *check_redis(lua_State *L)
{
	struct lredis *lr = luaL_checkudata(L, 1, REDIS_MT);
	if (lr->r == NULL)
		luaL_error(L, "attempt to use a closed redis connection");
	return lr;
}

/* redis:command({ "SET", k, v, "EX", ttl }, function(err, reply, code) end)
 * The callback always runs later, from the loop, exactly once. */
static int l_redis_command(lua_State *L)
{
	struct lredis *lr = check_redis(L);
	const char *argv[64];
	size_t lens[64];
	int argc, i, rc;
	struct lredis_cmd *cmd;

	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_checktype(L, 3, LUA_TFUNCTION);
	argc = (int)p0f_rawlen(L, 2);
	if (argc < 1 || argc > 64)
		return luaL_argerror(L, 2, "1 to 64 command arguments expected");
	luaL_checkstack(L, argc + 4, "too many redis arguments");
	for (i = 0; i < argc; i++) {
		lua_rawgeti(L, 2, i + 1);
		if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
			return luaL_argerror(L, 2, "strings and numbers expected");
		argv[i] = lua_tolstring(L, -1, &lens[i]); /* stays on the stack */
	}
	cmd = malloc(sizeof *cmd);
	if (cmd == NULL)
		return luaL_error(L, "out of memory");
	cmd->lr = lr;
	cmd->cb_ref = reg_ref(L, 3);
	rc = p0f_redis_command(lr->r, argc, argv, lens, redis_done, cmd);
	if (rc != 0) {
		reg_unref(L, &cmd->cb_ref);
		free(cmd);
		return luaL_error(L, "out of memory");
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_redis_pending(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)p0f_redis_pending(check_redis(L)->r));
	return 1;
}

static int l_redis_connected(lua_State *L)
{
	lua_pushboolean(L, p0f_redis_connected(check_redis(L)->r));
	return 1;
}

/* Pending commands get their callbacks now, with ECANCELED. */
static int l_redis_close(lua_State *L)
{
	struct lredis *lr = luaL_checkudata(L, 1, REDIS_MT);
	if (lr->r == NULL)
		return 0;
	lr->closing_L = L;
	p0f_redis_free(lr->r);
	lr->r = NULL;
	lr->closing_L = NULL;
	reg_unref(L, &lr->loop_ref);
	reg_unref(L, &lr->self_ref);
	return 0;
}

/* Only reached once close() let go (or at exit): nothing left to call back. */
static int l_redis_gc(lua_State *L)
{
	struct lredis *lr = luaL_checkudata(L, 1, REDIS_MT);
	if (lr->r != NULL && srv_evloop(lr->lp) != NULL) {
		lr->closing_L = NULL;
		lr->lp = NULL; /* callbacks see no Lua state: they only free */
		p0f_redis_free(lr->r);
	}
	lr->r = NULL;
	return 0;
}

static int l_redis_tostring(lua_State *L)
{
	struct lredis *lr = luaL_checkudata(L, 1, REDIS_MT);
	lua_pushfstring(L, "p0f.redis (%s, %s)", lr->where, lr->r == NULL ? "closed"
	                : p0f_redis_connected(lr->r) ? "connected" : "not connected");
	return 1;
}

static const luaL_Reg redis_methods[] = {
	{ "command", l_redis_command },
	{ "pending", l_redis_pending },
	{ "connected", l_redis_connected },
	{ "close", l_redis_close },
	{ "__gc", l_redis_gc },
	{ "__close", l_redis_close },
	{ "__tostring", l_redis_tostring },
	{ NULL, NULL }
};

/* ---- syslog ---------------------------------------------------------------------- */

/* openlog() keeps the ident pointer: this buffer is the one piece of static
 * state in the module, as the syslog connection is process-wide anyway. */
static char syslog_ident[64];

static const struct {
	const char *name;
	int value;
} syslog_names[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
}, syslog_levels[] = {
	{ "err", LOG_ERR }, { "error", LOG_ERR }, { "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE }, { "info", LOG_INFO }, { "debug", LOG_DEBUG },
};

static int syslog_lookup(lua_State *L, int i, int which)
{
	const char *s = luaL_checkstring(L, i);
	size_t k, n = which ? sizeof syslog_levels / sizeof syslog_levels[0]
	                    : sizeof syslog_names / sizeof syslog_names[0];
	for (k = 0; k < n; k++) {
		const char *name = which ? syslog_levels[k].name : syslog_names[k].name;
		if (strcmp(s, name) == 0)
			return which ? syslog_levels[k].value : syslog_names[k].value;
	}
	return luaL_argerror(L, i, which ? "err, warning, notice, info or debug expected"
	                                 : "mail, daemon, user or local0..local7 expected");
}

/* p0f.core.syslog_open(ident, facility) */
static int l_syslog_open(lua_State *L)
{
	const char *ident = luaL_checkstring(L, 1);
	int fac = syslog_lookup(L, 2, 0);
	snprintf(syslog_ident, sizeof syslog_ident, "%s", ident);
	openlog(syslog_ident, LOG_PID | LOG_NDELAY, fac);
	return 0;
}

/* p0f.core.syslog(level, message) */
static int l_syslog(lua_State *L)
{
	int level = syslog_lookup(L, 1, 1);
	syslog(level, "%s", luaL_checkstring(L, 2));
	return 0;
}

/* ---- registration ------------------------------------------------------------- */

static const luaL_Reg server_loop_methods[] = {
	{ "listen", l_loop_listen },
	{ "timer", l_loop_timer },
	{ "signal", l_loop_signal },
	{ "redis", l_loop_redis },
	{ "stop", l_loop_stop },
	{ NULL, NULL }
};

static const luaL_Reg server_funcs[] = {
	{ "syslog_open", l_syslog_open },
	{ "syslog", l_syslog },
	{ NULL, NULL }
};

/* Called from luaopen_p0f_core with the module table on top. */
static void server_open(lua_State *L)
{
	new_class(L, LISTENER_MT, listener_methods);
	new_class(L, CONN_MT, conn_methods);
	new_class(L, TIMER_MT, timer_methods);
	new_class(L, SIGNAL_MT, signal_methods);
	new_class(L, REDIS_MT, redis_methods);
	luaL_getmetatable(L, LOOP_MT);
	p0f_setfuncs(L, server_loop_methods, 0);
	lua_pop(L, 1);
	p0f_setfuncs(L, server_funcs, 0);
}
/* ==== end of the server side ==================================================== */
