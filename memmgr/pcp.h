/* SPDX-License-Identifier: MIT */
/*
 * memmgr/pcp.h - the per-thread caches' data structures and their hot
 * paths (cache hit, free into the cache), inlined into alloc.c; the rest of
 * the caches is in pcp.c.  See pcp.c for the concurrency rules.
 */
#ifndef GMM_MEMMGR_PCP_H
#define GMM_MEMMGR_PCP_H

/* rcu_dereference() and rcu_assign_pointer() inline; the rest are calls. */
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu-qsbr.h>

#include "internal.h"

#define TLS __thread __attribute__((tls_model("initial-exec")))

/* The kernel's CONFIG_PCP_BATCH_SCALE_MAX. */
#define PCP_BATCH_SCALE_MAX 5
#define PCPF_PREV_FREE_HIGH_ORDER 0x1u

struct pcp_zone {
	struct pfn_list lists[NR_PCP_LISTS];
	uint32_t count;      /* frames in the lists; stored atomically for readers */
	uint32_t free_count; /* frames freed since the last allocation (decaying) */
	uint32_t flags;
	uint32_t high;       /* adaptive high mark, between high_min and high_max */
	uint32_t alloc_factor; /* refill size is batch << alloc_factor (order 0) */
} __attribute__((aligned(64))); /* a power-of-two multiple of lines: cheap to index */

struct pcp_cache {
	unsigned int nr_zones;
	struct pcp_zone zones[]; /* aligned: no line shared with another cache */
};

struct pcp_ticket {
	uint32_t next;
	uint32_t owner;
};

/* Counters written by the owner only, with relaxed stores. */
struct pcp_counters {
	uint64_t alloc_hit, alloc_miss, alloc_fail, free;
	uint64_t refill, refill_frames, drain, drain_frames, bulk_alloc;
};

/* One thread's attachment to one pool. */
struct gmm_thread {
	struct gmm_pool *pool;
	struct pcp_cache *cache;  /* RCU: the owner's current cache */
	struct pcp_cache *spare;  /* empty, under pcp->lock */
	struct gmm_thread *next;  /* under pcp->lock */
	struct pcp_counters ctr;
	uint64_t remote_drain;    /* under pcp->lock */
	uint64_t remote_frames;   /* under pcp->lock */
	char qs_token;            /* TSan: the owner's quiescent states */
#ifdef GMM_PCP_SPINLOCK
	struct pcp_ticket lock;   /* the benchmark variant's per-cache lock */
#endif
} __attribute__((aligned(64)));

#ifdef GMM_PCP_SPINLOCK
/*
 * A ticket lock: fair like the kernel's queued spinlock, so a drainer gets
 * the lock after the owner's current list operation (an unfair test-and-set
 * lock lets a busy owner starve the drainer for milliseconds).
 */
static inline void ticket_lock(struct pcp_ticket *l)
{
	uint32_t me = __atomic_fetch_add(&l->next, 1, __ATOMIC_ACQUIRE);

	while (__atomic_load_n(&l->owner, __ATOMIC_ACQUIRE) != me)
		__builtin_ia32_pause();
}

static inline bool ticket_trylock(struct pcp_ticket *l)
{
	uint32_t o = __atomic_load_n(&l->owner, __ATOMIC_RELAXED), n = o;

	return __atomic_compare_exchange_n(&l->next, &n, o + 1, false, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED);
}

static inline void ticket_unlock(struct pcp_ticket *l)
{
	__atomic_store_n(&l->owner, l->owner + 1, __ATOMIC_RELEASE);
}

static inline void owner_lock(struct gmm_thread *t)
{
	if (!ticket_trylock(&t->lock))
		ticket_lock(&t->lock);
}
#define owner_unlock(t) ticket_unlock(&(t)->lock)
#else
#define owner_lock(t) ((void)(t))
#define owner_unlock(t) ((void)(t))
#endif

struct pcp_pool {
	pthread_mutex_t lock;
	struct gmm_thread *threads;
	unsigned int nr_threads;
	unsigned int nr_zones;
	bool holder_was_online;   /* pcp_lock() of the current holder */
	struct pcp_counters retired; /* of detached threads */
	uint64_t retired_remote_drain, retired_remote_frames, drain_all;
	/* first zone of each node's zonelist per highest zone index (fast path) */
	struct gmm_zone *first_zone[GMM_MAX_NODES][GMM_NR_ZONES];
	/* read without the lock by owners: relaxed atomics */
	uint32_t batch[GMM_MAX_NODES * GMM_NR_ZONES];
	uint32_t high_min[GMM_MAX_NODES * GMM_NR_ZONES];
	uint32_t high_max[GMM_MAX_NODES * GMM_NR_ZONES];
};

