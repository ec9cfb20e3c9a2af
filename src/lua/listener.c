/*
 * listener.c: p0f.listener, loop:listen(addr, on_accept [, {backlog=, mode=,
 * on_error=}]) on TCP (127.0.0.1:PORT, [::1]:PORT) or a UNIX socket
 * (unix:/path).
 * on_accept(conn, peer) must call conn:start(on_read, on_close) to keep the
 * connection (conn.c). Anchored until closed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "handle.h"
#include "p0f_net.h"

#define ACCEPT_BURST 32
#define ACCEPT_PAUSE 0.5

/* h.cb_ref: on_accept; h.cb2_ref: on_error (optional). */
struct llistener {
	struct lhandle h;
	ev_io io;
	ev_timer pause; /* out of descriptors: stop accepting for a moment */
	int fd;
	char addr[P0F_NET_ADDR_MAX];
};

static void listener_release(lua_State *L, struct lhandle *h, int closing)
{
	struct llistener *ls = (struct llistener *)h;
	struct ev_loop *loop = lp0f_handle_evloop(h);

	(void)L;
	(void)closing;
	if (loop) {
		ev_io_stop(loop, &ls->io);
		ev_timer_stop(loop, &ls->pause);
	}
	if (ls->fd >= 0)
		p0f_net_close_listener(ls->fd, ls->addr);
	ls->fd = -1;
}

static const struct lhandle_class listener_class = { LP0F_LISTENER_MT, listener_release };

/* Out of descriptors or memory: stop accepting for ACCEPT_PAUSE seconds
 * (the socket stays readable, so retrying at once would spin), and say so
 * through on_error(message, code), where the daemon's logger is; without
 * one, on stderr. The connections waiting meanwhile stay in the backlog
 * and are accepted once descriptors are free again. */
static void accept_pause(lua_State *L, struct llistener *ls, int err)
{
	ev_io_stop(ls->h.lp->loop, &ls->io);
	ev_timer_set(&ls->pause, ACCEPT_PAUSE, 0.);
	ev_timer_start(ls->h.lp->loop, &ls->pause);
	if (ls->h.cb2_ref == LUA_NOREF) {
		fprintf(stderr, "p0f: accept on %s: %s; pausing\n", ls->addr, strerror(err));
		return;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->h.cb2_ref);
	lua_pushfstring(L, "accept on %s: %s; not accepting for %f s", ls->addr, strerror(err),
	                (lua_Number)ACCEPT_PAUSE);
	lua_pushstring(L, lp0f_err_name(err));
	lp0f_callback(L, 2, "on_error");
}

static int accept_body(lua_State *L, void *ud)
{
	struct llistener *ls = ud;
	int i, err = 0;

	for (i = 0; i < ACCEPT_BURST && ls->fd >= 0; i++) {
		const char *peer = lp0f_conn_accept(L, ls->fd, &ls->h, &err);
		if (peer == NULL) {
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
				accept_pause(L, ls, err);
				break;
			}
			if (err == EAGAIN)
				break;
			continue; /* ECONNABORTED and friends: that one is gone */
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->h.cb_ref);
		lua_pushvalue(L, -2);
		lua_pushstring(L, peer);
		lp0f_callback(L, 2, "on_accept");
		lp0f_conn_keep_or_close(L, -1);
		lua_pop(L, 1);
	}
	return 0;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	lp0f_handle_fire(w->data, accept_body);
}

static void on_accept_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct llistener *ls = w->data;
	(void)revents;
	if (ls->fd >= 0)
		ev_io_start(loop, &ls->io);
}

/* loop:listen(addr, on_accept [, {backlog=, mode=, on_error=}])
 *   -> listener | nil, msg, code */
int lp0f_loop_listen(lua_State *L)
{
	struct lloop *lp = lp0f_check_loop(L, 1);
	const char *addr = luaL_checkstring(L, 2);
	struct llistener *ls;
	int err = 0, backlog = 128;
	unsigned mode = 0;

	luaL_checktype(L, 3, LUA_TFUNCTION);
	lua_settop(L, 4); /* the options stay at 4 (nil if none) under what is pushed */
	if (!lua_isnil(L, 4)) {
		luaL_checktype(L, 4, LUA_TTABLE);
		backlog = (int)lp0f_opt_range(L, 4, "backlog", 128, 1, 65535);
		mode = (unsigned)lp0f_opt_range(L, 4, "mode", 0, 0, 07777);
		lp0f_check_opt_fn(L, 4, "on_error");
	}
	if (strlen(addr) >= P0F_NET_ADDR_MAX)
		return lp0f_push_err(L, ENAMETOOLONG, addr);
	ls = lp0f_handle_new(L, sizeof *ls, &listener_class, NULL, 0);
	ls->fd = -1;
	strcpy(ls->addr, addr);
	ls->fd = p0f_net_listen(addr, backlog, mode, &err);
	if (ls->fd < 0) {
		lua_pushnil(L);
		if (err == EINVAL)
			lua_pushfstring(L, "bad listen address '%s' (127.0.0.1:PORT, [::1]:PORT or unix:/path)", addr);
		else
			lua_pushfstring(L, "listen on %s: %s", addr, strerror(err));
		lua_pushstring(L, lp0f_err_name(err));
		return 3;
	}
	lp0f_handle_attach(L, &ls->h, lp, 1);
	ls->h.cb_ref = lp0f_ref(L, 3);
	ls->h.cb2_ref = lp0f_opt_fn_ref(L, 4, "on_error");
	ls->h.self_ref = lp0f_ref(L, -1);
	ev_io_init(&ls->io, on_accept, ls->fd, EV_READ);
	ev_timer_init(&ls->pause, on_accept_resume, 0., 0.);
	ls->io.data = ls->pause.data = ls;
	ev_io_start(lp->loop, &ls->io);
	return 1;
}

static int l_listener_close(lua_State *L)
{
	return lp0f_handle_close(L, &listener_class);
}

static int l_listener_gc(lua_State *L)
{
	return lp0f_handle_gc(L, &listener_class);
}

/* The TCP port actually bound (useful after listening on port 0). */
static int l_listener_port(lua_State *L)
{
	struct llistener *ls = luaL_checkudata(L, 1, LP0F_LISTENER_MT);
	int port = ls->fd >= 0 ? p0f_net_local_port(ls->fd) : -1;
	if (port < 0)
		lua_pushnil(L);
	else
		lua_pushinteger(L, port);
	return 1;
}

static int l_listener_tostring(lua_State *L)
{
	struct llistener *ls = luaL_checkudata(L, 1, LP0F_LISTENER_MT);
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

void lp0f_open_listener(lua_State *L)
{
	lp0f_new_class(L, LP0F_LISTENER_MT, listener_methods);
}
