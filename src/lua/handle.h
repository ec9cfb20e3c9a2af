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
 *
 * Every open object is on its loop's list (attach), so that closing the loop
 * releases them all: their watchers stop while the libev loop still exists,
 * and a later close() or __gc of the object has nothing left to do. A loop
 * closed from inside its own run() is marked closed at once but its libev
 * loop is destroyed only when the outermost run() returns (libev is still
 * walking it).
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
	struct lhandle *prev, *next; /* on lp's list of open objects */
	int releasing;     /* inside lp0f_handle_release (a callback may close again) */
};

struct lloop {
	struct lhandle h;        /* h.cb_ref: on_error, for callbacks that raise */
	struct ev_loop *loop;    /* NULL once destroyed */
	int closed;              /* close() done: no use, no new objects */
	int is_default;
	int depth;               /* run() calls under way (nested) */
	lua_State *L;            /* the thread inside run(), for callbacks */
	struct lhandle *handles; /* every open object on this loop */
	int keep_ref;            /* objects kept alive until run() returns */
};

/* The registry field holding the on_error handler of the loop inside
 * run() (set and restored by run(), so nested runs each see their own). */
#define LP0F_ON_ERROR "p0f.loop.on_error"

/* Make lp's on_error the one lp0f_report uses; returns the stack index of
 * the one it replaces, for lp0f_restore_handler (which pops it). */
int lp0f_use_handler(lua_State *L, const struct lloop *lp);
void lp0f_restore_handler(lua_State *L, int idx);

/* New object of `cls` on the stack: zeroed, every ref LUA_NOREF. With
 * loop_idx != 0 it is attached to `lp` (the loop at that index). */
void *lp0f_handle_new(lua_State *L, size_t size, const struct lhandle_class *cls,
                      struct lloop *lp, int loop_idx);
struct lhandle *lp0f_handle_check(lua_State *L, int i, const struct lhandle_class *cls);

/* h runs on lp (the loop at stack index loop_idx): it references the loop
 * and is on its list until released. Once its C side exists: a failed
 * constructor leaves nothing on the list. */
void lp0f_handle_attach(lua_State *L, struct lhandle *h, struct lloop *lp, int loop_idx);

/* The loop's libev loop while the object is attached, else NULL (watchers
 * of an object released by its loop's close are never touched again). */
struct ev_loop *lp0f_handle_evloop(const struct lhandle *h);

/* Keep h (anchored) alive until its loop's outermost run() returns: for an
 * object released while a driver below the callback still walks it. */
void lp0f_handle_keep_while_running(lua_State *L, struct lhandle *h);

/* Anchor (self at stack index idx) while work is in flight; let go. */
void lp0f_handle_anchor(lua_State *L, struct lhandle *h, int idx);

/* release(), off the loop's list, then let go of every reference. */
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

/* The one error reporter: the message on top goes to the running loop's
 * on_error handler (loop:on_error), else to stderr; it is popped. */
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

#endif
