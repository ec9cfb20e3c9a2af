/*
 * p0f_exit: read the replies p0f still owes when the process exits without
 * closing its clients.
 *
 * p0f does not ignore SIGPIPE: a reply written to a socket whose client is
 * gone can kill the daemon. p0f_client_close() drains owed replies first,
 * but a program that calls exit() (Lua's os.exit() does, skipping every
 * __gc) never gets there. So every live client is on a process-wide list,
 * and an atexit() handler drains them all, in parallel, each for at most
 * its own `drain` seconds (the same budget as close()).
 *
 * Only sockets this process connected are drained: after fork() the child
 * shares the parent's sockets, and reading from one would take replies the
 * parent is waiting for.
 */
#ifndef P0F_EXIT_H
#define P0F_EXIT_H

struct p0f_client;

/* A client's place on the list (embedded in the client). */
struct p0f_exit_link {
	struct p0f_exit_link *prev, *next;
	struct p0f_client *client;
};

/* Put a client on the list / take it off (idempotent). The first call
 * installs the exit handler. Neither can fail: if the handler cannot be
 * installed safely (see p0f_exit.c), clients are listed but not drained. */
void p0f_exit_track(struct p0f_exit_link *l, struct p0f_client *c);
void p0f_exit_untrack(struct p0f_exit_link *l);

/* What the exit handler does: read what every listed client is owed, each
 * for at most its `drain` (exit then closes the sockets). Exposed for tests. */
void p0f_exit_drain_all(void);

/* Whether the exit handler is installed (tests). */
int p0f_exit_armed(void);

#endif
