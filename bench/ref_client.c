/*
 * p0f-bench-ref: the daemon's reference limit for the benchmark. A minimal
 * p0f v3 API client with its own socket code and byte layout (nothing from
 * the library), so its figures say what the daemon can serve, not what our
 * code costs.
 *
 *   p0f-bench-ref SOCKET MODE SECONDS ADDR...
 *
 * MODE "one": one query at a time on one connection (write, blocking read).
 * MODE "pipe:N": N queries kept in flight on one connection.
 * Cycles through ADDR... for SECONDS and prints "<queries> <seconds>".
 */
#include <arpa/inet.h>
#include <errno.h>
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
#define MAXDEPTH 1024

static uint8_t queries[MAXADDR][QLEN];
static int naddr;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "socket path too long\n");
		exit(2);
	}
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	return fd;
}

static void write_all(int fd, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("send");
		}
		b += w;
		n -= (size_t)w;
	}
}

static void read_all(int fd, uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "read: %s\n", r == 0 ? "EOF" : strerror(errno));
			exit(1);
		}
		b += r;
		n -= (size_t)r;
	}
}

/* The replies must be real ones, or the figure means nothing. */
static void check_reply(const uint8_t *r)
{
	uint32_t magic, status;
	memcpy(&magic, r, 4);
	memcpy(&status, r + 4, 4);
	if (magic != RMAGIC || (status != 0x10 && status != 0x20)) {
		fprintf(stderr, "bad reply: magic %08x status %02x\n", magic, status);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static uint8_t buf[MAXDEPTH * RLEN], out[MAXDEPTH * QLEN];
	double seconds, t0, t1;
	unsigned long n = 0, next = 0;
	int fd, depth = 0, i;

	if (argc < 5) {
		fprintf(stderr, "usage: p0f-bench-ref SOCKET one|pipe:N SECONDS ADDR...\n");
		return 2;
	}
	if (strcmp(argv[2], "one") != 0) {
		if (strncmp(argv[2], "pipe:", 5) != 0)
			return 2;
		depth = atoi(argv[2] + 5);
		if (depth < 1 || depth > MAXDEPTH)
			return 2;
	}
	seconds = atof(argv[3]);
	for (i = 4; i < argc && naddr < MAXADDR; i++)
		if (build_query(argv[i], queries[naddr++]) != 0) {
			fprintf(stderr, "not an address: %s\n", argv[i]);
			return 2;
		}
	fd = connect_to(argv[1]);

	t0 = now();
	t1 = t0 + seconds;
	if (depth == 0) {
		do {
			for (i = 0; i < 1000; i++) {
				write_all(fd, queries[next++ % (unsigned)naddr], QLEN);
				read_all(fd, buf, RLEN);
				check_reply(buf);
			}
			n += 1000;
		} while (now() < t1);
	} else {
		/* Fill the window, then refill as replies come back. */
		unsigned long sent = 0, got = 0;
		size_t have = 0;
		for (;;) {
			size_t k = 0;
			int stop = now() >= t1;
			/* Refill only once half the window came back: fewer, larger
			 * writes, as a real pipelining client batches. */
			while (!stop && sent - got < (unsigned long)depth &&
			       (k > 0 || sent - got <= (unsigned long)depth / 2)) {
				memcpy(out + k, queries[next++ % (unsigned)naddr], QLEN);
				k += QLEN;
				sent++;
			}
			if (k)
				write_all(fd, out, k);
			if (got == sent)
				break;
			for (;;) {
				ssize_t r = read(fd, buf + have, sizeof buf - have);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					die("read");
				have += (size_t)r;
				break;
			}
			for (k = 0; have - k >= RLEN; k += RLEN) {
				check_reply(buf + k);
				got++;
			}
			memmove(buf, buf + k, have - k);
			have -= k;
		}
		n = got;
	}
	printf("%lu %.6f\n", n, now() - t0);
	close(fd); /* every reply was read: nothing left for p0f to write */
	return 0;
}
