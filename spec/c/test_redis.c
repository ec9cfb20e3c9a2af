/*
 * Tests of the Redis connection (src/p0f_redis.c) against stand-ins that a
 * real redis-server cannot be made to play: one that over-answers, one that
 * hangs, one that speaks garbage or sends a huge reply. The stand-in runs in
 * the same libev loop, on a UNIX socket. Callbacks that close the connection
 * from inside themselves are exercised here too: run under ASan or valgrind,
 * a use after free fails the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "p0f_redis.h"

#include "check.h"

/* ---- the stand-in ------------------------------------------------------- */

enum mode { OVERANSWER, HANG, GARBAGE, HUGE_REPLY, BIG_ARRAY, NIL_REPLY };

#define PING_LEN 14 /* "*1\r\n$4\r\nPING\r\n" */

struct standin {
	ev_io accept_w, conn_w, write_w;
	size_t huge_left; /* HUGE_REPLY: bytes still to send, when writable */
	struct ev_loop *loop;
	int lfd, cfd;
	enum mode mode;
	size_t got;
	char path[108];
};

static void standin_answer(struct standin *s, size_t commands)
{
	static const char nil2[] = "$-1\r\n$-1\r\n";
	static const char garbage[] = "hello, this is not RESP\r\n";
	size_t i;

	for (i = 0; i < commands; i++) {
		switch (s->mode) {
		case OVERANSWER:
			(void)!write(s->cfd, nil2, sizeof nil2 - 1);
			break;
		case NIL_REPLY:
			(void)!write(s->cfd, nil2, 5);
			break;
		case GARBAGE:
			(void)!write(s->cfd, garbage, sizeof garbage - 1);
			break;
		case HUGE_REPLY: /* more than the reply limit, as the client reads */
			(void)!write(s->cfd, "$100000000\r\n", 13);
			s->huge_left = 1024 * 1024;
			ev_io_start(s->loop, &s->write_w);
			break;
		case BIG_ARRAY:
			(void)!write(s->cfd, "*100000\r\n", 9);
			break;
		case HANG:
			break;
		}
	}
}

static void on_standin_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct standin *s = w->data;
	static char chunk[65536];
	ssize_t n;
	(void)revents;
	memset(chunk, 'x', sizeof chunk);
	n = write(s->cfd, chunk, s->huge_left < sizeof chunk ? s->huge_left : sizeof chunk);
	if (n > 0)
		s->huge_left -= (size_t)n;
	if (n < 0 || s->huge_left == 0)
		ev_io_stop(loop, w);
}

static void on_standin_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct standin *s = w->data;
	char buf[4096];
	ssize_t n = read(s->cfd, buf, sizeof buf);
	size_t before = s->got / PING_LEN;
	(void)revents;
	if (n <= 0) {
		ev_io_stop(loop, w);
		ev_io_stop(loop, &s->write_w);
		close(s->cfd);
		s->cfd = -1;
		return;
	}
	s->got += (size_t)n;
	standin_answer(s, s->got / PING_LEN - before);
}

static void on_standin_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct standin *s = w->data;
	int fd = accept(s->lfd, NULL, NULL);
	(void)revents;
	if (fd < 0)
		return;
	if (s->cfd >= 0) { /* one client at a time: the previous is gone */
		ev_io_stop(loop, &s->conn_w);
		ev_io_stop(loop, &s->write_w);
		close(s->cfd);
	}
	/* Nonblocking: the client runs in this same thread, so a blocked
	 * write would never be read. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	s->cfd = fd;
	ev_io_init(&s->write_w, on_standin_writable, fd, EV_WRITE);
	s->write_w.data = s;
	s->got = 0;
	ev_io_init(&s->conn_w, on_standin_read, fd, EV_READ);
	s->conn_w.data = s;
	ev_io_start(loop, &s->conn_w);
}

static void standin_start(struct ev_loop *loop, struct standin *s, enum mode mode)
{
	struct sockaddr_un sun;
	memset(s, 0, sizeof *s);
	s->mode = mode;
	s->cfd = -1;
	s->loop = loop;
	snprintf(s->path, sizeof s->path, "/tmp/p0f-redis-test-%d.sock", (int)getpid());
	unlink(s->path);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    listen(s->lfd, 8) != 0) {
		perror("stand-in");
		exit(2);
	}
	ev_io_init(&s->accept_w, on_standin_accept, s->lfd, EV_READ);
	s->accept_w.data = s;
	ev_io_start(loop, &s->accept_w);
}

static void standin_stop(struct ev_loop *loop, struct standin *s)
{
	ev_io_stop(loop, &s->accept_w);
	close(s->lfd);
	if (s->cfd >= 0) {
		ev_io_stop(loop, &s->conn_w);
		ev_io_stop(loop, &s->write_w);
		close(s->cfd);
	}
	unlink(s->path);
}

/* ---- the client side ---------------------------------------------------- */

