/*
 * p0f_client: see p0f_client.h for what it promises. Layout:
 *
 *   recs[]      every query record, indexed; a handle is (generation << 24
 *               | index) so a stale handle is recognised.
 *   pending     doubly-linked list, submit order: queued and on-the-wire
 *               records. All share one timeout, so the head always has the
 *               earliest deadline.
 *   unsent      cursor: the first record of `pending` not yet written.
 *   ring[]      the replies owed by the daemon, in order: a record index,
 *               or GHOST for a query that timed out or was cancelled after
 *               it went out (its reply is read and dropped).
 *   done        doubly-linked FIFO of finished records awaiting fetch (a
 *               record is in `pending` or in `done`, so they share links):
 *               fetching by handle, in any order, unlinks in O(1).
 */

#include "p0f_client.h"

#include "p0f_exit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NONE UINT32_MAX
#define GHOST (UINT32_MAX - 1)
#define IDX_BITS 24
#define IDX_MASK ((1u << IDX_BITS) - 1)
#define GEN_MASK ((1u << 29) - 1) /* handle stays below 2^53: exact in a double */
#define BACKOFF_MIN 0.05
#define AGAIN_DELAY 0.02 /* listen backlog full: try the connect again soon */

enum rec_state { R_FREE, R_QUEUED, R_SENT, R_DONE };

struct rec {
	uint32_t gen;
	uint8_t state;
	uint32_t prev, next; /* links in `pending` or `done`; `next` links free */
	double deadline;
	uint32_t slot; /* while R_SENT: its index in ring[] (entries never move) */
	uint8_t query[P0F_QUERY_LEN];
	struct p0f_result res;
};

/* A doubly linked list of records, through rec.prev / rec.next. */
struct reclist {
	uint32_t head, tail;
	size_t n;
};

struct p0f_client {
	/* First: the exit list then points at the start of the client, so a
	 * client never closed at exit is reachable, not "possibly lost". */
	struct p0f_exit_link exit_link; /* drained at exit if never closed */
	struct sockaddr_un sa;
	struct p0f_client_opts o;

	int fd;
	int connecting;      /* nonblocking connect in progress */
	double retry_at;     /* no connect before this (monotonic) */
	int connect_err;     /* why the last connect failed; queries fail fast */
	unsigned failures;   /* consecutive losses / failed connects */
	pid_t owner;         /* who connected fd: after fork() only it may read */

	struct rec *recs;
	uint32_t nrecs, free_head;
	struct reclist pending, done; /* in submit order; in finish order */
	uint32_t unsent;     /* first of `pending` not yet written */

	uint32_t *ring;      /* max_inflight entries */
	uint32_t ring_head, nring;
	uint64_t ring_visits; /* ring slots looked at to ghost a record (tests) */

	uint8_t *out;        /* queries being written */
	size_t outlen, outoff;
	uint8_t in[P0F_RESP_LEN * 16];
	size_t inlen;
};

double p0f_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- records and lists ------------------------------------------------ */

static uint64_t handle_of(const struct p0f_client *c, uint32_t i)
{
	return ((uint64_t)c->recs[i].gen << IDX_BITS) | i;
}

uint32_t p0f_client_handle_slot(uint64_t handle)
{
	return (uint32_t)(handle & IDX_MASK);
}

static uint32_t rec_of(const struct p0f_client *c, uint64_t h)
{
	uint32_t i = (uint32_t)(h & IDX_MASK);
	if (h == 0 || i >= c->nrecs || c->recs[i].state == R_FREE ||
	    c->recs[i].gen != (uint32_t)(h >> IDX_BITS))
		return NONE;
	return i;
}

static int rec_alloc(struct p0f_client *c, uint32_t *out)
{
	uint32_t i;

	if (c->free_head == NONE) {
		uint32_t n = c->nrecs ? c->nrecs * 2 : 64, k;
		struct rec *r;
		if (n > IDX_MASK + 1u)
			n = IDX_MASK + 1u;
		if (n <= c->nrecs)
			return ENOBUFS;
		r = realloc(c->recs, (size_t)n * sizeof *r);
		if (r == NULL)
			return ENOMEM;
		c->recs = r;
		for (k = n; k-- > c->nrecs;) {
			memset(&r[k], 0, sizeof r[k]);
			r[k].state = R_FREE;
			r[k].gen = 1;
			r[k].next = c->free_head;
			c->free_head = k;
		}
		c->nrecs = n;
	}
	i = c->free_head;
	c->free_head = c->recs[i].next;
	*out = i;
	return 0;
}

static void rec_free(struct p0f_client *c, uint32_t i)
{
	struct rec *r = &c->recs[i];
	r->state = R_FREE;
	r->gen = (r->gen % GEN_MASK) + 1; /* never 0: handle 0 means none */
	r->next = c->free_head;
	c->free_head = i;
}

