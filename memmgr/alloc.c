/* SPDX-License-Identifier: MIT */
/*
 * memmgr/alloc.c - the allocation and free entry points.
 *
 * Owns what the kernel does around the buddy: turning flags into a
 * migratetype and ALLOC_* flags, walking the zonelist of the chosen node
 * with watermark checks (get_page_from_freelist), ALLOC_NOFRAGMENT and its
 * retry, the slow path (min watermark, reserves, drain of per-thread caches,
 * HIGHATOMIC release), node policies, zeroing, checked frees, and bulk
 * allocation and free of single frames.  Requests of order <= 3 or 9 (THP)
 * of a thread attached to the pool go through its cache (pcp.c).
 */
#include <stddef.h>
#include <string.h>

#include "pcp.h"

/* Set by try_zone(): the block just taken had been reported (reads as zero). */
static _Thread_local bool took_reported;

struct alloc_ctx {
	unsigned int order;
	int mt;
	bool movable; /* the caller declared the frames movable */
	int highest_zoneidx;
	uint64_t nodemask;
	struct gmm_node *pref;
	struct gmm_thread *t; /* the caller's cache, or NULL */
};

static void prep_new(struct gmm_zone *z, uint64_t pfn, const struct alloc_ctx *ac,
		     unsigned int alloc_flags)
{
	struct gmm_pool *p = z->pool;

	p->link[pfn] = 0;
	fr_set(p, pfn, FR_ALLOC, ac->order, ac->movable);
	z->ev.alloc++;
	if (unlikely(alloc_flags & ALLOC_HIGHATOMIC))
		buddy_reserve_highatomic(z, pfn, ac->order);
}

/* The cache serves small orders, except for emergency and HIGHATOMIC requests. */
static inline bool use_pcp(const struct alloc_ctx *ac, unsigned int alloc_flags)
{
	return ac->t && pcp_allowed_order(ac->order) &&
	       !(alloc_flags & (ALLOC_NO_WATERMARKS | ALLOC_HIGHATOMIC));
}

static uint64_t try_zone(struct gmm_zone *z, const struct alloc_ctx *ac, unsigned int alloc_flags)
{
	uint64_t pfn = GMM_PFN_NONE;
	bool reported;

	if (use_pcp(ac, alloc_flags))
		return pcp_alloc(ac->t, z, ac->order, ac->mt, ac->highest_zoneidx, alloc_flags);
	pthread_mutex_lock(&z->lock);
	if ((alloc_flags & ALLOC_NO_WATERMARKS) ||
	    zone_watermark_fast(z, ac->order, ac->highest_zoneidx, alloc_flags))
		pfn = buddy_rmqueue(z, ac->order, ac->mt, alloc_flags, &reported);
	if (pfn != GMM_PFN_NONE) {
		prep_new(z, pfn, ac, alloc_flags);
		took_reported = reported;
	}
	pthread_mutex_unlock(&z->lock);
	return pfn;
}

/* Count an event that happens outside the zone lock. */
static void zone_count_event(struct gmm_zone *z, uint64_t *counter)
{
	pthread_mutex_lock(&z->lock);
	(*counter)++;
	pthread_mutex_unlock(&z->lock);
}

static bool zone_eligible(const struct gmm_zone *z, const struct alloc_ctx *ac)
{
	return (int)z->type <= ac->highest_zoneidx && (ac->nodemask >> z->node) & 1;
}

/*
 * The kernel's get_page_from_freelist().  ALLOC_NOFRAGMENT is dropped for
 * a remote zone and for a second pass, except in defrag mode, where only
 * the slow path's last resort drops it.
 */
static uint64_t get_page_from_freelist(const struct alloc_ctx *ac,
				       unsigned int alloc_flags)
{
	struct gmm_node *nd = ac->pref;
	bool defrag = pool_defrag_mode(nd->zonelist[0]->pool);
	int local = -1;

retry:
	for (unsigned int i = 0; i < nd->nr_zonelist; i++) {
		struct gmm_zone *z = nd->zonelist[i];
		uint64_t pfn;

		if (!zone_eligible(z, ac))
			continue;
		if (local < 0)
			local = z->node;
		/* locality beats fragmentation avoidance: going remote, allow fallbacks */
		if ((alloc_flags & ALLOC_NOFRAGMENT) && !defrag && z->node != local) {
			alloc_flags &= ~ALLOC_NOFRAGMENT;
			zone_count_event(z, &z->ev.nofragment_retry);
			goto retry;
		}
		pfn = try_zone(z, ac, alloc_flags);
		if (pfn != GMM_PFN_NONE)
			return pfn;
	}
	if ((alloc_flags & ALLOC_NOFRAGMENT) && !defrag) {
		alloc_flags &= ~ALLOC_NOFRAGMENT;
		goto retry;
	}
	return GMM_PFN_NONE;
}

