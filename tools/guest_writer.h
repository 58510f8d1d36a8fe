/* SPDX-License-Identifier: MIT */
/*
 * tools/guest_writer.h - writer threads that write checked patterns into a
 * guest region through its host mapping while pages move under them
 * (collapse, migration): bench-collapse and tests/unit/test_collapse.c.
 *
 * Writer w of n owns the pages p with p % n == w (of those given).  In each
 * pass it checks that every word of a page still holds what it wrote in the
 * previous pass, then writes the next pass's words: a write lost by a move
 * (copied before it landed, or landed in the old frame) shows as a
 * mismatched page.  A page whose move is in progress is write-protected:
 * the SIGSEGV handler waits with gmm_guest_migration_wait() and the write
 * is retried (mprotect write stop), or the writer sleeps in the kernel
 * until the move ends (uffd-wp).  For the pause write stop the writers
 * stand in for vCPUs (gw_pause_ops()): a paused writer parks on a futex
 * before its next page, as a kicked vCPU leaves KVM_RUN.  Only backed pages
 * may be given: a host thread touching an unbacked page faults for good.
 */
#ifndef GMM_TOOLS_GUEST_WRITER_H
#define GMM_TOOLS_GUEST_WRITER_H

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gmm/gmm.h>

#define GW_WORDS (GMM_PAGE_SIZE / sizeof(uint64_t))
#define GW_MAX_WRITERS 8

struct gw_writer {
	pthread_t th;
	volatile uint64_t *base; /* the region's host mapping */
	uint64_t nr_pages, w, n;
	uint64_t passes;         /* completed, atomic */
	uint64_t bad_pages;      /* pages found not holding their last pass */
	const volatile bool *skip; /* per page: not to be touched (may be NULL) */
	volatile int stop;
};

static struct gmm_guest *gw_guest;
static uint64_t gw_waits; /* writes that found their page moving, atomic */
static int gw_pause_req, gw_parked, gw_active; /* the pause stand-in, atomic */

/* A pause asked for: park until the resume. */
static inline void gw_park(void)
{
	__atomic_fetch_add(&gw_parked, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&gw_pause_req, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &gw_pause_req, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
	__atomic_fetch_sub(&gw_parked, 1, __ATOMIC_ACQ_REL);
}

/* gmm_pause_ops.pause: every running writer parked. */
static inline int gw_pause(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&gw_pause_req, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&gw_parked, __ATOMIC_ACQUIRE) <
	       __atomic_load_n(&gw_active, __ATOMIC_ACQUIRE))
		sched_yield();
	return 0;
}

static inline void gw_resume(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&gw_pause_req, 0, __ATOMIC_RELEASE);
	syscall(SYS_futex, &gw_pause_req, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* For gmm_guest_set_pause(): the writers paused as an embedder's vCPUs. */
static inline const struct gmm_pause_ops *gw_pause_ops(void)
{
	static const struct gmm_pause_ops ops = { gw_pause, gw_resume };

	return &ops;
}

static void gw_on_segv(int sig, siginfo_t *si, void *uc)
{
	int r = gmm_guest_migration_wait(gw_guest, si->si_addr);

	(void)uc;
	if (r < 0)
		signal(sig, SIG_DFL); /* not guest RAM: a real crash */
	else if (r)
		__atomic_fetch_add(&gw_waits, 1, __ATOMIC_RELAXED);
}

/* Route write faults on @g's RAM to gmm_guest_migration_wait(). */
static inline void gw_install(struct gmm_guest *g)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	gw_guest = g;
	sa.sa_sigaction = gw_on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
}

static inline uint64_t gw_word(uint64_t page, uint64_t pass, uint64_t i)
{
	uint64_t x = (page << 20 | i) * 0x9e3779b97f4a7c15ull;

	return x ^ (pass * 0xc2b2ae3d27d4eb4full);
}

