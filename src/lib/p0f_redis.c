/*
 * p0f_redis: see p0f_redis.h.
 *
 * The socket, the deadlines and the matching of replies to commands are ours;
 * hiredis only formats commands and parses replies (redisFormatCommandArgv,
 * redisReader). Its async layer is not used, because a reply nobody asked for
 * trips an assert() in redisProcessCallbacks and aborts the process: a Redis,
 * or anything listening on its port, must never be able to do that.
 *
 * Commands wait in one FIFO, in the order they were written; replies are
 * matched to its head. Any surprise (a reply with nothing waiting, a protocol
 * error, a reply too large, EOF, a deadline passed) drops the connection and
 * fails everything on it, since nothing after it can be trusted to match.
 * Its cause then goes to on_drop: a reply nobody asked for fails no command,
 * so without it the owner would never hear why Redis keeps going away.
 *
 * Callbacks may close the connection (p0f_redis_free) or send new commands.
 * Every entry from the loop holds a depth count, and the memory of `r` goes
 * only when the outermost frame leaves, so no frame touches freed memory.
 */
#include "p0f_redis.h"

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Our replies are short strings; a larger one means the peer is not the
 * Redis we expect, or is hostile. Both bound the memory a reply can take. */
#define REPLY_MAX_BYTES (256 * 1024)
#define REPLY_MAX_ELEMENTS 64

struct req {
	struct p0f_redis *r;
	ev_timer timer;
	p0f_redis_cb cb;
	void *ud;
	int err;                 /* set when it failed before reaching the wire */
	int tried;               /* ... by a connect attempt of its own: report it */
	struct req *prev, *next; /* r->live: every request not yet answered */
	struct req *wnext;       /* r->wire: FIFO of requests awaiting a reply */
};

struct p0f_redis {
	struct ev_loop *loop;
	char host[256];
	int port, is_unix;
	double timeout, backoff, retry_at;
	p0f_redis_drop_cb on_drop;
	void *drop_ud;

	int fd, connecting, connected;
	ev_io rio, wio;
	char *out;
	size_t outlen, outoff;
	redisReader *reader;
	redisReplyObjectFunctions fns; /* hiredis' own, with a bounded createArray */
	void *(*create_array)(const redisReadTask *, int);
	size_t reply_bytes;             /* read since the last complete reply */

	struct req *live, *wire, *wire_tail;
	size_t pending;
	int depth, closed;
};

/* ---- requests ----------------------------------------------------------- */

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
	r->pending--;
}

/* Answer the caller once, then free the request. The caller must check
 * r->closed afterwards: the callback may have closed the connection. */
static void finish(struct req *q, const redisReply *reply, int err, const char *errstr)
{
	struct p0f_redis *r = q->r;
	ev_timer_stop(r->loop, &q->timer);
	unlink_req(r, q);
	q->cb(q->ud, reply, err, errstr);
	free(q);
}

static void enter(struct p0f_redis *r)
{
	r->depth++;
}

/* 1 when `r` is gone (or closed) and the caller must not touch it again. */
static int leave(struct p0f_redis *r)
{
	int closed = r->closed;
	if (--r->depth == 0 && closed)
		free(r);
	return closed;
}

/* ---- the connection ----------------------------------------------------- */

static void *create_array_bounded(const redisReadTask *task, int elements)
{
	struct p0f_redis *r = task->privdata;
	if (elements < 0 || elements > REPLY_MAX_ELEMENTS)
		return NULL; /* the reader reports "out of memory": a protocol failure */
	return r->create_array(task, elements);
}

/* Close the socket; the requests on it stay in r->wire for the caller. */
static void close_socket(struct p0f_redis *r)
{
	if (r->fd < 0)
		return;
	ev_io_stop(r->loop, &r->rio);
	ev_io_stop(r->loop, &r->wio);
	close(r->fd);
	r->fd = -1;
	r->connecting = r->connected = 0;
	free(r->out);
	r->out = NULL;
	r->outlen = r->outoff = 0;
	if (r->reader)
		redisReaderFree(r->reader);
	r->reader = NULL;
	r->reply_bytes = 0;
}

/* Tell the owner why the connection went down, unless it closed it. */
static void report_drop(struct p0f_redis *r, int err, const char *errstr)
{
	if (!r->closed && r->on_drop)
		r->on_drop(r->drop_ud, err, errstr);
}

/* The connection is unusable: drop it, fail what was on it (err), and wait
 * `backoff` before the next connect. The caller reports the cause. */
static void lose(struct p0f_redis *r, int err, const char *errstr)
{
	struct req *q = r->wire;

	close_socket(r);
	r->retry_at = ev_now(r->loop) + r->backoff;
	r->wire = r->wire_tail = NULL;
	while (q && !r->closed) {
		struct req *next = q->wnext;
		finish(q, NULL, err, errstr);
		q = next;
	}
}