/* Release HIGHATOMIC reserves in the zonelist; true when something was released. */
static bool unreserve_highatomic(const struct alloc_ctx *ac, bool force)
{
	struct gmm_node *nd = ac->pref;
	bool done = false;

	for (unsigned int i = 0; i < nd->nr_zonelist && !done; i++) {
		struct gmm_zone *z = nd->zonelist[i];

		if (!zone_eligible(z, ac))
			continue;
		pthread_mutex_lock(&z->lock);
		done = buddy_unreserve_highatomic(z, ac->mt < MT_PCPTYPES ? ac->mt : GMM_MT_MOVABLE,
						  force);
		pthread_mutex_unlock(&z->lock);
	}
	return done;
}

/* The kernel's gfp_to_alloc_flags() for the slow path. */
static unsigned int slow_alloc_flags(unsigned int flags, unsigned int order, int mt)
{
	unsigned int af = ALLOC_WMARK_MIN;

	if (flags & GMM_HIGH)
		af |= ALLOC_MIN_RESERVE;
	if (flags & GMM_NOWAIT) {
		af |= ALLOC_NON_BLOCK;
		if (order > 0)
			af |= ALLOC_HIGHATOMIC;
	}
	if (flags & GMM_NO_WATERMARKS)
		af |= ALLOC_NO_WATERMARKS;
	if (mt == GMM_MT_MOVABLE)
		af |= ALLOC_CMA;
	return af;
}

/*
 * Defrag mode's last resort (the kernel's "reclaim/compaction failed to
 * prevent the fallback"): the same request with fragmenting fallbacks,
 * which count as defrag_fallback.  Also when defrag mode was turned on
 * while this request ran (the buddy applied it to the passes before).
 */
static uint64_t defrag_last_resort(struct gmm_pool *p, const struct alloc_ctx *ac,
				   unsigned int af)
{
	if (!(af & ALLOC_NOFRAGMENT) && !pool_defrag_mode(p))
		return GMM_PFN_NONE;
	return get_page_from_freelist(ac, (af & ~ALLOC_NOFRAGMENT) | ALLOC_DEFRAG_LAST);
}

static uint64_t alloc_slowpath(struct gmm_pool *p, const struct alloc_ctx *ac, unsigned int flags)
{
	unsigned int af = slow_alloc_flags(flags, ac->order, ac->mt);
	bool defrag = pool_defrag_mode(p);
	uint64_t pfn;

	if (defrag)
		af |= ALLOC_NOFRAGMENT;
	pfn = get_page_from_freelist(ac, af);
	if (pfn != GMM_PFN_NONE)
		return pfn;
	if (flags & GMM_LIGHT) {	/* wake kcompactd only */
		compact_direct(ac->pref, ac->order, ac->mt, ac->movable, ac->highest_zoneidx,
			       ac->nodemask, true, defrag);
		return defrag_last_resort(p, ac, af);
	}
	if (p->drain_all) {
		p->drain_all(p);
		pfn = get_page_from_freelist(ac, af);
		if (pfn != GMM_PFN_NONE)
			return pfn;
	}
	pfn = compact_direct(ac->pref, ac->order, ac->mt, ac->movable, ac->highest_zoneidx,
			     ac->nodemask, flags & GMM_NOWAIT, defrag);
	if (pfn != GMM_PFN_NONE)
		return pfn;
	for (int force = 0; force < 2; force++) {
		while (unreserve_highatomic(ac, force)) {
			pfn = get_page_from_freelist(ac, af);
			if (pfn != GMM_PFN_NONE)
				return pfn;
		}
	}
	return defrag_last_resort(p, ac, af);
}

