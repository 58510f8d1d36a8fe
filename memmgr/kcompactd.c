/* SPDX-License-Identifier: MIT */
/*
 * memmgr/kcompactd.c - a compaction thread per node (the kernel's kcompactd).
 *
 * Woken by a failed allocation (compact_direct() calls kcompactd_wake():
 * order > 0, or any order in defrag mode, which asks for a pageblock), it
 * compacts the node's zones for that order in sync-light mode.  Every
 * KCOMPACTD_TICK_MS it keeps free pageblocks, zone by zone:
 *  - defrag mode (the kernel's defrag_mode kswapd/kcompactd watermarks):
 *    compact until the zone's free frames in whole pageblocks reach its
 *    high watermark ("pageblock watermarks"), every round;
 *  - otherwise, after a watermark boost (set when an allocation fell back
 *    to another type's pageblock): compact until the largest boost's worth
 *    of frames is free in whole pageblocks; the kernel's kswapd, woken by
 *    the boost, reclaims and then wakes kcompactd for a pageblock-order
 *    block; libgmm has no reclaim, so kcompactd does the compaction part;
 * and drops the zone's boost.  Every KCOMPACTD_PROACTIVE_TICKS ticks it
 * runs proactive compaction when the node's fragmentation score is above
 * (100 - proactiveness) + 10, down to 100 - proactiveness.
 *
 * Each node's thread sleeps on its own condition variable (a wake for one
 * node wakes that node's thread alone).  Start and stop are serialised by
 * ctl_lock; kc->lock guards running/stop and the nodes' pending work.  The
 * control block lives until the pool is destroyed, so a waker never sees
 * it freed; start and stop only start and join the threads.
 */
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#define KCOMPACTD_TICK_MS 100
#define KCOMPACTD_PROACTIVE_TICKS 5 /* 500 ms: the kernel's HPAGE_FRAG_CHECK_INTERVAL_MSEC */

struct kcompactd_node {
	struct kcompactd *kc;
	pthread_t thread;
	pthread_cond_t cond;  /* this node's wake-ups, under kc->lock */
	int node;
	unsigned int order;   /* highest order asked for since the last run */
	bool pending;
	uint64_t signalled;   /* waits ended by a signal, not the tick (tests) */
	uint64_t boosts[GMM_NR_ZONES]; /* the zones' boost events at the last look */
};

struct kcompactd {
	struct gmm_pool *pool;
	pthread_mutex_t ctl_lock; /* one start or stop at a time */
	pthread_mutex_t lock;
	bool running, stop;
	unsigned int proactiveness;
	unsigned int nr;          /* nodes */
	unsigned int nr_threads;  /* threads started (under ctl_lock) */
	struct kcompactd_node nodes[GMM_MAX_NODES];
};

static void count_wake(struct gmm_pool *p, int node)
{
	for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
		struct gmm_zone *z = &p->nodes[node].zones[zt];

		if (!z->present)
			continue;
		pthread_mutex_lock(&z->lock);
		z->compact.ev.compact_daemon_wake++;
		pthread_mutex_unlock(&z->lock);
		return;
	}
}

/* kcompactd's target for @z in frames free in whole pageblocks (0: none).  Under z->lock. */
static uint64_t zone_block_target(const struct gmm_zone *z, bool defrag, bool boosted)
{
	uint64_t target;

	if (defrag)
		target = z->wmark[WMARK_HIGH];
	else if (boosted)
		target = z->wmark[WMARK_HIGH] * 15000 / 10000; /* the largest boost */
	else
		return 0;
	return target > GMM_PAGEBLOCK_PAGES ? target : GMM_PAGEBLOCK_PAGES;
}

/*
 * Keep free pageblocks in each zone of the node (kswapd's part, see the
 * top): each zone is compacted once, toward its own target, then its boost
 * is dropped.  A zone boosted since the last look (a fallback took from
 * another type's pageblock; the boost may be gone already, cleared by
 * frees) counts as a kcompactd wake.
 */
