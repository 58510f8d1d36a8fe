/* SPDX-License-Identifier: MIT */
/*
 * memmgr/report.c - free page reporting toward the host (the kernel's
 * mm/page_reporting.c): the worker thread and its request state, reporting
 * passes over the zones in batches, and the reported/unreported figures.
 *
 * Locking: a pass holds pool->report_lock (so hotplug never sees blocks in
 * flight) and takes each zone lock only to take blocks off the free lists
 * and to put them back; the discard runs unlocked.  buddy.c calls
 * report_notify() under a zone lock; it only touches the reporter's state
 * and its own mutex, which the worker never holds while taking zone locks.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gmm/report.h>

#include "internal.h"

#define MAX_BATCH GMM_REPORT_BATCH_MAX

enum { REPORT_IDLE = 0, REPORT_REQUESTED = 1, REPORT_ACTIVE = 2 };

struct gmm_reporter {
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state;    /* REPORT_* (atomic) */
	bool running; /* worker thread exists */
	bool stop;
	unsigned int delay_ms, order, batch;
	/* counters (atomic) */
	uint64_t reported_bytes, reported_blocks, passes, errors;
};

struct taken {
	uint64_t pfn;
	unsigned int order;
	bool ok;
};

/* --- configuration -------------------------------------------------------- */

static int resolve_config(struct gmm_pool *p, const struct gmm_report_config *cfg,
			  struct gmm_reporter *r)
{
	const struct gmm_backing_ops *ops = p->cfg.backing;
	unsigned int host = ops->page_order ? ops->page_order(p->cfg.backing_ctx) : 0;
	unsigned int order = cfg && cfg->order ? cfg->order : GMM_PAGEBLOCK_ORDER;

	if (order == GMM_REPORT_ALL_ORDERS)
		order = 0;
	if (cfg && cfg->batch > MAX_BATCH)
		return gmm_set_error(-EINVAL, "reporting: batch %u exceeds %d blocks", cfg->batch,
				     MAX_BATCH);
	if (!ops->discard)
		return gmm_set_error(-EOPNOTSUPP, "reporting: backing '%s' cannot discard",
				     ops->name);
	if (order < host)
		order = host;
	if (host > p->max_order)
		return gmm_set_error(-EINVAL, "reporting: host pages of order %u exceed the "
				     "pool's max order %u", host, p->max_order);
	if (order > p->max_order)
		order = p->max_order;
	r->order = order;
	r->delay_ms = cfg && cfg->delay_ms ? cfg->delay_ms : GMM_REPORT_DELAY_MS;
	r->batch = cfg && cfg->batch ? cfg->batch : GMM_REPORT_BATCH;
	return 0;
}

static struct gmm_reporter *get_reporter(struct gmm_pool *p)
{
	struct gmm_reporter *r = p->reporter;

	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	p->reporter = r;
	return r;
}

/* --- one pass ------------------------------------------------------------- */

/* Take up to @max unreported free blocks of order >= r->order off the lists. */
static unsigned int collect(struct gmm_zone *z, unsigned int min_order, struct taken *t,
			    unsigned int max)
{
	struct gmm_pool *p = z->pool;
	unsigned int n = 0;

	for (int o = (int)p->max_order; o >= (int)min_order && n < max; o--) {
		for (int mt = 0; mt < GMM_MT_NR && n < max; mt++) {
			uint32_t pfn;

			if (mt == GMM_MT_ISOLATE)
				continue;
			pfn = z->area[o][mt].list.head;
			while (pfn != PFN_NIL && n < max) {
				uint32_t next = pl_next(p, pfn);

				if (!fr_reported(p, pfn)) {
					freelist_del(z, pfn, (unsigned int)o, mt);
					t[n].pfn = pfn;
					t[n++].order = (unsigned int)o;
				}
				pfn = next;
			}
		}
	}
	return n;
}

/* Put a block back, reported when its discard worked. */
static void put_back(struct gmm_zone *z, const struct taken *t)
{
	struct gmm_pool *p = z->pool;
	uint64_t end = t->pfn + (1ull << t->order);
	bool uniform = true;

	for (uint64_t b = t->pfn; b < end; b += GMM_PAGEBLOCK_PAGES)
		uniform &= pb_mt(p, b) == pb_mt(p, t->pfn);
	if (uniform || t->order <= GMM_PAGEBLOCK_ORDER) {
		buddy_free_one_flag(z, t->pfn, t->order, pb_mt(p, t->pfn), t->ok);
		return;
	}
	for (uint64_t b = t->pfn; b < end; b += GMM_PAGEBLOCK_PAGES)
		buddy_free_one_flag(z, b, GMM_PAGEBLOCK_ORDER, pb_mt(p, b), t->ok);
}