static int check_request(const struct gmm_pool *p, unsigned int order, unsigned int flags)
{
	if (order > p->max_order)
		return gmm_set_error(-EINVAL, "order %u exceeds the pool's max order %u", order,
				     p->max_order);
	if (flags & ~GMM_FLAGS_ALL)
		return gmm_set_error(-EINVAL, "unknown allocation flags 0x%x",
				     flags & ~GMM_FLAGS_ALL);
	if ((flags & GMM_MOVABLE) && (flags & GMM_RECLAIMABLE))
		return gmm_set_error(-EINVAL, "GMM_MOVABLE and GMM_RECLAIMABLE exclude each other");
	return 0;
}

/* Does an allowed zone hold a free block of the order (refused by its watermark)? */
static bool free_block_refused(const struct alloc_ctx *ac)
{
	struct gmm_node *nd = ac->pref;
	bool found = false;

	for (unsigned int i = 0; i < nd->nr_zonelist && !found; i++) {
		struct gmm_zone *z = nd->zonelist[i];

		if (!zone_eligible(z, ac))
			continue;
		pthread_mutex_lock(&z->lock);
		for (unsigned int o = ac->order; o <= z->pool->max_order && !found; o++)
			found = z->area_nr[o] > z->area[o][GMM_MT_ISOLATE].nr;
		pthread_mutex_unlock(&z->lock);
	}
	return found;
}

static void count_failure(struct alloc_ctx *ac)
{
	struct gmm_node *nd = ac->pref;

	for (unsigned int i = 0; i < nd->nr_zonelist; i++) {
		struct gmm_zone *z = nd->zonelist[i];

		if (zone_eligible(z, ac)) {
			zone_count_event(z, &z->ev.alloc_fail);
			return;
		}
	}
}

static uint64_t alloc_ctx_run(struct gmm_pool *p, struct alloc_ctx *ac, unsigned int flags)
{
	unsigned int af = ALLOC_WMARK_LOW;
	uint64_t pfn;

	if (ac->mt == GMM_MT_MOVABLE)
		af |= ALLOC_CMA;
	if ((p->cfg.nofragment && p->cfg.mobility_grouping) || pool_defrag_mode(p))
		af |= ALLOC_NOFRAGMENT;
	took_reported = false;
	pfn = get_page_from_freelist(ac, af);
	if (unlikely(pfn == GMM_PFN_NONE))
		pfn = alloc_slowpath(p, ac, flags);
	if (unlikely(pfn == GMM_PFN_NONE)) {
		count_failure(ac);
		if (free_block_refused(ac))
			gmm_set_error(-ENOMEM, "order %u (mobility %d): the allowed zones hold free "
				      "blocks but are below their watermarks (GMM_HIGH, GMM_ATOMIC "
				      "and GMM_NO_WATERMARKS reach deeper)", ac->order, ac->mt);
		else
			gmm_set_error(-ENOMEM, "no free block of order %u (mobility %d) on the "
				      "allowed nodes", ac->order, ac->mt);
		return pfn;
	}
	if (took_reported) {
		/* discarded memory reads as zero; the backing may need it back first */
		if (pool_prepare_reported(p, pfn, ac->order)) {
			gmm_free(p, pfn, ac->order);
			return GMM_PFN_NONE;
		}
		return pfn;
	}
	if (flags & GMM_ZERO)
		memset(gmm_pfn_to_host(p, pfn), 0, GMM_PAGE_SIZE << ac->order);
	return pfn;
}

static void ctx_init(struct gmm_pool *p, struct alloc_ctx *ac, unsigned int order,
		     unsigned int flags, int node, uint64_t nodemask)
{
	ac->order = order;
	ac->mt = flags_migratetype(p, flags);
	ac->movable = flags & GMM_MOVABLE;
	ac->highest_zoneidx = (flags & GMM_MOVABLE) && !(flags & GMM_NO_MOVABLE_ZONE) ?
				      GMM_ZONE_MOVABLE : GMM_ZONE_NORMAL;
	ac->nodemask = nodemask;
	ac->pref = &p->nodes[node];
	ac->t = pcp_allowed_order(order) ? pcp_self(p) : NULL;
}

static int policy_node(const struct gmm_pool *p, enum gmm_policy_mode mode, uint64_t nodes,
		       unsigned int *cursor, uint64_t *mask)
{
	uint64_t all = (p->cfg.nr_nodes >= 64 ? ~0ull : (1ull << p->cfg.nr_nodes) - 1);
	unsigned int nr, k;

	nodes &= all;
	nr = (unsigned int)__builtin_popcountll(nodes);
	*mask = all;
	if (!nodes)
		return gmm_set_error(-EINVAL, "policy names no node of the pool");
	if (mode == GMM_POLICY_BIND)
		*mask = nodes;
	if (mode != GMM_POLICY_INTERLEAVE)
		return __builtin_ctzll(nodes);
	k = __atomic_fetch_add(cursor, 1, __ATOMIC_RELAXED) % nr;
	while (k--)
		nodes &= nodes - 1;
	return __builtin_ctzll(nodes);
}

