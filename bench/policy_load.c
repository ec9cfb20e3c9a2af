/*
 * policy-load: a Postfix-like load generator for policy servers.
 *
 *   policy-load HOST PORT CONNS SECONDS same|spread [STATE]
 *
 * Opens CONNS connections and keeps exactly one request in flight on each,
 * as Postfix's smtpd processes do, for SECONDS; then prints
 *   requests=N seconds=T rps=R errors=E
 * `same` asks about one client address every time (a warm cache); `spread`
 * about a new public address each time (every request a lookup). STATE is
 * the protocol_state (default DATA).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024

struct lconn {
	int fd;
	char in[4096];
	size_t inlen;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int send_request(int fd, unsigned long seq, int spread, const char *state)
{
	char req[1024], addr[32];
	int n;
	ssize_t w;

	if (spread) /* 11.0.0.0/8 is public: never skipped as local */
		snprintf(addr, sizeof addr, "11.%lu.%lu.%lu", (seq >> 16) & 255, (seq >> 8) & 255, seq & 255);
	else
		snprintf(addr, sizeof addr, "203.0.113.7");
	n = snprintf(req, sizeof req,
	             "request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"
	             "client_address=%s\nclient_name=unknown\nhelo_name=bench.example\n"
	             "sender=a@example.test\nrecipient=b@example.test\ninstance=%lx\n"
	             "queue_id=\nsize=0\n\n", state, addr, seq);
	w = send(fd, req, (size_t)n, MSG_NOSIGNAL);
	return w == n ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct lconn conns[MAX_CONNS];
	struct pollfd pfd[MAX_CONNS];
	struct sockaddr_in sa;
	int nconns, spread, i;
	double seconds, start, end;
	unsigned long done = 0, seq = 0, errors = 0;
	const char *state;

	if (argc < 6) {
		fprintf(stderr, "usage: policy-load HOST PORT CONNS SECONDS same|spread [STATE]\n");
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "policy-load: bad address %s\n", argv[1]);
		return 2;
	}
	nconns = atoi(argv[3]);
	seconds = atof(argv[4]);
	spread = strcmp(argv[5], "spread") == 0;
	state = argc > 6 ? argv[6] : "DATA";
	if (nconns < 1 || nconns > MAX_CONNS || seconds <= 0) {
		fprintf(stderr, "policy-load: 1..%d connections, a positive duration\n", MAX_CONNS);
		return 2;
	}
	for (i = 0; i < nconns; i++) {
		conns[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (conns[i].fd < 0 || connect(conns[i].fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
			perror("policy-load: connect");
			return 1;
		}
		conns[i].inlen = 0;
		pfd[i].fd = conns[i].fd;
		pfd[i].events = POLLIN;
		if (send_request(conns[i].fd, seq++, spread, state) != 0) {
			perror("policy-load: send");
			return 1;
		}
	}
	start = now();
	end = start + seconds;
	while (now() < end) {
		int n = poll(pfd, (nfds_t)nconns, 100);
		if (n < 0 && errno != EINTR) {
			perror("policy-load: poll");
			return 1;
		}
		for (i = 0; i < nconns && n > 0; i++) {
			struct lconn *c = &conns[i];
			ssize_t r;
			char *eor;
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen - 1, 0);
			if (r <= 0) {
				fprintf(stderr, "policy-load: connection %d closed by the server\n", i);
				return 1;
			}
			c->inlen += (size_t)r;
			c->in[c->inlen] = '\0';
			/* one answer = "action=...\n\n" */
			while ((eor = strstr(c->in, "\n\n")) != NULL) {
				size_t used = (size_t)(eor + 2 - c->in);
				if (strncmp(c->in, "action=", 7) != 0)
					errors++;
				memmove(c->in, c->in + used, c->inlen - used + 1);
				c->inlen -= used;
				done++;
				if (send_request(c->fd, seq++, spread, state) != 0) {
					perror("policy-load: send");
					return 1;
				}
			}
		}
	}
	seconds = now() - start;
	printf("requests=%lu seconds=%.3f rps=%.0f errors=%lu\n", done, seconds, (double)done / seconds, errors);
	for (i = 0; i < nconns; i++)
		close(conns[i].fd);
	return errors ? 1 : 0;
}
