/*
 * p0f_ev: drive a p0f_client from a libev loop. One ev_io follows the
 * client's fd and events, one ev_timer its next deadline. While no query is
 * pending the io watcher stays on (to notice the daemon going away) but does
 * not keep ev_run() alive.
 */
#ifndef P0F_EV_H
#define P0F_EV_H

#include <ev.h>

#include "p0f_client.h"

struct p0f_ev;

/* Called once per finished query, from inside ev_run(). */
typedef void (*p0f_ev_done_fn)(struct p0f_ev *e, uint64_t handle,
                               const struct p0f_result *res, void *ud);
/* Called at the end of each kick when nothing is pending or finished. */
typedef void (*p0f_ev_idle_fn)(struct p0f_ev *e, void *ud);

struct p0f_ev {
	struct ev_loop *loop;   /* NULL once detached */
	struct p0f_client *client;
	ev_io io;
	ev_timer timer;
	int io_unref;           /* ev_unref() done on behalf of the idle io watcher */
	int in_kick;            /* depth of p0f_ev_kick() calls under way */
	p0f_ev_done_fn on_done;
	p0f_ev_idle_fn on_idle;
	void *ud;
};

void p0f_ev_init(struct p0f_ev *e, struct ev_loop *loop, struct p0f_client *c,
                 p0f_ev_done_fn on_done, p0f_ev_idle_fn on_idle, void *ud);

/* Kick from inside the loop, on its next iteration (after a submit), so
 * callbacks never run before the caller's own code has returned. */
void p0f_ev_soon(struct p0f_ev *e);

/* Make progress now (after a submit), deliver what finished, re-arm. */
void p0f_ev_kick(struct p0f_ev *e);

/* Stop every watcher and forget the client: neither the loop nor the
 * client is touched afterwards (the caller may free the client now). */
void p0f_ev_detach(struct p0f_ev *e);

/* Whether a kick is under way, i.e. the caller is inside one of the
 * callbacks: the owner of `e` must then stay allocated until it returns. */
int p0f_ev_in_callback(const struct p0f_ev *e);

#endif