static uint64_t alloc_by_policy(struct gmm_pool *p, unsigned int order, unsigned int flags,
				enum gmm_policy_mode mode, uint64_t nodes, unsigned int *cursor)
{
	struct alloc_ctx ac;
	uint64_t mask;
	int node;

	if (check_request(p, order, flags))
		return GMM_PFN_NONE;
	if (flags & GMM_THISNODE) {
		gmm_set_error(-EINVAL, "GMM_THISNODE does not go with a policy");
		return GMM_PFN_NONE;
	}
	if (mode > GMM_POLICY_INTERLEAVE) {
		gmm_set_error(-EINVAL, "unknown policy mode %d", mode);
		return GMM_PFN_NONE;
	}
	node = policy_node(p, mode, nodes, cursor, &mask);
	if (node < 0)
		return GMM_PFN_NONE;
	ctx_init(p, &ac, order, flags, node, mask);
	return alloc_ctx_run(p, &ac, flags);
}

uint64_t gmm_alloc_policy(struct gmm_pool *p, unsigned int order, unsigned int flags,
			  struct gmm_policy *pol)
{
	if (!p || !pol) {
		gmm_set_error(-EINVAL, "gmm_alloc_policy: NULL argument");
		return GMM_PFN_NONE;
	}
	return alloc_by_policy(p, order, flags, pol->mode, pol->nodes, &pol->next);
}

/*
 * The cache hit without the zonelist walk: the first eligible zone of the
 * node's zonelist is where get_page_from_freelist() would take the block from
 * (the cache checks watermarks only when it refills).  GMM_PFN_NONE: take
 * the full path (a miss, interleave, or anything unusual).
 */
static inline uint64_t alloc_fast(struct gmm_pool *p, unsigned int order, unsigned int flags,
				  int node)
{
	struct gmm_thread *t = pcp_self(p);
	struct gmm_zone *z;
	uint64_t mask = ~0ull, pfn;
	int hz;

	if (!t || (flags & (GMM_MOVABLE | GMM_RECLAIMABLE)) == (GMM_MOVABLE | GMM_RECLAIMABLE))
		return GMM_PFN_NONE;
	if (node == GMM_NO_NODE) {
		enum gmm_policy_mode mode;
		uint64_t nodes;

		pool_policy(p, &mode, &nodes);
		if (mode == GMM_POLICY_INTERLEAVE || (flags & GMM_THISNODE))
			return GMM_PFN_NONE;
		node = __builtin_ctzll(nodes);
		if (mode == GMM_POLICY_BIND)
			mask = nodes;
	} else if (node < 0 || node >= (int)p->cfg.nr_nodes) {
		return GMM_PFN_NONE;
	} else if (flags & GMM_THISNODE) {
		mask = 1ull << node;
	}
	hz = (flags & GMM_MOVABLE) && !(flags & GMM_NO_MOVABLE_ZONE) ? GMM_ZONE_MOVABLE :
									  GMM_ZONE_NORMAL;
	z = pcp_first_zone(p, node, hz);
	if (unlikely(!z || !((mask >> z->node) & 1)))
		return GMM_PFN_NONE;
	pfn = order == 0 ? pcp_alloc_hit(t, z, 0, flags_migratetype(p, flags)) :
			   pcp_alloc_hit(t, z, order, flags_migratetype(p, flags));
	return pfn;
}

/* Everything but a cache hit without zeroing; the NULL pool check. */
static uint64_t __attribute__((noinline)) alloc_slow(struct gmm_pool *p, unsigned int order,
						     unsigned int flags, int node)
{
	struct alloc_ctx ac;

	if (unlikely(!p)) {
		gmm_set_error(-EINVAL, "gmm_alloc: NULL pool");
		return GMM_PFN_NONE;
	}
	if (unlikely(check_request(p, order, flags)))
		return GMM_PFN_NONE;
	if (node == GMM_NO_NODE) {
		if (flags & GMM_THISNODE) {
			gmm_set_error(-EINVAL, "GMM_THISNODE needs a node");
			return GMM_PFN_NONE;
		}
		enum gmm_policy_mode mode;
		uint64_t nodes;

		pool_policy(p, &mode, &nodes);
		return alloc_by_policy(p, order, flags, mode, nodes, &p->policy_next);
	}
	if (node < 0 || node >= (int)p->cfg.nr_nodes) {
		gmm_set_error(-EINVAL, "node %d is not in the pool (%u nodes)", node,
			      p->cfg.nr_nodes);
		return GMM_PFN_NONE;
	}
	ctx_init(p, &ac, order, flags, node, (flags & GMM_THISNODE) ? 1ull << node : ~0ull);
	return alloc_ctx_run(p, &ac, flags);
}

