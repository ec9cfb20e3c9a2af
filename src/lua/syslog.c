/*
 * syslog.c: p0f.core.syslog_open and p0f.core.syslog, for p0f.log.
 */
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "lp0f.h"

/* openlog() keeps the ident pointer: this buffer is the one piece of static
 * state in the module, as the syslog connection is process-wide anyway. */
static char syslog_ident[64];

static const struct {
	const char *name;
	int value;
} syslog_names[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
}, syslog_levels[] = {
	{ "err", LOG_ERR }, { "error", LOG_ERR }, { "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE }, { "info", LOG_INFO }, { "debug", LOG_DEBUG },
};

static int syslog_lookup(lua_State *L, int i, int which)
{
	const char *s = luaL_checkstring(L, i);
	size_t k, n = which ? sizeof syslog_levels / sizeof syslog_levels[0]
	                    : sizeof syslog_names / sizeof syslog_names[0];
	for (k = 0; k < n; k++) {
		const char *name = which ? syslog_levels[k].name : syslog_names[k].name;
		if (strcmp(s, name) == 0)
			return which ? syslog_levels[k].value : syslog_names[k].value;
	}
	return luaL_argerror(L, i, which ? "err, warning, notice, info or debug expected"
	                                 : "mail, daemon, user or local0..local7 expected");
}

/* p0f.core.syslog_open(ident, facility) */
static int l_syslog_open(lua_State *L)
{
	const char *ident = luaL_checkstring(L, 1);
	int fac = syslog_lookup(L, 2, 0);
	snprintf(syslog_ident, sizeof syslog_ident, "%s", ident);
	openlog(syslog_ident, LOG_PID | LOG_NDELAY, fac);
	return 0;
}

/* p0f.core.syslog(level, message) */
static int l_syslog(lua_State *L)
{
	int level = syslog_lookup(L, 1, 1);
	syslog(level, "%s", luaL_checkstring(L, 2));
	return 0;
}

/* ---- registration ------------------------------------------------------------- */

static const luaL_Reg syslog_funcs[] = {
	{ "syslog_open", l_syslog_open },
	{ "syslog", l_syslog },
	{ NULL, NULL }
};

void lp0f_open_syslog(lua_State *L)
{
	p0f_setfuncs(L, syslog_funcs, 0);
}
