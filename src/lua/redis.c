/*
 * redis.c: p0f.redis, loop:redis{host=, port=, timeout=, backoff=, on_drop=},
 * an asynchronous Redis connection (p0f_redis, hiredis) on the loop. Nothing
 * is connected until the first command; it lives (anchored) until close().
 * h.cb_ref: on_drop(message, code), told why the connection went down.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "p0f_redis.h"

struct lredis {
	struct lhandle h;
	struct p0f_redis *r;
	lua_State *closing_L; /* set while release fails the pending commands */
	int quiet;            /* ... without calling them (from __gc) */
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

/* From close() (its own or its loop's): pending commands get their
 * callbacks now, with ECANCELED. From __gc (only once close() let go, or
 * when the Lua state closes): nothing is called back. The loop's close
 * releases this first, so the loop is always there for hiredis' watchers. */
static void redis_release(lua_State *L, struct lhandle *h, int closing)
{
	struct lredis *lr = (struct lredis *)h;
	struct p0f_redis *r = lr->r;

	if (r == NULL)
		return;
	lr->r = NULL; /* closed for the callbacks that run now */
	lr->closing_L = L;
	lr->quiet = !closing;
	p0f_redis_free(r);
	lr->closing_L = NULL;
}
static const struct lhandle_class redis_class = { LP0F_REDIS_MT, redis_release };

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
		if (depth > 8 || r->elements > 0x7fffffff) {
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

/* callback(err, reply, code): (nil, reply) or (message, nil, CODE). */
static int redis_deliver_body(lua_State *L, void *ud)
{
	struct redis_delivery *d = ud;
	lua_rawgeti(L, LUA_REGISTRYINDEX, d->cmd->cb_ref);
	if (d->err != 0) {
		lua_pushfstring(L, "redis at %s: %s", d->cmd->lr->where,
		                d->errstr ? d->errstr : lp0f_err_text(d->err));
		lua_pushnil(L);
		lua_pushstring(L, lp0f_err_name(d->err));
		lp0f_callback(L, 3, "redis");
	} else if (d->reply->type == REDIS_REPLY_ERROR) {
		lua_pushfstring(L, "redis at %s: %s", d->cmd->lr->where, d->reply->str);
		lua_pushnil(L);
		lua_pushstring(L, "EREDIS");
		lp0f_callback(L, 3, "redis");
	} else {
		lua_pushnil(L);
		push_redis_reply(L, d->reply, 0);
		lp0f_callback(L, 2, "redis");
	}
	return 0;
}

struct drop_report {
	struct lredis *lr;
	int err;
	const char *errstr;
};

static int redis_drop_body(lua_State *L, void *ud)
{
	struct drop_report *d = ud;
	lua_rawgeti(L, LUA_REGISTRYINDEX, d->lr->h.cb_ref);
	lua_pushfstring(L, "redis at %s: %s", d->lr->where,
	                d->errstr ? d->errstr : lp0f_err_text(d->err));
	lua_pushstring(L, lp0f_err_name(d->err));
	lp0f_callback(L, 2, "redis on_drop");
	return 0;
}

/* Not after close() (p0f_redis reports nothing then) nor after __gc (no
 * Lua state left to call). */
static void redis_dropped(void *ud, int err, const char *errstr)
{
	struct lredis *lr = ud;
	struct drop_report d;

	if (lr->h.lp == NULL || lr->h.cb_ref == LUA_NOREF)
		return;
	d.lr = lr;
	d.err = err;
	d.errstr = errstr;
	lp0f_protected(lr->h.lp->L, redis_drop_body, &d);
}

static void redis_done(void *ud, const redisReply *reply, int err, const char *errstr)
{
	struct lredis_cmd *cmd = ud;
	struct lredis *lr = cmd->lr;
	lua_State *L = lr->closing_L ? lr->closing_L : (lr->h.lp ? lr->h.lp->L : NULL);
	struct redis_delivery d;

	d.cmd = cmd;
	d.reply = reply;
	d.err = err;
	d.errstr = errstr;
	if (L) {
		if (!(lr->closing_L && lr->quiet))
			lp0f_protected(L, redis_deliver_body, &d);
		lp0f_unref(L, &cmd->cb_ref);
	}
	free(cmd);
}

int lp0f_loop_redis(lua_State *L)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	struct p0f_redis_opts o;
	struct lredis *lr;
	const char *host = "127.0.0.1";

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_getfield(L, 2, "host");
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TSTRING)
			lp0f_bad_opt(L, "host", "string");
		host = lua_tostring(L, -1);
	}
	memset(&o, 0, sizeof o);
	o.host = host;
	o.port = (int)lp0f_opt_range(L, 2, "port", 6379, 1, 65535);
	o.timeout = lp0f_opt_seconds(L, 2, "timeout", 1);
	o.backoff = lp0f_opt_seconds(L, 2, "backoff", 1);
	lp0f_check_opt_fn(L, 2, "on_drop");
	lr = lp0f_handle_new(L, sizeof *lr, &redis_class, NULL, 0);
	lr->h.cb_ref = lp0f_opt_fn_ref(L, 2, "on_drop");
	o.on_drop = redis_dropped;
	o.drop_ud = lr;
	if (host[0] == '/' || strncmp(host, "unix:", 5) == 0)
		snprintf(lr->where, sizeof lr->where, "%s", host);
	else
		snprintf(lr->where, sizeof lr->where, "%s:%d", host, o.port);
	if ((lr->r = p0f_redis_new(lp->loop, &o)) == NULL)
		return lp0f_push_err(L, errno, host);
	lp0f_handle_attach(L, &lr->h, lp, 1);
	lr->h.self_ref = lp0f_ref(L, -1);
	return 1;
}

static struct lredis *check_redis(lua_State *L)
{
	struct lredis *lr = luaL_checkudata(L, 1, LP0F_REDIS_MT);
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
	size_t lens[64], n;
	int argc, i, rc;
	struct lredis_cmd *cmd;

	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_checktype(L, 3, LUA_TFUNCTION);
	n = (size_t)p0f_rawlen(L, 2);
	if (n < 1 || n > 64)
		return luaL_argerror(L, 2, "1 to 64 command arguments expected");
	argc = (int)n;
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
	cmd->cb_ref = lp0f_ref(L, 3);
	rc = p0f_redis_command(lr->r, argc, argv, lens, redis_done, cmd);
	if (rc != 0) {
		lp0f_unref(L, &cmd->cb_ref);
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

static int l_redis_close(lua_State *L)
{
	return lp0f_handle_close(L, &redis_class);
}

static int l_redis_gc(lua_State *L)
{
	return lp0f_handle_gc(L, &redis_class);
}

static int l_redis_tostring(lua_State *L)
{
	struct lredis *lr = luaL_checkudata(L, 1, LP0F_REDIS_MT);
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

void lp0f_open_redis(lua_State *L)
{
	lp0f_new_class(L, LP0F_REDIS_MT, redis_methods);
}
