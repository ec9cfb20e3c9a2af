/*
 * p0f_ev: see p0f_ev.h. Every path goes step -> deliver -> rearm, so the
 * watchers always match what the client wants after the last callback ran
 * (a callback may submit more queries, or close the client).
 */
#include "p0f_ev.h"


static void deliver(struct p0f_ev *e)
{
	uint64_t h;
	struct p0f_result res;

	while (e->client && p0f_client_next_done(e->client, &h, &res))
		e->on_done(e, h, &res, e->ud);
}

static void io_stop(struct p0f_ev *e)
{
	if (!ev_is_active(&e->io))
		return;
	if (e->io_unref) {
		ev_ref(e->loop); /* balance before the watcher goes away */
		e->io_unref = 0;
	}
	ev_io_stop(e->loop, &e->io);
}

static void rearm(struct p0f_ev *e)
{
	int fd, want, ev = 0;
	double t;

	if (e->loop == NULL || e->client == NULL)
		return;
	fd = p0f_client_pollfd(e->client);
	want = p0f_client_events(e->client);
	if (want & P0F_EV_READ)
		ev |= EV_READ;
	if (want & P0F_EV_WRITE)
		ev |= EV_WRITE;
	if (ev_is_active(&e->io) && (e->io.fd != fd || (e->io.events & (EV_READ | EV_WRITE)) != ev || ev == 0))
		io_stop(e);
	if (fd >= 0 && ev != 0 && !ev_is_active(&e->io)) {
		ev_io_set(&e->io, fd, ev);
		ev_io_start(e->loop, &e->io);
	}
	/* An idle connection must not keep ev_run() from returning. */
	if (ev_is_active(&e->io)) {
		int idle = p0f_client_pending(e->client) == 0;
		if (idle && !e->io_unref) {
			ev_unref(e->loop);
			e->io_unref = 1;
		} else if (!idle && e->io_unref) {
			ev_ref(e->loop);
			e->io_unref = 0;
		}
	}

	ev_timer_stop(e->loop, &e->timer);
	t = p0f_client_timeout(e->client);
	if (t >= 0) {
		ev_timer_set(&e->timer, t, 0.);
		ev_timer_start(e->loop, &e->timer);
	}
}

void p0f_ev_kick(struct p0f_ev *e)
{
	if (e->client == NULL)
		return;
	e->in_kick++;
	p0f_client_step(e->client);
	deliver(e);
	rearm(e);
	e->in_kick--;
	/* Last: on_idle may let go of the object that owns `e`. */
	if (e->client && e->on_idle && p0f_client_pending(e->client) == 0 &&
	    p0f_client_finished(e->client) == 0)
		e->on_idle(e, e->ud);
}

void p0f_ev_soon(struct p0f_ev *e)
{
	if (e->loop == NULL)
		return;
	if (e->io_unref) {
		ev_ref(e->loop); /* work is pending now: keep ev_run() going */
		e->io_unref = 0;
	}
	ev_timer_stop(e->loop, &e->timer);
	ev_timer_set(&e->timer, 0., 0.);
	ev_timer_start(e->loop, &e->timer);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct p0f_ev *e = w->data;
	(void)loop;
	(void)revents;
	p0f_ev_kick(e);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct p0f_ev *e = w->data;
	(void)loop;
	(void)revents;
	p0f_ev_kick(e);
}

void p0f_ev_init(struct p0f_ev *e, struct ev_loop *loop, struct p0f_client *c,
                 p0f_ev_done_fn on_done, p0f_ev_idle_fn on_idle, void *ud)
{
	e->on_idle = on_idle;
	e->loop = loop;
	e->client = c;
	e->io_unref = 0;
	e->in_kick = 0;
	e->on_done = on_done;
	e->ud = ud;
	ev_io_init(&e->io, on_io, -1, 0);
	ev_timer_init(&e->timer, on_timer, 0., 0.);
	e->io.data = e->timer.data = e;
}

void p0f_ev_detach(struct p0f_ev *e)
{
	if (e->loop != NULL) {
		io_stop(e);
		ev_timer_stop(e->loop, &e->timer);
		e->loop = NULL;
	}
	e->client = NULL;
}

int p0f_ev_in_callback(const struct p0f_ev *e)
{
	return e->in_kick > 0;
}