static uint64_t discard_batch(struct gmm_pool *p, struct gmm_reporter *r, struct taken *t,
			      unsigned int n, bool *failed)
{
	const struct gmm_backing_ops *ops = p->cfg.backing;
	uint64_t bytes = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t nr = 1ull << t[i].order;

		t[i].ok = !ops->discard(p->cfg.backing_ctx, t[i].pfn, nr,
					gmm_pfn_to_host(p, t[i].pfn));
		if (!t[i].ok) {
			*failed = true;
			__atomic_fetch_add(&r->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		bytes += nr << GMM_PAGE_SHIFT;
		__atomic_fetch_add(&r->reported_blocks, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&r->reported_bytes, bytes, __ATOMIC_RELAXED);
	return bytes;
}

static uint64_t report_zone(struct gmm_zone *z, struct gmm_reporter *r)
{
	struct taken t[MAX_BATCH];
	uint64_t bytes = 0;
	bool failed = false;

	while (!failed) {
		unsigned int n;

		pthread_mutex_lock(&z->lock);
		n = collect(z, r->order, t, r->batch);
		pthread_mutex_unlock(&z->lock);
		if (!n)
			break;
		bytes += discard_batch(z->pool, r, t, n, &failed);
		pthread_mutex_lock(&z->lock);
		for (unsigned int i = 0; i < n; i++)
			put_back(z, &t[i]);
		pthread_mutex_unlock(&z->lock);
	}
	return bytes;
}

static uint64_t report_pass(struct gmm_pool *p, struct gmm_reporter *r)
{
	uint64_t bytes = 0;

	pthread_mutex_lock(&p->report_lock);
	for_each_zone(p, z)
		if (z->managed)
			bytes += report_zone(z, r);
	pthread_mutex_unlock(&p->report_lock);
	__atomic_fetch_add(&r->passes, 1, __ATOMIC_RELAXED);
	return bytes;
}

/* --- the worker ------------------------------------------------------------- */

/* Called under a zone lock when an unreported block of the order became free. */
static void report_notify(struct gmm_pool *p)
{
	struct gmm_reporter *r = p->reporter;

	if (__atomic_exchange_n(&r->state, REPORT_REQUESTED, __ATOMIC_ACQ_REL) != REPORT_IDLE)
		return;
	pthread_mutex_lock(&r->lock);
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void deadline(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Wait for a request, then the delay; false when told to stop. */
static bool wait_for_work(struct gmm_reporter *r)
{
	struct timespec ts;

	while (!r->stop && __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == REPORT_IDLE)
		pthread_cond_wait(&r->cond, &r->lock);
	deadline(&ts, r->delay_ms);
	while (!r->stop && pthread_cond_timedwait(&r->cond, &r->lock, &ts) != ETIMEDOUT)
		;
	return !r->stop;
}

static void *report_worker(void *arg)
{
	struct gmm_pool *p = arg;
	struct gmm_reporter *r = p->reporter;

	pthread_mutex_lock(&r->lock);
	while (wait_for_work(r)) {
		int active = REPORT_ACTIVE;

		__atomic_store_n(&r->state, REPORT_ACTIVE, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&r->lock);
		report_pass(p, r);
		pthread_mutex_lock(&r->lock);
		/* a request during the pass: go again after the delay */
		__atomic_compare_exchange_n(&r->state, &active, REPORT_IDLE, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* The pool's reporter, created on first use. */
static int reporter_of(struct gmm_pool *p, struct gmm_reporter **out)
{
	if (!p)
		return gmm_set_error(-EINVAL, "reporting: NULL pool");
	*out = get_reporter(p);
	if (!*out)
		return gmm_set_error(-ENOMEM, "reporting: out of memory");
	return 0;
}

int gmm_report_start(struct gmm_pool *p, const struct gmm_report_config *cfg)
{
	struct gmm_reporter *r;
	pthread_condattr_t ca;
	int err;

	err = reporter_of(p, &r);
	if (err)
		return err;
	if (r->running)
		return gmm_set_error(-EBUSY, "reporting: already running");
	err = resolve_config(p, cfg, r);
	if (err)
		return err;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&r->cond);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->stop = false;
	/* free memory not yet reported is reported after the first delay */
	r->state = REPORT_REQUESTED;
	if (pthread_create(&r->tid, NULL, report_worker, p))
		return gmm_set_error(-EAGAIN, "reporting: cannot start the worker thread");
	r->running = true;
	__atomic_store_n(&p->report_order, r->order, __ATOMIC_RELAXED);
	__atomic_store_n(&p->report_notify, report_notify, __ATOMIC_RELEASE);
	return 0;
}

void gmm_report_stop(struct gmm_pool *p)
{
	struct gmm_reporter *r;

	if (!p) {
		gmm_set_error(-EINVAL, "gmm_report_stop: NULL pool");
		return;
	}
	r = p->reporter;
	if (!r || !r->running)
		return;
	__atomic_store_n(&p->report_notify, NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&p->report_order, ~0u, __ATOMIC_RELAXED);
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->tid, NULL);
	r->running = false;
	r->state = REPORT_IDLE;
}

void report_fini(struct gmm_pool *p)
{
	struct gmm_reporter *r = p->reporter;

	if (!r)
		return;
	gmm_report_stop(p);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
	p->reporter = NULL;
}

int64_t gmm_report_now(struct gmm_pool *p, const struct gmm_report_config *cfg)
{
	struct gmm_reporter *r;
	int err;

	err = reporter_of(p, &r);
	if (err)
		return err;
	if (!r->running) {
		err = resolve_config(p, cfg, r);
		if (err)
			return err;
	}
	return (int64_t)report_pass(p, r);
}

int gmm_report_stats(struct gmm_pool *p, struct gmm_report_stats *st)
{
	struct gmm_reporter *r;

	if (!p || !st)
		return gmm_set_error(-EINVAL, "gmm_report_stats: NULL argument");
	memset(st, 0, sizeof(*st));
	for_each_zone(p, z) {
		pthread_mutex_lock(&z->lock);
		st->free_reported += z->nr_reported << GMM_PAGE_SHIFT;
		st->free_unreported += (z->nr_free - z->nr_reported) << GMM_PAGE_SHIFT;
		pthread_mutex_unlock(&z->lock);
	}
	r = p->reporter;
	if (!r)
		return 0;
	st->reported_bytes = __atomic_load_n(&r->reported_bytes, __ATOMIC_RELAXED);
	st->reported_blocks = __atomic_load_n(&r->reported_blocks, __ATOMIC_RELAXED);
	st->passes = __atomic_load_n(&r->passes, __ATOMIC_RELAXED);
	st->errors = __atomic_load_n(&r->errors, __ATOMIC_RELAXED);
	st->order = r->order;
	st->running = r->running;
	return 0;
}