/* Anything but an order-0 hit of the first attachment: the cache hit without the
 * zonelist walk, else the full path. */
static uint64_t __attribute__((noinline)) alloc_order(struct gmm_pool *p, unsigned int order,
						      unsigned int flags, int node)
{
	if (likely(pcp_allowed_order(order) && !(flags & ~(GMM_FLAGS_ALL & ~GMM_ZERO)))) {
		uint64_t pfn = alloc_fast(p, order, flags, node);

		if (likely(pfn != GMM_PFN_NONE))
			return pfn;
	}
	return alloc_slow(p, order, flags, node);
}

/*
 * The order-0 cache hit inline, with no call on its way (no registers to
 * save): one lookup of (node, flags) in the pool's table (pcp_fast_fill())
 * gives the cache list that get_page_from_freelist() would take the frame
 * from.  A NULL pool has no cache (pcp_self(NULL) is NULL): alloc_slow()
 * refuses it.
 */
uint64_t gmm_alloc(struct gmm_pool *p, unsigned int order, unsigned int flags, int node)
{
	uint32_t e;

	/* the fast slot holds a cache whenever it holds @p (pcp_self()) */
	if (likely(!order && gmm_pcp_tls_fast.pool == p && (e = pcp_fast_entry(p, flags, node)))) {
		uint64_t pfn = pcp_alloc_hit0(p, gmm_pcp_tls_fast.t, e);

		if (likely(pfn != GMM_PFN_NONE))
			return pfn;
	}
	return alloc_order(p, order, flags, node);
}

int gmm_pool_set_policy(struct gmm_pool *p, enum gmm_policy_mode mode, uint64_t nodes)
{
	uint64_t all;

	if (!p)
		return gmm_set_error(-EINVAL, "gmm_pool_set_policy: NULL pool");
	all = p->cfg.nr_nodes >= 64 ? ~0ull : (1ull << p->cfg.nr_nodes) - 1;
	if (mode > GMM_POLICY_INTERLEAVE)
		return gmm_set_error(-EINVAL, "unknown policy mode %d", mode);
	if (!nodes || (nodes & ~all))
		return gmm_set_error(-EINVAL, "node mask 0x%llx: must name only the pool's nodes",
				     (unsigned long long)nodes);
	__atomic_store_n(&p->policy_word, nodes | ((uint64_t)mode << POLICY_MODE_SHIFT),
			 __ATOMIC_RELAXED);
	pcp_fast_fill(p, 0);
	return 0;
}

static int bad_free(const struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	return gmm_set_error(-EINVAL, "free of pfn %llu order %u: %s", (unsigned long long)pfn,
			     order, fr_kind(p, pfn) == FR_ALLOC ? "allocated with another order" :
								 "not allocated (double free?)");
}

/* The locked path of a free; @z is the zone of @pfn. */
static int free_locked(struct gmm_pool *p, struct gmm_zone *z, uint64_t pfn, unsigned int order)
{
	if (unlikely(fr_kind(p, pfn) != FR_ALLOC || fr_order(p, pfn) != order))
		return bad_free(p, pfn, order);
	buddy_free_range(z, pfn, order);
	z->ev.free++;
	zone_maybe_clear_boost(z);
	return 0;
}

/* A free that bypasses the cache (its pageblock is isolated): the buddy, locked. */
static int __attribute__((noinline)) free_pcp_slow(struct gmm_zone *z, uint64_t pfn,
						   unsigned int order)
{
	int err;

	pthread_mutex_lock(&z->lock);
	err = free_locked(z->pool, z, pfn, order);
	pthread_mutex_unlock(&z->lock);
	return err;
}

