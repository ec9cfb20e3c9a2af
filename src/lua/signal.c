/*
 * signal.c: p0f.signal, loop:signal(sig, cb) -> watcher; cb(watcher, signum).
 * Default loop only: libev lets one loop own the signals. Anchored until
 * stopped.
 */
#include <signal.h>
#include <string.h>

#include "handle.h"

/* h.cb_ref: the callback. */
struct lsignal {
	struct lhandle h;
	ev_signal w;
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
		/* The range test first: false for NaN, and it makes the cast defined. */
		if (!lp0f_is_int((double)lua_tonumber(L, i), 1, 64))
			luaL_argerror(L, i, "signal number expected (1 to 64)");
		return (int)lua_tonumber(L, i);
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

static void signal_release(lua_State *L, struct lhandle *h, int closing)
{
	struct ev_loop *loop = lp0f_handle_evloop(h);
	(void)L;
	(void)closing;
	if (loop)
		ev_signal_stop(loop, &((struct lsignal *)h)->w);
}

static const struct lhandle_class signal_class = { LP0F_SIGNAL_MT, signal_release };

static int signal_body(lua_State *L, void *ud)
{
	struct lsignal *s = ud;
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->h.cb_ref);
	lua_pushvalue(L, 1);
	lua_pushinteger(L, s->w.signum);
	lp0f_callback(L, 2, "signal");
	return 0;
}

static void on_signal_fire(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	lp0f_handle_fire(w->data, signal_body);
}

int lp0f_loop_signal(lua_State *L)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	int sig = check_signum(L, 2);
	struct lsignal *s;

	luaL_checktype(L, 3, LUA_TFUNCTION);
	if (!lp->is_default)
		return luaL_argerror(L, 1, "signals need the default loop (p0f.loop(\"default\"))");
	s = lp0f_handle_new(L, sizeof *s, &signal_class, lp, 1);
	s->h.cb_ref = lp0f_ref(L, 3);
	ev_signal_init(&s->w, on_signal_fire, sig);
	s->w.data = s;
	ev_signal_start(lp->loop, &s->w);
	s->h.self_ref = lp0f_ref(L, -1);
	return 1;
}

static int l_signal_stop(lua_State *L)
{
	return lp0f_handle_close(L, &signal_class);
}

static int l_signal_gc(lua_State *L)
{
	return lp0f_handle_gc(L, &signal_class);
}

static int l_signal_tostring(lua_State *L)
{
	struct lsignal *s = (struct lsignal *)lp0f_handle_check(L, 1, &signal_class);
	if (s->h.cb_ref == LUA_NOREF)
		lua_pushstring(L, "p0f.signal (closed)");
	else
		lua_pushfstring(L, "p0f.signal (%d)", s->w.signum);
	return 1;
}

static const luaL_Reg signal_methods[] = {
	{ "__tostring", l_signal_tostring },
	{ "stop", l_signal_stop },
	{ "close", l_signal_stop },
	{ "__gc", l_signal_gc },
	{ "__close", l_signal_stop },
	{ NULL, NULL }
};

void lp0f_open_signal(lua_State *L)
{
	lp0f_new_class(L, LP0F_SIGNAL_MT, signal_methods);
}