struct tls_attachment {
	struct gmm_pool *pool;
	struct gmm_thread *t;
};

/* The calling thread's attachments (pcp.c). */
extern TLS struct tls_attachment gmm_pcp_tls_att[GMM_THREAD_MAX_POOLS];
extern TLS unsigned int gmm_pcp_tls_nr;
extern TLS bool gmm_pcp_tls_offline;
#define tls_att gmm_pcp_tls_att
#define tls_nr gmm_pcp_tls_nr
#define tls_offline gmm_pcp_tls_offline

#define CTR_ADD(t, f, n) __atomic_store_n(&(t)->ctr.f, (t)->ctr.f + (n), __ATOMIC_RELAXED)

static inline unsigned int zone_idx(const struct gmm_zone *z)
{
	return (unsigned int)z->node * GMM_NR_ZONES + (unsigned int)z->type;
}

/* The kernel's order_to_pindex(): pageblock-order blocks on two lists of their own. */
static inline unsigned int pindex(int mt, unsigned int order)
{
	if (order > GMM_COSTLY_ORDER)
		return NR_LOWORDER_PCP_LISTS + (mt == GMM_MT_MOVABLE);
	return MT_PCPTYPES * order + (unsigned int)mt;
}

static inline unsigned int pindex_order(unsigned int pi)
{
	return pi < NR_LOWORDER_PCP_LISTS ? pi / MT_PCPTYPES : GMM_PAGEBLOCK_ORDER;
}

static inline void pz_count_add(struct pcp_zone *pz, int64_t n)
{
	__atomic_store_n(&pz->count, (uint32_t)((int64_t)pz->count + n), __ATOMIC_RELAXED);
}

/* Trim @pz by @count frames to the buddy (free_pcppages_bulk), owner only. */
void pcp_trim(struct gmm_thread *t, struct gmm_zone *z, struct pcp_zone *pz, int64_t count,
	      unsigned int pi);

/* Hand out the head of a list that is known not to be empty. */
static inline uint64_t take_head(struct gmm_pool *p, struct pcp_zone *pz, struct pfn_list *l,
				 unsigned int order, int mt)
{
	uint32_t pfn = pl_pop_head(p, l);

	pz_count_add(pz, -(1 << order));
	p->link[pfn] = 0;
	fr_set(p, pfn, FR_ALLOC, order, mt == GMM_MT_MOVABLE);
	return pfn;
}

/* The kernel's free_high heuristic of free_frozen_page_commit(). */
static inline bool free_high(struct pcp_zone *pz, unsigned int order, uint32_t batch,
			     uint32_t high_min)
{
	bool fh = false;

	if (order && order <= GMM_COSTLY_ORDER) {
		fh = pz->free_count >= batch + high_min / 2 &&
		     (pz->flags & PCPF_PREV_FREE_HIGH_ORDER);
		pz->flags |= PCPF_PREV_FREE_HIGH_ORDER;
	} else {
		pz->flags &= ~PCPF_PREV_FREE_HIGH_ORDER;
	}
	if (pz->free_count < batch << PCP_BATCH_SCALE_MAX)
		pz->free_count += 1u << order;
	return fh;
}

