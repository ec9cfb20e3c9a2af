/*
 * loop_client.c: loop:client{}, a p0f client driven by the libev loop
 * (p0f_ev): loop client:query(addr, cb) calls cb(result) or cb(nil, msg,
 * code) later, from inside run(), exactly once unless cancelled.
 */
#include <errno.h>
#include <string.h>

#include "handle.h"
#include "p0f_ev.h"

/* h.cb_ref: the callbacks of the queries in flight; h.cb2_ref: on_error. */
struct levclient {
	struct lhandle h;
	struct p0f_ev e;
	struct p0f_client *c;
	char path[108];
};

static void evclient_release(lua_State *L, struct lhandle *h, int closing);
static const struct lhandle_class evclient_class = { LP0F_EVCLIENT_MT, evclient_release };

static struct levclient *check_evclient(lua_State *L)
{
	struct levclient *ec = luaL_checkudata(L, 1, LP0F_EVCLIENT_MT);
	if (ec->c == NULL || ec->h.lp == NULL)
		luaL_error(L, "attempt to use a closed p0f client");
	return ec;
}

/* A callback raised (message on top): its on_error handler, else stderr. */
static void report_error(lua_State *L, struct levclient *ec)
{
	if (ec->h.cb2_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, ec->h.cb2_ref);
		lua_insert(L, -2);
		if (lua_pcall(L, 1, 0, 0) == LUA_OK)
			return;
	}
	lp0f_report(L, "query");
}

/*
 * The callbacks of queries in flight live in the array part of a table:
 * [2k+1] the callback, [2k+2] its handle, where k is the handle's slot
 * (p0f_client_handle_slot), unique among live queries. Keyed by whole
 * handles, which never repeat, the table lived in its hash part, and with
 * a steady number of queries in flight (a power of two, such as the
 * default 64) every insertion into the full hash part rehashed the table.
 */
static int cb_slot(uint64_t h)
{
	return (int)p0f_client_handle_slot(h) * 2 + 1;
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

struct delivery {
	struct levclient *ec;
	uint64_t handle;
	const struct p0f_result *res;
};

/* Under lp0f_protected: look up the query's callback and call it. */
static int deliver_body(lua_State *L, void *ud)
{
	struct delivery *d = ud;
	struct levclient *ec = d->ec;
	int nres, t;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ec->h.cb_ref);
	t = lua_gettop(L);
	lua_rawgeti(L, t, cb_slot(d->handle) + 1);
	if (!slot_owned_by(L, d->handle))
		return 0; /* cancelled */
	lua_rawgeti(L, t, cb_slot(d->handle));
	slot_clear(L, t, d->handle);
	nres = lp0f_push_result(L, d->res, ec->path);
	if (lua_pcall(L, nres, 0, 0) != LUA_OK)
		report_error(L, ec);
	return 0;
}

static void deliver(lua_State *L, struct levclient *ec, uint64_t handle,
                    const struct p0f_result *res)
{
	struct delivery d;
	d.ec = ec;
	d.handle = handle;
	d.res = res;
	lp0f_protected(L, deliver_body, &d);
}

static void on_done(struct p0f_ev *e, uint64_t handle, const struct p0f_result *res, void *ud)
{
	struct levclient *ec = ud;
	(void)e;
	deliver(ec->h.lp ? ec->h.lp->L : NULL, ec, handle, res);
}

/* Anchored while it owes callbacks; let go when it owes none. */
static void unanchor_if_idle(lua_State *L, struct levclient *ec)
{
	/* Inside a kick the driver still walks this object: on_idle, run
	 * last, lets go instead (a collection now would free it under it). */
	if (ec->c != NULL && p0f_ev_in_callback(&ec->e))
		return;
	if (ec->c == NULL || (p0f_client_pending(ec->c) == 0 && p0f_client_finished(ec->c) == 0))
		lp0f_unref(L, &ec->h.self_ref);
}

static void on_idle(struct p0f_ev *e, void *ud)
{
	struct levclient *ec = ud;
	(void)e;
	if (ec->h.lp && ec->h.lp->L)
		unanchor_if_idle(ec->h.lp->L, ec);
}

/* loop:client{socket=, timeout=, max_inflight=, drain=, on_error=} */
int lp0f_loop_client(lua_State *L)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	struct p0f_client_opts o;
	struct levclient *ec;
	const char *path;

	luaL_checktype(L, 2, LUA_TTABLE);
	path = lp0f_opt_socket(L, 2);
	lp0f_client_opts(L, 2, &o);
	lp0f_check_opt_fn(L, 2, "on_error");

	ec = lp0f_handle_new(L, sizeof *ec, &evclient_class, NULL, 0);
	if (strlen(path) >= sizeof ec->path)
		return lp0f_push_err(L, ENAMETOOLONG, path);
	strcpy(ec->path, path);
	lua_newtable(L);
	ec->h.cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ec->h.cb2_ref = lp0f_opt_fn_ref(L, 2, "on_error");
	if ((ec->c = p0f_client_new(path, &o)) == NULL)
		return lp0f_push_err(L, errno, path);
	lp0f_handle_attach(L, &ec->h, lp, 1);
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
		return lp0f_push_submit_err(L, rc, addr);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ec->h.cb_ref);
	lua_pushvalue(L, 3);
	lua_rawseti(L, -2, cb_slot(h));
	lp0f_push_handle(L, h);
	lua_rawseti(L, -2, cb_slot(h) + 1);
	lua_pop(L, 1);
	lp0f_handle_anchor(L, &ec->h, 1);
	p0f_ev_soon(&ec->e); /* callbacks only ever run from inside the loop */
	lp0f_push_handle(L, h);
	return 1;
}

static int l_evclient_cancel(lua_State *L)
{
	struct levclient *ec = check_evclient(L);
	uint64_t h = lp0f_check_handle(L, 2);

	/* Only a query still ours: a stale handle's slot may be reused. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, ec->h.cb_ref);
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

/* Free the client; from close() the queries still owed get their
 * callbacks (ECANCELED), from __gc nobody is called. */
static void evclient_release(lua_State *L, struct lhandle *h, int closing)
{
	struct levclient *ec = (struct levclient *)h;
	struct p0f_client *c = ec->c;
	uint64_t handle;
	struct p0f_result r;

	if (c == NULL)
		return;
	ec->c = NULL; /* closed for the callbacks that run now */
	/* Released from one of its own callbacks (its close, or its loop's):
	 * the driver is still walking this object, keep it until run() returns. */
	if (p0f_ev_in_callback(&ec->e))
		lp0f_handle_keep_while_running(L, &ec->h);
	p0f_ev_detach(&ec->e);
	p0f_client_close(c); /* pending -> ECANCELED, owed replies drained */
	while (p0f_client_next_done(c, &handle, &r))
		if (closing && ec->h.cb_ref != LUA_NOREF)
			deliver(L, ec, handle, &r);
	p0f_client_free(c);
}

static int l_evclient_close(lua_State *L)
{
	return lp0f_handle_close(L, &evclient_class);
}

static int l_evclient_gc(lua_State *L)
{
	return lp0f_handle_gc(L, &evclient_class);
}

static int l_evclient_tostring(lua_State *L)
{
	struct levclient *ec = luaL_checkudata(L, 1, LP0F_EVCLIENT_MT);
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

void lp0f_open_loop_client(lua_State *L)
{
	lp0f_new_class(L, LP0F_EVCLIENT_MT, evclient_methods);
}