/*
 * Into the caller's cache, through the full per-free logic (pcp_free()).
 * The frame's state is checked without the lock: a frame the caller owns
 * cannot change under it (two threads freeing the same frame at once is
 * not detected, as in the kernel).
 */
int __attribute__((noinline)) free_pcp(struct gmm_thread *t, struct gmm_zone *z, uint64_t pfn,
				       unsigned int order)
{
	struct gmm_pool *p = z->pool;

	if (unlikely((fr_state(p, pfn) & (uint8_t)~FR_FLAG) !=
		     (uint8_t)(FR_ALLOC | (order << FR_ORDER_SHIFT))))
		return bad_free(p, pfn, order);
	if (likely(pcp_free(t, z, pfn, order)))
		return 0;
	return free_pcp_slow(z, pfn, order);
}

/* An order-0 frame into the caller's cache (free_pcp() for order 0, inline). */
static inline __attribute__((always_inline)) int free_pcp0(struct gmm_pool *p,
							   struct gmm_thread *t, uint64_t pfn)
{
	if (unlikely((fr_state(p, pfn) & (uint8_t)~FR_FLAG) != FR_ALLOC))
		return bad_free(p, pfn, 0);
	return pcp_free0(p, t, pfn);
}

static int __attribute__((noinline)) free_slow(struct gmm_pool *p, uint64_t pfn,
					       unsigned int order)
{
	struct gmm_zone *z = likely(p) ? pfn_zone(p, pfn) : NULL;
	struct gmm_thread *t;
	int err;

	if (unlikely(!z || order > p->max_order || (pfn & ((1ull << order) - 1))))
		return gmm_set_error(-EINVAL, "free of pfn %llu order %u: not an allocated block"
				     "%s", (unsigned long long)pfn, order, p ? "" : " (NULL pool)");
	if (pcp_allowed_order(order) && (t = pcp_self(p)))
		return free_pcp(t, z, pfn, order);
	pthread_mutex_lock(&z->lock);
	err = free_locked(p, z, pfn, order);
	pthread_mutex_unlock(&z->lock);
	return err;
}

/*
 * Order 0 into the cache inline; the other orders through free_slow().
 * The cache is looked up first: pcp_self(NULL) is NULL, so a NULL pool goes
 * to free_slow() without a test of its own.
 */
int gmm_free(struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	/* the fast slot holds a cache whenever it holds @p (pcp_self()); only
	 * frames of present blocks are allocated (the state check), so the
	 * zone is found from the pageblock (pcp_free0()) */
	if (likely(!order && gmm_pcp_tls_fast.pool == p && pfn < p->nr_pfns))
		return free_pcp0(p, gmm_pcp_tls_fast.t, pfn);
	return free_slow(p, pfn, order);
}

int gmm_split(struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	struct gmm_zone *z = p ? pfn_zone(p, pfn) : NULL;
	int err = 0;

	if (unlikely(!z || order > p->max_order || (pfn & ((1ull << order) - 1))))
		return gmm_set_error(-EINVAL, "split of pfn %llu order %u: not an allocated block",
				     (unsigned long long)pfn, order);
	pthread_mutex_lock(&z->lock);
	if (fr_kind(p, pfn) != FR_ALLOC || fr_order(p, pfn) != order) {
		err = gmm_set_error(-EINVAL, "split of pfn %llu order %u: not allocated with "
				    "that order", (unsigned long long)pfn, order);
	} else {
		bool movable = fr_state(p, pfn) & FR_FLAG;

		for (uint64_t i = 0; i < 1ull << order; i++)
			fr_set(p, pfn + i, FR_ALLOC, 0, movable);
	}
	pthread_mutex_unlock(&z->lock);
	return err;
}

/* --- bulk ----------------------------------------------------------------- */

/* The first eligible zone that passes the low watermark (the kernel's alloc_pages_bulk). */
static struct gmm_zone *bulk_zone(const struct alloc_ctx *ac, unsigned int af)
{
	struct gmm_node *nd = ac->pref;

	for (unsigned int i = 0; i < nd->nr_zonelist; i++) {
		struct gmm_zone *z = nd->zonelist[i];
		bool ok;

		if (!zone_eligible(z, ac))
			continue;
		pthread_mutex_lock(&z->lock);
		ok = zone_watermark_fast(z, 0, ac->highest_zoneidx, af);
		pthread_mutex_unlock(&z->lock);
		if (ok)
			return z;
	}
	return NULL;
}