struct outcome {
	int called, err, reply_type;
	struct p0f_redis **close_me; /* close the connection from the callback */
};

static void on_done(void *ud, const redisReply *reply, int err, const char *errstr)
{
	struct outcome *o = ud;
	(void)errstr;
	o->called++;
	o->err = err;
	o->reply_type = reply ? reply->type : -1;
	if (o->close_me && *o->close_me) {
		p0f_redis_free(*o->close_me);
		*o->close_me = NULL;
	}
}

/* What on_drop was told (reset by connect_to); close_me: close from it. */
static struct drops {
	int n, err;
	char text[128];
	struct p0f_redis **close_me;
} drops;

static void on_drop(void *ud, int err, const char *errstr)
{
	struct drops *d = ud;
	d->n++;
	d->err = err;
	snprintf(d->text, sizeof d->text, "%s", errstr ? errstr : "");
	if (d->close_me && *d->close_me) {
		p0f_redis_free(*d->close_me);
		*d->close_me = NULL;
	}
}

static const char *ping[] = { "PING" };
static const size_t ping_len[] = { 4 };

static struct p0f_redis *connect_to(struct ev_loop *loop, struct standin *s, double timeout)
{
	struct p0f_redis_opts o;
	memset(&o, 0, sizeof o);
	o.host = s->path;
	o.timeout = timeout;
	o.backoff = 0.01;
	o.on_drop = on_drop;
	o.drop_ud = &drops;
	memset(&drops, 0, sizeof drops);
	return p0f_redis_new(loop, &o);
}

/* Run the loop until every outcome has been called, or 5 s passed. */
static void run_until(struct ev_loop *loop, struct outcome *o, int n)
{
	double until = ev_time() + 5;
	for (;;) {
		int i, all = 1;
		for (i = 0; i < n; i++)
			all &= o[i].called > 0;
		if (all || ev_time() > until)
			return;
		ev_run(loop, EVRUN_ONCE);
	}
}

static void send_ping(struct p0f_redis *r, struct outcome *o)
{
	CHECK(p0f_redis_command(r, 1, ping, ping_len, on_done, o) == 0);
}

/* A reply nobody asked for drops the connection instead of aborting. */
static void test_overanswer(struct ev_loop *loop)
{
	struct standin s;
	struct p0f_redis *r;
	struct outcome o[2];

	memset(o, 0, sizeof o);
	standin_start(loop, &s, OVERANSWER);
	r = connect_to(loop, &s, 2);
	send_ping(r, &o[0]);
	run_until(loop, o, 1);
	CHECK(o[0].called == 1 && o[0].err == 0 && o[0].reply_type == REDIS_REPLY_NIL);
	/* the second, unasked reply arrives: the process lives on */
	while (p0f_redis_connected(r) && ev_run(loop, EVRUN_ONCE))
		;
	CHECK(!p0f_redis_connected(r));
	/* no command heard of it: on_drop says why */
	CHECK(drops.n == 1 && drops.err == EPROTO);
	CHECK(strstr(drops.text, "nobody asked for") != NULL);
	usleep(20000); /* past the backoff: the next command reconnects */
	ev_now_update(loop);
	send_ping(r, &o[1]);
	run_until(loop, o + 1, 1);
	CHECK(o[1].called == 1 && o[1].err == 0);
	p0f_redis_free(r);
	standin_stop(loop, &s);
}

/* Bytes that are not RESP, a reply too large, an array too long: EPROTO or
 * ENOMEM for the command, never a crash or unbounded memory. */
static void test_bad_replies(struct ev_loop *loop)
{
	static const enum mode modes[] = { GARBAGE, HUGE_REPLY, BIG_ARRAY };
	size_t i;
	for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		struct standin s;
		struct p0f_redis *r;
		struct outcome o;
		memset(&o, 0, sizeof o);
		standin_start(loop, &s, modes[i]);
		r = connect_to(loop, &s, 2);
		send_ping(r, &o);
		run_until(loop, &o, 1);
		CHECK(o.called == 1);
		CHECK(o.err == EPROTO || o.err == ENOMEM);
		CHECK(!p0f_redis_connected(r));
		CHECK(drops.n == 1 && drops.err == o.err);
		p0f_redis_free(r);
		standin_stop(loop, &s);
	}
}

/* A hung Redis: the command fails with ETIMEDOUT, and its callback closes
 * the connection while another command is still waiting on it. */
static void test_close_in_timeout_callback(struct ev_loop *loop)
{
	struct standin s;
	struct p0f_redis *r;
	struct outcome o[2];

	memset(o, 0, sizeof o);
	standin_start(loop, &s, HANG);
	r = connect_to(loop, &s, 0.05);
	o[0].close_me = &r;
	send_ping(r, &o[0]);
	send_ping(r, &o[1]);
	run_until(loop, o, 2);
	CHECK(o[0].called == 1 && o[0].err == ETIMEDOUT);
	CHECK(o[1].called == 1 && (o[1].err == ECANCELED || o[1].err == ECONNRESET));
	CHECK(r == NULL);
	CHECK(drops.n == 0); /* closed by its owner: nothing to report */
	standin_stop(loop, &s);
}