static void drop(struct p0f_redis *r, int err, const char *errstr)
{
	lose(r, err, errstr);
	report_drop(r, err, errstr);
}

static int open_socket(struct p0f_redis *r)
{
	int fd = -1, err = ECONNREFUSED;

	if (r->is_unix) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, r->host, strlen(r->host) + 1); /* length checked in new */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return errno;
		if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0 && errno != EINPROGRESS) {
			err = errno; /* EAGAIN: the listen backlog is full */
			close(fd);
			return err;
		}
	} else {
		struct addrinfo hints, *res, *ai;
		char port[8];
		memset(&hints, 0, sizeof hints);
		hints.ai_socktype = SOCK_STREAM;
		snprintf(port, sizeof port, "%d", r->port);
		if (getaddrinfo(r->host, port, &hints, &res) != 0)
			return EHOSTUNREACH;
		for (ai = res; ai; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			            ai->ai_protocol);
			if (fd < 0) {
				err = errno;
				continue;
			}
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
				break;
			err = errno;
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0)
			return err;
	}
	r->fd = fd;
	r->connecting = 1;
	return 0;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_writable(struct ev_loop *loop, ev_io *w, int revents);

/* 0 when a connection is up or on its way, else why not (errno value);
 * *tried: whether a connect attempt failed (not merely the backoff). */
static int ensure_connection(struct p0f_redis *r, int *tried)
{
	int err;

	if (r->fd >= 0)
		return 0;
	if (ev_now(r->loop) < r->retry_at)
		return ECONNREFUSED;
	if ((r->reader = redisReaderCreate()) == NULL)
		return ENOMEM;
	r->fns = *r->reader->fn;
	r->create_array = r->fns.createArray;
	r->fns.createArray = create_array_bounded;
	r->reader->fn = &r->fns;
	r->reader->privdata = r;
	if ((err = open_socket(r)) != 0) {
		redisReaderFree(r->reader);
		r->reader = NULL;
		r->retry_at = ev_now(r->loop) + r->backoff;
		*tried = 1;
		return err;
	}
	ev_io_init(&r->rio, on_readable, r->fd, EV_READ);
	ev_io_init(&r->wio, on_writable, r->fd, EV_WRITE);
	r->rio.data = r->wio.data = r;
	ev_io_start(r->loop, &r->rio);
	ev_io_start(r->loop, &r->wio); /* connect completes: writable */
	return 0;
}

/* Write what is buffered: 0, or an errno value (EAGAIN: wait for EV_WRITE). */
static int flush(struct p0f_redis *r)
{
	while (r->outoff < r->outlen) {
		ssize_t n = send(r->fd, r->out + r->outoff, r->outlen - r->outoff, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		r->outoff += (size_t)n;
	}
	r->outoff = r->outlen = 0;
	return 0;
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct p0f_redis *r = w->data;
	int err = 0;
	socklen_t len = sizeof err;
	(void)loop;
	(void)revents;

	enter(r);
	if (r->connecting) {
		if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			drop(r, ECONNREFUSED, "cannot connect to redis");
			leave(r);
			return;
		}
		r->connecting = 0;
		r->connected = 1;
	}
	err = flush(r);
	if (err == 0)
		ev_io_stop(r->loop, &r->wio);
	else if (err != EAGAIN)
		drop(r, ECONNRESET, "connection to redis lost");
	leave(r);
}

