/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/test_evloop.c - gmm-vmm's event loop: fd sources, one-shot and
 * periodic timers, calls queued from other threads (in order), a source
 * deleted from its own handler and from another thread while its events
 * are pending, and destroy with sources still registered.
 */
#include "evloop.h"
#include "../check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MS		1000000ULL
#define WAIT_LIMIT_MS	10000	/* generous: a loaded machine is slow */

struct counter {
	atomic_int n;
	int fd;
	struct evloop *loop;
	struct evsource *self;
	int del_after;		/* delete itself at this count, 0: never */
};

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait until *n reaches want; false when it does not within the limit. */
static bool wait_for(atomic_int *n, int want)
{
	for (int i = 0; i < WAIT_LIMIT_MS; i++) {
		if (atomic_load(n) >= want)
			return true;
		sleep_ms(1);
	}
	return false;
}

static void on_fd(void *opaque, uint32_t events)
{
	struct counter *c = opaque;
	uint64_t v;

	CHECK(events & EPOLLIN);
	CHECK(read(c->fd, &v, sizeof(v)) == sizeof(v));
	/* delete before counting: the count is what the test waits on */
	if (atomic_load(&c->n) + 1 == c->del_after)
		evloop_del(c->loop, c->self);
	atomic_fetch_add(&c->n, 1);
}

static void poke(int fd)
{
	uint64_t one = 1;

	CHECK(write(fd, &one, sizeof(one)) == sizeof(one));
}

static void test_fd_source(struct evloop *l)
{
	struct counter c = { .fd = eventfd(0, EFD_NONBLOCK), .loop = l };

	c.self = evloop_add_fd(l, c.fd, EPOLLIN, on_fd, &c);
	CHECK(c.self);
	for (int i = 1; i <= 5; i++) {
		poke(c.fd);
		CHECK(wait_for(&c.n, i));
	}
	evloop_del(l, c.self);
	poke(c.fd);
	sleep_ms(50);
	CHECK(atomic_load(&c.n) == 5);
	close(c.fd);
}

static void test_del_from_handler(struct evloop *l)
{
	struct counter c = { .fd = eventfd(0, EFD_NONBLOCK), .loop = l, .del_after = 2 };

	c.self = evloop_add_fd(l, c.fd, EPOLLIN, on_fd, &c);
	CHECK(c.self);
	poke(c.fd);
	CHECK(wait_for(&c.n, 1));
	poke(c.fd);
	CHECK(wait_for(&c.n, 2));
	poke(c.fd);
	sleep_ms(50);
	CHECK(atomic_load(&c.n) == 2);
	close(c.fd);
}

static void on_tick(void *opaque, uint32_t events)
{
	struct counter *c = opaque;

	CHECK(events == 0);
	atomic_fetch_add(&c->n, 1);
}

static void test_timers(struct evloop *l)
{
	struct counter once = { 0 }, periodic = { 0 };
	struct evsource *a = evloop_add_timer(l, 1 * MS, 0, on_tick, &once);
	struct evsource *b = evloop_add_timer(l, 1 * MS, 2 * MS, on_tick, &periodic);
	struct evsource *d = evloop_add_timer(l, 0, 0, on_tick, &once);

	CHECK(a && b && d);
	CHECK(wait_for(&periodic.n, 5));
	CHECK(wait_for(&once.n, 1));
	sleep_ms(20);
	CHECK(atomic_load(&once.n) == 1);	/* one-shot fired once, d never */
	CHECK(evloop_timer_set(l, d, 1 * MS, 0) == 0);
	CHECK(wait_for(&once.n, 2));
	CHECK(evloop_timer_set(l, b, 0, 0) == 0);
	sleep_ms(10);
	int n = atomic_load(&periodic.n);

	sleep_ms(30);
	CHECK(atomic_load(&periodic.n) == n);	/* disarmed: no more ticks */
	evloop_del(l, a);
	evloop_del(l, b);
	evloop_del(l, d);
}

struct seq {
	atomic_int n;
	int order[64];
};

static void on_call(void *opaque, uint32_t events)
{
	struct seq *s = opaque;
	(void)events;

	/* Runs on the loop thread only, so the store needs no lock. */
	s->order[atomic_load(&s->n)] = atomic_load(&s->n);
	atomic_fetch_add(&s->n, 1);
}

static void test_calls(struct evloop *l)
{
	struct seq s = { 0 };

	for (int i = 0; i < 64; i++)
		CHECK(evloop_call(l, on_call, &s) == 0);
	CHECK(wait_for(&s.n, 64));
	for (int i = 0; i < 64; i++)
		CHECK(s.order[i] == i);
}

/* A busy source deleted from another thread: no handler runs after del. */
struct busy {
	struct counter c;
	atomic_int after_del;
	atomic_bool deleted;
};

static void on_busy(void *opaque, uint32_t events)
{
	struct busy *b = opaque;
	(void)events;

	if (atomic_load(&b->deleted))
		atomic_fetch_add(&b->after_del, 1);
	atomic_fetch_add(&b->c.n, 1);	/* level-triggered: fires again */
}

static void test_del_busy(struct evloop *l)
{
	for (int round = 0; round < 50; round++) {
		struct busy b = { .c.fd = eventfd(0, EFD_NONBLOCK), .c.loop = l };
		struct evsource *s;

		poke(b.c.fd);	/* never read: the fd stays readable */
		s = evloop_add_fd(l, b.c.fd, EPOLLIN, on_busy, &b);
		CHECK(s);
		CHECK(wait_for(&b.c.n, 3));
		evloop_del(l, s);
		atomic_store(&b.deleted, true);
		sleep_ms(2);
		CHECK(atomic_load(&b.after_del) == 0);
		close(b.c.fd);
	}
}

static void test_bad_args(struct evloop *l)
{
	CHECK(evloop_add_fd(NULL, 0, EPOLLIN, on_fd, NULL) == NULL);
	CHECK(evloop_add_fd(l, -1, EPOLLIN, on_fd, NULL) == NULL);
	CHECK(evloop_add_fd(l, 0, EPOLLIN, NULL, NULL) == NULL);
	CHECK(evloop_call(l, NULL, NULL) == -EINVAL);
	CHECK(evloop_timer_set(l, NULL, 1, 0) == -EINVAL);
	CHECK(!evloop_on_loop_thread(l));
	evloop_del(l, NULL);
}

int main(void)
{
	struct evloop *l;
	int fd = eventfd(0, EFD_NONBLOCK);
	struct counter left = { .fd = fd };

	CHECK(evloop_create(&l) == 0);
	CHECK(evloop_start(l) == 0);
	test_bad_args(l);
	test_fd_source(l);
	test_del_from_handler(l);
	test_timers(l);
	test_calls(l);
	test_del_busy(l);
	left.loop = l;
	CHECK(evloop_add_fd(l, fd, EPOLLIN, on_fd, &left));
	CHECK(evloop_add_timer(l, 1000 * MS, 0, on_tick, &left));
	evloop_stop(l);
	evloop_destroy(l);	/* frees the two sources still registered */
	close(fd);
	printf("evloop: ok\n");
	return 0;
}
