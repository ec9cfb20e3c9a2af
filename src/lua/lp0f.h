/*
 * lp0f.h: what the binding files share (private; only binding files include
 * lua.h). Two modules are built from them:
 *   p0f.core  util.c response.c codec.c client.c syslog.c core.c  (libc only)
 *   p0f.ev    util.c response.c handle.c loop.c loop_client.c listener.c
 *             conn.c timer.c signal.c redis.c                      (libev, hiredis)
 *
 * Conventions: programmer errors raise; runtime failures return nil,
 * message, CODE where CODE is an errno name ("ETIMEDOUT" ...). Nothing is
 * opened in luaopen_* (rspamd forks after loading). Callbacks run under
 * lua_pcall: nothing ever longjmps through ev_run().
 */
#ifndef LP0F_H
#define LP0F_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "p0f_client.h"
#include "p0f_codec.h"

/* Every function here has hidden visibility (set by the build): each
 * module exports only its luaopen_*. */

/* ---- errors (util.c) ----------------------------------------------------- */

const char *lp0f_err_name(int err);
const char *lp0f_err_text(int err);
/* nil, "<context>: <text>", CODE; returns 3. */
int lp0f_push_err(lua_State *L, int err, const char *ctx);
/* A submit refused: a bad address names itself; other errors need no context. */
int lp0f_push_submit_err(lua_State *L, int err, const char *addr);

/* ---- numbers and options (util.c) ------------------------------------------ */

#define LP0F_U32_MAX 4294967295.0
#define LP0F_MAX_SECONDS (86400.0 * 365)

/* Whether v is an integer in [lo, hi] (NaN and fractions are not). */
int lp0f_is_int(double v, double lo, double hi);
/* Argument i: an integer in [lo, hi], or raise (never an undefined cast). */
lua_Integer lp0f_check_int(lua_State *L, int i, double lo, double hi);
/* Argument i: seconds in [0, a year]. */
double lp0f_check_seconds(lua_State *L, int i);

/* Optional table fields: absent -> def; a wrong type or range raises. */
lua_Number lp0f_opt_num(lua_State *L, int t, const char *k, lua_Number def);
lua_Number lp0f_opt_int(lua_State *L, int t, const char *k, lua_Number def,
                        lua_Number lo, lua_Number hi);
void lp0f_opt_str(lua_State *L, int t, const char *k, char *dst, size_t size);
/* Options (error text "bad option ..."): t may be none/nil for defaults. */
void lp0f_bad_opt(lua_State *L, const char *k, const char *want);
double lp0f_opt_seconds(lua_State *L, int t, const char *k, double def);
long lp0f_opt_range(lua_State *L, int t, const char *k, long def, long lo, long hi);
const char *lp0f_opt_socket(lua_State *L, int t);
/* A callback option: lp0f_check_opt_fn raises unless field k of t is a
 * function or absent (check before making anything, so a bad one leaves
 * nothing behind); lp0f_opt_fn_ref then takes a registry ref to it, or
 * LUA_NOREF when absent. t may be none/nil. */
void lp0f_check_opt_fn(lua_State *L, int t, const char *k);
int lp0f_opt_fn_ref(lua_State *L, int t, const char *k);
void lp0f_client_opts(lua_State *L, int t, struct p0f_client_opts *o);

/* ---- handles of queries (util.c) ------------------------------------------- */

void lp0f_push_handle(lua_State *L, uint64_t h);
uint64_t lp0f_check_handle(lua_State *L, int i);

/* ---- registry references and classes (util.c) ----------------------------- */

int lp0f_ref(lua_State *L, int idx);
void lp0f_unref(lua_State *L, int *ref);
void lp0f_new_class(lua_State *L, const char *name, const luaL_Reg *methods);

/* ---- results (response.c) -------------------------------------------------- */

/* The interned field names of a result, for push_response: one table,
 * made once per Lua state. Pushes it. */
void lp0f_push_response_keys(lua_State *L);
/* A decoded reply as a table; `keys` is the index of that table. */
void lp0f_push_response(lua_State *L, const struct p0f_response *r, int keys);
/* A finished query: result (1 value), or nil, message, code (3 values). */
int lp0f_push_result(lua_State *L, const struct p0f_result *r, const char *path);

/* ---- the parts of p0f.core (core.c opens them into the module table) ---- */

void lp0f_open_codec(lua_State *L);
void lp0f_open_client(lua_State *L);
void lp0f_open_syslog(lua_State *L);

/* ---- metatable names ------------------------------------------------------- */

#define LP0F_CLIENT_MT "p0f.client"
#define LP0F_LOOP_MT "p0f.loop"
#define LP0F_EVCLIENT_MT "p0f.evclient"
#define LP0F_LISTENER_MT "p0f.listener"
#define LP0F_CONN_MT "p0f.conn"
#define LP0F_TIMER_MT "p0f.timer"
#define LP0F_SIGNAL_MT "p0f.signal"
#define LP0F_REDIS_MT "p0f.redis"

#endif