#ifdef __SANITIZE_THREAD__
/* The writers' stores race with the mover's mmap(MAP_FIXED) by design: the
 * host's page tables order them, which TSan cannot see.  Their values are
 * checked instead; the library's own synchronization stays checked. */
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define gw_untracked() __tsan_ignore_thread_begin()
#define gw_tracked() __tsan_ignore_thread_end()
#else
#define gw_untracked() ((void)0)
#define gw_tracked() ((void)0)
#endif

/* Check one page against @pass - 1 (when @pass > 1) and write @pass. */
static inline bool gw_page(volatile uint64_t *q, uint64_t page, uint64_t pass)
{
	bool ok = true;

	for (uint64_t i = 0; i < GW_WORDS; i++) {
		if (pass > 1 && q[i] != gw_word(page, pass - 1, i))
			ok = false;
		q[i] = gw_word(page, pass, i);
	}
	return ok;
}

static void *gw_main(void *arg)
{
	struct gw_writer *w = arg;
	uint64_t pass = 0;

	gw_untracked();
	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		pass++;
		for (uint64_t pg = w->w; pg < w->nr_pages; pg += w->n) {
			if (w->skip && w->skip[pg])
				continue;
			if (__atomic_load_n(&gw_pause_req, __ATOMIC_ACQUIRE))
				gw_park();
			if (!gw_page(w->base + pg * GW_WORDS, pg, pass))
				w->bad_pages++;
		}
		__atomic_store_n(&w->passes, pass, __ATOMIC_RELAXED);
	}
	__atomic_fetch_sub(&gw_active, 1, __ATOMIC_ACQ_REL);
	gw_tracked();
	return NULL;
}

/* Start @n writers over @nr_pages pages at @hva: 0 or -1. */
static inline int gw_start(struct gw_writer *ws, unsigned int n, void *hva, uint64_t nr_pages,
			   const volatile bool *skip)
{
	for (unsigned int i = 0; i < n; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].base = hva;
		ws[i].nr_pages = nr_pages;
		ws[i].w = i;
		ws[i].n = n;
		ws[i].skip = skip;
		__atomic_fetch_add(&gw_active, 1, __ATOMIC_ACQ_REL);
		if (pthread_create(&ws[i].th, NULL, gw_main, &ws[i])) {
			__atomic_fetch_sub(&gw_active, 1, __ATOMIC_ACQ_REL);
			return -1;
		}
	}
	return 0;
}

/* The fewest passes any writer completed. */
static inline uint64_t gw_min_passes(struct gw_writer *ws, unsigned int n)
{
	uint64_t m = UINT64_MAX;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t p = __atomic_load_n(&ws[i].passes, __ATOMIC_RELAXED);

		m = p < m ? p : m;
	}
	return m;
}

/* Stop and join the writers: the mismatched pages of all of them. */
static inline uint64_t gw_stop(struct gw_writer *ws, unsigned int n)
{
	uint64_t bad = 0;

	for (unsigned int i = 0; i < n; i++)
		__atomic_store_n(&ws[i].stop, 1, __ATOMIC_RELAXED);
	for (unsigned int i = 0; i < n; i++) {
		pthread_join(ws[i].th, NULL);
		bad += ws[i].bad_pages;
	}
	return bad;
}

/* After gw_stop(): pages (read with gmm_guest_read from @gpa) not holding
 * their writer's last pass. */
static inline uint64_t gw_verify(struct gw_writer *ws, unsigned int n, struct gmm_guest *g,
				 uint64_t gpa)
{
	uint64_t buf[GW_WORDS], bad = 0;

	for (unsigned int k = 0; k < n; k++) {
		for (uint64_t pg = ws[k].w; pg < ws[k].nr_pages; pg += n) {
			if (ws[k].skip && ws[k].skip[pg])
				continue;
			if (gmm_guest_read(g, gpa + pg * GMM_PAGE_SIZE, buf, sizeof(buf))) {
				bad++;
				continue;
			}
			for (uint64_t i = 0; i < GW_WORDS; i++)
				if (buf[i] != gw_word(pg, ws[k].passes, i)) {
					bad++;
					break;
				}
		}
	}
	return bad;
}

#endif