static void handle_boost(struct kcompactd_node *kn)
{
	struct gmm_pool *p = kn->kc->pool;
	bool defrag = pool_defrag_mode(p);

	for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
		struct gmm_zone *z = &p->nodes[kn->node].zones[zt];
		uint64_t target;
		bool boosted;

		if (!z->present)
			continue;
		pthread_mutex_lock(&z->lock);
		boosted = z->boost || z->ev.boost != kn->boosts[zt];
		kn->boosts[zt] = z->ev.boost;
		target = zone_block_target(z, defrag, boosted);
		pthread_mutex_unlock(&z->lock);
		if (boosted)
			count_wake(p, kn->node);
		if (target)
			compact_zone_order(z, GMM_PAGEBLOCK_ORDER, target);
		pthread_mutex_lock(&z->lock);
		z->boost = 0;
		pthread_mutex_unlock(&z->lock);
	}
}

/* The zones' boost events when the thread starts: only later ones are news. */
static void snapshot_boosts(struct kcompactd_node *kn)
{
	for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
		struct gmm_zone *z = &kn->kc->pool->nodes[kn->node].zones[zt];

		if (!z->present)
			continue;
		pthread_mutex_lock(&z->lock);
		kn->boosts[zt] = z->ev.boost;
		pthread_mutex_unlock(&z->lock);
	}
}