static inline uint32_t clamp_u32(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * The kernel's nr_pcp_high() (Linux 6.7+ auto-tuning): the cache's high
 * mark grows toward high_max while frees overflow it, shrinks toward
 * high_min while the zone is below its high watermark or frees are
 * high-order bursts.  Returns the mark to trim against now.
 */
static inline uint32_t nr_pcp_high(struct pcp_zone *pz, const struct gmm_zone *z,
				   uint32_t batch, uint32_t hmin, uint32_t hmax, bool fh)
{
	uint32_t high = clamp_u32(pz->high, hmin, hmax);

	pz->high = high;
	if (unlikely(fh)) {
		uint32_t step = batch << PCP_BATCH_SCALE_MAX;

		pz->high = high > hmin + step ? high - step : hmin;
		return 0;
	}
	if (hmin == hmax)
		return high;
	if (__atomic_load_n(&z->below_high, __ATOMIC_RELAXED)) {
		uint32_t fc = pz->free_count > batch ? pz->free_count : batch;

		pz->high = high > hmin + fc ? high - fc : hmin;
		return pz->count > hmin ? pz->count : hmin;
	}
	if (pz->count >= high && pz->high < pz->free_count + batch)
		pz->high = clamp_u32(pz->free_count + batch, hmin, hmax);
	return high;
}

/* The kernel's nr_pcp_free(). */
static inline int64_t nr_pcp_free(const struct pcp_zone *pz, uint32_t batch, uint32_t high,
				  bool fh)
{
	int64_t n = pz->free_count;

	if (unlikely(fh))
		return pz->count < batch << PCP_BATCH_SCALE_MAX ? pz->count :
								 batch << PCP_BATCH_SCALE_MAX;
	if (high < batch)
		return 1;
	if (n < batch)
		n = batch;
	if (n > high - batch)
		n = high - batch;
	return n;
}

/* Put an allocated block (already checked) into @t's cache of @z; false when its
 * pageblock is isolated (then free it to the buddy). */
static inline __attribute__((always_inline)) bool pcp_free(struct gmm_thread *t,
							   struct gmm_zone *z, uint64_t pfn,
							   unsigned int order)
{
	struct gmm_pool *p = z->pool;
	int mt = pb_mt_relaxed(p, pfn);
	struct pcp_cache *c;
	struct pcp_zone *pz;
	uint32_t batch, hmin, hmax, high;
	unsigned int pi;
	bool fh;

	/* frames of isolated blocks go straight to the buddy's ISOLATE lists */
	if (unlikely(mt == GMM_MT_ISOLATE))
		return false;
	owner_lock(t);
	c = rcu_dereference(t->cache);
	pz = &c->zones[zone_idx(z)];
	batch = __atomic_load_n(&p->pcp->batch[zone_idx(z)], __ATOMIC_RELAXED);
	hmin = __atomic_load_n(&p->pcp->high_min[zone_idx(z)], __ATOMIC_RELAXED);
	hmax = __atomic_load_n(&p->pcp->high_max[zone_idx(z)], __ATOMIC_RELAXED);
	/* HIGHATOMIC and CMA frames are cached on the movable list (the kernel does so) */
	if (mt >= MT_PCPTYPES)
		mt = GMM_MT_MOVABLE;
	pi = pindex(mt, order);
	fr_set(p, pfn, FR_PCP, order, false);
	pl_add_head(p, &pz->lists[pi], (uint32_t)pfn);
	pz_count_add(pz, 1 << order);
	CTR_ADD(t, free, 1);
	pz->alloc_factor >>= 1;
	fh = free_high(pz, order, batch, hmin);
	high = nr_pcp_high(pz, z, batch, hmin, hmax, fh);
	if (unlikely(pz->count >= high))
		pcp_trim(t, z, pz, nr_pcp_free(pz, batch, high, fh), pi);
	owner_unlock(t);
	return true;
}

/* The cache hit only (no refill): GMM_PFN_NONE when the list is empty. */
static inline __attribute__((always_inline)) uint64_t pcp_alloc_hit(struct gmm_thread *t,
								    struct gmm_zone *z,
								    unsigned int order, int mt)
{
	struct pcp_cache *c;
	struct pcp_zone *pz;
	struct pfn_list *l;
	uint64_t pfn = GMM_PFN_NONE;

	owner_lock(t);
	c = rcu_dereference(t->cache);
	pz = &c->zones[zone_idx(z)];
	l = &pz->lists[pindex(mt, order)];
	if (likely(l->head != PFN_NIL)) {
		pz->free_count >>= 1;
		CTR_ADD(t, alloc_hit, 1);
		pfn = take_head(z->pool, pz, l, order, mt);
	}
	owner_unlock(t);
	return pfn;
}

/* The first zone of @node's zonelist not above @hz (NULL: none). */
static inline struct gmm_zone *pcp_first_zone(const struct gmm_pool *p, int node, int hz)
{
	return p->pcp->first_zone[node][hz];
}

/*
 * The calling thread's cache of @p, or NULL (not attached, or offline).
 * Unused slots are { NULL, NULL } and attached pools are not NULL, so
 * pcp_self(NULL) is NULL: the entry points' fast paths rely on it.
 */
static inline struct gmm_thread *pcp_self(const struct gmm_pool *p)
{
	if (unlikely(tls_offline))
		return NULL;
	/* most threads attach to one pool: look at the first slot first */
	if (likely(tls_att[0].pool == p))
		return tls_att[0].t;
	for (unsigned int i = 1; i < tls_nr; i++)
		if (tls_att[i].pool == p)
			return tls_att[i].t;
	return NULL;
}

#endif
