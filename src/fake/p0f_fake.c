/*
 * p0f-fake: a scriptable stand-in for the p0f daemon's API socket, for
 * tests of p0f clients (ours, and users' own through p0f.fake). It does
 * what a real p0f cannot be made to do on demand: hang, answer slowly,
 * split replies into single bytes, send garbage, close mid-reply.
 *
 *   p0f-fake --socket PATH [--script FILE] [--log FILE] [--v2] [--daemon]
 *            [--stderr FILE] [--parent PID]
 *
 * Script: one rule per line, `ADDRESS ACTION [ARGS]`, `*` for any address
 * without a rule of its own (default: a well-formed "no match" reply).
 *   reply HEX          send these bytes (a real reply, bad magic, short ...)
 *   split HEX          the same, one byte per write, 1 ms apart
 *   delay MS HEX       the same, MS milliseconds later
 *   half HEX           the first half of the bytes, then close
 *   hang               never answer (this connection answers nothing more)
 *   echo               "ok", with the queried address as os_name (for tests
 *                      that check each reply reaches the query it answers)
 *   close              close the connection instead of answering
 * Replies on one connection keep the order of the queries, as p0f's do.
 *
 * The log gets a line per event: `accept`, `query ADDRESS`, `close`, so a
 * test can count queries and connections. With --daemon the program forks,
 * and the parent prints the child's PID once the socket is listening; the
 * daemon's stderr goes to --stderr FILE (or nowhere), never to the test
 * runner's pipe, which would keep the runner waiting for it. With --parent
 * it exits when that process is gone, so a crashed test leaves nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "p0f_client.h"
#include "p0f_codec.h"

#define MAX_CONN 64
#define MAX_RULES 256
#define MAX_BYTES 4096
#define MAX_CHUNKS 256

enum action { A_REPLY, A_SPLIT, A_DELAY, A_HALF, A_HANG, A_CLOSE, A_ECHO };

struct rule {
	char addr[P0F_ADDR_TEXT_MAX]; /* canonical text, or "*" */
	enum action act;
	double delay;
	uint8_t *bytes;
	size_t len;
};

struct chunk {
	const uint8_t *bytes;
	size_t len, off;
	double not_before;
	int split, close_after, hang;
	uint8_t v2id[4]; /* v2 replies echo the query id */
	int patch_id;
	uint8_t own[P0F_RESP_LEN]; /* bytes made for this query (echo) */
};

struct conn {
	int fd;
	uint8_t in[MAX_BYTES];
	size_t inlen;
	struct chunk q[MAX_CHUNKS];
	unsigned head, n;
};

