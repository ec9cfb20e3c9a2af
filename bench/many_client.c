/*
 * p0f-bench-many: many clients, one query at a time each, as mail filters
 * ask (rspamd, one lookup per scan): the load of the p0f-mux rows. The same
 * byte layout and checks as p0f-bench-ref (its own code, nothing from the
 * library), over CONNS nonblocking connections driven by poll().
 *
 *   p0f-bench-many SOCKET CONNS SECONDS ADDR...
 *
 * Prints "<answers> <seconds> <refused> <unserved>": answers in SECONDS;
 * connections whose connect() failed (p0f's backlog full); connections
 * that never got a single answer (left waiting in a backlog). At the end
 * every query still owed is waited for (at most 10 s) before its
 * connection is closed: p0f dies of SIGPIPE when it answers a closed one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ref_wire.h"

#define MAXADDR 64
#define MAXCONN 4096

struct conn {
	int fd;
	int waiting;          /* a query is out */
	size_t have;          /* reply bytes read */
	unsigned long answers;
	uint8_t buf[RLEN];
};

static uint8_t queries[MAXADDR][QLEN];
static int naddr;
static struct conn conns[MAXCONN];
static struct pollfd pfd[MAXCONN];

/* A nonblocking connection, or -1 when connect() fails (backlog full). */
static int connect_to(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path)
		exit(2);
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* 21 bytes into an empty socket buffer go out whole. */
static void ask(struct conn *c, unsigned long k)
{
	if (send(c->fd, queries[k % (unsigned)naddr], QLEN, MSG_NOSIGNAL) != QLEN) {
		perror("send");
		exit(1);
	}
	c->waiting = 1;
	c->have = 0;
}

/* Read what is there; 1 when a whole, valid reply has come. */
static int take(struct conn *c)
{
	uint32_t magic, status;
	ssize_t r = read(c->fd, c->buf + c->have, RLEN - c->have);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r <= 0) {
		fprintf(stderr, "read: %s\n", r == 0 ? "EOF" : strerror(errno));
		exit(1);
	}
	c->have += (size_t)r;
	if (c->have < RLEN)
		return 0;
	memcpy(&magic, c->buf, 4);
	memcpy(&status, c->buf + 4, 4);
	if (magic != RMAGIC || (status != 0x10 && status != 0x20)) {
		fprintf(stderr, "bad reply: magic %08x status %02x\n", magic, status);
		exit(1);
	}
	c->waiting = 0;
	c->answers++;
	return 1;
}

int main(int argc, char **argv)
{
	int nconn, i, refused = 0, unserved = 0, owed;
	unsigned long next = 0, total = 0;
	double t0, t1, elapsed, deadline;

	if (argc < 5 || (nconn = atoi(argv[2])) < 1 || nconn > MAXCONN) {
		fprintf(stderr, "usage: p0f-bench-many SOCKET CONNS SECONDS ADDR...\n");
		return 2;
	}
	for (i = 4; i < argc && naddr < MAXADDR; i++)
		if (build_query(argv[i], queries[naddr++]) != 0)
			return 2;
	for (i = 0; i < nconn; i++) {
		conns[i].fd = connect_to(argv[1]);
		if (conns[i].fd < 0)
			refused++;
	}
	t0 = now();
	t1 = t0 + atof(argv[3]);
	for (i = 0; i < nconn; i++)
		if (conns[i].fd >= 0)
			ask(&conns[i], next++);
	while (now() < t1) {
		for (i = 0; i < nconn; i++) {
			pfd[i].fd = conns[i].fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)nconn, 100) < 0 && errno != EINTR) {
			perror("poll");
			return 1;
		}
		for (i = 0; i < nconn; i++)
			if (pfd[i].revents && conns[i].fd >= 0 && take(&conns[i])) {
				total++;
				ask(&conns[i], next++);
			}
	}
	elapsed = now() - t0;
	for (i = 0; i < nconn; i++)
		if (conns[i].fd >= 0 && conns[i].answers == 0)
			unserved++;
	/* Wait for what is owed; close each connection once it owes nothing,
	 * which frees p0f's slot for one still waiting in its backlog. */
	deadline = now() + 10;
	do {
		owed = 0;
		for (i = 0; i < nconn; i++) {
			if (conns[i].fd >= 0 && !conns[i].waiting) {
				close(conns[i].fd);
				conns[i].fd = -1;
			}
			pfd[i].fd = conns[i].fd;
			pfd[i].events = POLLIN;
			owed += conns[i].fd >= 0;
		}
		if (owed && poll(pfd, (nfds_t)nconn, 100) > 0)
			for (i = 0; i < nconn; i++)
				if (pfd[i].revents && conns[i].fd >= 0)
					take(&conns[i]);
	} while (owed && now() < deadline);
	if (owed)
		fprintf(stderr, "p0f-bench-many: %d replies still owed after 10 s\n", owed);
	printf("%lu %.6f %d %d\n", total, elapsed, refused, unserved);
	return 0;
}
