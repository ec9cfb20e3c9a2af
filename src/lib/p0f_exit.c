/*
 * p0f_exit: see p0f_exit.h. The one piece of process-wide state in the
 * library, and why it has to be: an exit() that skips every destructor
 * leaves nothing else that knows which sockets still owe replies.
 *
 * Safety of the handler itself:
 *   - dlclose: Lua unloads C modules in lua_close(). A handler pointing
 *     into an unloaded library would crash exit(). So before installing it
 *     the library pins itself: dladdr() names the object this code lives
 *     in, dlopen(RTLD_NOLOAD | RTLD_NODELETE) of that name marks it never
 *     to be unloaded. (Registering from code that cannot be unloaded is not
 *     an option: the module is the only code we ship.) Linked into a
 *     program instead of a module, there is nothing to pin. If pinning
 *     fails, no handler: no drain at exit is better than a crash.
 *   - threads: the list is behind a mutex, held across fork() so a child
 *     never inherits it locked. The handler drains with the lock held, so
 *     a client cannot be freed under it; a thread still *using* a client
 *     while another calls exit() is a race in the program, as with any
 *     object exit() tears down.
 *   - bounded: each client gets its own `drain` seconds (default 1), all
 *     drained in one poll() set, so exit waits at most the largest budget
 *     (once per module: p0f.core and p0f.ev each carry their own list).
 *
 * A hung p0f: after the budget the process exits anyway and the kernel
 * closes the socket with replies still owed. A p0f that is not writing
 * cannot be hit by SIGPIPE; if it later wakes and writes the owed replies,
 * it is (the same trade-off close() makes). Waiting longer would only move
 * the point where a hung daemon holds our exit hostage; a program that
 * prefers to wait sets a larger `drain`.
 */
#include "p0f_exit.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>

#include "p0f_client.h"

#define STACK_FDS 16 /* drained at once if malloc fails at exit */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct p0f_exit_link *head;
static int armed;

static void drain_at_exit(void) { p0f_exit_drain_all(); }
static void fork_prepare(void) { pthread_mutex_lock(&lock); }
static void fork_done(void) { pthread_mutex_unlock(&lock); }

/* Whether the object holding this code is the program itself. */
static int in_main_program(void)
{
#ifdef __GLIBC__ /* dladdr1 and dlinfo: GNU extensions */
	Dl_info info;
	struct link_map *mine = NULL, *prog = NULL;
	void *h = dlopen(NULL, RTLD_NOW);

	if (h == NULL)
		return 0;
	if (dladdr1(&head, &info, (void **)&mine, RTLD_DL_LINKMAP) == 0 ||
	    dlinfo(h, RTLD_DI_LINKMAP, &prog) != 0)
		prog = NULL;
	dlclose(h);
	return prog != NULL && mine == prog;
#else
	return 0;
#endif
}

/* Keep this library loaded until exit (see the top of the file). */
static int pin_self(void)
{
	Dl_info info;

	if (dladdr(&head, &info) == 0 || info.dli_fname == NULL)
		return 0;
	/* The reference is kept on purpose: that is the pin. */
	if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != NULL)
		return 1;
	return in_main_program();
}

static void install(void)
{
	if (!pin_self())
		return;
	if (pthread_atfork(fork_prepare, fork_done, fork_done) != 0)
		return;
	armed = atexit(drain_at_exit) == 0;
}

int p0f_exit_armed(void) { return armed; }

void p0f_exit_track(struct p0f_exit_link *l, struct p0f_client *c)
{
	pthread_once(&once, install);
	pthread_mutex_lock(&lock);
	l->client = c;
	l->prev = NULL;
	l->next = head;
	if (head)
		head->prev = l;
	head = l;
	pthread_mutex_unlock(&lock);
}

void p0f_exit_untrack(struct p0f_exit_link *l)
{
	pthread_mutex_lock(&lock);
	if (l->client != NULL) {
		if (l->prev)
			l->prev->next = l->next;
		else
			head = l->next;
		if (l->next)
			l->next->prev = l->prev;
		l->prev = l->next = NULL;
		l->client = NULL;
	}
	pthread_mutex_unlock(&lock);
}

/* Gather the clients still owed replies whose budget is not spent; poll
 * them together until the nearest budget ends; read; again. */
void p0f_exit_drain_all(void)
{
	struct pollfd stack_fds[STACK_FDS], *fds;
	struct p0f_client *stack_cl[STACK_FDS], **cl;
	struct p0f_exit_link *l;
	size_t n = 0, cap;
	double start = p0f_monotonic();

	pthread_mutex_lock(&lock);
	for (l = head; l; l = l->next)
		n++;
	fds = n > STACK_FDS ? malloc(n * sizeof *fds) : NULL;
	cl = fds ? malloc(n * sizeof *cl) : NULL;
	if (cl == NULL) {
		free(fds);
		fds = stack_fds;
		cl = stack_cl;
		cap = STACK_FDS;
	} else {
		cap = n;
	}
	for (;;) {
		double now = p0f_monotonic(), until = -1, drain, left;
		size_t k = 0, i;
		int fd, r;

		for (l = head; l && k < cap; l = l->next) {
			fd = p0f_client_exit_fd(l->client, &drain);
			if (fd < 0 || start + drain <= now)
				continue;
			if (until < 0 || start + drain < until)
				until = start + drain;
			fds[k].fd = fd;
			fds[k].events = POLLIN;
			fds[k].revents = 0;
			cl[k++] = l->client;
		}
		if (k == 0)
			break;
		left = until - now; /* > 0; a huge C-given drain is polled in slices */
		r = poll(fds, (nfds_t)k, left < 10 ? (int)(left * 1000) + 1 : 10000);
		if (r < 0 && errno != EINTR)
			break;
		for (i = 0; r > 0 && i < k; i++)
			if (fds[i].revents)
				p0f_client_exit_read(cl[i]);
	}
	if (fds != stack_fds) {
		free(fds);
		free(cl);
	}
	pthread_mutex_unlock(&lock);
}