/*
 * With a cache: runs off the cache of each eligible zone of the zonelist in
 * turn, the next zone when one's refill is refused by its watermark (the
 * kernel's alloc_pages_bulk() moves on to the next zone that passes it),
 * with get_page_from_freelist()'s ALLOC_NOFRAGMENT rules: another node's
 * zones only without it.
 */
static size_t bulk_pcp(const struct alloc_ctx *ac, unsigned int af, size_t n, uint64_t *pfns)
{
	struct gmm_node *nd = ac->pref;
	size_t got = 0;
	int local = -1;

retry:
	for (unsigned int i = 0; i < nd->nr_zonelist && got < n; i++) {
		struct gmm_zone *z = nd->zonelist[i];

		if (!zone_eligible(z, ac))
			continue;
		if (local < 0)
			local = z->node;
		if ((af & ALLOC_NOFRAGMENT) && z->node != local) {
			af &= ~ALLOC_NOFRAGMENT;
			goto retry;
		}
		got += pcp_alloc_bulk(ac->t, z, ac->mt, ac->highest_zoneidx, af, n - got,
				      pfns + got);
	}
	if (got < n && (af & ALLOC_NOFRAGMENT)) {
		af &= ~ALLOC_NOFRAGMENT;
		goto retry;
	}
	return got;
}

static int bulk_ctx(struct gmm_pool *p, struct alloc_ctx *ac, unsigned int flags, int node)
{
	uint64_t mask = ~0ull;
	int err = check_request(p, 0, flags);

	if (err)
		return err;
	if (node == GMM_NO_NODE) {
		enum gmm_policy_mode mode;
		uint64_t nodes;

		if (flags & GMM_THISNODE)
			return gmm_set_error(-EINVAL, "GMM_THISNODE needs a node");
		pool_policy(p, &mode, &nodes);
		node = policy_node(p, mode, nodes, &p->policy_next, &mask);
		if (node < 0)
			return node;
	} else if (node < 0 || node >= (int)p->cfg.nr_nodes) {
		return gmm_set_error(-EINVAL, "node %d is not in the pool", node);
	} else if (flags & GMM_THISNODE) {
		mask = 1ull << node;
	}
	ctx_init(p, ac, 0, flags, node, mask);
	return 0;
}

static size_t __attribute__((noinline)) alloc_bulk_slow(struct gmm_pool *p, unsigned int flags,
							int node, size_t n, uint64_t *pfns)
{
	struct alloc_ctx ac = { 0 };
	unsigned int af = ALLOC_WMARK_LOW;
	struct gmm_zone *z;
	size_t got = 0;

	if (!p || (n && !pfns)) {
		gmm_set_error(-EINVAL, "gmm_alloc_bulk: NULL argument");
		return 0;
	}
	if (!n || bulk_ctx(p, &ac, flags, node))
		return 0;
	if (ac.mt == GMM_MT_MOVABLE)
		af |= ALLOC_CMA;
	if (p->cfg.nofragment && p->cfg.mobility_grouping)
		af |= ALLOC_NOFRAGMENT;
	if (ac.t) {
		got = bulk_pcp(&ac, af, n, pfns);
	} else {
		z = bulk_zone(&ac, af);
		if (z)
			got = pcp_rmqueue_frames(z, ac.mt, ac.highest_zoneidx, af, n, pfns);
	}
	if (!got) {
		pfns[0] = alloc_ctx_run(p, &ac, flags & ~GMM_ZERO);
		got = pfns[0] != GMM_PFN_NONE;
		if (got && ac.t)
			pcp_count_bulk(ac.t, 1);
	}
	for (size_t i = 0; (flags & GMM_ZERO) && i < got; i++)
		memset(gmm_pfn_to_host(p, pfns[i]), 0, GMM_PAGE_SIZE);
	return got;
}

/*
 * First a run off the cache list that gmm_alloc()'s lookup names (no
 * refill), then the full path for the rest: refills, the next zones, the
 * unattached and unusual cases.
 */
size_t gmm_alloc_bulk(struct gmm_pool *p, unsigned int flags, int node, size_t n,
		      uint64_t *pfns)
{
	size_t got = 0;
	uint32_t e;

	if (likely(n && pfns && gmm_pcp_tls_fast.pool == p &&
		   (e = pcp_fast_entry(p, flags, node)))) {
		got = pcp_alloc_bulk_hit(p, gmm_pcp_tls_fast.t, e, n, pfns);
		if (likely(got == n))
			return n;
	}
	return got + alloc_bulk_slow(p, flags, node, n - got, pfns + got);
}

