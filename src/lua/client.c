/*
 * client.c: p0f.client, the pollable object of p0f.core: one persistent,
 * pipelined connection that any event loop can drive (submit / step /
 * pollfd / events / timeout / fetch), or that waits by itself (query).
 */
#include <errno.h>
#include <string.h>

#include "lp0f.h"
#include "p0f_blocking.h"

/* What the client waits for, as a poll()-style word. */
static const char *events_str(int ev)
{
	switch (ev & (P0F_EV_READ | P0F_EV_WRITE)) {
	case P0F_EV_READ: return "r";
	case P0F_EV_WRITE: return "w";
	case P0F_EV_READ | P0F_EV_WRITE: return "rw";
	}
	return NULL;
}


struct lclient {
	struct p0f_client *c;
	char path[108];
};

static struct lclient *check_client(lua_State *L)
{
	struct lclient *lc = luaL_checkudata(L, 1, LP0F_CLIENT_MT);
	if (lc->c == NULL)
		luaL_error(L, "attempt to use a closed p0f client");
	return lc;
}

static int l_client(lua_State *L)
{
	struct p0f_client_opts o;
	struct lclient *lc;
	const char *path;

	luaL_checktype(L, 1, LUA_TTABLE);
	path = lp0f_opt_socket(L, 1);
	lp0f_client_opts(L, 1, &o);
	/* Userdata first, so the C resource is never lost to an allocation error. */
	lc = lua_newuserdata(L, sizeof *lc);
	lc->c = NULL;
	luaL_getmetatable(L, LP0F_CLIENT_MT);
	lua_setmetatable(L, -2);
	if (strlen(path) >= sizeof lc->path)
		return lp0f_push_err(L, ENAMETOOLONG, path);
	strcpy(lc->path, path);
	if ((lc->c = p0f_client_new(path, &o)) == NULL)
		return lp0f_push_err(L, errno, path);
	return 1;
}

static int l_client_submit(lua_State *L)
{
	struct lclient *lc = check_client(L);
	size_t len;
	const char *addr = luaL_checklstring(L, 2, &len);
	uint64_t h;
	int rc = p0f_client_submit(lc->c, addr, len, &h);

	if (rc != 0)
		return lp0f_push_submit_err(L, rc, addr);
	lp0f_push_handle(L, h);
	return 1;
}

static int l_client_step(lua_State *L)
{
	struct lclient *lc = check_client(L);
	p0f_client_step(lc->c);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_client_pollfd(lua_State *L)
{
	struct lclient *lc = check_client(L);
	int fd = p0f_client_pollfd(lc->c);
	if (fd < 0)
		lua_pushnil(L);
	else
		lua_pushinteger(L, fd);
	return 1;
}

static int l_client_events(lua_State *L)
{
	struct lclient *lc = check_client(L);
	const char *s = events_str(p0f_client_events(lc->c));
	if (s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
	return 1;
}

static int l_client_timeout(lua_State *L)
{
	struct lclient *lc = check_client(L);
	double t = p0f_client_timeout(lc->c);
	if (t < 0)
		lua_pushnil(L);
	else
		lua_pushnumber(L, t);
	return 1;
}

static int l_client_fetch(lua_State *L)
{
	struct lclient *lc = check_client(L);
	struct p0f_result r;
	int rc = p0f_client_fetch(lc->c, lp0f_check_handle(L, 2), &r);

	if (rc < 0)
		return luaL_argerror(L, 2, "unknown or already fetched query handle");
	if (rc == 0)
		return lp0f_push_err(L, EAGAIN, NULL);
	return lp0f_push_result(L, &r, lc->path);
}

static int l_client_cancel(lua_State *L)
{
	struct lclient *lc = check_client(L);
	p0f_client_cancel(lc->c, lp0f_check_handle(L, 2));
	return 0;
}

/* Submit and wait (poll) on the persistent connection: one-at-a-time use
 * without an event loop, and without a connection per query. */
static int l_client_query(lua_State *L)
{
	struct lclient *lc = check_client(L);
	size_t len;
	const char *addr = luaL_checklstring(L, 2, &len);
	struct p0f_result r;
	uint64_t h;
	int rc = p0f_client_submit(lc->c, addr, len, &h);

	if (rc != 0)
		return lp0f_push_submit_err(L, rc, addr);
	p0f_client_await(lc->c, h, &r);
	return lp0f_push_result(L, &r, lc->path);
}

static int l_client_pending(lua_State *L)
{
	struct lclient *lc = check_client(L);
	lua_pushinteger(L, (lua_Integer)p0f_client_pending(lc->c));
	return 1;
}

static int l_client_connected(lua_State *L)
{
	struct lclient *lc = check_client(L);
	lua_pushboolean(L, p0f_client_connected(lc->c));
	return 1;
}

static int l_client_close(lua_State *L)
{
	struct lclient *lc = luaL_checkudata(L, 1, LP0F_CLIENT_MT);
	if (lc->c) {
		p0f_client_free(lc->c); /* drains owed replies first */
		lc->c = NULL;
	}
	return 0;
}

static int l_client_tostring(lua_State *L)
{
	struct lclient *lc = luaL_checkudata(L, 1, LP0F_CLIENT_MT);
	if (lc->c == NULL)
		lua_pushfstring(L, "p0f.client (closed)");
	else
		lua_pushfstring(L, "p0f.client (%s, %s, %d pending)", lc->path,
		                p0f_client_connected(lc->c) ? "connected" : "not connected",
		                (int)p0f_client_pending(lc->c));
	return 1;
}

static const luaL_Reg client_methods[] = {
	{ "submit", l_client_submit },
	{ "step", l_client_step },
	{ "pollfd", l_client_pollfd },
	{ "events", l_client_events },
	{ "timeout", l_client_timeout },
	{ "fetch", l_client_fetch },
	{ "cancel", l_client_cancel },
	{ "query", l_client_query },
	{ "pending", l_client_pending },
	{ "connected", l_client_connected },
	{ "close", l_client_close },
	{ "__gc", l_client_close },
	{ "__close", l_client_close },
	{ "__tostring", l_client_tostring },
	{ NULL, NULL }
};

void lp0f_open_client(lua_State *L)
{
	lp0f_new_class(L, LP0F_CLIENT_MT, client_methods);
	lua_pushcfunction(L, l_client);
	lua_setfield(L, -2, "client");
}
