/* SPDX-License-Identifier: MIT */
/*
 * memmgr/pcp.h - the per-thread caches' data structures and their hot
 * paths (cache hit, free into the cache), inlined into alloc.c; the rest of
 * the caches is in pcp.c.  See pcp.c for the concurrency rules.
 */
#ifndef GMM_MEMMGR_PCP_H
#define GMM_MEMMGR_PCP_H

#include <stddef.h>

/* rcu_dereference() and rcu_assign_pointer() inline; the rest are calls. */
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu-qsbr.h>

#include "internal.h"

#define TLS __thread __attribute__((tls_model("initial-exec")))

/* The kernel's CONFIG_PCP_BATCH_SCALE_MAX. */
#define PCP_BATCH_SCALE_MAX 5
#define PCPF_PREV_FREE_HIGH_ORDER 0x1u

/*
 * One zone's part of a cache.  The order-0 lists share the first line with
 * the fields the fast paths touch.
 *
 * trim_at and fc_cap let the order-0 free skip the kernel's per-free high
 * logic (free_frozen_page_commit(), nr_pcp_high()) while it would change
 * nothing; see pcp_free0() for why that is exact.
 */
struct pcp_zone {
	uint32_t count;      /* frames in the lists; stored atomically for readers */
	/* an order-0 free that brings count here takes the slow path; relaxed
	 * atomic: writers of the zone word reset it to 0 (pcp_trim_reset()) */
	uint32_t trim_at;
	uint32_t fc_cap;     /* batch << PCP_BATCH_SCALE_MAX of the sizes trim_at was set with */
	uint32_t free_count; /* frames freed since the last allocation (decaying) */
	uint32_t flags;
	uint32_t high;       /* adaptive high mark, between high_min and high_max */
	uint32_t alloc_factor; /* refill size is batch << alloc_factor (order 0) */
	struct gmm_zone *zone; /* whose part this is (set once, for pcp_free0()) */
	struct pfn_list lists[NR_PCP_LISTS];
} __attribute__((aligned(64))); /* a whole number of lines: no line shared between zones */

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
	/* cache and spare in either role, fixed from attach to detach: what
	 * pcp_trim_reset() clears (a drain swaps the roles under it) */
	struct pcp_cache *pair[2];
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
	/*
	 * The order-0 cache hit's lookup (pcp_fast_entry()): row 0 for
	 * GMM_NO_NODE (the pool's policy, rewritten by gmm_pool_set_policy()),
	 * row n + 1 for node n; column: the flags.  0: take the full path.
	 * Relaxed atomics (row 0 changes under readers).
	 */
	uint32_t fast[GMM_MAX_NODES + 1][GMM_FLAGS_ALL + 1];
	pthread_mutex_t fast_lock; /* one writer of row 0 at a time */
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
/* Slot 0 while online, else { PCP_NO_POOL, NULL }: pcp_self()'s one compare. */
extern TLS struct tls_attachment gmm_pcp_tls_fast;
extern const char gmm_pcp_no_pool;
#define PCP_NO_POOL ((struct gmm_pool *)(uintptr_t)&gmm_pcp_no_pool)
extern TLS unsigned int gmm_pcp_tls_nr;
extern TLS bool gmm_pcp_tls_offline;
#define tls_att gmm_pcp_tls_att
#define tls_nr gmm_pcp_tls_nr
#define tls_offline gmm_pcp_tls_offline

/*
 * Add to a counter that only the calling thread writes and other threads
 * read with relaxed atomic loads.  On x86-64 one add to memory: its store
 * is a single aligned store (other threads see the old or the new value)
 * and no other thread writes the word, so nothing is lost; it is what a
 * relaxed atomic store of load + n does, in one instruction instead of
 * three.  ThreadSanitizer builds and other targets use that atomic store.
 */
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define owner_add64(ptr, n) __asm__("addq %1, %0" : "+m"(*(ptr)) : "er"((uint64_t)(n)) : "cc")
#define owner_add32(ptr, n) __asm__("addl %1, %0" : "+m"(*(ptr)) : "ir"((uint32_t)(n)) : "cc")
#else
#define owner_add64(ptr, n) __atomic_store_n((ptr), *(ptr) + (uint64_t)(n), __ATOMIC_RELAXED)
#define owner_add32(ptr, n) __atomic_store_n((ptr), *(ptr) + (uint32_t)(n), __ATOMIC_RELAXED)
#endif

#define CTR_ADD(t, f, n) owner_add64(&(t)->ctr.f, (n))