/* A frame of gmm_free_bulk() that is not in the pool. */
static int bad_bulk_pfn(uint64_t pfn)
{
	return gmm_set_error(-EINVAL, "free of pfn %llu: not in the pool",
			     (unsigned long long)pfn);
}

/*
 * Attached: runs into the cache (pcp_free_bulk()); a frame it stops at goes
 * through the single free's checks and full path.
 */
static int free_bulk_pcp(struct gmm_pool *p, struct gmm_thread *t, size_t n,
			 const uint64_t *pfns)
{
	int err = 0;

	for (size_t i = 0; (i += pcp_free_bulk(p, t, n - i, pfns + i)) < n; i++) {
		if (unlikely(!pfn_zone(p, pfns[i])))
			err = bad_bulk_pfn(pfns[i]);
		else if (free_pcp0(p, t, pfns[i]))
			err = -EINVAL;
	}
	return err;
}

/*
 * The frames that follow @pfns[0] (an allocated order-0 frame) in @pfns as
 * pfn + 1, pfn + 2, ..., allocated order-0 frames in the same pageblock,
 * at most @max in all: how many, the first one included.
 */
static size_t locked_run(const struct gmm_pool *p, const uint64_t *pfns, size_t max)
{
	uint64_t pfn = pfns[0], room = GMM_PAGEBLOCK_PAGES - (pfn & (GMM_PAGEBLOCK_PAGES - 1));
	size_t m = 1;

	if (max > room)
		max = room;
	while (m < max && pfns[m] == pfn + m && (fr_state(p, pfn + m) & ~FR_FLAG) == FR_ALLOC)
		m++;
	return m;
}

/*
 * Free the @m allocated order-0 frames from @pfn on (one pageblock), under
 * the zone lock, as aligned blocks: the buddy merges each block once
 * instead of frame by frame, and ends as after @m single frees (the same
 * free blocks; counted as @m frees, pgfree's pages).
 */
static void free_locked_run(struct gmm_zone *z, uint64_t pfn, size_t m)
{
	struct gmm_pool *p = z->pool;
	uint64_t end = pfn + m;
	int mt = pb_mt(p, pfn);

	while (pfn < end) {
		unsigned int o = pfn ? (unsigned int)__builtin_ctzll(pfn) : 63;
		unsigned int fit = 63 - (unsigned int)__builtin_clzll(end - pfn);

		if (o > fit)
			o = fit;
		for (uint64_t q = pfn + 1; q < pfn + (1ull << o); q++) {
			p->link[q] = 0;
			fr_state_set(p, q, FR_TAIL);
		}
		buddy_free_one(z, pfn, o, mt);
		pfn += 1ull << o;
	}
	z->ev.free += m;
	zone_maybe_clear_boost(z);
}

/* Unattached: one zone lock per run of frames of the same zone, consecutive
 * frames freed as blocks (free_locked_run()). */
static int free_bulk_locked(struct gmm_pool *p, size_t n, const uint64_t *pfns)
{
	struct gmm_zone *locked = NULL;
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		struct gmm_zone *z = pfn_zone(p, pfns[i]);
		size_t m;

		if (locked && z != locked) {
			pthread_mutex_unlock(&locked->lock);
			locked = NULL;
		}
		if (unlikely(!z)) {
			err = bad_bulk_pfn(pfns[i]);
			continue;
		}
		if (!locked) {
			locked = z;
			pthread_mutex_lock(&z->lock);
		}
		if (unlikely((fr_state(p, pfns[i]) & ~FR_FLAG) != FR_ALLOC)) {
			err = bad_free(p, pfns[i], 0);
			continue;
		}
		m = locked_run(p, pfns + i, n - i);
		free_locked_run(z, pfns[i], m);
		i += m - 1;
	}
	if (locked)
		pthread_mutex_unlock(&locked->lock);
	return err;
}

int gmm_free_bulk(struct gmm_pool *p, size_t n, const uint64_t *pfns)
{
	struct gmm_thread *t;

	if (!p || (n && !pfns))
		return gmm_set_error(-EINVAL, "gmm_free_bulk: NULL argument");
	t = pcp_self(p);
	if (t)
		return free_bulk_pcp(p, t, n, pfns);
	return free_bulk_locked(p, n, pfns);
}