static void list_append(struct p0f_client *c, struct reclist *l, uint32_t i)
{
	struct rec *r = &c->recs[i];

	r->next = NONE;
	r->prev = l->tail;
	if (l->tail != NONE)
		c->recs[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
	l->n++;
}

static void list_unlink(struct p0f_client *c, struct reclist *l, uint32_t i)
{
	struct rec *r = &c->recs[i];

	if (r->prev != NONE)
		c->recs[r->prev].next = r->next;
	else
		l->head = r->next;
	if (r->next != NONE)
		c->recs[r->next].prev = r->prev;
	else
		l->tail = r->prev;
	l->n--;
}

static void pending_unlink(struct p0f_client *c, uint32_t i)
{
	if (c->unsent == i)
		c->unsent = c->recs[i].next;
	list_unlink(c, &c->pending, i);
}

/* A record on the wire leaves a ghost in the ring: its reply is still owed.
 * O(1) through the slot remembered at send time: a scan per timeout made
 * 65,536 expiries at once cost seconds of CPU. */
static void ring_ghost(struct p0f_client *c, uint32_t i)
{
	c->ring_visits++;
	if (c->ring[c->recs[i].slot] == i)
		c->ring[c->recs[i].slot] = GHOST;
}

/* Move a pending record to `done` with an outcome. */
static void finish(struct p0f_client *c, uint32_t i, int err)
{
	struct rec *r = &c->recs[i];

	if (r->state == R_SENT)
		ring_ghost(c, i);
	pending_unlink(c, i);
	r->state = R_DONE;
	r->res.err = err;
	list_append(c, &c->done, i);
}

static void done_unlink(struct p0f_client *c, uint32_t i)
{
	list_unlink(c, &c->done, i);
}

/* ---- the connection --------------------------------------------------- */

static void backoff(struct p0f_client *c, double now)
{
	double d = 0;

	if (c->failures > 0) {
		d = BACKOFF_MIN;
		for (unsigned k = 1; k < c->failures && d < c->o.backoff_max; k++)
			d *= 2;
		if (d > c->o.backoff_max)
			d = c->o.backoff_max;
	}
	c->failures++;
	c->retry_at = now + d;
}

/* The connection is unusable: fail what is on the wire, drop the socket.
 * Only called when the daemon closed or broke the stream, so nothing it
 * still has to write can hit a closed socket of ours. */
static void lose(struct p0f_client *c, int err, double now)
{
	uint32_t k;

	for (k = 0; k < c->nring; k++) {
		uint32_t i = c->ring[(c->ring_head + k) % c->o.max_inflight];
		if (i != GHOST) {
			c->recs[i].state = R_QUEUED; /* off the wire: no ghost needed */
			finish(c, i, err);
		}
	}
	c->nring = c->ring_head = 0;
	c->outlen = c->outoff = c->inlen = 0;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->connecting = 0;
	backoff(c, now);
}

static void start_connect(struct p0f_client *c, double now)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		c->connect_err = errno;
		backoff(c, now);
		return;
	}
	c->owner = getpid();
	if (connect(fd, (struct sockaddr *)&c->sa, sizeof c->sa) == 0) {
		c->fd = fd;
		c->connect_err = 0;
		return;
	}
	if (errno == EINPROGRESS) {
		c->fd = fd;
		c->connecting = 1;
		c->connect_err = 0;
		return;
	}
	c->connect_err = errno;
	close(fd);
	if (c->connect_err == EAGAIN) {
		/* Listen backlog full: p0f is busy, not gone. Queries wait. */
		c->connect_err = 0;
		c->retry_at = now + AGAIN_DELAY;
		return;
	}
	backoff(c, now);
}

static void finish_connect(struct p0f_client *c, double now)
{
	struct pollfd p = { c->fd, POLLOUT, 0 };
	int err = 0;
	socklen_t len = sizeof err;

	if (poll(&p, 1, 0) <= 0)
		return;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	c->connecting = 0;
	if (err != 0) {
		close(c->fd);
		c->fd = -1;
		c->connect_err = err;
		backoff(c, now);
	}
}

/* After a read or send that failed: 1 to try again (EINTR), else 0 to
 * stop there, with the connection lost unless the socket was only empty
 * or full (EAGAIN). */
static int retry_io(struct p0f_client *c, double now)
{
	if (errno == EINTR)
		return 1;
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		lose(c, errno == EPIPE ? ECONNRESET : errno, now);
	return 0;
}

