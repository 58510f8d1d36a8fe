/* SPDX-License-Identifier: MIT */
/*
 * vmm/evloop.c - the event loop thread (contract in evloop.h).
 *
 * Invariant: a source's memory is freed only by the loop thread between two
 * epoll_wait() batches (or by evloop_destroy()), so an event already
 * returned by epoll_wait() never points at freed memory; a deleted source is
 * marked dead under the dispatch lock and its pending events are dropped.
 */
#include "evloop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* Events taken from epoll per wake-up. */
#define EVLOOP_BATCH	32

struct evsource {
	struct evloop *loop;
	int fd;
	bool timer;			/* fd is a timerfd the source owns */
	bool dead;
	evloop_fn fn;
	void *opaque;
	struct evsource *next;		/* live list, or graveyard once dead */
};

struct evcall {
	evloop_fn fn;
	void *opaque;
	struct evcall *next;
};

struct evloop {
	int epfd;
	int wake_fd;			/* eventfd: stop or calls queued */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t lock;		/* held while handlers run */
	struct evsource *sources;
	struct evsource *graveyard;
	pthread_mutex_t call_lock;	/* only guards the call queue */
	struct evcall *calls, **calls_tail;
};

/* epoll data for the wake eventfd: no source has this address. */
static char wake_marker;

/* The loop the calling thread runs, if it is a loop thread. */
static _Thread_local const struct evloop *this_loop;

bool evloop_on_loop_thread(const struct evloop *l)
{
	return l && this_loop == l;
}

static void loop_lock(struct evloop *l)
{
	if (!evloop_on_loop_thread(l))
		pthread_mutex_lock(&l->lock);
}

static void loop_unlock(struct evloop *l)
{
	if (!evloop_on_loop_thread(l))
		pthread_mutex_unlock(&l->lock);
}

static void wake(struct evloop *l)
{
	uint64_t one = 1;

	if (write(l->wake_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, the loop wakes */
	}
}

int evloop_create(struct evloop **out)
{
	struct evloop *l = calloc(1, sizeof(*l));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &wake_marker };

	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->wake_fd < 0 ||
	    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev)) {
		int err = -errno;

		if (l->epfd >= 0)
			close(l->epfd);
		if (l->wake_fd >= 0)
			close(l->wake_fd);
		free(l);
		return err;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->call_lock, NULL);
	l->calls_tail = &l->calls;
	*out = l;
	return 0;
}

static void free_source(struct evsource *s)
{
	if (s->timer)
		close(s->fd);
	free(s);
}

static void bury_dead(struct evloop *l)
{
	while (l->graveyard) {
		struct evsource *s = l->graveyard;

		l->graveyard = s->next;
		free_source(s);
	}
}

static void run_calls(struct evloop *l)
{
	struct evcall *c;
	uint64_t n;

	if (read(l->wake_fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: another wake-up already drained the counter */
	}
	pthread_mutex_lock(&l->call_lock);
	c = l->calls;
	l->calls = NULL;
	l->calls_tail = &l->calls;
	pthread_mutex_unlock(&l->call_lock);
	while (c) {
		struct evcall *next = c->next;

		c->fn(c->opaque, 0);
		free(c);
		c = next;
	}
}

static void dispatch(struct evloop *l, const struct epoll_event *ev)
{
	struct evsource *s = ev->data.ptr;
	uint64_t expirations;

	if (ev->data.ptr == &wake_marker) {
		run_calls(l);
		return;
	}
	if (s->dead)
		return;
	if (s->timer) {
		if (read(s->fd, &expirations, sizeof(expirations)) < 0)
			return;		/* re-armed or disarmed meanwhile */
		s->fn(s->opaque, 0);
		return;
	}
	s->fn(s->opaque, ev->events);
}

static void *loop_thread(void *arg)
{
	struct evloop *l = arg;
	struct epoll_event evs[EVLOOP_BATCH];
	sigset_t all;

	/* Process-directed signals (SIGTERM, SIGINT, SIGHUP) are for the
	 * thread that waits for them, never for the loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	this_loop = l;
	while (!atomic_load(&l->stop)) {
		int n = epoll_wait(l->epfd, evs, EVLOOP_BATCH, -1);

		if (n < 0)
			continue;	/* EINTR */
		pthread_mutex_lock(&l->lock);
		for (int i = 0; i < n && !atomic_load(&l->stop); i++)
			dispatch(l, &evs[i]);
		bury_dead(l);
		pthread_mutex_unlock(&l->lock);
	}
	return NULL;
}

