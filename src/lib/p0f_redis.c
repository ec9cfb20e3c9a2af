/*
 * p0f_redis: see p0f_redis.h.
 *
 * Each command is a `struct req` with its own deadline timer. hiredis owns
 * the request as privdata until it calls back (with a reply, or with NULL
 * when the connection goes away); our side may finish it earlier (timeout,
 * close). `done` says the caller has been answered; `owned_by_hiredis` says
 * hiredis will still call back, so only then may the memory go.
 */
#include "p0f_redis.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>

struct req {
	struct p0f_redis *r;
	ev_timer timer;
	p0f_redis_cb cb;
	void *ud;
	int done, owned_by_hiredis, err;
	struct req *prev, *next; /* in r->live while not done */
};

struct p0f_redis {
	struct ev_loop *loop;
	redisAsyncContext *ac;
	char host[256];
	int port, is_unix, connected, connect_failed, freeing;
	double timeout, backoff, retry_at;
	struct req *live;
	size_t pending;
};

static void link_req(struct p0f_redis *r, struct req *q)
{
	q->prev = NULL;
	q->next = r->live;
	if (r->live)
		r->live->prev = q;
	r->live = q;
	r->pending++;
}

static void unlink_req(struct p0f_redis *r, struct req *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		r->live = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
	r->pending--;
}

/* Answer the caller once; free the request unless hiredis still holds it. */
static void finish(struct req *q, const redisReply *reply, int err, const char *errstr)
{
	struct p0f_redis *r = q->r;

	if (!q->done) {
		q->done = 1;
		ev_timer_stop(r->loop, &q->timer);
		unlink_req(r, q);
		q->cb(q->ud, reply, err, errstr);
	}
	if (!q->owned_by_hiredis)
		free(q);
}

static void drop_connection(struct p0f_redis *r)
{
	redisAsyncContext *ac = r->ac;
	if (ac == NULL)
		return;
	r->ac = NULL;
	r->connected = 0;
	r->retry_at = ev_now(r->loop) + r->backoff;
	/* Calls every outstanding reply callback with NULL, then frees. */
	redisAsyncFree(ac);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct req *q = privdata;
	(void)ac;
	q->owned_by_hiredis = 0;
	if (reply == NULL && !q->done && q->r->connect_failed)
		finish(q, NULL, ECONNREFUSED, "cannot connect to redis");
	else if (reply == NULL)
		finish(q, NULL, ECONNRESET, "connection to redis lost");
	else
		finish(q, reply, 0, NULL);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct p0f_redis *r = ac->data;
	if (r == NULL || r->ac != ac)
		return;
	if (status == REDIS_OK) {
		r->connected = 1;
		r->connect_failed = 0;
	} else {
		r->connect_failed = 1;
		/* hiredis frees the context after this and fails its callbacks */
		r->ac = NULL;
		r->connected = 0;
		r->retry_at = ev_now(r->loop) + r->backoff;
	}
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct p0f_redis *r = ac->data;
	(void)status;
	if (r == NULL || r->ac != ac)
		return;
	r->ac = NULL;
	r->connected = 0;
	r->retry_at = ev_now(r->loop) + r->backoff;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct req *q = w->data;
	struct p0f_redis *r = q->r;
	(void)loop;
	(void)revents;
	if (q->err) { /* failed before it was sent: report from the loop */
		finish(q, NULL, q->err, q->err == ECONNREFUSED ? "redis unavailable" : NULL);
		return;
	}
	finish(q, NULL, ETIMEDOUT, "redis did not answer in time");
	drop_connection(r);
}

static int ensure_connection(struct p0f_redis *r)
{
	redisAsyncContext *ac;

	if (r->ac)
		return 0;
	if (ev_now(r->loop) < r->retry_at)
		return ECONNREFUSED;
	ac = r->is_unix ? redisAsyncConnectUnix(r->host) : redisAsyncConnect(r->host, r->port);
	if (ac == NULL)
		return ENOMEM;
	if (ac->err) {
		redisAsyncFree(ac);
		r->retry_at = ev_now(r->loop) + r->backoff;
		return ECONNREFUSED;
	}
	ac->data = r;
	if (redisLibevAttach(r->loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		return ENOMEM;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	return 0;
}

struct p0f_redis *p0f_redis_new(struct ev_loop *loop, const struct p0f_redis_opts *o)
{
	struct p0f_redis *r = calloc(1, sizeof *r);
	const char *host = o->host ? o->host : "127.0.0.1";

	if (r == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	r->loop = loop;
	if (strncmp(host, "unix:", 5) == 0)
		host += 5;
	r->is_unix = host[0] == '/';
	if (strlen(host) >= sizeof r->host) {
		free(r);
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(r->host, host);
	r->port = o->port > 0 ? o->port : 6379;
	r->timeout = o->timeout > 0 ? o->timeout : 1.0;
	r->backoff = o->backoff > 0 ? o->backoff : 1.0;
	return r;
}

int p0f_redis_command(struct p0f_redis *r, int argc, const char **argv,
                      const size_t *lens, p0f_redis_cb cb, void *ud)
{
	struct req *q = calloc(1, sizeof *q);
	int rc;

	if (q == NULL)
		return ENOMEM;
	q->r = r;
	q->cb = cb;
	q->ud = ud;
	ev_timer_init(&q->timer, on_timer, r->timeout, 0.);
	q->timer.data = q;
	link_req(r, q);
	rc = ensure_connection(r);
	if (rc == 0 && redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, lens) == REDIS_OK)
		q->owned_by_hiredis = 1;
	else
		q->err = rc ? rc : ECONNRESET;
	if (q->err) /* answer from the loop, never from inside this call */
		ev_timer_set(&q->timer, 0., 0.);
	ev_timer_start(r->loop, &q->timer);
	return 0;
}

size_t p0f_redis_pending(const struct p0f_redis *r)
{
	return r->pending;
}

int p0f_redis_connected(const struct p0f_redis *r)
{
	return r->connected;
}

void p0f_redis_free(struct p0f_redis *r)
{
	if (r == NULL)
		return;
	r->freeing = 1;
	while (r->live)
		finish(r->live, NULL, ECANCELED, "redis connection closed");
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac); /* frees the requests it still holds */
	}
	free(r);
}