/* Read every complete reply there is and hand each to its query. */
static void do_read(struct p0f_client *c, double now)
{
	for (;;) {
		size_t want = sizeof c->in - c->inlen;
		ssize_t n = read(c->fd, c->in + c->inlen, want);
		size_t off = 0;

		if (n == 0) {
			lose(c, ECONNRESET, now);
			return;
		}
		if (n < 0) {
			if (retry_io(c, now))
				continue;
			return;
		}
		c->inlen += (size_t)n;
		while (c->inlen - off >= P0F_RESP_LEN) {
			struct p0f_response resp;
			uint32_t i;

			if (c->nring == 0 ||
			    p0f_response_decode(c->in + off, P0F_RESP_LEN, &resp) != 0) {
				lose(c, EPROTO, now); /* unasked-for or malformed: desync */
				return;
			}
			i = c->ring[c->ring_head];
			c->ring_head = (c->ring_head + 1) % c->o.max_inflight;
			c->nring--;
			c->failures = 0;
			off += P0F_RESP_LEN;
			if (i != GHOST) {
				c->recs[i].res.resp = resp;
				finish(c, i, 0);
			}
		}
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
		/* A short read emptied the socket: one more would only say
		 * EAGAIN (level-triggered pollers report what comes next). */
		if ((size_t)n < want)
			return;
	}
}

/* Put as many queued queries on the wire as the in-flight bound allows. */
static void do_write(struct p0f_client *c, double now)
{
	for (;;) {
		ssize_t n;

		if (c->outoff == c->outlen) {
			c->outoff = c->outlen = 0;
			while (c->unsent != NONE && c->nring < c->o.max_inflight) {
				uint32_t i = c->unsent;
				struct rec *r = &c->recs[i];
				memcpy(c->out + c->outlen, r->query, P0F_QUERY_LEN);
				c->outlen += P0F_QUERY_LEN;
				r->state = R_SENT;
				r->slot = (c->ring_head + c->nring) % c->o.max_inflight;
				c->ring[r->slot] = i;
				c->nring++;
				c->unsent = r->next;
			}
			if (c->outlen == 0)
				return;
		}
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (n < 0) {
			if (retry_io(c, now))
				continue;
			return;
		}
		c->outoff += (size_t)n;
		if (c->outoff < c->outlen)
			return; /* socket buffer full: wait for POLLOUT */
	}
}

static void expire(struct p0f_client *c, double now)
{
	while (c->pending.head != NONE && c->recs[c->pending.head].deadline <= now)
		finish(c, c->pending.head, ETIMEDOUT);
}

void p0f_client_step(struct p0f_client *c)
{
	double now = p0f_monotonic();

	if (c->fd >= 0 && c->connecting)
		finish_connect(c, now);
	if (c->fd >= 0 && !c->connecting)
		do_read(c, now);
	expire(c, now);
	if (c->fd < 0 && c->unsent != NONE) {
		if (now >= c->retry_at)
			start_connect(c, now);
		if (c->fd < 0 && c->connect_err != 0) {
			/* Nobody to ask: answer now rather than at the deadline. */
			while (c->unsent != NONE)
				finish(c, c->unsent, c->connect_err);
		}
	}
	if (c->fd >= 0 && !c->connecting)
		do_write(c, now);
}

/* ---- public ------------------------------------------------------------- */

struct p0f_client *p0f_client_new(const char *path, const struct p0f_client_opts *opts)
{
	struct p0f_client *c;
	size_t plen = strlen(path);

