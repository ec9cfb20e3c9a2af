/*
 * conn.c: p0f.conn, one accepted connection (made by a listener, see
 * listener.c). conn:start(on_read, on_close) reads; conn:write() buffers
 * what the peer does not take at once; conn:close() closes once the
 * buffer is written; conn:pause()/conn:resume() stop and restart reading
 * (a server with enough requests of this peer in flight reads no more, so
 * the kernel's flow control holds the peer back). Anchored from accept
 * until it is closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handle.h"
#include "p0f_net.h"

#define READ_MAX 16384

/* h.cb_ref: on_read; h.cb2_ref: on_close; eof_ref: on_eof (optional). */
struct lconn {
	struct lhandle h;
	ev_io rio, wio;
	int fd, started, closing, eof_ref;
	int paused, eof; /* reading stopped by pause(); by the peer's half-close */
	char *out;
	size_t outlen, outoff, outcap;
	char peer[64];
};

/* Close the fd and free the buffer; the userdata stays valid (closed). */
static void conn_release(lua_State *L, struct lhandle *h, int closing)
{
	struct lconn *c = (struct lconn *)h;
	struct ev_loop *loop = lp0f_handle_evloop(h);

	(void)closing;
	lp0f_unref(L, &c->eof_ref);
	if (loop) {
		ev_io_stop(loop, &c->rio);
		ev_io_stop(loop, &c->wio);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = c->outcap = 0;
}

static const struct lhandle_class conn_class = { LP0F_CONN_MT, conn_release };

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
	int has_cb = c->h.cb2_ref != LUA_NOREF;
	if (has_cb)
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->h.cb2_ref);
	lp0f_handle_release(L, &c->h, 1);
	if (!has_cb)
		return;
	lua_pushvalue(L, 1); /* the connection, kept on the body's stack */
	if (err == 0) {
		lp0f_callback(L, 1, "on_close");
	} else {
		lua_pushstring(L, lp0f_err_text(err));
		lua_pushstring(L, lp0f_err_name(err));
		lp0f_callback(L, 3, "on_close");
	}
}

static int conn_read_body(lua_State *L, void *ud)
{
	struct lconn *c = ud;
	char buf[READ_MAX];
	int err = 0;
	ssize_t n = p0f_net_read(c->fd, buf, sizeof buf, &err);

	if (n < 0 && err == EAGAIN)
		return 0;
	if (n > 0) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->h.cb_ref);
		lua_pushvalue(L, 1);
		lua_pushlstring(L, buf, (size_t)n);
		lp0f_callback(L, 2, "on_read");
		return 0;
	}
	if (n == 0 && c->eof_ref != LUA_NOREF) {
		/* Half-close: the peer sends no more but may still read. Stop
		 * reading, keep the fd for the answers owed, let Lua close. */
		c->eof = 1;
		ev_io_stop(c->h.lp->loop, &c->rio);
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->eof_ref);
		lua_pushvalue(L, 1);
		lp0f_callback(L, 1, "on_eof");
		return 0;
	}
	conn_lost(L, c, n == 0 ? 0 : err);
	return 0;
}

static int conn_write_body(lua_State *L, void *ud)
{
	struct lconn *c = ud;
	int err = conn_flush(c);

	if (err == EAGAIN)
		return 0;
	ev_io_stop(c->h.lp->loop, &c->wio);
	if (err != 0) {
		conn_lost(L, c, err);
		return 0;
	}
	if (c->closing)
		lp0f_handle_release(L, &c->h, 1);
	return 0;
}

static void on_conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	lp0f_handle_fire(w->data, conn_read_body);
}

static void on_conn_write(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	lp0f_handle_fire(w->data, conn_write_body);
}