static inline unsigned int zone_idx(const struct gmm_zone *z)
{
	return (unsigned int)z->node * GMM_NR_ZONES + (unsigned int)z->type;
}

/* --- the zone's cache word (struct gmm_zone.pcp_gen) ------------------------ */

#define PCP_GEN_BELOW_HIGH 1u
#define PCP_GEN_VALID 2u     /* never 0: a reset cache (gen 0) never matches */
#define PCP_GEN_SIZES 4u     /* added whenever batch / high_min / high_max are rewritten */

/* Acquire: pairs with pcp_update_sizes()' release; the sizes read after it are current. */
static inline uint32_t pcp_zone_gen(const struct gmm_zone *z)
{
	return __atomic_load_n(&z->pcp_gen, __ATOMIC_ACQUIRE);
}

/* ZONE_BELOW_HIGH */
static inline bool zone_below_high(const struct gmm_zone *z)
{
	return __atomic_load_n(&z->pcp_gen, __ATOMIC_RELAXED) & PCP_GEN_BELOW_HIGH;
}

/*
 * After a change of @z's zone word (a sequentially consistent atomic
 * operation, see pz_set_trim_at()): every cache's order-0 threshold of @z
 * to 0 (pcp.c).  The caller holds @z's lock or pcp->lock (the thread list
 * changes under both).
 */
void pcp_trim_reset(struct gmm_zone *z);

/*
 * Set or clear ZONE_BELOW_HIGH, under the zone lock.  Setting it resets
 * the caches' thresholds (below high, every free takes the full path);
 * clearing it needs not: a threshold set while the bit was set is 0.
 */
static inline void zone_set_below_high(struct gmm_zone *z, bool below)
{
	if (below) {
		__atomic_fetch_or(&z->pcp_gen, PCP_GEN_BELOW_HIGH, __ATOMIC_SEQ_CST);
		pcp_trim_reset(z);
	} else {
		__atomic_fetch_and(&z->pcp_gen, ~PCP_GEN_BELOW_HIGH, __ATOMIC_RELAXED);
	}
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
	owner_add32(&pz->count, (uint32_t)n);
}

static inline struct pcp_zone *cache_zone(struct pcp_cache *c, const struct gmm_zone *z)
{
	return (struct pcp_zone *)((char *)c + z->pcp_off);
}

/* Trim @pz by @count frames to the buddy (free_pcppages_bulk), owner only. */
void pcp_trim(struct gmm_thread *t, struct gmm_zone *z, struct pcp_zone *pz, int64_t count,
	      unsigned int pi);

/*
 * The list element of a cached block.  A pageblock-order block's link word
 * is not its head's but that of frame 8 x (block index mod 64) of the block:
 * the heads' link words are 4 KiB apart, so a cache of N such blocks would
 * put all their links in one set of the L1 cache (and 16 of L2) and miss on
 * every list step past 8 blocks; the spread puts 64 consecutive blocks'
 * links on 64 distinct sets.  Tail frames' link words are otherwise unused.
 * Orders 0..3 link at their head.
 */
#define PCP_LINK_SPREAD 64u
_Static_assert(8 * PCP_LINK_SPREAD <= 1u << GMM_PAGEBLOCK_ORDER, "the link stays in the block");

static inline uint32_t pcp_elem(uint64_t pfn, unsigned int order)
{
	if (order != GMM_PAGEBLOCK_ORDER)
		return (uint32_t)pfn;
	return (uint32_t)(pfn + 8 * ((pfn >> GMM_PAGEBLOCK_ORDER) & (PCP_LINK_SPREAD - 1)));
}

/* The head of the block whose list element is @e. */
static inline uint32_t pcp_elem_head(uint32_t e, unsigned int order)
{
	return order == GMM_PAGEBLOCK_ORDER ? e & ~((1u << GMM_PAGEBLOCK_ORDER) - 1) : e;
}