/* Hand every complete reply in the reader to the head of the FIFO. */
static void dispatch(struct p0f_redis *r)
{
	void *reply;

	while (!r->closed && r->fd >= 0) {
		struct req *q;
		if (redisReaderGetReply(r->reader, &reply) != REDIS_OK) {
			drop(r, EPROTO, "redis sent something that is not a valid reply");
			return;
		}
		if (reply == NULL)
			return;
		r->reply_bytes = r->reader->len - r->reader->pos;
		if ((q = r->wire) == NULL) {
			freeReplyObject(reply);
			drop(r, EPROTO, "redis sent a reply nobody asked for");
			return;
		}
		r->wire = q->wnext;
		if (r->wire == NULL)
			r->wire_tail = NULL;
		finish(q, reply, 0, NULL);
		freeReplyObject(reply);
	}
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct p0f_redis *r = w->data;
	char buf[16384];
	ssize_t n;
	(void)loop;
	(void)revents;

	enter(r);
	n = recv(r->fd, buf, sizeof buf, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		leave(r);
		return;
	}
	if (n > 0 && r->connecting) { /* data before the writable event */
		r->connecting = 0;
		r->connected = 1;
	}
	if (n <= 0) {
		drop(r, r->connecting ? ECONNREFUSED : ECONNRESET,
		     r->connecting ? "cannot connect to redis" : "connection to redis lost");
	} else if ((r->reply_bytes += (size_t)n) > REPLY_MAX_BYTES) {
		drop(r, EPROTO, "redis reply too large");
	} else if (redisReaderFeed(r->reader, buf, (size_t)n) != REDIS_OK) {
		drop(r, ENOMEM, "out of memory reading a redis reply");
	} else {
		dispatch(r);
	}
	leave(r);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct req *q = w->data;
	struct p0f_redis *r = q->r;
	(void)loop;
	(void)revents;

	enter(r);
	if (q->err) { /* failed before it was sent: report from the loop */
		int err = q->err, tried = q->tried;
		finish(q, NULL, err, err == ECONNREFUSED ? "redis unavailable" : NULL);
		if (tried)
			report_drop(r, err, "cannot connect to redis");
	} else {
		/* A Redis that does not answer one command will not answer the
		 * next either: drop the connection, failing this one first. */
		struct req **pp = &r->wire;
		while (*pp != q)
			pp = &(*pp)->wnext;
		*pp = q->wnext;
		if (r->wire_tail == q) {
			struct req *t = r->wire;
			while (t && t->wnext)
				t = t->wnext;
			r->wire_tail = t;
		}
		finish(q, NULL, ETIMEDOUT, "redis did not answer in time");
		if (!r->closed) {
			lose(r, ECONNRESET, "connection to redis lost");
			report_drop(r, ETIMEDOUT, "redis did not answer in time");
		}
	}
	leave(r);
}

/* ---- the API ------------------------------------------------------------ */

struct p0f_redis *p0f_redis_new(struct ev_loop *loop, const struct p0f_redis_opts *o)
{
	struct p0f_redis *r = calloc(1, sizeof *r);
	const char *host = o->host ? o->host : "127.0.0.1";

	if (r == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	r->loop = loop;
	r->fd = -1;
	if (strncmp(host, "unix:", 5) == 0)
		host += 5;
	r->is_unix = host[0] == '/';
	if (strlen(host) >= (r->is_unix ? sizeof ((struct sockaddr_un *)0)->sun_path : sizeof r->host)) {
		free(r);
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(r->host, host);
	r->port = o->port > 0 && o->port <= 65535 ? o->port : 6379;
	r->timeout = o->timeout > 0 ? o->timeout : 1.0;
	r->backoff = o->backoff > 0 ? o->backoff : 1.0;
	r->on_drop = o->on_drop;
	r->drop_ud = o->drop_ud;
	return r;
}

/* Append a formatted command to the output buffer. */
static int queue_bytes(struct p0f_redis *r, const char *cmd, size_t len)
{
	char *p;
	if (len > SIZE_MAX - r->outlen || (p = realloc(r->out, r->outlen + len)) == NULL)
		return ENOMEM;
	r->out = p;
	memcpy(r->out + r->outlen, cmd, len);
	r->outlen += len;
	return 0;
}

int p0f_redis_command(struct p0f_redis *r, int argc, const char **argv,
                      const size_t *lens, p0f_redis_cb cb, void *ud)
{
	struct req *q;
	char *cmd = NULL;
	int len, rc;

	if (r->closed)
		return ECANCELED;
	if ((q = calloc(1, sizeof *q)) == NULL)
		return ENOMEM;
	len = redisFormatCommandArgv(&cmd, argc, argv, lens);
	if (len < 0) {
		free(q);
		return ENOMEM;
	}
	q->r = r;
	q->cb = cb;
	q->ud = ud;
	ev_timer_init(&q->timer, on_timer, r->timeout, 0.);
	q->timer.data = q;
	rc = ensure_connection(r, &q->tried);
	if (rc == 0)
		rc = queue_bytes(r, cmd, (size_t)len);
	redisFreeCommand(cmd);
	link_req(r, q);
	if (rc == 0) {
		if (r->wire_tail)
			r->wire_tail->wnext = q;
		else
			r->wire = q;
		r->wire_tail = q;
		if (!r->connecting)
			ev_io_start(r->loop, &r->wio);
	} else { /* answer from the loop, never from inside this call */
		q->err = rc;
		ev_timer_set(&q->timer, 0., 0.);
	}
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
	if (r == NULL || r->closed)
		return;
	enter(r);
	r->closed = 1; /* from now on, commands are refused with ECANCELED */
	close_socket(r);
	r->wire = r->wire_tail = NULL;
	while (r->live)
		finish(r->live, NULL, ECANCELED, "redis connection closed");
	leave(r);
}
