/*
 * Many queries on the wire timing out at once must cost work linear in their
 * number: retiring each one used to scan the ring of owed replies, so 65,536
 * expiries in one step took seconds of CPU. The client's test hook counts the
 * ring slots looked at; no clock is measured. The peer is a Unix socket that
 * accepts and never answers, which a real p0f cannot be made to do.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "p0f_client.h"

#define N 4096u

int main(void)
{
	struct sockaddr_un sa;
	struct p0f_client_opts o;
	struct p0f_client *c;
	char dir[] = "/tmp/p0f-expiry-XXXXXX";
	const char addr[] = "192.0.2.1";
	uint64_t h;
	struct p0f_result res;
	unsigned i, timedout = 0, sent_ok = 0;
	double give_up;
	int lfd, afd = -1, rc = 1;

	if (mkdtemp(dir) == NULL)
		return perror("mkdtemp"), 1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/sock", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4) != 0)
		return perror("listen"), 1;

	memset(&o, 0, sizeof o);
	o.timeout = 0.2;
	o.max_inflight = N;
	o.drain = 0.01;
	c = p0f_client_new(sa.sun_path, &o);
	if (c == NULL)
		return perror("p0f_client_new"), 1;
	for (i = 0; i < N; i++)
		if (p0f_client_submit(c, addr, strlen(addr), &h) != 0)
			return fprintf(stderr, "submit failed\n"), 1;

	/* Step until everything is on the wire (the peer reads, never answers),
	 * then until it has all timed out; generous bound against a hang. */
	give_up = p0f_monotonic() + 30;
	while (p0f_client_pending(c) > 0 && p0f_monotonic() < give_up) {
		struct pollfd p[2] = { { lfd, POLLIN, 0 }, { afd, POLLIN, 0 } };
		char buf[65536];
		if (afd < 0 && poll(p, 1, 0) > 0)
			afd = accept(lfd, NULL, NULL);
		if (afd >= 0)
			while (recv(afd, buf, sizeof buf, MSG_DONTWAIT) > 0)
				;
		p0f_client_step(c);
		if (p0f_client_pending(c) > 0) {
			struct pollfd w = { p0f_client_pollfd(c), (short)0, 0 };
			if (p0f_client_events(c) & P0F_EV_READ)
				w.events |= POLLIN;
			if (p0f_client_events(c) & P0F_EV_WRITE)
				w.events |= POLLOUT;
			poll(&w, w.fd >= 0 ? 1 : 0, 10);
		}
	}
	while (p0f_client_next_done(c, &h, &res) == 1) {
		if (res.err == ETIMEDOUT)
			timedout++;
		else
			sent_ok++;
	}
	printf("timed out %u of %u, other %u, ring slots visited %llu\n", timedout, N,
	       sent_ok, (unsigned long long)p0f_client_ring_visits(c));
	if (timedout != N)
		fprintf(stderr, "FAIL: expected all %u to time out\n", N);
	else if (p0f_client_ring_visits(c) > N)
		fprintf(stderr, "FAIL: more than one ring visit per expiry (a scan)\n");
	else
		rc = 0;
	p0f_client_free(c);
	if (afd >= 0)
		close(afd);
	close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
	puts(rc == 0 ? "ok" : "not ok");
	return rc;
}