int evloop_start(struct evloop *l)
{
	int err;

	if (l->started)
		return 0;
	atomic_store(&l->stop, false);
	err = pthread_create(&l->thread, NULL, loop_thread, l);
	if (err)
		return -err;
	l->started = true;
	return 0;
}

void evloop_stop(struct evloop *l)
{
	if (!l || !l->started)
		return;
	atomic_store(&l->stop, true);
	wake(l);
	pthread_join(l->thread, NULL);
	l->started = false;
}

void evloop_destroy(struct evloop *l)
{
	if (!l)
		return;
	evloop_stop(l);
	while (l->sources) {
		struct evsource *s = l->sources;

		l->sources = s->next;
		free_source(s);
	}
	bury_dead(l);
	while (l->calls) {
		struct evcall *c = l->calls;

		l->calls = c->next;
		free(c);
	}
	close(l->epfd);
	close(l->wake_fd);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->call_lock);
	free(l);
}

static struct evsource *add_source(struct evloop *l, int fd, bool timer,
				   uint32_t events, evloop_fn fn, void *opaque)
{
	struct evsource *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = events };

	if (!s)
		return NULL;
	*s = (struct evsource){ .loop = l, .fd = fd, .timer = timer,
				.fn = fn, .opaque = opaque };
	ev.data.ptr = s;
	loop_lock(l);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int err = errno;

		loop_unlock(l);
		free(s);
		errno = err;
		return NULL;
	}
	s->next = l->sources;
	l->sources = s;
	loop_unlock(l);
	return s;
}

struct evsource *evloop_add_fd(struct evloop *l, int fd, uint32_t events,
			       evloop_fn fn, void *opaque)
{
	if (!l || fd < 0 || !fn) {
		errno = EINVAL;
		return NULL;
	}
	return add_source(l, fd, false, events, fn, opaque);
}

int evloop_mod_fd(struct evloop *l, struct evsource *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	if (!l || !s || s->timer)
		return -EINVAL;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, s->fd, &ev) ? -errno : 0;
}

static struct itimerspec ns_to_its(uint64_t first_ns, uint64_t period_ns)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(first_ns / 1000000000ULL),
			      .tv_nsec = (long)(first_ns % 1000000000ULL) },
		.it_interval = { .tv_sec = (time_t)(period_ns / 1000000000ULL),
				 .tv_nsec = (long)(period_ns % 1000000000ULL) },
	};

	return its;
}

struct evsource *evloop_add_timer(struct evloop *l, uint64_t first_ns,
				  uint64_t period_ns, evloop_fn fn,
				  void *opaque)
{
	struct itimerspec its = ns_to_its(first_ns, period_ns);
	struct evsource *s;
	int fd, err;

	if (!l || !fn) {
		errno = EINVAL;
		return NULL;
	}
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return NULL;
	if (timerfd_settime(fd, 0, &its, NULL))
		goto fail;
	s = add_source(l, fd, true, EPOLLIN, fn, opaque);
	if (s)
		return s;
fail:
	err = errno;
	close(fd);
	errno = err;
	return NULL;
}

int evloop_timer_set(struct evloop *l, struct evsource *s, uint64_t first_ns,
		     uint64_t period_ns)
{
	struct itimerspec its = ns_to_its(first_ns, period_ns);

	if (!l || !s || !s->timer)
		return -EINVAL;
	return timerfd_settime(s->fd, 0, &its, NULL) ? -errno : 0;
}

void evloop_del(struct evloop *l, struct evsource *s)
{
	struct evsource **pp;

	if (!l || !s)
		return;
	loop_lock(l);
	for (pp = &l->sources; *pp && *pp != s; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = s->next;
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		s->dead = true;
		s->next = l->graveyard;
		l->graveyard = s;
	}
	loop_unlock(l);
}

int evloop_call(struct evloop *l, evloop_fn fn, void *opaque)
{
	struct evcall *c;

	if (!l || !fn)
		return -EINVAL;
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct evcall){ .fn = fn, .opaque = opaque };
	pthread_mutex_lock(&l->call_lock);
	*l->calls_tail = c;
	l->calls_tail = &c->next;
	pthread_mutex_unlock(&l->call_lock);
	wake(l);
	return 0;
}
