/*
 * timer.c: p0f.timer, loop:timer(after, cb [, repeat]) -> timer, started;
 * cb(timer). Anchored while active: a one-shot timer lets go once fired.
 */
#include "handle.h"

/* h.cb_ref: the callback. */
struct ltimer {
	struct lhandle h;
	ev_timer t;
	double after, rep;
};

static void timer_release(lua_State *L, struct lhandle *h, int closing)
{
	struct ev_loop *loop = lp0f_handle_evloop(h);
	(void)L;
	(void)closing;
	if (loop)
		ev_timer_stop(loop, &((struct ltimer *)h)->t);
}

static const struct lhandle_class timer_class = { LP0F_TIMER_MT, timer_release };

static int timer_body(lua_State *L, void *ud)
{
	struct ltimer *t = ud;
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->h.cb_ref);
	lua_pushvalue(L, 1);
	lp0f_callback(L, 1, "timer");
	if (lp0f_handle_evloop(&t->h) == NULL || !ev_is_active(&t->t))
		lp0f_unref(L, &t->h.self_ref); /* one-shot done (or stopped): not anchored any more */
	return 0;
}

static void on_timer_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	lp0f_handle_fire(w->data, timer_body);
}

int lp0f_loop_timer(lua_State *L)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	double after = lp0f_check_seconds(L, 2);
	double rep = lua_isnoneornil(L, 4) ? 0 : lp0f_check_seconds(L, 4);
	struct ltimer *t;

	luaL_checktype(L, 3, LUA_TFUNCTION);
	t = lp0f_handle_new(L, sizeof *t, &timer_class, lp, 1);
	t->after = after;
	t->rep = rep;
	t->h.cb_ref = lp0f_ref(L, 3);
	ev_timer_init(&t->t, on_timer_fire, after, rep);
	t->t.data = t;
	ev_timer_start(lp->loop, &t->t);
	t->h.self_ref = lp0f_ref(L, -1);
	return 1;
}

static struct ltimer *check_timer(lua_State *L)
{
	return (struct ltimer *)lp0f_handle_check(L, 1, &timer_class);
}

/* timer:stop(): no more calls until again(); the callback is kept. */
static int l_timer_stop(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	timer_release(L, &t->h, 0);
	lp0f_unref(L, &t->h.self_ref);
	return 0;
}

/* timer:again([after]): (re)start, `after` seconds from now. */
static int l_timer_again(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	if (t->h.cb_ref == LUA_NOREF || lp0f_handle_evloop(&t->h) == NULL)
		return luaL_error(L, "attempt to use a closed timer");
	if (!lua_isnoneornil(L, 2))
		t->after = lp0f_check_seconds(L, 2);
	ev_timer_stop(t->h.lp->loop, &t->t);
	ev_timer_set(&t->t, t->after, t->rep);
	ev_timer_start(t->h.lp->loop, &t->t);
	lp0f_handle_anchor(L, &t->h, 1);
	return 0;
}

static int l_timer_active(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	lua_pushboolean(L, lp0f_handle_evloop(&t->h) != NULL && ev_is_active(&t->t));
	return 1;
}

static int l_timer_close(lua_State *L)
{
	return lp0f_handle_close(L, &timer_class);
}

static int l_timer_gc(lua_State *L)
{
	return lp0f_handle_gc(L, &timer_class);
}

static int l_timer_tostring(lua_State *L)
{
	struct ltimer *t = check_timer(L);
	lua_pushfstring(L, "p0f.timer (%s)", t->h.cb_ref == LUA_NOREF ? "closed"
	                : lp0f_handle_evloop(&t->h) != NULL && ev_is_active(&t->t) ? "active" : "stopped");
	return 1;
}

static const luaL_Reg timer_methods[] = {
	{ "__tostring", l_timer_tostring },
	{ "stop", l_timer_stop },
	{ "again", l_timer_again },
	{ "active", l_timer_active },
	{ "close", l_timer_close },
	{ "__gc", l_timer_gc },
	{ "__close", l_timer_close },
	{ NULL, NULL }
};

void lp0f_open_timer(lua_State *L)
{
	lp0f_new_class(L, LP0F_TIMER_MT, timer_methods);
}