static struct rule rules[MAX_RULES];
static size_t nrules;
static struct conn conns[MAX_CONN];
static FILE *logfile;
static int v2;
static volatile sig_atomic_t stop;
static long parent_pid;
static uint8_t nomatch3[P0F_RESP_LEN], nomatch2[P0F2_RESP_LEN];

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void logline(const char *what, const char *arg)
{
	if (logfile) {
		fprintf(logfile, arg ? "%s %s\n" : "%s\n", what, arg);
		fflush(logfile);
	}
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int parse_hex(const char *s, struct rule *r)
{
	size_t n = strlen(s), i;

	if (n % 2 || n / 2 > MAX_BYTES)
		return -1;
	r->len = n / 2;
	r->bytes = malloc(r->len ? r->len : 1);
	if (r->bytes == NULL)
		return -1;
	for (i = 0; i < r->len; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		r->bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int load_script(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[MAX_BYTES * 2 + 256];
	int lineno = 0;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char addr[64], act[16], a1[MAX_BYTES * 2 + 1], a2[MAX_BYTES * 2 + 1];
		struct rule *r = &rules[nrules];
		struct p0f_addr pa;
		int n;

		lineno++;
		a1[0] = a2[0] = '\0';
		n = sscanf(line, "%63s %15s %8192s %8192s", addr, act, a1, a2);
		if (n <= 0 || addr[0] == '#')
			continue;
		if (n < 2 || nrules == MAX_RULES)
			goto bad;
		if (strcmp(addr, "*") == 0)
			strcpy(r->addr, "*");
		else if (p0f_addr_parse(addr, strlen(addr), &pa) != 0 ||
		         p0f_addr_format(&pa, r->addr, sizeof r->addr) != 0)
			goto bad;
		if (strcmp(act, "reply") == 0 && n == 3)
			r->act = A_REPLY;
		else if (strcmp(act, "split") == 0 && n == 3)
			r->act = A_SPLIT;
		else if (strcmp(act, "half") == 0 && n == 3)
			r->act = A_HALF;
		else if (strcmp(act, "delay") == 0 && n == 4) {
			r->act = A_DELAY;
			r->delay = atof(a1) / 1000.0;
			memmove(a1, a2, sizeof a1);
		} else if (strcmp(act, "hang") == 0 && n == 2)
			r->act = A_HANG;
		else if (strcmp(act, "close") == 0 && n == 2)
			r->act = A_CLOSE;
		else if (strcmp(act, "echo") == 0 && n == 2)
			r->act = A_ECHO;
		else
			goto bad;
		if (r->act != A_HANG && r->act != A_CLOSE && r->act != A_ECHO && parse_hex(a1, r) != 0)
			goto bad;
		nrules++;
	}
	fclose(f);
	return 0;
bad:
	fprintf(stderr, "p0f-fake: %s:%d: bad rule\n", path, lineno);
	fclose(f);
	return -1;
}

static const struct rule *find_rule(const char *addr)
{
	const struct rule *any = NULL;
	size_t i;
	for (i = 0; i < nrules; i++) {
		if (strcmp(rules[i].addr, addr) == 0)
			return &rules[i];
		if (!any && strcmp(rules[i].addr, "*") == 0)
			any = &rules[i];
	}
	return any;
}

static void conn_close(struct conn *c)
{
	size_t i;
	close(c->fd);
	c->fd = -1;
	for (i = 0; i < c->n; i++)
		c->q[(c->head + i) % MAX_CHUNKS].len = 0;
	c->n = c->head = 0;
	c->inlen = 0;
	logline("close", NULL);
}

/* Turn one query into the chunk that answers it. */
static void answer(struct conn *c, const char *addr, const uint8_t *id)
{
	const struct rule *r = find_rule(addr);
	struct chunk *k;
	double now = p0f_monotonic();

	logline("query", addr);
	k = &c->q[(c->head + c->n) % MAX_CHUNKS];
	memset(k, 0, sizeof *k);
	c->n++;
	if (v2) {
		k->patch_id = 1;
		memcpy(k->v2id, id, 4);
		k->close_after = 1; /* p0f 2 answers one query per connection */
	}
	if (r == NULL) {
		k->bytes = v2 ? nomatch2 : nomatch3;
		k->len = v2 ? sizeof nomatch2 : sizeof nomatch3;
		return;
	}
	k->bytes = r->bytes;
	k->len = r->len;
	switch (r->act) {
	case A_SPLIT: k->split = 1; break;
	case A_DELAY: k->not_before = now + r->delay; break;
	case A_HALF: k->len = r->len / 2; k->close_after = 1; break;
	case A_HANG: k->hang = 1; break;
	case A_CLOSE: k->len = 0; k->close_after = 1; break;
	case A_ECHO: {
		struct p0f_response e;
		memset(&e, 0, sizeof e);
		e.status = P0F_STATUS_OK;
		e.distance = 0;
		snprintf(e.os_name, sizeof e.os_name, "%s", addr);
		p0f_response_encode(&e, k->own);
		k->bytes = k->own;
		k->len = sizeof k->own;
		break;
	}
	case A_REPLY: break;
	}
}

static void parse_queries(struct conn *c)
{
	size_t qlen = v2 ? P0F2_QUERY_LEN : P0F_QUERY_LEN, off = 0;

	/* Like p0f, answer in order and stop reading while replies pile up. */
	while (c->inlen - off >= qlen && c->n < MAX_CHUNKS) {
		const uint8_t *q = c->in + off;
		char text[P0F_ADDR_TEXT_MAX] = "invalid";
		if (v2) {
			struct p0f2_query q2;
			struct p0f_addr a;
			if (p0f2_query_decode(q, qlen, &q2) == 0) {
				memset(&a, 0, sizeof a);
				a.family = 4;
				memcpy(a.bytes, q2.src_ad, 4);
				p0f_addr_format(&a, text, sizeof text);
			}
			answer(c, text, q + 8);
		} else {
			struct p0f_addr a;
			if (p0f_query_decode(q, qlen, &a) == 0)
				p0f_addr_format(&a, text, sizeof text);
			answer(c, text, NULL);
		}
		off += qlen;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
}

/* Write what is due; returns the seconds until something else is due. */
static double flush(struct conn *c)
{
	double now = p0f_monotonic();

	while (c->fd >= 0 && c->n > 0) {
		struct chunk *k = &c->q[c->head];
		uint8_t buf[MAX_BYTES];
		size_t want;
		ssize_t w;

		if (k->hang)
			return -1;
		if (now < k->not_before)
			return k->not_before - now;
		if (k->len > 0) /* a "close" chunk has no bytes at all */
			memcpy(buf, k->bytes, k->len);
		if (k->patch_id && k->len >= 8)
			memcpy(buf + 4, k->v2id, 4);
		want = k->split ? 1 : k->len - k->off;
		if (want > 0) {
			w = send(c->fd, buf + k->off, want, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EAGAIN)
					return 0.005;
				conn_close(c);
				return -1;
			}
			k->off += (size_t)w;
		}
		if (k->off < k->len) {
			if (k->split) {
				k->not_before = now + 0.001;
				return 0.001;
			}
			continue;
		}
		if (k->close_after) {
			conn_close(c);
			return -1;
		}
		c->head = (c->head + 1) % MAX_CHUNKS;
		c->n--;
	}
	return -1;
}

/* Gone, or a zombie nobody reaps yet. */
static int parent_gone(void)
{
	char path[64], buf[256], *p;
	FILE *f;
	size_t n;

	if (parent_pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%ld/stat", parent_pid);
	if ((f = fopen(path, "r")) == NULL)
		return 1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p == NULL || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

static int serve(int lfd)
{
	double next_check = 0;

	while (!stop) {
		struct pollfd p[MAX_CONN + 1];
		int idx[MAX_CONN + 1], np = 0, i, ms = -1;

		if (parent_pid > 0 && p0f_monotonic() >= next_check) {
			if (parent_gone())
				break;
			next_check = p0f_monotonic() + 0.5;
		}
		p[np].fd = lfd;
		p[np].events = POLLIN;
		idx[np++] = -1;
		for (i = 0; i < MAX_CONN; i++) {
			double t;
			if (conns[i].fd < 0)
				continue;
			parse_queries(&conns[i]); /* queries held back by a full queue */
			t = flush(&conns[i]);
			if (conns[i].fd < 0)
				continue;
			if (t >= 0 && (ms < 0 || (int)(t * 1000) + 1 < ms))
				ms = (int)(t * 1000) + 1;
			p[np].fd = conns[i].fd;
			p[np].events = conns[i].inlen < sizeof conns[i].in ? POLLIN : 0;
			idx[np++] = i;
		}
		if (parent_pid > 0 && (ms < 0 || ms > 500))
			ms = 500;
		if (poll(p, (nfds_t)np, ms) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		if (p[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			for (i = 0; fd >= 0 && i < MAX_CONN && conns[i].fd >= 0; i++)
				;
			if (fd >= 0 && i == MAX_CONN)
				close(fd);
			else if (fd >= 0) {
				memset(&conns[i], 0, sizeof conns[i]);
				conns[i].fd = fd;
				logline("accept", NULL);
			}
		}
		for (i = 1; i < np; i++) {
			struct conn *c = &conns[idx[i]];
			ssize_t n;
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)) || c->fd < 0)
				continue;
			n = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
			if (n <= 0) {
				if (n < 0 && errno == EAGAIN)
					continue;
				conn_close(c);
				continue;
			}
			c->inlen += (size_t)n;
			parse_queries(c);
		}
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: p0f-fake --socket PATH [--script FILE] [--log FILE] [--v2]\n"
	                "                [--daemon] [--stderr FILE] [--parent PID]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = NULL, *script = NULL, *logpath = NULL, *errpath = "/dev/null";
	int daemonize = 0, lfd, i, rc;
	struct sockaddr_un sa;
	struct p0f_response nm;
	struct p0f2_response nm2;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--script") == 0 && i + 1 < argc)
			script = argv[++i];
		else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
			logpath = argv[++i];
		else if (strcmp(argv[i], "--v2") == 0)
			v2 = 1;
		else if (strcmp(argv[i], "--daemon") == 0)
			daemonize = 1;
		else if (strcmp(argv[i], "--stderr") == 0 && i + 1 < argc)
			errpath = argv[++i];
		else if (strcmp(argv[i], "--parent") == 0 && i + 1 < argc)
			parent_pid = atol(argv[++i]);
		else
			usage();
	}
	if (path == NULL || strlen(path) >= sizeof sa.sun_path)
		usage();
	if (script && load_script(script) != 0)
		return 2;
	if (logpath && (logfile = fopen(logpath, "a")) == NULL) {
		perror(logpath);
		return 2;
	}
	memset(&nm, 0, sizeof nm);
	nm.status = P0F_STATUS_NOMATCH;
	p0f_response_encode(&nm, nomatch3);
	memset(&nm2, 0, sizeof nm2);
	nm2.type = P0F2_NOMATCH;
	nm2.dist = -1;
	nm2.score = -100;
	nm2.uptime = -1;
	p0f2_response_encode(&nm2, nomatch2);
	for (i = 0; i < MAX_CONN; i++)
		conns[i].fd = -1;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	unlink(path); /* like p0f: a stale socket file is replaced */
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 64) < 0) {
		perror(path);
		return 1;
	}
	chmod(path, 0666);
	if (daemonize) {
		pid_t pid = fork(); /* the socket already listens: the PID means ready */
		if (pid < 0)
			return 1;
		if (pid > 0) {
			printf("%ld\n", (long)pid);
			return 0;
		}
		setsid();
		if (freopen("/dev/null", "r", stdin) == NULL || freopen("/dev/null", "w", stdout) == NULL ||
		    freopen(errpath, "a", stderr) == NULL)
			return 1;
	}
	rc = serve(lfd);
	unlink(path);
	return rc;
}