const char *lp0f_conn_accept(lua_State *L, int listen_fd, const struct lhandle *listener, int *err)
{
	/* The userdata first: an allocation error must not lose a descriptor. */
	struct lconn *c = lp0f_handle_new(L, sizeof *c, &conn_class, NULL, 0);

	c->eof_ref = LUA_NOREF;
	c->fd = p0f_net_accept(listen_fd, c->peer, sizeof c->peer, err);
	if (c->fd < 0) {
		lua_pop(L, 1);
		return NULL;
	}
	ev_io_init(&c->rio, on_conn_read, c->fd, EV_READ);
	ev_io_init(&c->wio, on_conn_write, c->fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	c->h.self_ref = lp0f_ref(L, -1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, listener->loop_ref);
	lp0f_handle_attach(L, &c->h, listener->lp, -1);
	lua_pop(L, 1);
	return c->peer;
}

void lp0f_conn_keep_or_close(lua_State *L, int idx)
{
	struct lconn *c = luaL_checkudata(L, idx, LP0F_CONN_MT);
	if (!c->started) /* nobody will read it */
		lp0f_handle_release(L, &c->h, 1);
}

static struct lconn *check_conn(lua_State *L)
{
	return luaL_checkudata(L, 1, LP0F_CONN_MT);
}

/* Whether the read watcher should run: started, open, not closing, not
 * at the peer's end of file and not paused. */
static int conn_wants_read(const struct lconn *c)
{
	return c->started && c->fd >= 0 && !c->closing && !c->eof && !c->paused;
}

/* conn:start(on_read, on_close[, on_eof]): begin reading. With on_eof, a
 * read of end-of-file (the peer's half-close) stops reading and calls
 * on_eof(conn) instead of closing: the answers owed can still be written,
 * and Lua closes when it is done. */
static int l_conn_start(lua_State *L)
{
	struct lconn *c = check_conn(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TFUNCTION);
	if (!lua_isnoneornil(L, 4))
		luaL_checktype(L, 4, LUA_TFUNCTION);
	if (c->fd < 0)
		return luaL_error(L, "attempt to use a closed connection");
	if (c->started)
		return luaL_error(L, "connection already started");
	c->started = 1;
	c->h.cb_ref = lp0f_ref(L, 2);
	if (!lua_isnoneornil(L, 3))
		c->h.cb2_ref = lp0f_ref(L, 3);
	if (!lua_isnoneornil(L, 4))
		c->eof_ref = lp0f_ref(L, 4);
	if (lp0f_handle_evloop(&c->h) && conn_wants_read(c))
		ev_io_start(c->h.lp->loop, &c->rio);
	return 0;
}

/* conn:pause(): read nothing more until conn:resume(). What the peer sends
 * meanwhile waits in the kernel, and its sends block once that is full.
 * Idempotent; a no-op on a closed connection. */
static int l_conn_pause(lua_State *L)
{
	struct lconn *c = check_conn(L);
	struct ev_loop *loop = lp0f_handle_evloop(&c->h);

	c->paused = 1;
	if (loop && c->fd >= 0)
		ev_io_stop(loop, &c->rio);
	return 0;
}

/* conn:resume(): read again after pause(). Idempotent; reading stays off
 * on a connection that is closed, closing or at the peer's end of file. */
static int l_conn_resume(lua_State *L)
{
	struct lconn *c = check_conn(L);
	struct ev_loop *loop = lp0f_handle_evloop(&c->h);

	c->paused = 0;
	if (loop && conn_wants_read(c))
		ev_io_start(loop, &c->rio);
	return 0;
}

static int l_conn_paused(lua_State *L)
{
	lua_pushboolean(L, check_conn(L)->paused);
	return 1;
}

/* Room for len more bytes in the output buffer: 0 or ENOMEM. */
static int conn_reserve(struct lconn *c, size_t len)
{
	size_t cap = c->outcap ? c->outcap : 4096;
	char *p;

	if (c->outoff > 0 && c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if (c->outlen + len <= c->outcap)
		return 0;
	while (cap < c->outlen + len)
		cap *= 2;
	if ((p = realloc(c->out, cap)) == NULL)
		return ENOMEM;
	c->out = p;
	c->outcap = cap;
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
		return lp0f_push_err(L, EPIPE, "connection closed");
	if (c->outlen == 0) {
		ssize_t n = p0f_net_write(c->fd, s, len, &err);
		if (n < 0 && err != EAGAIN)
			return lp0f_push_err(L, err, c->peer);
		if (n > 0) {
			s += n;
			len -= (size_t)n;
		}
	}
	if (len > 0) {
		if (conn_reserve(c, len) != 0)
			return lp0f_push_err(L, ENOMEM, c->peer);
		memcpy(c->out + c->outlen, s, len);
		c->outlen += len;
		if (lp0f_handle_evloop(&c->h))
			ev_io_start(c->h.lp->loop, &c->wio);
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
	if (c->outlen > c->outoff && lp0f_handle_evloop(&c->h) && !c->closing) {
		c->closing = 1;
		ev_io_stop(c->h.lp->loop, &c->rio);
		lp0f_unref(L, &c->h.cb_ref);
		lp0f_unref(L, &c->h.cb2_ref);
		return 0;
	}
	return lp0f_handle_close(L, &conn_class);
}

/* conn:abort(): close now, discarding buffered output: the fd and the
 * buffer are freed at once (for a peer that does not read what it is sent;
 * a graceful close() would hold both until it does). Also ends a close()
 * still writing. on_close is not called. */
static int l_conn_abort(lua_State *L)
{
	struct lconn *c = check_conn(L);
	if (c->fd < 0)
		return 0;
	return lp0f_handle_close(L, &conn_class);
}

static int l_conn_gc(lua_State *L)
{
	return lp0f_handle_gc(L, &conn_class);
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
	{ "abort", l_conn_abort },
	{ "pause", l_conn_pause },
	{ "resume", l_conn_resume },
	{ "paused", l_conn_paused },
	{ "peer", l_conn_peer },
	{ "buffered", l_conn_buffered },
	{ "closed", l_conn_closed },
	{ "__gc", l_conn_gc },
	{ "__close", l_conn_close },
	{ "__tostring", l_conn_tostring },
	{ NULL, NULL }
};

void lp0f_open_conn(lua_State *L)
{
	lp0f_new_class(L, LP0F_CONN_MT, conn_methods);
}