/* A reply's callback closes the connection with a second reply waiting in
 * the same read: the second command is cancelled, nothing else runs. */
static void test_close_in_reply_callback(struct ev_loop *loop)
{
	struct standin s;
	struct p0f_redis *r;
	struct outcome o[3];

	memset(o, 0, sizeof o);
	standin_start(loop, &s, NIL_REPLY);
	r = connect_to(loop, &s, 2);
	o[0].close_me = &r;
	send_ping(r, &o[0]);
	send_ping(r, &o[1]);
	send_ping(r, &o[2]);
	run_until(loop, o, 3);
	CHECK(o[0].called == 1 && o[0].err == 0);
	CHECK(o[1].called == 1 && o[1].err == ECANCELED);
	CHECK(o[2].called == 1 && o[2].err == ECANCELED);
	CHECK(r == NULL);
	standin_stop(loop, &s);
}

/* Closed with commands pending: each gets ECANCELED once, and a command
 * sent afterwards from such a callback is refused, not queued. */
static struct p0f_redis *resend_on;
static int resend_rc = -1;

static void on_cancel_resend(void *ud, const redisReply *reply, int err, const char *errstr)
{
	struct outcome *o = ud;
	(void)reply;
	(void)errstr;
	o->called++;
	o->err = err;
	resend_rc = p0f_redis_command(resend_on, 1, ping, ping_len, on_done, o);
}

static void test_free_with_pending(struct ev_loop *loop)
{
	struct standin s;
	struct outcome o;

	memset(&o, 0, sizeof o);
	standin_start(loop, &s, HANG);
	resend_on = connect_to(loop, &s, 2);
	CHECK(p0f_redis_command(resend_on, 1, ping, ping_len, on_cancel_resend, &o) == 0);
	ev_run(loop, EVRUN_NOWAIT);
	p0f_redis_free(resend_on);
	CHECK(o.called == 1 && o.err == ECANCELED);
	CHECK(resend_rc == ECANCELED);
	standin_stop(loop, &s);
}

/* Nobody listening: ECONNREFUSED (or ENOENT) from the loop, not a crash. */
static void test_nobody_there(struct ev_loop *loop)
{
	struct standin s;
	struct p0f_redis *r;
	struct outcome o;

	memset(&o, 0, sizeof o);
	memset(&s, 0, sizeof s);
	snprintf(s.path, sizeof s.path, "/tmp/p0f-redis-test-%d-none.sock", (int)getpid());
	r = connect_to(loop, &s, 1);
	send_ping(r, &o);
	CHECK(o.called == 0); /* never from inside p0f_redis_command */
	run_until(loop, &o, 1);
	CHECK(o.called == 1 && o.err != 0);
	/* the connect attempt failed at once: reported from the loop too */
	CHECK(drops.n == 1 && drops.err == o.err);
	p0f_redis_free(r);
}

/* A hung Redis left open: the deadline is the cause on_drop hears. */
static void test_timeout_reported(struct ev_loop *loop)
{
	struct standin s;
	struct p0f_redis *r;
	struct outcome o;

	memset(&o, 0, sizeof o);
	standin_start(loop, &s, HANG);
	r = connect_to(loop, &s, 0.05);
	send_ping(r, &o);
	run_until(loop, &o, 1);
	CHECK(o.called == 1 && o.err == ETIMEDOUT);
	CHECK(drops.n == 1 && drops.err == ETIMEDOUT);
	p0f_redis_free(r);
	standin_stop(loop, &s);
}

/* on_drop closes the connection (a use after free shows under ASan). */
static void test_close_in_drop_callback(struct ev_loop *loop)
{
	struct standin s;
	struct p0f_redis *r;
	struct outcome o;

	memset(&o, 0, sizeof o);
	standin_start(loop, &s, OVERANSWER);
	r = connect_to(loop, &s, 2);
	drops.close_me = &r;
	send_ping(r, &o);
	run_until(loop, &o, 1);
	while (r != NULL && ev_run(loop, EVRUN_ONCE))
		;
	CHECK(o.called == 1 && o.err == 0);
	CHECK(r == NULL && drops.n == 1 && drops.err == EPROTO);
	standin_stop(loop, &s);
}

int main(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);

	test_overanswer(loop);
	test_bad_replies(loop);
	test_close_in_timeout_callback(loop);
	test_close_in_reply_callback(loop);
	test_free_with_pending(loop);
	test_nobody_there(loop);
	test_timeout_reported(loop);
	test_close_in_drop_callback(loop);
	ev_loop_destroy(loop);
	printf("test_redis: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
