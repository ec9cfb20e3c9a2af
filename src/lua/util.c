/*
 * util.c: errors, option readers, range-checked numbers, registry
 * references and class creation, for every binding file (see lp0f.h).
 * Every double -> integer conversion in the binding goes through a check
 * here first: a cast of NaN or of an out-of-range value is undefined.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lp0f.h"

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
	{ EADDRINUSE, "EADDRINUSE", "address already in use" },
	{ EADDRNOTAVAIL, "EADDRNOTAVAIL", "address not available" },
	{ ENFILE, "ENFILE", "too many open files in the system" },
	{ EHOSTUNREACH, "EHOSTUNREACH", "host unreachable" },
	{ ENETUNREACH, "ENETUNREACH", "network unreachable" },
};

const char *lp0f_err_name(int err)
{
	size_t i;
	for (i = 0; i < sizeof errtab / sizeof errtab[0]; i++)
		if (errtab[i].err == err)
			return errtab[i].name;
	return "EIO";
}

const char *lp0f_err_text(int err)
{
	size_t i;
	for (i = 0; i < sizeof errtab / sizeof errtab[0]; i++)
		if (errtab[i].err == err)
			return errtab[i].text;
	return strerror(err);
}

int lp0f_push_err(lua_State *L, int err, const char *ctx)
{
	lua_pushnil(L);
	if (ctx)
		lua_pushfstring(L, "%s: %s", ctx, lp0f_err_text(err));
	else
		lua_pushstring(L, lp0f_err_text(err));
	lua_pushstring(L, lp0f_err_name(err));
	return 3;
}

int lp0f_push_submit_err(lua_State *L, int err, const char *addr)
{
	return lp0f_push_err(L, err, err == EINVAL ? lua_pushfstring(L, "'%s'", addr) : NULL);
}

/* ---- numbers -------------------------------------------------------------- */

int lp0f_is_int(double v, double lo, double hi)
{
	/* The range test first: it is false for NaN, and it makes the cast defined. */
	return v >= lo && v <= hi && v == (double)(long long)v;
}

/* "1 to 65535": lua_pushfstring has no precision, so print it here. */
static const char *range_text(char *buf, size_t size, double lo, double hi)
{
	snprintf(buf, size, "%.0f to %.0f", lo, hi);
	return buf;
}

lua_Integer lp0f_check_int(lua_State *L, int i, double lo, double hi)
{
	double v = (double)luaL_checknumber(L, i);
	char range[64], msg[96];
	if (!lp0f_is_int(v, lo, hi)) {
		snprintf(msg, sizeof msg, "integer from %s expected",
		         range_text(range, sizeof range, lo, hi));
		luaL_argerror(L, i, msg);
	}
	return (lua_Integer)v;
}

/* The one seconds check: in (0 or more, a year]; false for NaN. */
static int seconds_ok(double v, int allow_zero)
{
	return (allow_zero ? v >= 0 : v > 0) && v <= LP0F_MAX_SECONDS;
}

double lp0f_check_seconds(lua_State *L, int i)
{
	double v = (double)luaL_checknumber(L, i);
	if (!seconds_ok(v, 1))
		luaL_argerror(L, i, "non-negative number of seconds expected");
	return v;
}

/* ---- table fields ------------------------------------------------------------ */

lua_Number lp0f_opt_num(lua_State *L, int t, const char *k, lua_Number def)
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

lua_Number lp0f_opt_int(lua_State *L, int t, const char *k, lua_Number def,
                        lua_Number lo, lua_Number hi)
{
	lua_Number v = lp0f_opt_num(L, t, k, def);
	char range[64];
	if (!lp0f_is_int((double)v, (double)lo, (double)hi))
		luaL_error(L, "bad field '%s' (integer from %s expected)", k,
		           range_text(range, sizeof range, (double)lo, (double)hi));
	return v;
}

void lp0f_opt_str(lua_State *L, int t, const char *k, char *dst, size_t size)
{
	size_t len = 0;
	const char *s;
	lua_getfield(L, t, k);
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "bad field '%s' (string expected, got %s)", k, luaL_typename(L, -1));
		s = lua_tolstring(L, -1, &len);
		if (len >= size)
			len = size - 1; /* truncated as the wire would */
		memcpy(dst, s, len);
	}
	dst[len] = '\0';
	lua_pop(L, 1);
}