	if (plen == 0 || plen >= sizeof c->sa.sun_path) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	if (opts)
		c->o = *opts;
	if (!(c->o.timeout > 0))
		c->o.timeout = 5;
	if (c->o.max_inflight == 0)
		c->o.max_inflight = 64;
	if (c->o.max_inflight > 65536)
		c->o.max_inflight = 65536;
	if (!(c->o.drain >= 0))
		c->o.drain = 1;
	if (!(c->o.backoff_max > 0))
		c->o.backoff_max = 1;
	c->ring = calloc(c->o.max_inflight, sizeof *c->ring);
	c->out = malloc((size_t)c->o.max_inflight * P0F_QUERY_LEN);
	if (c->ring == NULL || c->out == NULL) {
		free(c->ring);
		free(c->out);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->sa.sun_family = AF_UNIX;
	memcpy(c->sa.sun_path, path, plen + 1);
	c->fd = -1;
	c->free_head = c->unsent = NONE;
	c->pending.head = c->pending.tail = NONE;
	c->done.head = c->done.tail = NONE;
	p0f_exit_track(&c->exit_link, c);
	return c;
}

int p0f_client_submit(struct p0f_client *c, const char *addr, size_t len, uint64_t *handle)
{
	uint8_t q[P0F_QUERY_LEN];
	uint32_t i;
	struct rec *r;
	int rc;

	if ((rc = p0f_query_from_text(addr, len, q)) != 0)
		return rc;
	if ((rc = rec_alloc(c, &i)) != 0)
		return rc;
	r = &c->recs[i];
	memcpy(r->query, q, sizeof q);
	memset(&r->res, 0, sizeof r->res);
	r->state = R_QUEUED;
	r->deadline = p0f_monotonic() + c->o.timeout;
	list_append(c, &c->pending, i);
	if (c->unsent == NONE)
		c->unsent = i;
	*handle = handle_of(c, i);
	return 0;
}

int p0f_client_pollfd(const struct p0f_client *c) { return c->fd; }

int p0f_client_events(const struct p0f_client *c)
{
	int ev;

	if (c->fd < 0)
		return 0;
	if (c->connecting)
		return P0F_EV_WRITE;
	ev = P0F_EV_READ; /* also while idle: notice the daemon going away */
	if (c->outoff < c->outlen)
		ev |= P0F_EV_WRITE;
	return ev;
}

double p0f_client_timeout(const struct p0f_client *c)
{
	double now = p0f_monotonic(), when = -1, t;

	/* Queries submitted since the last step that could go out now. */
	if (c->unsent != NONE && c->fd >= 0 && !c->connecting &&
	    c->nring < c->o.max_inflight && c->outoff == c->outlen)
		return 0;
	if (c->pending.head != NONE)
		when = c->recs[c->pending.head].deadline;
	if (c->fd < 0 && c->unsent != NONE && (when < 0 || c->retry_at < when))
		when = c->retry_at;
	if (when < 0)
		return -1;
	t = when - now;
	return t > 0 ? t : 0;
}

int p0f_client_fetch(struct p0f_client *c, uint64_t handle, struct p0f_result *out)
{
	uint32_t i = rec_of(c, handle);

	if (i == NONE)
		return -1;
	if (c->recs[i].state != R_DONE)
		return 0;
	*out = c->recs[i].res;
	done_unlink(c, i);
	rec_free(c, i);
	return 1;
}

int p0f_client_next_done(struct p0f_client *c, uint64_t *handle, struct p0f_result *out)
{
	uint32_t i = c->done.head;

	if (i == NONE)
		return 0;
	*handle = handle_of(c, i);
	*out = c->recs[i].res;
	done_unlink(c, i);
	rec_free(c, i);
	return 1;
}

void p0f_client_cancel(struct p0f_client *c, uint64_t handle)
{
	uint32_t i = rec_of(c, handle);

	if (i == NONE)
		return;
	if (c->recs[i].state != R_DONE)
		finish(c, i, ECANCELED);
	done_unlink(c, i);
	rec_free(c, i);
}

size_t p0f_client_pending(const struct p0f_client *c) { return c->pending.n; }
uint64_t p0f_client_ring_visits(const struct p0f_client *c) { return c->ring_visits; }
size_t p0f_client_finished(const struct p0f_client *c) { return c->done.n; }
int p0f_client_connected(const struct p0f_client *c) { return c->fd >= 0 && !c->connecting; }

/* Replies owed for queries whose bytes fully reached the socket. */
static uint32_t owed(const struct p0f_client *c)
{
	size_t unwritten = (c->outlen - c->outoff + P0F_QUERY_LEN - 1) / P0F_QUERY_LEN;
	return c->nring - (uint32_t)unwritten;
}

/* Whether this process may read the replies owed on c's socket: after
 * fork() both processes hold it, and the replies are the connecter's. */
static int own_socket(const struct p0f_client *c)
{
	return c->fd >= 0 && !c->connecting && c->owner == getpid();
}

int p0f_client_exit_fd(const struct p0f_client *c, double *drain)
{
	*drain = c->o.drain;
	return own_socket(c) && owed(c) > 0 ? c->fd : -1;
}

void p0f_client_exit_read(struct p0f_client *c)
{
	if (c->fd >= 0 && !c->connecting)
		do_read(c, p0f_monotonic());
}

void p0f_client_close(struct p0f_client *c)
{
	double until = p0f_monotonic() + c->o.drain;

	while (c->pending.head != NONE)
		finish(c, c->pending.head, ECANCELED);
	/* Drain: p0f dies of SIGPIPE if it writes a reply to a closed socket.
	 * Not a socket inherited through fork(): its owner still reads it. */
	while (own_socket(c) && owed(c) > 0) {
		struct pollfd p = { c->fd, POLLIN, 0 };
		double left = until - p0f_monotonic();
		int r;
		if (left <= 0)
			break;
		r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0)
			do_read(c, p0f_monotonic());
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->connecting = 0;
	c->nring = c->ring_head = 0;
	c->outlen = c->outoff = c->inlen = 0;
}

void p0f_client_free(struct p0f_client *c)
{
	if (c == NULL)
		return;
	p0f_client_close(c);
	p0f_exit_untrack(&c->exit_link);
	free(c->recs);
	free(c->ring);
	free(c->out);
	free(c);
}
