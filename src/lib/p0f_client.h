/*
 * p0f_client: one long-lived, pipelined connection to a p0f v3 API socket,
 * as a nonblocking state machine. No Lua and no event library: the caller
 * polls p0f_client_pollfd() for p0f_client_events(), waits at most
 * p0f_client_timeout() seconds and calls p0f_client_step(). This is the
 * shape of cqueues' dns.c (submit / step / pollfd / events / timeout /
 * fetch), so any event loop can drive it.
 *
 * How it treats the daemon (see docs/protocol.md):
 *   - queries go out in FIFO order, at most max_inflight unanswered at once,
 *     and replies are matched to them in order (p0f answers in order);
 *   - a query past its deadline fails with ETIMEDOUT at once, but its reply
 *     is still awaited and discarded, so the stream stays in step and the
 *     daemon never writes to a closed socket (p0f does not ignore SIGPIPE);
 *   - EOF, a reset, bad magic or any desync fail the queries on the wire
 *     (ECONNRESET / EPROTO), the socket is closed and a new connection is
 *     made for later queries, after a bounded backoff;
 *   - if connecting fails (ENOENT, ECONNREFUSED, EACCES ...) the waiting
 *     queries fail at once with that code: a mail filter would rather go on
 *     without an answer than wait for a daemon that is not there;
 *   - never a half-close; sends use MSG_NOSIGNAL; p0f_client_close() first
 *     reads the replies still owed (for at most `drain` seconds), and so
 *     does exit() for a client never closed (p0f_exit.h).
 */
#ifndef P0F_CLIENT_H
#define P0F_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "p0f_codec.h"

#define P0F_EV_READ 1
#define P0F_EV_WRITE 2

struct p0f_client_opts {
	double timeout;         /* per-query deadline in seconds (default 5) */
	unsigned max_inflight;  /* written but unanswered queries (default 64) */
	double drain;           /* close() waits this long for owed replies (default 1) */
	double backoff_max;     /* reconnect backoff cap in seconds (default 1) */
};

struct p0f_client;

/* A finished query: err == 0 and resp filled, or err is an errno value. */
struct p0f_result {
	int err;
	struct p0f_response resp;
};

/* Defaults for every field that is zero. Nothing is opened yet: the first
 * step with work to do connects. NULL with errno ENOMEM / ENAMETOOLONG. */
struct p0f_client *p0f_client_new(const char *path, const struct p0f_client_opts *opts);

/* Queue a query. Returns 0 and a nonzero handle, EINVAL for an address
 * that is not one, ENOBUFS past 16M queued queries, ENOMEM. */
int p0f_client_submit(struct p0f_client *c, const char *addr, size_t len, uint64_t *handle);

/* Make all the progress possible without blocking. */
void p0f_client_step(struct p0f_client *c);

int p0f_client_pollfd(const struct p0f_client *c);      /* -1 if none */
int p0f_client_events(const struct p0f_client *c);      /* P0F_EV_* mask */
double p0f_client_timeout(const struct p0f_client *c);  /* seconds, or -1 for none */

/* Take the result of a query: 1 (result filled, handle forgotten), 0 (still
 * pending) or -1 (no such handle). */
int p0f_client_fetch(struct p0f_client *c, uint64_t handle, struct p0f_result *out);

/* Take the oldest finished query, whichever it is: 1 or 0 (none). */
int p0f_client_next_done(struct p0f_client *c, uint64_t *handle, struct p0f_result *out);

/* A small number naming a live query's record, unique among the queries
 * not yet fetched (a slot is reused only once its query is gone): callers
 * index their own per-query data by it (an array, not a hash of handles). */
uint32_t p0f_client_handle_slot(uint64_t handle);

/* Forget a query (its reply, if one is owed, is still read and dropped). */
void p0f_client_cancel(struct p0f_client *c, uint64_t handle);

size_t p0f_client_pending(const struct p0f_client *c);  /* queued + on the wire */
size_t p0f_client_finished(const struct p0f_client *c); /* done, not fetched */
int p0f_client_connected(const struct p0f_client *c);
/* Test hook: ring slots examined so far to retire timed-out or cancelled
 * queries on the wire (one per query: no scan). */
uint64_t p0f_client_ring_visits(const struct p0f_client *c);

/* Fail what is left with ECANCELED, drain owed replies (bounded), close.
 * Idempotent; the client can still be fetched from and freed. */
void p0f_client_close(struct p0f_client *c);
void p0f_client_free(struct p0f_client *c);

/* For the exit drain (p0f_exit.c): the socket to read before this process
 * exits, or -1 (nothing owed, not connected, or connected by another
 * process before a fork); and reading what is there without blocking. */
int p0f_client_exit_fd(const struct p0f_client *c, double *drain);
void p0f_client_exit_read(struct p0f_client *c);

double p0f_monotonic(void);

#endif
