/*
 * handle.c: the shared base of the p0f.ev objects (see handle.h).
 */
#include <stdio.h>
#include <string.h>

#include "handle.h"

void *lp0f_handle_new(lua_State *L, size_t size, const struct lhandle_class *cls,
                      struct lloop *lp, int loop_idx)
{
	struct lhandle *h;

	if (loop_idx < 0 && loop_idx > LUA_REGISTRYINDEX)
		loop_idx = lua_gettop(L) + loop_idx + 1; /* before the push below */
	/* Userdata first, so a C resource is never lost to an allocation error. */
	h = lua_newuserdata(L, size);
	memset(h, 0, size);
	h->cls = cls;
	h->loop_ref = h->self_ref = h->cb_ref = h->cb2_ref = LUA_NOREF;
	luaL_getmetatable(L, cls->name);
	lua_setmetatable(L, -2);
	if (loop_idx != 0)
		lp0f_handle_attach(L, h, lp, loop_idx);
	return h;
}

void lp0f_handle_attach(lua_State *L, struct lhandle *h, struct lloop *lp, int loop_idx)
{
	h->lp = lp;
	h->loop_ref = lp0f_ref(L, loop_idx);
	h->prev = NULL;
	h->next = lp->handles;
	if (lp->handles)
		lp->handles->prev = h;
	lp->handles = h;
}

static void detach(struct lhandle *h)
{
	if (h->lp == NULL)
		return;
	if (h->prev)
		h->prev->next = h->next;
	else
		h->lp->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
	h->lp = NULL;
}

struct lhandle *lp0f_handle_check(lua_State *L, int i, const struct lhandle_class *cls)
{
	return luaL_checkudata(L, i, cls->name);
}

struct ev_loop *lp0f_handle_evloop(const struct lhandle *h)
{
	return h->lp ? h->lp->loop : NULL;
}

void lp0f_handle_anchor(lua_State *L, struct lhandle *h, int idx)
{
	if (h->self_ref == LUA_NOREF)
		h->self_ref = lp0f_ref(L, idx);
}

void lp0f_handle_keep_while_running(lua_State *L, struct lhandle *h)
{
	struct lloop *lp = h->lp;

	if (lp == NULL || lp->depth == 0 || h->self_ref == LUA_NOREF)
		return;
	if (lp->keep_ref == LUA_NOREF) {
		lua_newtable(L);
		lp->keep_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, lp->keep_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, h->self_ref);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

int lp0f_use_handler(lua_State *L, const struct lloop *lp)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LP0F_ON_ERROR);
	lua_rawgeti(L, LUA_REGISTRYINDEX, lp->h.cb_ref);
	lua_setfield(L, LUA_REGISTRYINDEX, LP0F_ON_ERROR);
	return lua_gettop(L);
}

void lp0f_restore_handler(lua_State *L, int idx)
{
	lua_settop(L, idx);
	lua_setfield(L, LUA_REGISTRYINDEX, LP0F_ON_ERROR);
}

void lp0f_handle_release(lua_State *L, struct lhandle *h, int closing)
{
	struct lloop *lp = strcmp(h->cls->name, LP0F_LOOP_MT) == 0 ? (struct lloop *)h : h->lp;
	int saved = 0;

	/* A close() from a callback that this release runs (an ECANCELED
	 * delivery) is a no-op: the outer release finishes the job, so every
	 * owed callback still runs once. */
	if (h->releasing)
		return;
	h->releasing = 1;
	if (closing && lp) /* errors in those callbacks go to the loop's handler */
		saved = lp0f_use_handler(L, lp);
	h->cls->release(L, h, closing); /* with its loop: watchers stop on it */
	if (saved)
		lp0f_restore_handler(L, saved);
	h->releasing = 0;
	detach(h);
	lp0f_unref(L, &h->cb_ref);
	lp0f_unref(L, &h->cb2_ref);
	lp0f_unref(L, &h->loop_ref);
	lp0f_unref(L, &h->self_ref);
}

int lp0f_handle_gc(lua_State *L, const struct lhandle_class *cls)
{
	lp0f_handle_release(L, lp0f_handle_check(L, 1, cls), 0);
	return 0;
}

int lp0f_handle_close(lua_State *L, const struct lhandle_class *cls)
{
	lp0f_handle_release(L, lp0f_handle_check(L, 1, cls), 1);
	return 0;
}

void lp0f_report(lua_State *L, const char *what)
{
	const char *msg;

	if (what) {
		msg = lua_tostring(L, -1);
		lua_pushfstring(L, "error in %s callback: %s", what, msg ? msg : "(not a string)");
		lua_remove(L, -2);
	}
	lua_getfield(L, LUA_REGISTRYINDEX, LP0F_ON_ERROR);
	if (lua_isfunction(L, -1)) {
		lua_pushvalue(L, -2);
		if (lua_pcall(L, 1, 0, 0) == LUA_OK) {
			lua_pop(L, 1);
			return;
		}
		/* The handler itself raised: both go to stderr. */
		msg = lua_tostring(L, -1);
		fprintf(stderr, "p0f: error in on_error: %s\n", msg ? msg : "(not a string)");
	}
	lua_pop(L, 1);
	msg = lua_tostring(L, -1);
	fprintf(stderr, "p0f: %s\n", msg ? msg : "error");
	lua_pop(L, 1);
}

struct pcall {
	lp0f_body_fn fn;
	void *ud;
};

static int trampoline(lua_State *L)
{
	struct pcall *c = lua_touserdata(L, 1);
	lua_settop(L, 0);
	return c->fn(L, c->ud);
}

void lp0f_protected(lua_State *L, lp0f_body_fn fn, void *ud)
{
	struct pcall c;
	if (L == NULL)
		return;
	c.fn = fn;
	c.ud = ud;
	lua_pushcfunction(L, trampoline);
	lua_pushlightuserdata(L, &c);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		lp0f_report(L, NULL);
}

struct fire {
	struct lhandle *h;
	lp0f_body_fn body;
};

static int fire_body(lua_State *L, void *ud)
{
	struct fire *f = ud;
	if (f->h->self_ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, f->h->self_ref); /* 1: alive while we work */
	return f->body(L, f->h);
}

void lp0f_handle_fire(struct lhandle *h, lp0f_body_fn body)
{
	struct fire f;
	f.h = h;
	f.body = body;
	lp0f_protected(h->lp ? h->lp->L : NULL, fire_body, &f);
}

void lp0f_callback(lua_State *L, int nargs, const char *what)
{
	if (lua_pcall(L, nargs, 0, 0) != LUA_OK)
		lp0f_report(L, what);
}
