/*
 * p0f_redis: a Redis connection on a libev loop that never blocks it,
 * never fails a caller silently, and that no peer can crash (hiredis formats
 * and parses; the socket and the matching of replies are ours).
 *
 *   - a deadline for every command (connect included): past it the command
 *     fails with ETIMEDOUT and the connection is dropped, because a Redis
 *     that does not answer one command will not answer the next either;
 *   - a reply nobody asked for, an invalid or oversized reply: the
 *     connection is dropped and what was on it fails (EPROTO);
 *   - reconnection on the next command after a failure, no sooner than
 *     `backoff` seconds later; until then commands fail at once (ECONNREFUSED);
 *   - every callback runs from the loop, never from inside p0f_redis_command(),
 *     exactly once per command, also when the connection is closed (ECANCELED);
 *   - the cause of every dropped (or failed) connection goes to `on_drop`,
 *     also when no command was waiting to hear it (a reply nobody asked for).
 */
#ifndef P0F_REDIS_H
#define P0F_REDIS_H

#include <stddef.h>

#include <ev.h>
#include <hiredis/hiredis.h>

struct p0f_redis;

/* reply is NULL when err != 0 (an errno value; errstr says more, may be
 * NULL). A Redis error reply arrives as reply->type == REDIS_REPLY_ERROR. */
typedef void (*p0f_redis_cb)(void *ud, const redisReply *reply, int err, const char *errstr);

/* Why the connection went down or could not be made: an errno value and a
 * text. From the loop, after the commands on it had their callbacks. */
typedef void (*p0f_redis_drop_cb)(void *ud, int err, const char *errstr);

struct p0f_redis_opts {
	const char *host;  /* address, or a path for a UNIX socket */
	int port;          /* ignored for a path */
	double timeout;    /* per command, seconds */
	double backoff;    /* after a failure, wait this long before reconnecting */
	p0f_redis_drop_cb on_drop; /* optional; it may close the connection */
	void *drop_ud;
};

/* NULL with errno ENOMEM. Nothing is connected before the first command. */
struct p0f_redis *p0f_redis_new(struct ev_loop *loop, const struct p0f_redis_opts *o);

/* Send a command (binary-safe arguments). 0, or ENOMEM (cb not called). */
int p0f_redis_command(struct p0f_redis *r, int argc, const char **argv,
                      const size_t *lens, p0f_redis_cb cb, void *ud);

/* Commands whose callback has not run yet. */
size_t p0f_redis_pending(const struct p0f_redis *r);
int p0f_redis_connected(const struct p0f_redis *r);

/* Fail what is pending with ECANCELED (callbacks run now), drop the
 * connection; nothing runs afterwards. Safe from inside a callback: the
 * memory goes when the outermost callback returns. */
void p0f_redis_free(struct p0f_redis *r);

#endif
