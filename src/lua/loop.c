/*
 * loop.c: p0f.loop, a libev loop, and luaopen_p0f_ev, the module it lives
 * in (loaded by p0f.loop on first use, so a program that never runs a
 * loop loads no libev). The objects on the loop each have their own file:
 * loop_client.c, listener.c, conn.c, timer.c, signal.c, redis.c.
 */
#include <string.h>

#include "handle.h"

struct lloop *lp0f_check_loop(lua_State *L, int i)
{
	struct lloop *lp = luaL_checkudata(L, i, LP0F_LOOP_MT);
	if (lp->closed)
		luaL_error(L, "attempt to use a closed p0f loop");
	return lp;
}

/* Open p0f.loop objects on libev's default loop (it is one per process). */
static int default_users;

/* Destroy the libev loop; the default one too, once no open p0f.loop uses
 * it: its watchers go with it (a later p0f.loop("default") starts afresh)
 * and libev's memory is released. */
static void let_go(struct lloop *lp)
{
	if (lp->loop == NULL)
		return;
	if (!lp->is_default || --default_users == 0)
		ev_loop_destroy(lp->loop);
	lp->loop = NULL;
}

/* Release every object on the loop (from close(): they are closed as by
 * their own close(), callbacks of what is owed included), then the loop.
 * Inside run() libev is still walking the loop: it stops, and is destroyed
 * when the outermost run() returns. */
static void loop_release(lua_State *L, struct lhandle *h, int closing)
{
	struct lloop *lp = (struct lloop *)h;

	if (lp->closed)
		return;
	lp->closed = 1; /* first: nothing new attaches while we release */
	while (lp->handles)
		lp0f_handle_release(L, lp->handles, closing);
	if (lp->depth > 0) {
		ev_break(lp->loop, EVBREAK_ALL);
		return;
	}
	lp0f_unref(L, &lp->keep_ref);
	let_go(lp);
}

static const struct lhandle_class loop_class = { LP0F_LOOP_MT, loop_release };

/* p0f.loop([ "new" | "default" ]) */
static int l_loop(lua_State *L)
{
	const char *which = luaL_optstring(L, 1, "new");
	struct lloop *lp = lp0f_handle_new(L, sizeof *lp, &loop_class, NULL, 0);

	lp->keep_ref = LUA_NOREF;
	lp->closed = 1; /* until it has a libev loop */
	if (strcmp(which, "default") == 0) {
		lp->loop = ev_default_loop(0);
		lp->is_default = lp->loop != NULL;
		default_users += lp->is_default;
	} else if (strcmp(which, "new") == 0) {
		lp->loop = ev_loop_new(EVFLAG_AUTO);
	} else {
		return luaL_argerror(L, 1, "\"new\" or \"default\" expected");
	}
	if (lp->loop == NULL)
		return luaL_error(L, "libev could not create a loop");
	lp->closed = 0;
	return 1;
}

static int run_loop(lua_State *L, int flags)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	lua_State *saved = lp->L;
	int more, handler;

	handler = lp0f_use_handler(L, lp); /* this loop's while it runs */
	lp->L = L;
	lp->depth++;
	more = ev_run(lp->loop, flags);
	lp->depth--;
	lp->L = saved;
	lp0f_restore_handler(L, handler);
	if (lp->depth == 0) {
		lp0f_unref(L, &lp->keep_ref);
		if (lp->closed) { /* closed from one of its callbacks */
			let_go(lp);
			more = 0;
		}
	}
	lua_pushboolean(L, more);
	return 1;
}

static int l_loop_run(lua_State *L) { return run_loop(L, 0); }
static int l_loop_run_once(lua_State *L) { return run_loop(L, EVRUN_ONCE); }
static int l_loop_run_nowait(lua_State *L) { return run_loop(L, EVRUN_NOWAIT); }

/* loop:on_error(fn | nil): errors raised by callbacks on this loop (and
 * not caught by a handler of their own, such as a client's on_error) go to
 * fn(message) instead of stderr. */
static int l_loop_on_error(lua_State *L)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	if (!lua_isnil(L, 2))
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lp0f_unref(L, &lp->h.cb_ref);
	if (!lua_isnil(L, 2))
		lp->h.cb_ref = lp0f_ref(L, 2);
	if (lp->depth > 0) { /* inside run(): from now on */
		lua_pushvalue(L, 2);
		lua_setfield(L, LUA_REGISTRYINDEX, LP0F_ON_ERROR);
	}
	return 0;
}

static int l_loop_now(lua_State *L)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	lua_pushnumber(L, ev_now(lp->loop));
	return 1;
}

/* loop:stop(): make run() return after the current callbacks. */
static int l_loop_stop(lua_State *L)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	ev_break(lp->loop, EVBREAK_ALL);
	return 0;
}

static int l_loop_close(lua_State *L)
{
	return lp0f_handle_close(L, &loop_class);
}

static int l_loop_gc(lua_State *L)
{
	return lp0f_handle_gc(L, &loop_class);
}

static int l_loop_tostring(lua_State *L)
{
	struct lloop *lp = luaL_checkudata(L, 1, LP0F_LOOP_MT);
	lua_pushfstring(L, "p0f.loop (%s)", lp->closed ? "closed"
	                : lp->is_default ? "default" : "own");
	return 1;
}

static const luaL_Reg loop_methods[] = {
	{ "client", lp0f_loop_client },
	{ "listen", lp0f_loop_listen },
	{ "timer", lp0f_loop_timer },
	{ "signal", lp0f_loop_signal },
	{ "redis", lp0f_loop_redis },
	{ "run", l_loop_run },
	{ "run_once", l_loop_run_once },
	{ "run_nowait", l_loop_run_nowait },
	{ "now", l_loop_now },
	{ "stop", l_loop_stop },
	{ "on_error", l_loop_on_error },
	{ "close", l_loop_close },
	{ "__gc", l_loop_gc },
	{ "__close", l_loop_close },
	{ "__tostring", l_loop_tostring },
	{ NULL, NULL }
};

__attribute__((visibility("default"))) int luaopen_p0f_ev(lua_State *L);

int luaopen_p0f_ev(lua_State *L)
{
	lp0f_new_class(L, LP0F_LOOP_MT, loop_methods);
	lp0f_open_loop_client(L);
	lp0f_open_listener(L);
	lp0f_open_conn(L);
	lp0f_open_timer(L);
	lp0f_open_signal(L);
	lp0f_open_redis(L);
	lua_newtable(L);
	lua_pushcfunction(L, l_loop);
	lua_setfield(L, -2, "loop");
	return 1;
}
