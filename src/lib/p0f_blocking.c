/*
 * Blocking queries. The v3 one is a poll() loop around p0f_client, so the
 * blocking and nonblocking paths share every byte of protocol handling.
 */

#include "p0f_blocking.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Block in poll() until the client's fd is ready or its next deadline. */
static void wait_client(struct p0f_client *c)
{
	struct pollfd p;
	double t = p0f_client_timeout(c);
	int ev = p0f_client_events(c), ms;

	p.fd = p0f_client_pollfd(c);
	p.events = (short)(((ev & P0F_EV_READ) ? POLLIN : 0) | ((ev & P0F_EV_WRITE) ? POLLOUT : 0));
	p.revents = 0;
	ms = t < 0 ? -1 : (int)(t * 1000) + 1;
	if (p.fd < 0 && ms < 0)
		return; /* nothing to wait for: step() will decide */
	(void)poll(p.fd >= 0 ? &p : NULL, p.fd >= 0 ? 1 : 0, ms);
}

int p0f_query_once(const char *path, const char *addr, size_t len,
                   double timeout, double drain, struct p0f_result *out)
{
	struct p0f_client_opts o;
	struct p0f_client *c;
	uint64_t h;
	int rc;

	memset(&o, 0, sizeof o);
	o.timeout = timeout;
	o.max_inflight = 1;
	o.drain = drain;
	if ((c = p0f_client_new(path, &o)) == NULL)
		return errno;
	if ((rc = p0f_client_submit(c, addr, len, &h)) != 0) {
		p0f_client_free(c);
		return rc;
	}
	p0f_client_await(c, h, out);
	p0f_client_free(c); /* drains a late reply, bounded by `drain` */
	return out->err;
}

int p0f_client_await(struct p0f_client *c, uint64_t h, struct p0f_result *out)
{
	for (;;) {
		p0f_client_step(c);
		if (p0f_client_fetch(c, h, out) == 1)
			return out->err;
		wait_client(c);
	}
}

/* ---- v2 ------------------------------------------------------------------ */

static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		struct pollfd p = { fd, events, 0 };
		double left = deadline - p0f_monotonic();
		int r;
		if (left <= 0)
			return ETIMEDOUT;
		r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return errno;
	}
}

int p0f2_query_once(const char *path, const struct p0f2_query *q, double timeout,
                    struct p0f2_response *out)
{
	struct sockaddr_un sa;
	uint8_t qb[P0F2_QUERY_LEN], rb[P0F2_RESP_LEN];
	size_t plen = strlen(path), done = 0;
	double deadline = p0f_monotonic() + (timeout > 0 ? timeout : 5);
	int fd, rc = 0;

	if (plen == 0 || plen >= sizeof sa.sun_path)
		return ENAMETOOLONG;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		rc = errno;
		if (rc == EINPROGRESS || rc == EAGAIN)
			rc = ECONNREFUSED; /* no room in its backlog: as good as down */
		close(fd);
		return rc;
	}
	p0f2_query_encode(q, qb);
	while (done < sizeof qb && rc == 0) {
		ssize_t n = send(fd, qb + done, sizeof qb - done, MSG_NOSIGNAL);
		if (n > 0)
			done += (size_t)n;
		else if (n < 0 && errno != EINTR && errno != EAGAIN)
			rc = errno == EPIPE ? ECONNRESET : errno;
		else
			rc = wait_fd(fd, POLLOUT, deadline);
	}
	done = 0;
	while (done < sizeof rb && rc == 0) {
		ssize_t n = read(fd, rb + done, sizeof rb - done);
		if (n > 0)
			done += (size_t)n;
		else if (n == 0)
			rc = done ? EPROTO : ECONNRESET;
		else if (errno != EINTR && errno != EAGAIN)
			rc = errno;
		else
			rc = wait_fd(fd, POLLIN, deadline);
	}
	close(fd);
	if (rc == 0) {
		rc = p0f2_response_decode(rb, sizeof rb, out);
		if (rc == 0 && out->id != q->id)
			rc = EPROTO; /* an answer to somebody else's question */
	}
	return rc;
}