/* Hand out the head of a list that is known not to be empty. */
static inline uint64_t take_head(struct gmm_pool *p, struct pcp_zone *pz, struct pfn_list *l,
				 unsigned int order, int mt)
{
	uint32_t e = pl_pop_head(p, l), pfn = pcp_elem_head(e, order);

	pz_count_add(pz, -(1 << order));
	p->link[e] = 0;
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
 * high_min while the zone is below its high watermark (@below) or frees
 * are high-order bursts.  Returns the mark to trim against now.
 */
static inline uint32_t nr_pcp_high(struct pcp_zone *pz, bool below, uint32_t batch,
				   uint32_t hmin, uint32_t hmax, bool fh)
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
	if (below) {
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

static inline uint32_t pz_trim_at(const struct pcp_zone *pz)
{
	return __atomic_load_n(&pz->trim_at, __ATOMIC_RELAXED);
}

/*
 * Whether @count reached @pz's trim_at: its relaxed load folded into the
 * compare on x86-64 (an aligned 4-byte read, as the atomic load; the
 * compiler does not fold atomic loads into other instructions).
 */
static inline bool pz_reached_trim_at(const struct pcp_zone *pz, uint32_t count)
{
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
	bool ge;

	__asm__("cmpl %2, %1" : "=@ccae"(ge) : "r"(count), "m"(pz->trim_at));
	return ge;
#else
	return count >= pz_trim_at(pz);
#endif
}

/* trim_at to 0: the next order-0 free takes the full path (owner or a writer of the zone word). */
static inline void pz_trim_at_clear(struct pcp_zone *pz)
{
	__atomic_store_n(&pz->trim_at, 0, __ATOMIC_RELAXED);
}

/*
 * After the kernel's per-free logic ran on @pz of @z with the zone word
 * @gen (read before the sizes it used): the threshold of the order-0
 * free's fast path.  trim_at is high only when an order-0 free below it
 * would leave alloc_factor, flags and high as they are, and the zone is
 * not below its high watermark; else 0 (every free takes the slow path
 * until the state settles).
 *
 * A writer of the zone word may have changed it since @gen was read, and
 * reset every threshold before this store.  So the store and a second
 * read of the word are sequentially consistent, as are the writer's change
 * of the word and its clears of trim_at (pcp_trim_reset()): in their
 * single total order either the owner's read comes after the writer's
 * change (the owner sees the new word and clears trim_at) or the owner's
 * store comes before the writer's clear (the clear wins).  Either way no
 * threshold of the old word survives.  On x86 this costs the slow path
 * one locked instruction (the store); the fast path's read stays a plain load.
 */
static inline void pz_set_trim_at(struct pcp_zone *pz, const struct gmm_zone *z, uint32_t gen,
				  uint32_t batch)
{
	uint32_t at = pz->high;

	pz->fc_cap = batch << PCP_BATCH_SCALE_MAX;
	if (pz->alloc_factor || (pz->flags & PCPF_PREV_FREE_HIGH_ORDER) ||
	    (gen & PCP_GEN_BELOW_HIGH)) {
		pz_trim_at_clear(pz);
		return;
	}
	__atomic_store_n(&pz->trim_at, at, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&z->pcp_gen, __ATOMIC_SEQ_CST) != gen)
		pz_trim_at_clear(pz);
}

/* Any free into a cache with the kernel's full per-free logic (pcp.c); false
 * when the block's pageblock is isolated (then free it to the buddy). */
bool pcp_free(struct gmm_thread *t, struct gmm_zone *z, uint64_t pfn, unsigned int order);
/* The rest of an order-0 free that reached trim_at (free_count and the kernel's
 * per-free logic), then owner_unlock(); 0 (pcp.c). */
int pcp_free_commit0(struct gmm_thread *t, struct gmm_zone *z, struct pcp_zone *pz,
		     unsigned int pi);
/* A checked free of an allocated block through the full path of the cache (alloc.c). */
int free_pcp(struct gmm_thread *t, struct gmm_zone *z, uint64_t pfn, unsigned int order);

/*
 * An allocated order-0 frame (already checked) into @t's cache of @z;
 * gmm_free()'s result.  Every call it makes is a tail call: the common
 * path needs no stack frame.
 *
 * The kernel's free_frozen_page_commit() does, on every free: alloc_factor
 * >>= 1; clear PCPF_PREV_FREE_HIGH_ORDER (order 0); free_count += 1 below
 * its cap; high = nr_pcp_high(); trim when count >= high.  Here the common
 * free does only the list push and count, compares count with trim_at,
 * and (below it) adds to free_count.  That is the same as long as:
 * - alloc_factor is 0 and the flag is clear: then the first two are no-ops.
 *   pz_set_trim_at() makes trim_at 0 otherwise, and everything that sets
 *   them (a refill's nr_pcp_alloc(), a high-order free) runs the full logic
 *   and sets trim_at again, or to 0;
 * - nr_pcp_high() would return pz->high and leave it unchanged.  With
 *   high_min <= high <= high_max (the clamp a slow path applied, against the
 *   sizes read after the zone word), the zone not below its high watermark
 *   and count < high, it does: the clamp is the identity, the below-high
 *   branch is not taken, the growth branch needs count >= high.  The sizes
 *   and ZONE_BELOW_HIGH change only with the zone word (pcp_gen), and
 *   whoever changes it resets every cache's trim_at of the zone to 0
 *   (pcp_trim_reset(); pz_set_trim_at() for the ordering), so the free reads
 *   nothing but its own cache: the next free runs the full logic
 *   (pcp_free()).  Only the owner changes pz->high, always in a slow path
 *   that resets trim_at (refill, decay, trim, high-order free);
 * - free_count's cap (batch << 5) is that of the same sizes (fc_cap).
 * A free that brings count to trim_at (>= high: the kernel would trim)
 * runs the rest of the kernel's logic in pcp_free_commit0().  Allocations
 * change count and free_count only, so they keep trim_at valid.
 */
static inline __attribute__((always_inline)) int pcp_free0(struct gmm_pool *p,
							   struct gmm_thread *t, uint64_t pfn)
{
	size_t b = pfn >> GMM_PAGEBLOCK_ORDER;
	struct gmm_pageblock *pbs = p->pb;
	size_t mt = __atomic_load_n(&pbs[b].bits, __ATOMIC_RELAXED) & (PB_ISOLATE | PB_MT_MASK);
	/* one register for the test and the index (gcc would narrow the test apart) */
	__asm__("" : "+r"(mt));
	uint8_t *state = p->state;
	uint32_t *link = (uint32_t *)p->link; /* halves: prev, next (little-endian) */
	struct pcp_cache *c;
	struct pcp_zone *pz;
	struct pfn_list *l;
	uint32_t count, head;

	owner_lock(t);
	c = rcu_dereference(t->cache);
	/* the frame is allocated, so its block is present: the offset is not 0 */
	pz = (struct pcp_zone *)((char *)c + __atomic_load_n(&pbs[b].pcp_off, __ATOMIC_RELAXED));
	/* isolated, HIGHATOMIC or CMA: the full path sorts them out */
	if (unlikely(mt >= MT_PCPTYPES)) {
		owner_unlock(t);
		return free_pcp(t, pz->zone, pfn, 0);
	}
	__atomic_store_n(&state[pfn], FR_PCP, __ATOMIC_RELAXED);
	l = &pz->lists[mt];
	/* pl_add_head(), but the new head's prev half left stale (never read) */
	head = l->head;
	link[2 * pfn + 1] = head;
	if (head == PFN_NIL)
		l->tail = (uint32_t)pfn;
	else
		link[2 * (size_t)head] = (uint32_t)pfn;
	l->head = (uint32_t)pfn;
	pz_count_add(pz, 1);
	count = __atomic_load_n(&pz->count, __ATOMIC_RELAXED);
	CTR_ADD(t, free, 1);
	if (unlikely(pz_reached_trim_at(pz, count)))
		return pcp_free_commit0(t, pz->zone, pz, mt);
	/* fc_cap: only a threshold's free reads it (reset thresholds leave it stale) */
	pz->free_count += pz->free_count < pz->fc_cap;
	owner_unlock(t);
	return 0;
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
	pz = cache_zone(c, z);
	l = &pz->lists[pindex(mt, order)];
	if (likely(l->head != PFN_NIL)) {
		pz->free_count >>= 1;
		CTR_ADD(t, alloc_hit, 1);
		pfn = take_head(z->pool, pz, l, order, mt);
	}
	owner_unlock(t);
	return pfn;
}

/*
 * pcp_fast_entry(): where an order-0 request of (node, flags) hits:
 * bits 0..15 the byte offset of the list in a cache, 24..31 the state byte
 * of the frame handed out.  The order-0 lists are in the zone's first line,
 * so the zone is the list's address rounded down to a line.
 */
#define PCP_FAST_LIST(e) ((e) & 0xffffu)
#define PCP_FAST_STATE(e) ((uint8_t)((e) >> 24))
#define PCP_FAST_ENTRY(list_off, st) ((uint32_t)(list_off) | (uint32_t)(st) << 24)
_Static_assert(offsetof(struct pcp_zone, lists[MT_PCPTYPES]) <= 64 &&
	       sizeof(struct pcp_zone) % 64 == 0 && offsetof(struct pcp_cache, zones) % 64 == 0,
	       "order-0 lists in the zone's first line, zones line-aligned");
_Static_assert(sizeof(struct pcp_cache) +
	       sizeof(struct pcp_zone) * GMM_MAX_NODES * GMM_NR_ZONES <= 0x10000,
	       "zone offsets fit 16 bits");

/* The order-0 lookup entry of (@node, @flags), 0 when the full path must decide. */
static inline uint32_t pcp_fast_entry(const struct gmm_pool *p, unsigned int flags, int node)
{
	unsigned int row = (unsigned int)(node + 1);

	if (unlikely(row > p->cfg.nr_nodes || flags > GMM_FLAGS_ALL))
		return 0;
	return __atomic_load_n(&p->pcp->fast[row][flags], __ATOMIC_RELAXED);
}

/*
 * The order-0 cache hit of a request whose entry is @e (not 0):
 * GMM_PFN_NONE when the list is empty.  The same as pcp_alloc_hit().
 */
static inline __attribute__((always_inline)) uint64_t pcp_alloc_hit0(struct gmm_pool *p,
								     struct gmm_thread *t,
								     uint32_t e)
{
	struct pcp_cache *c;
	struct pcp_zone *pz;
	struct pfn_list *l;
	uint64_t *link;
	uint8_t *state;
	uint32_t pfn, next;

	owner_lock(t);
	c = rcu_dereference(t->cache);
	l = (struct pfn_list *)((char *)c + PCP_FAST_LIST(e));
	pz = (struct pcp_zone *)((uintptr_t)l & ~(uintptr_t)63);
	pfn = l->head;
	if (unlikely(pfn == PFN_NIL)) {
		owner_unlock(t);
		return GMM_PFN_NONE;
	}
	link = p->link;
	state = p->state;
	next = ((const uint32_t *)link)[2 * (size_t)pfn + 1]; /* pl_next() */
	l->head = next; /* the tail of an emptied list is left stale */
	pz->free_count >>= 1;
	pz_count_add(pz, -1);
	CTR_ADD(t, alloc_hit, 1);
	link[pfn] = 0;
	__atomic_store_n(&state[pfn], PCP_FAST_STATE(e), __ATOMIC_RELAXED);
	owner_unlock(t);
	return pfn;
}

/* The kernel's gfp_migratetype(). */
static inline int flags_migratetype(const struct gmm_pool *p, unsigned int flags)
{
	if (!p->cfg.mobility_grouping)
		return GMM_MT_UNMOVABLE;
	if (flags & GMM_MOVABLE)
		return GMM_MT_MOVABLE;
	if (flags & GMM_RECLAIMABLE)
		return GMM_MT_RECLAIMABLE;
	return GMM_MT_UNMOVABLE;
}

/* The pool's default policy: mode and nodes change together (one word). */
static inline void pool_policy(const struct gmm_pool *p, enum gmm_policy_mode *mode,
			       uint64_t *nodes)
{
	uint64_t w = __atomic_load_n(&p->policy_word, __ATOMIC_RELAXED);

	*mode = (enum gmm_policy_mode)(w >> POLICY_MODE_SHIFT);
	*nodes = w & ((1ull << POLICY_MODE_SHIFT) - 1);
}

/* Up to @n frames off the list of entry @e of @t's cache, no refill (pcp.c); how many. */
size_t pcp_alloc_bulk_hit(struct gmm_pool *p, struct gmm_thread *t, uint32_t e, size_t n,
			  uint64_t *pfns);

/*
 * gmm_free_bulk() of an attached thread (pcp.c): frees @pfns[0..ret-1] into
 * @t's cache as as many pcp_free0() calls would, in runs of frames of one
 * cache list; stops at the first frame that the single free would refuse
 * or send to its full path (pcp_free0()), which the caller frees itself.
 */
size_t pcp_free_bulk(struct gmm_pool *p, struct gmm_thread *t, size_t n, const uint64_t *pfns);

/* Fill row @row of the pool's order-0 lookup (0: the policy's, rewritten when it changes). */
void pcp_fast_fill(struct gmm_pool *p, unsigned int row);

/* The first zone of @node's zonelist not above @hz (NULL: none). */
static inline struct gmm_zone *pcp_first_zone(const struct gmm_pool *p, int node, int hz)
{
	return p->pcp->first_zone[node][hz];
}

/* pcp_self() when the pool is not in the fast slot (pcp.c). */
struct gmm_thread *pcp_self_slow(const struct gmm_pool *p);

/*
 * The calling thread's cache of @p, or NULL (not attached, or offline).
 * The fast slot holds the first attachment while online, and a pool no
 * caller can pass otherwise (not NULL): pcp_self(NULL) is NULL.
 */
static inline struct gmm_thread *pcp_self(const struct gmm_pool *p)
{
	if (likely(gmm_pcp_tls_fast.pool == p))
		return gmm_pcp_tls_fast.t;
	return pcp_self_slow(p);
}

#endif