static void tick_deadline(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += KCOMPACTD_TICK_MS * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *kcompactd_main(void *arg)
{
	struct kcompactd_node *kn = arg;
	struct kcompactd *kc = kn->kc;
	unsigned int ticks = 0;

	snapshot_boosts(kn);
	pthread_mutex_lock(&kc->lock);
	while (!kc->stop) {
		struct timespec ts;
		unsigned int order = 0;

		if (!kn->pending) {
			tick_deadline(&ts);
			if (!pthread_cond_timedwait(&kn->cond, &kc->lock, &ts))
				kn->signalled++;
			if (kc->stop)
				break;
		}
		if (kn->pending) {
			order = kn->order;
			kn->pending = false;
			kn->order = 0;
		} else {
			ticks++;
		}
		pthread_mutex_unlock(&kc->lock);
		if (order) {
			count_wake(kc->pool, kn->node);
			compact_node_order(kc->pool, kn->node, order, 0);
		}
		handle_boost(kn);
		if (kc->proactiveness && ticks >= KCOMPACTD_PROACTIVE_TICKS) {
			ticks = 0;
			compact_proactive_node(kc->pool, kn->node, kc->proactiveness);
		}
		pthread_mutex_lock(&kc->lock);
	}
	pthread_mutex_unlock(&kc->lock);
	return NULL;
}

static void kcompactd_wake(struct gmm_pool *p, int node, unsigned int order)
{
	struct kcompactd *kc = __atomic_load_n(&p->kcompactd, __ATOMIC_ACQUIRE);

	if (!kc || node < 0 || node >= (int)kc->nr)
		return;
	pthread_mutex_lock(&kc->lock);
	if (kc->running) {
		struct kcompactd_node *kn = &kc->nodes[node];

		if (order > kn->order)
			kn->order = order;
		kn->pending = true;
		pthread_cond_signal(&kn->cond);
	}
	pthread_mutex_unlock(&kc->lock);
}

static struct kcompactd *kcompactd_get(struct gmm_pool *p)
{
	struct kcompactd *kc = p->kcompactd;
	pthread_condattr_t a;

	if (kc)
		return kc;
	kc = calloc(1, sizeof(*kc));
	if (!kc)
		return NULL;
	kc->pool = p;
	kc->nr = p->cfg.nr_nodes;
	pthread_mutex_init(&kc->ctl_lock, NULL);
	pthread_mutex_init(&kc->lock, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	for (unsigned int i = 0; i < kc->nr; i++) {
		kc->nodes[i].kc = kc;
		kc->nodes[i].node = (int)i;
		pthread_cond_init(&kc->nodes[i].cond, &a);
	}
	pthread_condattr_destroy(&a);
	__atomic_store_n(&p->kcompactd, kc, __ATOMIC_RELEASE);
	__atomic_store_n(&p->kcompactd_wake, kcompactd_wake, __ATOMIC_RELEASE);
	return kc;
}

/* Stop and join the threads started; under ctl_lock. */
static void join_threads(struct kcompactd *kc)
{
	pthread_mutex_lock(&kc->lock);
	kc->stop = true;
	for (unsigned int i = 0; i < kc->nr; i++)
		pthread_cond_signal(&kc->nodes[i].cond);
	pthread_mutex_unlock(&kc->lock);
	for (unsigned int i = 0; i < kc->nr_threads; i++)
		pthread_join(kc->nodes[i].thread, NULL);
	kc->nr_threads = 0;
	pthread_mutex_lock(&kc->lock);
	kc->running = false;
	kc->stop = false;
	pthread_mutex_unlock(&kc->lock);
}

/* Fresh per-node state, before the threads exist; under kc->lock. */
static void reset_nodes(struct kcompactd *kc)
{
	for (unsigned int i = 0; i < kc->nr; i++) {
		struct kcompactd_node *kn = &kc->nodes[i];

		kn->order = 0;
		kn->pending = false;
		kn->signalled = 0;
	}
}

/*
 * Wakes that arrive between setting running and a thread's start are kept
 * in its node (pending) and done by the thread when it starts.
 */
static int start_threads(struct kcompactd *kc, unsigned int proactiveness)
{
	pthread_mutex_lock(&kc->lock);
	if (kc->running) {
		pthread_mutex_unlock(&kc->lock);
		return gmm_set_error(-EBUSY, "kcompactd is running already");
	}
	reset_nodes(kc);
	kc->proactiveness = proactiveness;
	kc->running = true;
	pthread_mutex_unlock(&kc->lock);
	for (unsigned int i = 0; i < kc->nr; i++) {
		if (pthread_create(&kc->nodes[i].thread, NULL, kcompactd_main, &kc->nodes[i])) {
			join_threads(kc);
			return gmm_set_error(-ENOMEM, "kcompactd: cannot start a thread");
		}
		kc->nr_threads = i + 1;
	}
	return 0;
}

int gmm_kcompactd_start(struct gmm_pool *p, unsigned int proactiveness)
{
	struct kcompactd *kc;
	int err;

	if (!p || proactiveness > 100)
		return gmm_set_error(-EINVAL, "kcompactd: bad pool or proactiveness %u (0..100)",
				     proactiveness);
	pthread_mutex_lock(&p->report_lock);
	kc = kcompactd_get(p);
	pthread_mutex_unlock(&p->report_lock);
	if (!kc)
		return gmm_set_error(-ENOMEM, "kcompactd: out of memory");
	pthread_mutex_lock(&kc->ctl_lock);
	err = start_threads(kc, proactiveness);
	pthread_mutex_unlock(&kc->ctl_lock);
	return err;
}

void gmm_kcompactd_stop(struct gmm_pool *p)
{
	struct kcompactd *kc = p ? __atomic_load_n(&p->kcompactd, __ATOMIC_ACQUIRE) : NULL;

	if (!kc)
		return;
	pthread_mutex_lock(&kc->ctl_lock);
	if (kc->nr_threads)
		join_threads(kc);
	pthread_mutex_unlock(&kc->ctl_lock);
}

uint64_t kcompactd_signalled(struct gmm_pool *p, int node)
{
	struct kcompactd *kc = __atomic_load_n(&p->kcompactd, __ATOMIC_ACQUIRE);
	uint64_t n;

	if (!kc || node < 0 || node >= (int)kc->nr)
		return 0;
	pthread_mutex_lock(&kc->lock);
	n = kc->nodes[node].signalled;
	pthread_mutex_unlock(&kc->lock);
	return n;
}

void kcompactd_stop_all(struct gmm_pool *p)
{
	struct kcompactd *kc = p->kcompactd;

	if (!kc)
		return;
	gmm_kcompactd_stop(p);
	p->kcompactd = NULL;
	for (unsigned int i = 0; i < kc->nr; i++)
		pthread_cond_destroy(&kc->nodes[i].cond);
	pthread_mutex_destroy(&kc->lock);
	pthread_mutex_destroy(&kc->ctl_lock);
	free(kc);
}
