/*
 * handle.h: the shared base of the p0f.ev objects (the loop, its clients,
 * listeners, connections, timers, signals, Redis connections), in the
 * manner of luv's luv_handle_t. Private to the p0f.ev binding files.
 *
 * Every object is a userdata that begins with a struct lhandle:
 *   - one constructor preamble (lp0f_handle_new): userdata, zeroed, every
 *     reference LUA_NOREF, its metatable;
 *   - one way into Lua from a watcher (lp0f_handle_fire): under lua_pcall,
 *     with the object itself at stack index 1, and only while it is
 *     anchored (self_ref), so a closed object never calls back;
 *   - one error reporter (lp0f_report) for a callback that raised;
 *   - one close/gc shape: the class's release() frees the C side, then the
 *     base lets go of every reference. close() may call Lua back, __gc not.
 * An object with work in flight is anchored in the registry (self_ref), so
 * dropping the last Lua reference never frees memory a watcher points at.
 */
#ifndef LP0F_HANDLE_H
#define LP0F_HANDLE_H

#include <ev.h>

#include "lp0f.h"

struct lhandle;

struct lhandle_class {
	const char *name; /* its metatable */
	/* Stop the watchers and free the C resources; idempotent. `closing`:
	 * from close() (may call Lua back), else from __gc or the loop's close. */
	void (*release)(lua_State *L, struct lhandle *h, int closing);
};

struct lloop;

struct lhandle {
	const struct lhandle_class *cls;
	struct lloop *lp;  /* the loop it runs on (NULL: none, or the loop itself) */
	int loop_ref;      /* keeps the loop alive while this object is */
	int self_ref;      /* anchored while it has work in flight */
	int cb_ref;        /* its callback (or callback table) */
	int cb2_ref;       /* a second callback (on_close, on_error) */
};

struct levclient;

struct lloop {
	struct lhandle h;
	struct ev_loop *loop;      /* NULL once closed */
	int is_default;
	lua_State *L;              /* the thread inside run(), for callbacks */
	struct levclient *clients; /* to release them if the loop goes first */
};

/* The registry field where clients closed from their own callbacks wait
 * until run() returns (the driver is still walking them). */
#define LP0F_ZOMBIES "p0f.closed_in_callback"

/* New object of `cls` on the stack: zeroed, every ref LUA_NOREF. With
 * loop_idx != 0 it runs on `lp` and references the loop at that index. */
void *lp0f_handle_new(lua_State *L, size_t size, const struct lhandle_class *cls,
                      struct lloop *lp, int loop_idx);
struct lhandle *lp0f_handle_check(lua_State *L, int i, const struct lhandle_class *cls);

/* The loop's libev loop while it is open, else NULL (watchers of an object
 * that outlives its loop are never touched again). */
struct ev_loop *lp0f_handle_evloop(const struct lhandle *h);

/* Anchor (self at stack index idx) while work is in flight; let go. */
void lp0f_handle_anchor(lua_State *L, struct lhandle *h, int idx);

/* release() then let go of every reference. */
void lp0f_handle_release(lua_State *L, struct lhandle *h, int closing);
/* The __gc / close methods: lp0f_handle_release on argument 1. */
int lp0f_handle_gc(lua_State *L, const struct lhandle_class *cls);
int lp0f_handle_close(lua_State *L, const struct lhandle_class *cls);

/* Run body(L, ud) under lua_pcall on the loop's running thread (nothing if
 * the loop is not running); an error escaping body is reported. */
typedef int (*lp0f_body_fn)(lua_State *L, void *ud);
void lp0f_protected(lua_State *L, lp0f_body_fn fn, void *ud);

/* From a watcher: body(L, h) under lp0f_protected with the object at stack
 * index 1, if it is still anchored. */
void lp0f_handle_fire(struct lhandle *h, lp0f_body_fn body);

/* The function and its nargs arguments are on the stack: call it
 * protected; an error is reported as "error in <what> callback". */
void lp0f_callback(lua_State *L, int nargs, const char *what);

/* The one error reporter: the message on top goes to stderr and is popped. */
void lp0f_report(lua_State *L, const char *what);

struct lloop *lp0f_check_loop(lua_State *L, int i);

/* Each object's file: its class (registered by lp0f_open_*) and the loop
 * method that makes one (loop:client{}, loop:listen() ...). */
void lp0f_open_loop_client(lua_State *L);
void lp0f_open_listener(lua_State *L);
void lp0f_open_conn(lua_State *L);
void lp0f_open_timer(lua_State *L);
void lp0f_open_signal(lua_State *L);
void lp0f_open_redis(lua_State *L);
int lp0f_loop_client(lua_State *L);
int lp0f_loop_listen(lua_State *L);
int lp0f_loop_timer(lua_State *L);
int lp0f_loop_signal(lua_State *L);
int lp0f_loop_redis(lua_State *L);
/* Accept one connection from a listener's socket (conn.c): pushes the
 * connection and returns its peer, or NULL with *err set (nothing pushed). */
const char *lp0f_conn_accept(lua_State *L, int listen_fd, const struct lhandle *listener, int *err);
/* After on_accept(conn) returned: a connection nobody started is closed. */
void lp0f_conn_keep_or_close(lua_State *L, int idx);
/* The loop goes first: release its clients (loop_client.c). */
void lp0f_loop_release_clients(lua_State *L, struct lloop *lp);

#endif
