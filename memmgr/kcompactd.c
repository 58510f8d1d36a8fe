/* SPDX-License-Identifier: MIT */
/*
 * memmgr/kcompactd.c - a compaction thread per node (the kernel's kcompactd).
 *
 * Woken by a failed allocation of order > 0 (compact_direct() calls
 * kcompactd_wake()), it compacts the node's zones for that order in
 * sync-light mode.  Every KCOMPACTD_TICK_MS it also compacts until the
 * largest boost's worth of frames is free in whole pageblocks (returning at
 * once when it is) and drops the zones' watermark boost (set when an
 * allocation fell back to another type's pageblock): the kernel's kswapd,
 * woken by the boost, reclaims and then wakes kcompactd for a
 * pageblock-order block and drops the boost; libgmm has no reclaim, so
 * kcompactd does the compaction part.  Every KCOMPACTD_PROACTIVE_TICKS ticks it runs proactive
 * compaction when the node's fragmentation score is above
 * (100 - proactiveness) + 10, down to 100 - proactiveness.
 *
 * The control block lives until the pool is destroyed, so a waker never
 * sees it freed; start and stop only start and join the threads.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define KCOMPACTD_TICK_MS 100
#define KCOMPACTD_PROACTIVE_TICKS 5 /* 500 ms: the kernel's HPAGE_FRAG_CHECK_INTERVAL_MSEC */

struct kcompactd_node {
	struct kcompactd *kc;
	pthread_t thread;
	int node;
	unsigned int order;  /* highest order asked for since the last run */
	bool pending;
	uint64_t boosts[GMM_NR_ZONES]; /* the zones' boost events at the last look */
};

struct kcompactd {
	struct gmm_pool *pool;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool running, stop;
	unsigned int proactiveness;
	unsigned int nr;
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

/*
 * Keep free pageblocks: compact each zone until the largest boost's worth
 * of frames is free in whole pageblocks, then drop the boost (kswapd's
 * part).  A zone boosted since the last look (a fallback stole from another
 * type's pageblock; the boost may be gone already, cleared by frees) counts
 * as a kcompactd wake.
 */
static void handle_boost(struct kcompactd_node *kn)
{
	struct gmm_pool *p = kn->kc->pool;
	int node = kn->node;

	for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
		struct gmm_zone *z = &p->nodes[node].zones[zt];
		uint64_t target;
		bool boosted;

		if (!z->present)
			continue;
		pthread_mutex_lock(&z->lock);
		boosted = z->boost || z->ev.boost != kn->boosts[zt];
		kn->boosts[zt] = z->ev.boost;
		/* as many free pageblocks as the largest boost (watermark_boost_factor) */
		target = z->wmark[WMARK_HIGH] * 15000 / 10000;
		pthread_mutex_unlock(&z->lock);
		if (boosted)
			count_wake(p, node);
		/* every round, not only after a boost: keep the target like kswapd's
		 * high watermark (returns at once when it is met) */
		compact_node_order(p, node, GMM_PAGEBLOCK_ORDER,
				   target > 2 * GMM_PAGEBLOCK_PAGES ? target : 2 * GMM_PAGEBLOCK_PAGES);
		pthread_mutex_lock(&z->lock);
		z->boost = 0;
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

	pthread_mutex_lock(&kc->lock);
	while (!kc->stop) {
		struct timespec ts;
		unsigned int order = 0;

		if (!kn->pending) {
			tick_deadline(&ts);
			pthread_cond_timedwait(&kc->cond, &kc->lock, &ts);
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

void kcompactd_wake(struct gmm_pool *p, int node, unsigned int order)
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
		pthread_cond_broadcast(&kc->cond);
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
	pthread_mutex_init(&kc->lock, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&kc->cond, &a);
	pthread_condattr_destroy(&a);
	__atomic_store_n(&p->kcompactd, kc, __ATOMIC_RELEASE);
	return kc;
}

static void join_threads(struct kcompactd *kc, unsigned int n)
{
	pthread_mutex_lock(&kc->lock);
	kc->stop = true;
	pthread_cond_broadcast(&kc->cond);
	pthread_mutex_unlock(&kc->lock);
	for (unsigned int i = 0; i < n; i++)
		pthread_join(kc->nodes[i].thread, NULL);
	pthread_mutex_lock(&kc->lock);
	kc->running = false;
	kc->stop = false;
	pthread_mutex_unlock(&kc->lock);
}

int gmm_kcompactd_start(struct gmm_pool *p, unsigned int proactiveness)
{
	struct kcompactd *kc;

	if (!p || proactiveness > 100)
		return gmm_set_error(-EINVAL, "kcompactd: bad pool or proactiveness %u (0..100)",
				     proactiveness);
	pthread_mutex_lock(&p->report_lock);
	kc = kcompactd_get(p);
	pthread_mutex_unlock(&p->report_lock);
	if (!kc)
		return gmm_set_error(-ENOMEM, "kcompactd: out of memory");
	pthread_mutex_lock(&kc->lock);
	if (kc->running) {
		pthread_mutex_unlock(&kc->lock);
		return gmm_set_error(-EBUSY, "kcompactd is running already");
	}
	kc->running = true;
	kc->proactiveness = proactiveness;
	pthread_mutex_unlock(&kc->lock);
	for (unsigned int i = 0; i < kc->nr; i++) {
		struct kcompactd_node *kn = &kc->nodes[i];

		kn->kc = kc;
		kn->node = (int)i;
		kn->order = 0;
		kn->pending = false;
		memset(kn->boosts, 0, sizeof(kn->boosts));
		if (pthread_create(&kn->thread, NULL, kcompactd_main, kn)) {
			join_threads(kc, i);
			return gmm_set_error(-ENOMEM, "kcompactd: cannot start a thread");
		}
	}
	return 0;
}

void gmm_kcompactd_stop(struct gmm_pool *p)
{
	struct kcompactd *kc = p ? __atomic_load_n(&p->kcompactd, __ATOMIC_ACQUIRE) : NULL;
	bool running;

	if (!kc)
		return;
	pthread_mutex_lock(&kc->lock);
	running = kc->running && !kc->stop;
	pthread_mutex_unlock(&kc->lock);
	if (running)
		join_threads(kc, kc->nr);
}

void kcompactd_stop_all(struct gmm_pool *p)
{
	struct kcompactd *kc = p->kcompactd;

	if (!kc)
		return;
	gmm_kcompactd_stop(p);
	p->kcompactd = NULL;
	pthread_cond_destroy(&kc->cond);
	pthread_mutex_destroy(&kc->lock);
	free(kc);
}