/* ---- options ---------------------------------------------------------------- */

void lp0f_bad_opt(lua_State *L, const char *k, const char *want)
{
	luaL_error(L, "bad option '%s' (%s expected, got %s)", k, want, luaL_typename(L, -1));
}

void lp0f_check_opt_fn(lua_State *L, int t, const char *k)
{
	if (lua_isnoneornil(L, t))
		return;
	lua_getfield(L, t, k);
	if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
		lp0f_bad_opt(L, k, "function");
	lua_pop(L, 1);
}

int lp0f_opt_fn_ref(lua_State *L, int t, const char *k)
{
	if (lua_isnoneornil(L, t))
		return LUA_NOREF;
	lua_getfield(L, t, k);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return LUA_NOREF;
	}
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

double lp0f_opt_seconds(lua_State *L, int t, const char *k, double def)
{
	double v = def;
	if (lua_isnoneornil(L, t))
		return def;
	lua_getfield(L, t, k);
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TNUMBER)
			lp0f_bad_opt(L, k, "number of seconds");
		v = (double)lua_tonumber(L, -1);
		/* A timeout of zero would fail every query, a drain of zero can
		 * kill p0f (SIGPIPE): options are positive. */
		if (!seconds_ok(v, 0))
			lp0f_bad_opt(L, k, "positive number");
	}
	lua_pop(L, 1);
	return v;
}

long lp0f_opt_range(lua_State *L, int t, const char *k, long def, long lo, long hi)
{
	double v = (double)def;
	char range[64], want[96];
	lua_getfield(L, t, k);
	if (!lua_isnil(L, -1)) {
		v = (double)lua_tonumber(L, -1);
		if (lua_type(L, -1) != LUA_TNUMBER || !lp0f_is_int(v, (double)lo, (double)hi)) {
			snprintf(want, sizeof want, "integer from %s",
			         range_text(range, sizeof range, (double)lo, (double)hi));
			lp0f_bad_opt(L, k, want);
		}
	}
	lua_pop(L, 1);
	return (long)v;
}

const char *lp0f_opt_socket(lua_State *L, int t)
{
	const char *s;
	lua_getfield(L, t, "socket");
	if (lua_type(L, -1) != LUA_TSTRING)
		lp0f_bad_opt(L, "socket", "path string");
	s = lua_tostring(L, -1);
	lua_pop(L, 1); /* still referenced by the options table */
	return s;
}

void lp0f_client_opts(lua_State *L, int t, struct p0f_client_opts *o)
{
	memset(o, 0, sizeof *o);
	o->timeout = lp0f_opt_seconds(L, t, "timeout", 5);
	o->drain = lp0f_opt_seconds(L, t, "drain", 1);
	o->backoff_max = lp0f_opt_seconds(L, t, "backoff_max", 1);
	o->max_inflight = (unsigned)lp0f_opt_range(L, t, "max_inflight", 0, 1, 65536);
}

/* ---- query handles ------------------------------------------------------------ */

/* Handles are below 2^53: an integer where Lua has them, else exact doubles. */
void lp0f_push_handle(lua_State *L, uint64_t h)
{
#if LUA_VERSION_NUM >= 503
	lua_pushinteger(L, (lua_Integer)h);
#else
	lua_pushnumber(L, (lua_Number)h);
#endif
}

uint64_t lp0f_check_handle(lua_State *L, int i)
{
	lua_Number n = luaL_checknumber(L, i);
	if (!(n >= 1) || n > 9007199254740992.0)
		luaL_argerror(L, i, "query handle expected");
	return (uint64_t)n;
}

/* ---- registry references and classes ------------------------------------------ */

/* Every object that Lua values must outlive (its callbacks, its loop,
 * itself while work is in flight) holds references here. */
int lp0f_ref(lua_State *L, int idx)
{
	lua_pushvalue(L, idx);
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

void lp0f_unref(lua_State *L, int *ref)
{
	if (*ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, *ref);
		*ref = LUA_NOREF;
	}
}

void lp0f_new_class(lua_State *L, const char *name, const luaL_Reg *methods)
{
	luaL_newmetatable(L, name);
	p0f_setfuncs(L, methods, 0);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "__index");
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);
}
