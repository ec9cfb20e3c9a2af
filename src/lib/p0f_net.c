/*
 * p0f_net: see p0f_net.h.
 */
#include "p0f_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

union p0f_sa {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* "unix:/path", "/path", "[v6]:port", "v4:port", "*:port", "port". */
static int parse_addr(const char *addr, union p0f_sa *sa, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *hs;
	size_t hl;
	uint16_t port;

	memset(sa, 0, sizeof *sa);
	if (strncmp(addr, "unix:", 5) == 0 || addr[0] == '/') {
		const char *path = addr[0] == '/' ? addr : addr + 5;
		if (path[0] == '\0' || strlen(path) >= sizeof sa->un.sun_path)
			return -1;
		sa->un.sun_family = AF_UNIX;
		strcpy(sa->un.sun_path, path);
		*len = (socklen_t)sizeof sa->un;
		return 0;
	}
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		hs = addr + 1;
		hl = (size_t)(close - hs);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL) {
			hs = "127.0.0.1";
			hl = strlen(hs);
			colon = addr - 1; /* the whole string is the port */
		} else {
			hs = addr;
			hl = (size_t)(colon - addr);
		}
	}
	if (hl >= sizeof host || parse_port(colon + 1, &port) != 0)
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	if (strcmp(host, "*") == 0 || host[0] == '\0') {
		sa->in4.sin_family = AF_INET;
		sa->in4.sin_addr.s_addr = htonl(INADDR_ANY);
		sa->in4.sin_port = htons(port);
		*len = (socklen_t)sizeof sa->in4;
	} else if (inet_pton(AF_INET, host, &sa->in4.sin_addr) == 1) {
		sa->in4.sin_family = AF_INET;
		sa->in4.sin_port = htons(port);
		*len = (socklen_t)sizeof sa->in4;
	} else if (inet_pton(AF_INET6, host, &sa->in6.sin6_addr) == 1) {
		sa->in6.sin6_family = AF_INET6;
		sa->in6.sin6_port = htons(port);
		*len = (socklen_t)sizeof sa->in6;
	} else {
		return -1; /* names are not resolved: a daemon's listen address is an address */
	}
	return 0;
}

/* A UNIX socket file nobody listens on is stale: try to connect to find out. */
static int unix_stale(const struct sockaddr_un *un)
{
	struct stat st;
	int fd, stale;

	if (lstat(un->sun_path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	stale = connect(fd, (const struct sockaddr *)un, sizeof *un) != 0 && errno == ECONNREFUSED;
	close(fd);
	return stale;
}

int p0f_net_listen(const char *addr, int backlog, unsigned mode, int *err)
{
	union p0f_sa sa;
	socklen_t len;
	int fd, one = 1;

	if (parse_addr(addr, &sa, &len) != 0) {
		*err = EINVAL;
		return -1;
	}
	fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (sa.sa.sa_family == AF_UNIX) {
		if (unix_stale(&sa.un))
			unlink(sa.un.sun_path);
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (sa.sa.sa_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	}
	if (bind(fd, &sa.sa, len) != 0 || listen(fd, backlog > 0 ? backlog : 128) != 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	if (sa.sa.sa_family == AF_UNIX && mode != 0 && chmod(sa.un.sun_path, (mode_t)mode) != 0) {
		*err = errno;
		close(fd);
		unlink(sa.un.sun_path);
		return -1;
	}
	return fd;
}

int p0f_net_accept(int lfd, char *peer, size_t peerlen, int *err)
{
	union p0f_sa sa;
	socklen_t len = sizeof sa;
	int fd = accept4(lfd, &sa.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		*err = errno == EWOULDBLOCK ? EAGAIN : errno;
		return -1;
	}
	if (peerlen == 0)
		return fd;
	peer[0] = '\0';
	if (sa.sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &sa.in4.sin_addr, peer, (socklen_t)peerlen);
	else if (sa.sa.sa_family == AF_INET6)
		inet_ntop(AF_INET6, &sa.in6.sin6_addr, peer, (socklen_t)peerlen);
	else
		snprintf(peer, peerlen, "unix");
	return fd;
}

ssize_t p0f_net_read(int fd, void *buf, size_t len, int *err)
{
	ssize_t n;
	do
		n = recv(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		*err = errno == EWOULDBLOCK ? EAGAIN : errno;
	return n;
}

ssize_t p0f_net_write(int fd, const void *buf, size_t len, int *err)
{
	ssize_t n;
	do
		n = send(fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		*err = errno == EWOULDBLOCK ? EAGAIN : errno;
	return n;
}

int p0f_net_local_port(int fd)
{
	union p0f_sa sa;
	socklen_t len = sizeof sa;

	if (getsockname(fd, &sa.sa, &len) != 0)
		return -1;
	if (sa.sa.sa_family == AF_INET)
		return ntohs(sa.in4.sin_port);
	if (sa.sa.sa_family == AF_INET6)
		return ntohs(sa.in6.sin6_port);
	return -1;
}

void p0f_net_close_listener(int fd, const char *addr)
{
	union p0f_sa sa;
	socklen_t len;

	if (fd >= 0)
		close(fd);
	if (addr && parse_addr(addr, &sa, &len) == 0 && sa.sa.sa_family == AF_UNIX)
		unlink(sa.un.sun_path);
}
