/*
 * The exit drain (p0f_exit.c), against a peer of our own that decides when
 * to answer, which a real p0f cannot be made to do:
 *   1. a process that exit()s with replies owed waits for them, so the
 *      daemon's replies never hit a closed socket (p0f would die of
 *      SIGPIPE): the peer writes only once it has seen no hang-up;
 *   2. after fork(), neither the child's exit nor its close of an inherited
 *      client reads the replies the parent is waiting for;
 *   3. a peer that never answers delays exit by the drain budget only.
 * Every wait is bounded generously; no duration is asserted.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p0f_client.h"
#include "p0f_exit.h"

#define N 64u

static char dir[] = "/tmp/p0f-exitdrain-XXXXXX";
static struct sockaddr_un sa;
static int failures;

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
			failures++; \
			return; \
		} \
	} while (0)

static int listen_fresh(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	unlink(sa.sun_path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
		perror("listen");
		exit(1);
	}
	return fd;
}

static struct p0f_client *client(double drain)
{
	struct p0f_client_opts o;
	struct p0f_client *c;
	uint64_t h;
	unsigned i;

	memset(&o, 0, sizeof o);
	o.timeout = 30;
	o.drain = drain;
	c = p0f_client_new(sa.sun_path, &o);
	if (c == NULL)
		return NULL;
	for (i = 0; i < N; i++)
		if (p0f_client_submit(c, "192.0.2.1", 9, &h) != 0)
			return NULL;
	return c;
}

/* Step until every query is on the wire (bounded). */
static int written(struct p0f_client *c)
{
	double give_up = p0f_monotonic() + 10;

	while (p0f_monotonic() < give_up) {
		p0f_client_step(c);
		if (p0f_client_connected(c) && p0f_client_events(c) == P0F_EV_READ)
			return 1;
		poll(NULL, 0, 1);
	}
	return 0;
}

/* Read exactly len bytes (bounded). */
static int read_all(int fd, size_t len)
{
	char buf[4096];
	double give_up = p0f_monotonic() + 10;

	while (len > 0 && p0f_monotonic() < give_up) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf, len < sizeof buf ? len : sizeof buf);
		if (n <= 0)
			return 0;
		len -= (size_t)n;
	}
	return len == 0;
}

/* Write N "no match" replies; 0 if the reader is gone (EPIPE). */
static int answer(int fd)
{
	struct p0f_response r;
	uint8_t out[P0F_RESP_LEN];
	unsigned i;

	memset(&r, 0, sizeof r);
	r.status = P0F_STATUS_NOMATCH;
	p0f_response_encode(&r, out);
	for (i = 0; i < N; i++)
		if (send(fd, out, sizeof out, MSG_NOSIGNAL) != (ssize_t)sizeof out)
			return 0;
	return 1;
}

/* Wait for a child (bounded: killed after 20 s) and return its status. */
static int reap(pid_t pid)
{
	int st = 0, k;

	for (k = 0; k < 2000; k++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		poll(NULL, 0, 10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void test_exit_waits_for_owed_replies(void)
{
	int lfd = listen_fresh(), afd, st;
	struct pollfd p;
	pid_t pid = fork();

	if (pid == 0) {
		struct p0f_client *c = client(10);
		if (c == NULL || !written(c))
			_exit(3);
		exit(0); /* never closed: only the exit handler can drain */
	}
	afd = accept(lfd, NULL, NULL);
	CHECK(afd >= 0, "accept: %s", strerror(errno));
	CHECK(read_all(afd, N * P0F_QUERY_LEN), "the child never sent its queries");
	/* A child gone now (its socket hung up) would make a daemon's replies
	 * hit a closed socket. */
	p.fd = afd;
	p.events = POLLIN;
	p.revents = 0;
	CHECK(poll(&p, 1, 300) == 0, "the child left with %u replies owed", N);
	CHECK(answer(afd), "replies hit a closed socket: %s", strerror(errno));
	st = reap(pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	close(afd);
	close(lfd);
}

/* The parent's replies are already waiting when a forked child exits (or
 * closes the inherited client first): the parent must get them all. */
static void forked_child_reads_nothing(int close_first)
{
	int lfd = listen_fresh(), afd = -1, st;
	struct p0f_client *c = client(5);
	struct p0f_result res;
	uint64_t h;
	unsigned got = 0;
	double give_up;
	pid_t pid;

	CHECK(c != NULL, "client");
	p0f_client_step(c); /* connect: the listener queues it */
	afd = accept(lfd, NULL, NULL);
	CHECK(afd >= 0, "accept: %s", strerror(errno));
	CHECK(written(c), "queries not written");
	CHECK(read_all(afd, N * P0F_QUERY_LEN), "queries not received");
	CHECK(answer(afd), "answer: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		if (close_first)
			p0f_client_free(c);
		exit(0);
	}
	st = reap(pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	give_up = p0f_monotonic() + 10;
	while (got < N && p0f_monotonic() < give_up) {
		struct pollfd p = { p0f_client_pollfd(c), POLLIN, 0 };
		p0f_client_step(c);
		while (p0f_client_next_done(c, &h, &res) == 1)
			if (res.err == 0 && res.resp.status == P0F_STATUS_NOMATCH)
				got++;
		if (got < N)
			poll(&p, 1, 10);
	}
	CHECK(got == N, "the parent got %u of %u replies (close_first %d)", got, N, close_first);
	p0f_client_free(c);
	close(afd);
	close(lfd);
}

static void test_forked_child_exit(void) { forked_child_reads_nothing(0); }
static void test_forked_child_close(void) { forked_child_reads_nothing(1); }

static void test_hung_peer_bounds_exit(void)
{
	int lfd = listen_fresh(), afd, st;
	pid_t pid = fork();

	if (pid == 0) {
		struct p0f_client *c = client(0.2);
		if (c == NULL || !written(c))
			_exit(3);
		exit(0);
	}
	afd = accept(lfd, NULL, NULL);
	CHECK(afd >= 0, "accept: %s", strerror(errno));
	CHECK(read_all(afd, N * P0F_QUERY_LEN), "the child never sent its queries");
	st = reap(pid); /* never answered: the child still leaves */
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d (hung at exit?)", st);
	close(afd);
	close(lfd);
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return perror("mkdtemp"), 1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/sock", dir);

	test_exit_waits_for_owed_replies();
	test_forked_child_exit();
	test_forked_child_close();
	test_hung_peer_bounds_exit();
	if (!p0f_exit_armed()) {
		fprintf(stderr, "the exit handler is not installed\n");
		failures++;
	}

	unlink(sa.sun_path);
	rmdir(dir);
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
