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
	if (lp->loop == NULL)
		luaL_error(L, "attempt to use a closed p0f loop");
	return lp;
}

/* Open p0f.loop objects on libev's default loop (it is one per process). */
static int default_users;

static void loop_release(lua_State *L, struct lhandle *h, int closing)
{
	struct lloop *lp = (struct lloop *)h;

	(void)closing;
	if (lp->loop == NULL)
		return;
	lp0f_loop_release_clients(L, lp);
	/* The default loop too, once no open p0f.loop uses it: its watchers
	 * go with it (a later p0f.loop("default") starts afresh) and libev's
	 * memory is released. */
	if (!lp->is_default || --default_users == 0)
		ev_loop_destroy(lp->loop);
	lp->loop = NULL;
}

static const struct lhandle_class loop_class = { LP0F_LOOP_MT, loop_release };

/* p0f.loop([ "new" | "default" ]) */
static int l_loop(lua_State *L)
{
	const char *which = luaL_optstring(L, 1, "new");
	struct lloop *lp = lp0f_handle_new(L, sizeof *lp, &loop_class, NULL, 0);

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
	return 1;
}

static int run_loop(lua_State *L, int flags)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	lua_State *saved = lp->L;
	int more;

	lp->L = L;
	more = ev_run(lp->loop, flags);
	lp->L = saved;
	if (saved == NULL) {
		lua_pushnil(L);
		lua_setfield(L, LUA_REGISTRYINDEX, LP0F_ZOMBIES);
	}
	lua_pushboolean(L, more);
	return 1;
}

static int l_loop_run(lua_State *L) { return run_loop(L, 0); }
static int l_loop_run_once(lua_State *L) { return run_loop(L, EVRUN_ONCE); }
static int l_loop_run_nowait(lua_State *L) { return run_loop(L, EVRUN_NOWAIT); }

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

static int l_loop_tostring(lua_State *L)
{
	struct lloop *lp = luaL_checkudata(L, 1, LP0F_LOOP_MT);
	lua_pushfstring(L, "p0f.loop (%s)", lp->loop == NULL ? "closed"
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
	{ "close", l_loop_close },
	{ "__gc", l_loop_close },
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
