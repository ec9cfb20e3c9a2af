/*
 * p0f_net: the few socket calls a small server needs, in plain C (no Lua,
 * no event library): listen on "127.0.0.1:PORT", "[::1]:PORT", "*:PORT" or
 * "unix:/path", accept and read/write without blocking. Every descriptor is
 * O_CLOEXEC and O_NONBLOCK, every send uses MSG_NOSIGNAL. Errors come back
 * as errno values, never through a global other than errno itself.
 */
#ifndef P0F_NET_H
#define P0F_NET_H

#include <stddef.h>
#include <sys/types.h>

/* Enough for "unix:" + a sun_path, or "[v6]:port". */
#define P0F_NET_ADDR_MAX 128

/* Open a listening socket. `mode` (e.g. 0666) is applied to a UNIX socket
 * file when nonzero; a stale UNIX socket file (nobody listening) is
 * replaced, any other existing file is left alone (EADDRINUSE).
 * Returns the fd, or -1 with *err set (EINVAL for an address we cannot
 * parse). */
int p0f_net_listen(const char *addr, int backlog, unsigned mode, int *err);

/* Accept one connection: fd >= 0 (nonblocking, close-on-exec) with the
 * peer in text form ("203.0.113.7", "::1", "unix"), or -1 with *err set
 * (EAGAIN when nobody is waiting). */
int p0f_net_accept(int lfd, char *peer, size_t peerlen, int *err);

/* Read what is there: > 0 bytes, 0 at EOF, -1 with *err (EAGAIN too). */
ssize_t p0f_net_read(int fd, void *buf, size_t len, int *err);

/* Write what fits: >= 0 bytes written, -1 with *err (EAGAIN too). */
ssize_t p0f_net_write(int fd, const void *buf, size_t len, int *err);

/* The local port of a bound TCP socket (after listening on port 0), or -1. */
int p0f_net_local_port(int fd);

/* Close a listener; a UNIX socket file `addr` named is removed. */
void p0f_net_close_listener(int fd, const char *addr);

#endif
