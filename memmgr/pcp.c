/* SPDX-License-Identifier: MIT */
/*
 * memmgr/pcp.c - per-thread page caches (the kernel's per-CPU page lists).
 *
 * Owns thread registration (attach, detach, online, offline, quiescent),
 * the caches' lists and their sizing (zone_batchsize, zone_highsize),
 * refill from the buddy (rmqueue_bulk), trimming by the owner
 * (free_pcppages_bulk with the free_high heuristic), the remote drain of
 * every cache under RCU (liburcu QSBR), the cache counters and their
 * rendering, and the cache part of the invariant check.
 *
 * Concurrency.  A cache (struct pcp_cache) is written only by its owner
 * thread, which reaches it through t->cache with rcu_dereference() and never
 * holds that pointer across a quiescent state.  A drainer, holding
 * pcp->lock, publishes the thread's preallocated empty spare cache with
 * rcu_assign_pointer(), waits for a grace period, and then owns the old
 * cache: it frees its frames to the buddy and keeps it as the next spare.
 * Whoever blocks on pcp->lock or waits for a grace period is offline first,
 * since a drainer holding the lock waits for every online reader.
 * Lock order: pcp->lock, then zone->lock.
 *
 * Built with -DGMM_PCP_SPINLOCK (benchmarks only), the caches follow the
 * design of current Linux instead: each cache has a spinlock (a fair ticket
 * lock, pcp.h) that the owner takes (trylock, then lock) around every list
 * operation, and a drainer takes it to empty the cache in place; no RCU
 * grace period.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "pcp.h"

/*
 * ThreadSanitizer does not see liburcu's synchronisation (fences and
 * volatile accesses in an uninstrumented library).  The RCU guarantee that
 * everything an owner did before its quiescent state happens before the end
 * of the grace period is told to it explicitly: the owner releases its
 * attachment's token at every quiescent state, the drainer acquires it after
 * synchronize_rcu().  urcu's rcu_assign_pointer() is a fence plus a volatile
 * store, also invisible to TSan, so the TSan build publishes with a C11
 * release store, which has the same meaning.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define qs_release(t) __tsan_release(&(t)->qs_token)
#define qs_acquire(t) __tsan_acquire(&(t)->qs_token)
#define cache_publish(t, c) __atomic_store_n(&(t)->cache, (c), __ATOMIC_RELEASE)
#else
#define qs_release(t) ((void)(t))
#define qs_acquire(t) ((void)(t))
#define cache_publish(t, c) rcu_assign_pointer((t)->cache, (c))
#endif

TLS struct tls_attachment gmm_pcp_tls_att[GMM_THREAD_MAX_POOLS];
TLS unsigned int gmm_pcp_tls_nr;
TLS bool gmm_pcp_tls_offline;
const char gmm_pcp_no_pool;
TLS struct tls_attachment gmm_pcp_tls_fast = { PCP_NO_POOL, NULL };
static TLS int64_t tls_last_decay; /* coarse clock, seconds */

static void cache_reset(struct pcp_cache *c)
{
	for (unsigned int i = 0; i < c->nr_zones; i++) {
		struct pcp_zone *pz = &c->zones[i];

		for (unsigned int l = 0; l < NR_PCP_LISTS; l++)
			pz->lists[l].head = pz->lists[l].tail = PFN_NIL;
		__atomic_store_n(&pz->count, 0, __ATOMIC_RELAXED);
		pz_trim_at_clear(pz); /* the first free takes the full path */
		pz->fc_cap = 0;
		pz->free_count = 0;
		pz->flags = 0;
		pz->high = 0;
		pz->alloc_factor = 0;
	}
}

static struct pcp_cache *cache_new(struct gmm_pool *p, unsigned int nr_zones)
{
	size_t bytes = sizeof(struct pcp_cache) + nr_zones * sizeof(struct pcp_zone);
	struct pcp_cache *c = aligned_alloc(64, (bytes + 63) & ~(size_t)63);

	if (!c)
		return NULL;
	c->nr_zones = nr_zones;
	for (unsigned int i = 0; i < nr_zones; i++)
		c->zones[i].zone = &p->nodes[i / GMM_NR_ZONES].zones[i % GMM_NR_ZONES];
	cache_reset(c);
	return c;
}

uint32_t pcp_zone_off(const struct gmm_zone *z)
{
	return (uint32_t)(offsetof(struct pcp_cache, zones) + zone_idx(z) * sizeof(struct pcp_zone));
}

/* --- sizing ------------------------------------------------------------ */

static uint32_t rounddown_pow2(uint32_t x)
{
	return x ? 1u << (31 - __builtin_clz(x)) : 0;
}

/* The kernel's zone_batchsize() (MMU), at least 1 as zone_set_pageset_high_and_batch(). */
static uint32_t zone_batchsize(uint64_t managed)
{
	uint64_t batch = managed >> 10;

	if (batch > (1u << 20) / GMM_PAGE_SIZE)
		batch = (1u << 20) / GMM_PAGE_SIZE;
	batch /= 4;
	if (batch < 1)
		batch = 1;
	batch = rounddown_pow2((uint32_t)(batch + batch / 2)) - 1;
	return batch ? (uint32_t)batch : 1;
}

/* MIN_PERCPU_PAGELIST_HIGH_FRACTION: high_max is an eighth of the zone. */
#define HIGH_MAX_FRACTION 8

/*
 * The kernel's zone_highsize(), split among the attached threads: with
 * @fraction 0 the low watermark (high_min), else managed / @fraction
 * (high_max).
 */
static uint32_t zone_highsize(const struct gmm_zone *z, uint32_t batch, unsigned int nr_threads,
			      unsigned int fraction)
{
	uint64_t total = fraction ? z->managed / fraction : z->wmark[WMARK_LOW];
	uint64_t high = total / (nr_threads ? nr_threads : 1);

	if (high < (uint64_t)batch << 2)
		high = (uint64_t)batch << 2;
	return (uint32_t)high;
}

/* Under pcp->lock (or before the pool is shared). */
static void pcp_update_sizes(struct gmm_pool *p)
{
	struct pcp_pool *pp = p->pcp;

	for_each_zone(p, z) {
		uint32_t batch = zone_batchsize(z->managed);

		__atomic_store_n(&pp->batch[zone_idx(z)], batch, __ATOMIC_RELAXED);
		__atomic_store_n(&pp->high_min[zone_idx(z)],
				 zone_highsize(z, batch, pp->nr_threads, 0), __ATOMIC_RELAXED);
		__atomic_store_n(&pp->high_max[zone_idx(z)],
				 zone_highsize(z, batch, pp->nr_threads, HIGH_MAX_FRACTION),
				 __ATOMIC_RELAXED);
		/* the caches' next free of this zone rereads them (pcp_free0()) */
		__atomic_fetch_add(&z->pcp_gen, PCP_GEN_SIZES, __ATOMIC_SEQ_CST);
		pcp_trim_reset(z);
	}
}

void pcp_trim_reset(struct gmm_zone *z)
{
	struct pcp_pool *pp = z->pool->pcp;

	/* seq_cst after the word's change: pz_set_trim_at() */
	for (struct gmm_thread *t = pp->threads; t; t = t->next)
		for (int i = 0; i < 2; i++)
			__atomic_store_n(&cache_zone(t->pair[i], z)->trim_at, 0, __ATOMIC_SEQ_CST);
}

/* --- moving frames between caches and the buddy --------------------------- */

/* A block between a cache list and the buddy, moved outside the zone lock. */
struct pcp_block {
	uint32_t pfn;
	uint8_t order;
};

/*
 * Blocks one refill takes at most: nr_pcp_alloc() asks for batch <<
 * PCP_BATCH_SCALE_MAX order-0 frames at most, and zone_batchsize() is at
 * most the frames of a quarter MiB (64).  A trim by the owner returns at most
 * free_count frames, which stops growing at that count plus one THP;
 * larger trims (decay, drains) take the lock once per PCP_TRIM_MAX blocks.
 */
#define PCP_BATCH_MAX ((1u << 20) / GMM_PAGE_SIZE / 4)
#define PCP_REFILL_MAX (PCP_BATCH_MAX << PCP_BATCH_SCALE_MAX)
#define PCP_TRIM_MAX (PCP_REFILL_MAX + GMM_PAGEBLOCK_PAGES)

/*
 * Take up to @count frames (at most PCP_TRIM_MAX blocks) off @pz's lists,
 * round-robin from the list after *@pi, coldest (tail) first; *@count and
 * *@pi are left where the next round continues.
 */
static unsigned int pop_blocks(struct gmm_pool *p, struct pcp_zone *pz, int64_t *count,
			       unsigned int *pi, struct pcp_block *bk)
{
	unsigned int nr = 0;

	while (*count > 0 && nr < PCP_TRIM_MAX) {
		struct pfn_list *l;
		unsigned int order;

		do {
			*pi = *pi + 1 == NR_PCP_LISTS ? 0 : *pi + 1;
			l = &pz->lists[*pi];
		} while (l->head == PFN_NIL);
		order = pindex_order(*pi);
		do {
			uint32_t e = pl_pop_tail(p, l);

			if (e != pcp_elem_head(e, order))
				p->link[e] = 0; /* a tail frame again */
			bk[nr].pfn = pcp_elem_head(e, order);
			bk[nr++].order = (uint8_t)order;
			*count -= 1 << order;
		} while (*count > 0 && l->head != PFN_NIL && nr < PCP_TRIM_MAX);
	}
	return nr;
}

/*
 * The kernel's free_pcppages_bulk(): @count frames, round-robin from the
 * list after @pi.  The blocks leave the cache lists before the zone lock
 * (the lists are the owner's), so the lock covers the buddy work alone.
 */
static uint64_t free_pcppages_bulk(struct gmm_zone *z, struct pcp_zone *pz, int64_t count,
				   unsigned int pi)
{
	struct gmm_pool *p = z->pool;
	struct pcp_block bk[PCP_TRIM_MAX];
	uint64_t freed = 0;

	if (count > (int64_t)pz->count)
		count = pz->count;
	pi = pi ? pi - 1 : NR_PCP_LISTS - 1;
	while (count > 0) {
		unsigned int nr = pop_blocks(p, pz, &count, &pi, bk);
		uint64_t frames = 0;

		pthread_mutex_lock(&z->lock);
		for (unsigned int k = 0; k < nr; k++) {
			buddy_free_range(z, bk[k].pfn, bk[k].order);
			frames += 1ull << bk[k].order;
		}
		z->ev.free += nr;
		zone_maybe_clear_boost(z);
		if (zone_below_high(z) && z->nr_free >= z->wmark[WMARK_HIGH])
			zone_set_below_high(z, false);
		pthread_mutex_unlock(&z->lock);
		pz_count_add(pz, -(int64_t)frames);
		freed += frames;
	}
	return freed;
}

void pcp_trim(struct gmm_thread *t, struct gmm_zone *z, struct pcp_zone *pz, int64_t count,
	      unsigned int pi)
{
	uint64_t n = free_pcppages_bulk(z, pz, count, pi);

	CTR_ADD(t, drain, 1);
	CTR_ADD(t, drain_frames, n);
}

/* --- frees into the cache ------------------------------------------------ */

struct pcp_sizes {
	uint32_t gen, batch, hmin, hmax;
};

/* The zone word, then the sizes it stands for (pcp_update_sizes() bumps it after). */
static struct pcp_sizes pcp_sizes(const struct gmm_zone *z)
{
	const struct pcp_pool *pp = z->pool->pcp;
	unsigned int zi = zone_idx(z);
	struct pcp_sizes sz;

	sz.gen = pcp_zone_gen(z);
	sz.batch = __atomic_load_n(&pp->batch[zi], __ATOMIC_RELAXED);
	sz.hmin = __atomic_load_n(&pp->high_min[zi], __ATOMIC_RELAXED);
	sz.hmax = __atomic_load_n(&pp->high_max[zi], __ATOMIC_RELAXED);
	return sz;
}

/* The end of free_frozen_page_commit(): nr_pcp_high(), the trim, the next trim_at. */
static void free_commit(struct gmm_thread *t, struct gmm_zone *z, struct pcp_zone *pz,
			unsigned int pi, bool fh, const struct pcp_sizes *sz)
{
	uint32_t high = nr_pcp_high(pz, sz->gen & PCP_GEN_BELOW_HIGH, sz->batch, sz->hmin,
				    sz->hmax, fh);

	if (pz->count >= high)
		pcp_trim(t, z, pz, nr_pcp_free(pz, sz->batch, high, fh), pi);
	pz_set_trim_at(pz, z, sz->gen, sz->batch);
}

bool pcp_free(struct gmm_thread *t, struct gmm_zone *z, uint64_t pfn, unsigned int order)
{
	struct gmm_pool *p = z->pool;
	int mt = pb_mt_relaxed(p, pfn);
	struct pcp_sizes sz;
	struct pcp_zone *pz;
	unsigned int pi;
	bool fh;

	/* frames of isolated blocks go straight to the buddy's ISOLATE lists */
	if (unlikely(mt == GMM_MT_ISOLATE))
		return false;
	/* HIGHATOMIC and CMA frames are cached on the movable list (the kernel does so) */
	if (mt >= MT_PCPTYPES)
		mt = GMM_MT_MOVABLE;
	owner_lock(t);
	pz = cache_zone(rcu_dereference(t->cache), z);
	sz = pcp_sizes(z);
	pi = pindex(mt, order);
	fr_set(p, pfn, FR_PCP, order, false);
	pl_add_head(p, &pz->lists[pi], pcp_elem(pfn, order));
	pz_count_add(pz, 1 << order);
	CTR_ADD(t, free, 1);
	pz->alloc_factor >>= 1;
	fh = free_high(pz, order, sz.batch, sz.hmin);
	free_commit(t, z, pz, pi, fh, &sz);
	owner_unlock(t);
	return true;
}

int pcp_free_commit0(struct gmm_thread *t, struct gmm_zone *z, struct pcp_zone *pz,
		     unsigned int pi)
{
	struct pcp_sizes sz = pcp_sizes(z);

	/* what pcp_free0() left out: free_high() of an order-0 free (false) */
	pz->alloc_factor >>= 1;
	free_commit(t, z, pz, pi, free_high(pz, 0, sz.batch, sz.hmin), &sz);
	owner_unlock(t);
	return 0;
}

/* Return every frame of @c to the buddy; @c must be owned by the caller. */
static uint64_t cache_drain(struct gmm_pool *p, struct pcp_cache *c)
{
	uint64_t freed = 0;

	for_each_zone(p, z) {
		struct pcp_zone *pz = &c->zones[zone_idx(z)];

		if (pz->count)
			freed += free_pcppages_bulk(z, pz, pz->count, 0);
	}
	cache_reset(c);
	return freed;
}

/*
 * The kernel's nr_pcp_alloc(): a refill grows the cache's high mark (unless
 * the zone is below its high watermark) and doubles in size with each
 * refill not separated by a free (alloc_factor).  One deviation: the kernel
 * grows high by batch frames whatever the order, which for orders 0..3 is
 * about what the refill brings (batch >> order blocks), but a THP refill
 * brings at least 2 blocks (1024 frames) for 63 frames of high; high then
 * needs ~16 refills per cached THP to hold a working set of THPs, and every
 * one of them takes the zone lock.  Here high grows by the frames of the
 * refill when that is more than batch (THP only; docs/pcp.md).
 */
static unsigned int nr_pcp_alloc(struct pcp_zone *pz, const struct gmm_zone *z, uint32_t batch,
				 uint32_t hmin, uint32_t hmax, unsigned int order)
{
	uint32_t high = clamp_u32(pz->high, hmin, hmax), n, grow;

	pz->high = high;
	pz_trim_at_clear(pz); /* high and alloc_factor change: the next free sets it again */
	if (unlikely(high < batch))
		return 1;
	n = order ? batch : batch << pz->alloc_factor;
	grow = order && (2u << order) > n ? 2u << order : n;
	if (hmin != hmax && !zone_below_high(z)) {
		high = hmax - high > grow ? high + grow : hmax;
		pz->high = high;
	}
	if (!order) {
		uint32_t max_nr = high > pz->count + 2 * batch ? high - pz->count - batch : batch;

		if (n <= max_nr && pz->alloc_factor < PCP_BATCH_SCALE_MAX)
			pz->alloc_factor++;
		if (n > max_nr)
			n = max_nr;
	}
	if (n > 1) {
		n >>= order;
		if (n < 2)
			n = 2;
	}
	return n;
}

/*
 * Refill chunks.  The metadata of 64 consecutive frames share cache lines
 * (their state bytes one line, their link words eight lines), so a cache
 * refilled with frames next to another cache's frames writes the same lines
 * as that cache's owner on every allocation and free: false sharing between
 * threads (the kernel's 64-byte struct page never shares a line).  Small
 * orders are therefore refilled with whole aligned blocks of
 * PCP_CHUNK_ORDER, split in the cache, while the buddy has such blocks of
 * the wanted migratetype: two caches then never hold frames whose metadata
 * share a line, except after cross-thread frees.
 */
#define PCP_CHUNK_ORDER 6
#define PCP_CHUNK_FRAMES (1u << PCP_CHUNK_ORDER)
_Static_assert(64 >> PCP_CHUNK_ORDER == 1, "a chunk's state bytes fill one cache line");

/* A free block of at least chunk order and of migratetype @mt (no fallback needed). */
static bool chunk_free(const struct gmm_zone *z, int mt)
{
	for (unsigned int o = PCP_CHUNK_ORDER; o <= z->pool->max_order; o++)
		if (z->area_nr[o] && z->area[o][mt].list.head != PFN_NIL)
			return true;
	return false;
}

/*
 * Whether to take the next @rem frames of a refill as a chunk.  While at
 * least half a chunk is wanted, yes (a refill overshoots by at most half a
 * chunk); for a smaller first request (small zones' batches), only an
 * already free chunk-order block, which splits nothing larger.
 */
static bool chunk_wanted(const struct gmm_zone *z, int mt, unsigned int rem, bool first)
{
	if (rem >= PCP_CHUNK_FRAMES / 2)
		return chunk_free(z, mt);
	return first && rem > 1 && z->area[PCP_CHUNK_ORDER][mt].list.head != PFN_NIL;
}

/* One block of order @take; false when there is none. */
static bool take_block(struct gmm_zone *z, unsigned int take, int mt, unsigned int alloc_flags,
		       struct pcp_block *out)
{
	struct gmm_pool *p = z->pool;
	bool reported;
	uint64_t pfn = buddy_rmqueue(z, take, mt, alloc_flags, &reported);

	if (pfn == GMM_PFN_NONE)
		return false;
	/* memory given back to the host: the backing may need it again first */
	if (unlikely(reported) && pool_prepare_reported(p, pfn, take)) {
		buddy_free_one_flag(z, pfn, take, pb_mt(p, pfn), true);
		return false;
	}
	out->pfn = (uint32_t)pfn;
	out->order = (uint8_t)take;
	return true;
}

/*
 * Take blocks for a refill of @count blocks of @order under the zone lock;
 * how many blocks of @order they hold.  Orders below the chunk order come
 * in chunks (above) while the buddy has them, else one by one.
 */
static unsigned int take_blocks(struct gmm_zone *z, unsigned int count, unsigned int order,
				int mt, unsigned int alloc_flags, struct pcp_block *tk,
				unsigned int *nr_tk)
{
	unsigned int i = 0;
	bool chunks = false;

	while (i < count) {
		unsigned int take = order;

		if (order < PCP_CHUNK_ORDER) {
			if (chunk_wanted(z, mt, (count - i) << order, !i)) {
				take = PCP_CHUNK_ORDER;
				chunks = true;
			} else if (chunks) {
				break; /* rather a few frames short than a line shared */
			}
		}
		if (!take_block(z, take, mt, alloc_flags, &tk[*nr_tk]))
			break;
		(*nr_tk)++;
		i += 1u << (take - order);
	}
	return i;
}

/*
 * The kernel's rmqueue_bulk() after the watermark check of
 * get_page_from_freelist().  Only the buddy work is done under the zone
 * lock: the taken blocks are split and put on the cache list after it.
 * Until then their heads are FR_TAIL, which no merge, scanner or free
 * takes for a free or allocated block.
 */
static unsigned int rmqueue_bulk(struct gmm_zone *z, struct pfn_list *l, unsigned int count,
				 unsigned int order, int mt, int hz, unsigned int alloc_flags)
{
	struct gmm_pool *p = z->pool;
	struct pcp_block tk[PCP_REFILL_MAX];
	unsigned int i = 0, nr_tk = 0;

	if (count > PCP_REFILL_MAX)
		count = PCP_REFILL_MAX;
	pthread_mutex_lock(&z->lock);
	if (!zone_below_high(z) && z->nr_free < z->wmark[WMARK_HIGH])
		zone_set_below_high(z, true);
	if (zone_watermark_fast(z, order, hz, alloc_flags)) {
		i = take_blocks(z, count, order, mt, alloc_flags, tk, &nr_tk);
		z->ev.alloc += i;
	}
	pthread_mutex_unlock(&z->lock);
	for (unsigned int k = 0; k < nr_tk; k++)
		for (uint64_t b = 0; b < 1ull << tk[k].order; b += 1ull << order) {
			fr_set(p, tk[k].pfn + b, FR_PCP, order, false);
			pl_add_tail(p, l, pcp_elem(tk[k].pfn + b, order));
		}
	return i;
}

/* The lowest order with a free block of @mt in @z; above max_order: none. */
static unsigned int lowest_free_order(const struct gmm_zone *z, int mt)
{
	unsigned int o = 0;

	while (o <= z->pool->max_order &&
	       !(z->area_nr[o] && z->area[o][mt].list.head != PFN_NIL))
		o++;
	return o;
}

/*
 * gmm_alloc_bulk() without a cache: up to @n order-0 frames of @mt from @z,
 * in rounds of one zone lock, as rmqueue_bulk() takes a refill: each round
 * checks the watermark once and takes up to PCP_REFILL_MAX frames.  A
 * round takes whole blocks, one buddy operation each: of the lowest order
 * that has a free block of @mt, at most the frames still wanted.  Single
 * allocations would split that same block and take its pieces before any
 * other, so the frames are those they would take and fragmentation is the
 * same.  The frames are marked allocated after the lock.  Returns how many
 * frames are in @pfns; stops early when the zone runs short.
 */
size_t pcp_rmqueue_frames(struct gmm_zone *z, int mt, int hz, unsigned int alloc_flags,
			  size_t n, uint64_t *pfns)
{
	struct gmm_pool *p = z->pool;
	uint8_t st = (uint8_t)(FR_ALLOC | (mt == GMM_MT_MOVABLE ? FR_FLAG : 0));
	struct pcp_block tk[PCP_REFILL_MAX];
	size_t got = 0;

	while (got < n) {
		size_t want = n - got < PCP_REFILL_MAX ? n - got : PCP_REFILL_MAX, i = 0;
		unsigned int nr_tk = 0;

		pthread_mutex_lock(&z->lock);
		if (zone_watermark_fast(z, 0, hz, alloc_flags)) {
			while (i < want) {
				unsigned int fit = 63 - (unsigned int)__builtin_clzll(want - i);
				unsigned int take = lowest_free_order(z, mt);

				/* none of @mt: one frame at a time, with the fallbacks */
				if (take > p->max_order)
					take = 0;
				if (take > fit)
					take = fit;
				if (!take_block(z, take, mt, alloc_flags, &tk[nr_tk]))
					break;
				i += 1u << tk[nr_tk++].order;
			}
			z->ev.alloc += i;
		}
		pthread_mutex_unlock(&z->lock);
		for (unsigned int k = 0; k < nr_tk; k++)
			for (uint64_t pfn = tk[k].pfn; pfn < tk[k].pfn + (1ull << tk[k].order); pfn++) {
				p->link[pfn] = 0;
				fr_state_set(p, pfn, st);
				pfns[got++] = pfn;
			}
		if (i < want)
			break;
	}
	return got;
}

/* Refill the empty list @l of @pz from the buddy; the number of blocks added (0: refused). */
static unsigned int pcp_refill(struct gmm_thread *t, struct gmm_zone *z, struct pcp_zone *pz,
			       struct pfn_list *l, unsigned int order, int mt, int hz,
			       unsigned int alloc_flags)
{
	struct pcp_pool *pp = z->pool->pcp;
	unsigned int zi = zone_idx(z);
	uint32_t batch = __atomic_load_n(&pp->batch[zi], __ATOMIC_RELAXED);
	uint32_t hmin = __atomic_load_n(&pp->high_min[zi], __ATOMIC_RELAXED);
	uint32_t hmax = __atomic_load_n(&pp->high_max[zi], __ATOMIC_RELAXED);
	unsigned int n = rmqueue_bulk(z, l, nr_pcp_alloc(pz, z, batch, hmin, hmax, order), order,
				      mt, hz, alloc_flags);

	if (!n) {
		CTR_ADD(t, alloc_fail, 1);
		return 0;
	}
	pz_count_add(pz, (int64_t)n << order);
	CTR_ADD(t, refill, 1);
	CTR_ADD(t, refill_frames, (uint64_t)n << order);
	CTR_ADD(t, alloc_miss, 1);
	return n;
}

static uint64_t __pcp_alloc(struct gmm_thread *t, struct gmm_zone *z, unsigned int order, int mt,
			    int hz, unsigned int alloc_flags)
{
	struct pcp_cache *c = rcu_dereference(t->cache);
	struct pcp_zone *pz = &c->zones[zone_idx(z)];
	struct pfn_list *l = &pz->lists[pindex(mt, order)];

	pz->free_count >>= 1;
	if (likely(l->head != PFN_NIL))
		CTR_ADD(t, alloc_hit, 1);
	else if (!pcp_refill(t, z, pz, l, order, mt, hz, alloc_flags))
		return GMM_PFN_NONE;
	return take_head(z->pool, pz, l, order, mt);
}

uint64_t pcp_alloc(struct gmm_thread *t, struct gmm_zone *z, unsigned int order, int mt,
		   int hz, unsigned int alloc_flags)
{
	uint64_t pfn;

	owner_lock(t);
	pfn = __pcp_alloc(t, z, order, mt, hz, alloc_flags);
	owner_unlock(t);
	return pfn;
}

/* Hand out the frame @pfn of a list; the next one. */
static inline uint32_t take_frame(uint64_t *link, uint8_t *state, uint32_t pfn, uint8_t st,
				  uint64_t *out)
{
	uint32_t next = (uint32_t)(link[pfn] >> 32); /* pl_next() */

	link[pfn] = 0;
	__atomic_store_n(&state[pfn], st, __ATOMIC_RELAXED);
	*out = pfn;
	return next;
}

/*
 * Hand out up to @n frames from the head of @l (not empty); how many.
 *
 * Walking a list is a chain of dependent loads (each next pfn is read from
 * the link word of the one before), one load latency a frame.  Cache lists
 * mostly run through consecutive pfns (refills list chunks in ascending
 * order, frees in bulk put runs back in descending order), so the walk
 * guesses that the next pfn is this one plus the last step, and goes on
 * with the guess while the load that checks it completes: a correct guess
 * (a predicted branch) takes the load off the chain.  A list in no such
 * order (frees in random order) would make the branch unpredictable: once
 * more than a quarter of the guesses (and more than two) failed, the rest
 * of the run is walked plainly.  The frames and their order are those of
 * the list either way.
 */
static size_t take_run(struct gmm_pool *p, struct pcp_zone *pz, struct pfn_list *l, uint8_t st,
		       size_t n, uint64_t *pfns)
{
	uint64_t *link = p->link; /* loaded once: the state stores may alias anything */
	uint8_t *state = p->state;
	uint32_t pfn = l->head, step = 1, misses = 0;
	size_t got = 0;

	while (pfn != PFN_NIL && got < n) {
		uint32_t next = take_frame(link, state, pfn, st, &pfns[got++]);

		if (likely(next == pfn + step)) {
			/* pfn made opaque: the compiler cannot use the equal load instead */
			__asm__("" : "+r"(pfn));
			pfn += step;
			continue;
		}
		step = next - pfn;
		pfn = next;
		if (++misses > 2 && misses * 4 > got)
			break;
	}
	while (pfn != PFN_NIL && got < n)
		pfn = take_frame(link, state, pfn, st, &pfns[got++]);
	l->head = pfn; /* the tail of an emptied list is left stale */
	pz_count_add(pz, -(int64_t)got);
	return got;
}

size_t pcp_alloc_bulk(struct gmm_thread *t, struct gmm_zone *z, int mt, int hz,
		      unsigned int alloc_flags, size_t n, uint64_t *pfns)
{
	uint8_t st = (uint8_t)(FR_ALLOC | (mt == GMM_MT_MOVABLE ? FR_FLAG : 0));
	struct pcp_cache *c;
	struct pcp_zone *pz;
	struct pfn_list *l;
	size_t got = 0, misses = 0;

	owner_lock(t);
	c = rcu_dereference(t->cache);
	pz = &c->zones[zone_idx(z)];
	l = &pz->lists[pindex(mt, 0)];
	while (got < n) {
		if (l->head == PFN_NIL) {
			if (!pcp_refill(t, z, pz, l, 0, mt, hz, alloc_flags))
				break;
			misses++;
		}
		got += take_run(z->pool, pz, l, st, n - got, pfns + got);
	}
	CTR_ADD(t, alloc_hit, got - misses);
	CTR_ADD(t, bulk_alloc, got);
	owner_unlock(t);
	return got;
}

size_t pcp_alloc_bulk_hit(struct gmm_pool *p, struct gmm_thread *t, uint32_t e, size_t n,
			  uint64_t *pfns)
{
	struct pcp_zone *pz;
	struct pfn_list *l;
	size_t got = 0;

	owner_lock(t);
	l = (struct pfn_list *)((char *)rcu_dereference(t->cache) + PCP_FAST_LIST(e));
	pz = (struct pcp_zone *)((uintptr_t)l & ~(uintptr_t)63);
	if (l->head != PFN_NIL) {
		got = take_run(p, pz, l, PCP_FAST_STATE(e), n, pfns);
		CTR_ADD(t, alloc_hit, got);
		CTR_ADD(t, bulk_alloc, got);
	}
	owner_unlock(t);
	return got;
}

/*
 * The run of a bulk free that starts at @pfns[0], an allocated order-0
 * frame of a cacheable block whose cache part is @pz: the frames
 * that follow it in @pfns, up to @max, while they are allocated order-0
 * frames of blocks with the same migratetype @mt and cache part.  Each is
 * marked FR_PCP and chained in front of the previous one, as successive
 * pl_add_head()s would (the last one's prev half left stale, as
 * pcp_free0() leaves it); then the chain goes onto the list at once.
 * Returns the run's length (at least 1).
 */
static size_t free_run(struct gmm_pool *p, struct pcp_zone *pz, unsigned int mt,
		       const uint64_t *pfns, size_t max)
{
	const struct gmm_pageblock *pbs = p->pb;
	uint32_t *link = (uint32_t *)p->link; /* halves: prev, next */
	uint8_t *state = p->state;
	uint64_t nr_pfns = p->nr_pfns, pfn = pfns[0];
	size_t b = pfn >> GMM_PAGEBLOCK_ORDER, k;
	uint32_t off = __atomic_load_n(&pbs[b].pcp_off, __ATOMIC_RELAXED);
	uint32_t head = (uint32_t)pfn, tail = (uint32_t)pfn, old;
	struct pfn_list *l = &pz->lists[mt];

	__atomic_store_n(&state[pfn], FR_PCP, __ATOMIC_RELAXED);
	for (k = 1; k < max; k++) {
		pfn = pfns[k];
		if (pfn >= nr_pfns ||
		    (__atomic_load_n(&state[pfn], __ATOMIC_RELAXED) & ~FR_FLAG) != FR_ALLOC)
			break;
		if (pfn >> GMM_PAGEBLOCK_ORDER != b) {
			b = pfn >> GMM_PAGEBLOCK_ORDER;
			if ((__atomic_load_n(&pbs[b].bits, __ATOMIC_RELAXED) &
			     (PB_ISOLATE | PB_MT_MASK)) != mt ||
			    __atomic_load_n(&pbs[b].pcp_off, __ATOMIC_RELAXED) != off)
				break;
		}
		__atomic_store_n(&state[pfn], FR_PCP, __ATOMIC_RELAXED);
		link[2 * pfn + 1] = head;
		link[2 * (size_t)head] = (uint32_t)pfn;
		head = (uint32_t)pfn;
	}
	old = l->head;
	link[2 * (size_t)tail + 1] = old;
	if (old == PFN_NIL)
		l->tail = tail;
	else
		link[2 * (size_t)old] = tail;
	l->head = head;
	return k;
}

size_t pcp_free_bulk(struct gmm_pool *p, struct gmm_thread *t, size_t n, const uint64_t *pfns)
{
	const struct gmm_pageblock *pbs = p->pb;
	struct pcp_cache *c;
	size_t i = 0;

	owner_lock(t);
	c = rcu_dereference(t->cache);
	while (i < n) {
		uint64_t pfn = pfns[i];
		size_t b = pfn >> GMM_PAGEBLOCK_ORDER, k, max;
		unsigned int mt;
		struct pcp_zone *pz;
		struct gmm_zone *z;
		uint32_t count, at;
		size_t fast;
		bool reached;

		if (pfn >= p->nr_pfns || (fr_state(p, pfn) & ~FR_FLAG) != FR_ALLOC)
			break;
		/* isolated, HIGHATOMIC or CMA: the full path (pcp_free0()) */
		mt = __atomic_load_n(&pbs[b].bits, __ATOMIC_RELAXED) & (PB_ISOLATE | PB_MT_MASK);
		if (mt >= MT_PCPTYPES)
			break;
		/* allocated, so its block is present: the offset is not 0 */
		pz = (struct pcp_zone *)((char *)c + __atomic_load_n(&pbs[b].pcp_off,
								     __ATOMIC_RELAXED));
		z = pz->zone;
		/* the single frees' trim: at the frame that brings count to trim_at
		 * (0 after a writer of the zone word reset it: that frame at once) */
		count = pz->count;
		at = pz_trim_at(pz);
		max = at > count ? at - count : 1;
		if (max > n - i)
			max = n - i;
		k = free_run(p, pz, mt, pfns + i, max);
		i += k;
		pz_count_add(pz, k);
		reached = count + k >= at;
		/* free_count as the fast single frees before the last frame */
		fast = reached ? k - 1 : k;
		if (pz->free_count < pz->fc_cap)
			pz->free_count = pz->fc_cap - pz->free_count > fast ?
					 pz->free_count + (uint32_t)fast : pz->fc_cap;
		if (reached) {
			struct pcp_sizes sz = pcp_sizes(z);

			/* pcp_free_commit0() for the frame that reached it */
			pz->alloc_factor >>= 1;
			free_commit(t, z, pz, mt, free_high(pz, 0, sz.batch, sz.hmin), &sz);
		}
	}
	CTR_ADD(t, free, i);
	owner_unlock(t);
	return i;
}

void pcp_count_bulk(struct gmm_thread *t, uint64_t n)
{
	CTR_ADD(t, bulk_alloc, n);
}

/* --- thread state ---------------------------------------------------------- */

/* The fast slot: the first attachment while online (pcp_self()). */
static void tls_fast_update(void)
{
	if (tls_nr && !tls_offline)
		gmm_pcp_tls_fast = tls_att[0];
	else
		gmm_pcp_tls_fast = (struct tls_attachment){ PCP_NO_POOL, NULL };
}

struct gmm_thread *pcp_self_slow(const struct gmm_pool *p)
{
	if (tls_offline)
		return NULL;
	for (unsigned int i = 0; i < tls_nr; i++)
		if (tls_att[i].pool == p)
			return tls_att[i].t;
	return NULL;
}

static void release_all(void)
{
	for (unsigned int i = 0; i < tls_nr; i++)
		qs_release(tls_att[i].t);
}

/*
 * The kernel's decay_pcp_high(), run by the vmstat worker every second:
 * lower each cache's high mark by an eighth (not below high_min, nor below
 * what trimming a few batches reaches) and trim the cache down to it.
 */
static void decay_cache(struct gmm_thread *t)
{
	struct gmm_pool *p = t->pool;
	struct pcp_cache *c = rcu_dereference(t->cache);

	for_each_zone(p, z) {
		unsigned int zi = zone_idx(z);
		struct pcp_zone *pz = &c->zones[zi];
		uint32_t batch = __atomic_load_n(&p->pcp->batch[zi], __ATOMIC_RELAXED);
		uint32_t hmin = __atomic_load_n(&p->pcp->high_min[zi], __ATOMIC_RELAXED);
		uint32_t step = batch << PCP_BATCH_SCALE_MAX, high = pz->high;

		if (high > hmin) {
			high -= high >> 3;
			if (pz->count > step && pz->count - step > high)
				high = pz->count - step;
			pz->high = high > hmin ? high : hmin;
			pz_trim_at_clear(pz); /* the next free sets it again */
		}
		if (pz->count > pz->high)
			pcp_trim(t, z, pz, pz->count - pz->high, 0);
	}
}

/* Once a second per thread, at a quiescent state (its own cache is safe to touch). */
static void maybe_decay(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	if (likely(ts.tv_sec == tls_last_decay))
		return;
	tls_last_decay = ts.tv_sec;
	for (unsigned int i = 0; i < tls_nr; i++) {
		owner_lock(tls_att[i].t);
		decay_cache(tls_att[i].t);
		owner_unlock(tls_att[i].t);
	}
}

void gmm_thread_quiescent(void)
{
	if (!tls_nr || tls_offline)
		return;
	maybe_decay();
	release_all();
	rcu_quiescent_state();
}

void gmm_thread_offline(void)
{
	if (!tls_nr || tls_offline)
		return;
	release_all();
	rcu_thread_offline();
	tls_offline = true;
	tls_fast_update();
}

void gmm_thread_online(void)
{
	if (!tls_nr || !tls_offline)
		return;
	rcu_thread_online();
	tls_offline = false;
	tls_fast_update();
}

/* Go offline if online; returns whether to come back. */
bool pcp_offline_begin(void)
{
	if (!tls_nr || tls_offline)
		return false;
	gmm_thread_offline();
	return true;
}

void pcp_offline_end(bool was_online)
{
	if (was_online)
		gmm_thread_online();
}

void pcp_lock(struct gmm_pool *p)
{
	bool was = pcp_offline_begin();

	pthread_mutex_lock(&p->pcp->lock);
	p->pcp->holder_was_online = was;
}

void pcp_unlock(struct gmm_pool *p)
{
	bool was = p->pcp->holder_was_online;

	pthread_mutex_unlock(&p->pcp->lock);
	pcp_offline_end(was);
}

/*
 * A thread that exits attached would stay an RCU reader (online: every
 * drain would wait for it forever) and keep its frames: a thread-specific
 * key's destructor detaches it from every pool.
 */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void detach_at_exit(void *unused)
{
	(void)unused;
	while (tls_nr)
		gmm_thread_detach(tls_att[tls_nr - 1].pool);
}

static void exit_key_init(void)
{
	pthread_key_create(&exit_key, detach_at_exit);
}

static int tls_find(const struct gmm_pool *p)
{
	for (unsigned int i = 0; i < tls_nr; i++)
		if (tls_att[i].pool == p)
			return (int)i;
	return -1;
}

static void counters_add(struct pcp_counters *to, const struct pcp_counters *c)
{
	const uint64_t *src = (const uint64_t *)c;
	uint64_t *dst = (uint64_t *)to;

	for (size_t i = 0; i < sizeof(*c) / sizeof(uint64_t); i++)
		dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

int gmm_thread_attach(struct gmm_pool *p)
{
	struct pcp_pool *pp;
	struct gmm_thread *t;

	if (!p)
		return gmm_set_error(-EINVAL, "gmm_thread_attach: NULL pool");
	pp = p->pcp;
	if (tls_find(p) >= 0)
		return gmm_set_error(-EEXIST, "thread already attached to this pool");
	if (tls_nr == GMM_THREAD_MAX_POOLS)
		return gmm_set_error(-ENOSPC, "thread attached to %d pools already",
				     GMM_THREAD_MAX_POOLS);
	t = aligned_alloc(64, sizeof(*t)); /* no line shared with another thread's data */
	if (t) {
		memset(t, 0, sizeof(*t));
		t->cache = cache_new(p, pp->nr_zones);
		t->spare = cache_new(p, pp->nr_zones);
	}
	if (!t || !t->cache || !t->spare) {
		if (t) {
			free(t->cache);
			free(t->spare);
		}
		free(t);
		return gmm_set_error(-ENOMEM, "cannot allocate a page cache");
	}
	t->pool = p;
	t->pair[0] = t->cache;
	t->pair[1] = t->spare;
	pcp_lock(p);
	zones_lock_all(p, true); /* the thread list: pcp_trim_reset() */
	t->next = pp->threads;
	pp->threads = t;
	zones_lock_all(p, false);
	pp->nr_threads++;
	pcp_update_sizes(p);
	pcp_unlock(p);
	tls_att[tls_nr].pool = p;
	tls_att[tls_nr].t = t;
	if (tls_nr++ == 0) {
		rcu_register_thread();
		tls_offline = false;
		pthread_once(&exit_once, exit_key_init);
		pthread_setspecific(exit_key, (void *)1);
	}
	tls_fast_update();
	return 0;
}

static void unlink_thread(struct pcp_pool *pp, struct gmm_thread *t)
{
	for (struct gmm_thread **pt = &pp->threads; *pt; pt = &(*pt)->next) {
		if (*pt == t) {
			*pt = t->next;
			pp->nr_threads--;
			return;
		}
	}
}

int gmm_thread_detach(struct gmm_pool *p)
{
	int i = p ? tls_find(p) : -1;
	struct pcp_pool *pp;
	struct gmm_thread *t;
	uint64_t n;

	if (!p)
		return gmm_set_error(-EINVAL, "gmm_thread_detach: NULL pool");
	pp = p->pcp;
	if (i < 0)
		return gmm_set_error(-ENOENT, "thread is not attached to this pool");
	t = tls_att[i].t;
	pcp_lock(p);
	zones_lock_all(p, true); /* the thread list: pcp_trim_reset() */
	unlink_thread(pp, t);
	zones_lock_all(p, false);
	pcp_update_sizes(p);
	n = cache_drain(p, t->cache);
	CTR_ADD(t, drain_frames, n);
	counters_add(&pp->retired, &t->ctr);
	pp->retired_remote_drain += t->remote_drain;
	pp->retired_remote_frames += t->remote_frames;
	pcp_unlock(p);
	free(t->cache);
	free(t->spare);
	free(t);
	tls_att[i] = tls_att[--tls_nr];
	tls_att[tls_nr] = (struct tls_attachment){ NULL, NULL }; /* pcp_self() looks at slot 0 */
	if (!tls_nr) {
		rcu_unregister_thread();
		tls_offline = false;
	}
	tls_fast_update();
	return 0;
}

/* --- remote drain ------------------------------------------------------------ */

uint64_t gmm_drain_all_caches(struct gmm_pool *p)
{
	struct pcp_pool *pp;
	uint64_t total = 0;

	if (!p) {
		gmm_set_error(-EINVAL, "gmm_drain_all_caches: NULL pool");
		return 0;
	}
	pp = p->pcp;
	pcp_lock(p);
	pp->drain_all++;
	if (!pp->threads) {
		pcp_unlock(p);
		return 0;
	}
#ifdef GMM_PCP_SPINLOCK
	for (struct gmm_thread *t = pp->threads; t; t = t->next) {
		uint64_t n;

		ticket_lock(&t->lock);
		n = cache_drain(p, t->cache);
		ticket_unlock(&t->lock);
		t->remote_drain++;
		t->remote_frames += n;
		total += n;
	}
	pcp_unlock(p);
	return total;
#endif
	for (struct gmm_thread *t = pp->threads; t; t = t->next) {
		struct pcp_cache *old = t->cache;

		cache_publish(t, t->spare);
		t->spare = old;
	}
	synchronize_rcu();
	for (struct gmm_thread *t = pp->threads; t; t = t->next) {
		uint64_t n;

		qs_acquire(t);
		n = cache_drain(p, t->spare);
		t->remote_drain++;
		t->remote_frames += n;
		total += n;
	}
	pcp_unlock(p);
	return total;
}

static void drain_all_hook(struct gmm_pool *p)
{
	gmm_drain_all_caches(p);
}

/* --- pool setup ---------------------------------------------------------------- */

/*
 * Row @row of the order-0 lookup: for every flags value, the first zone
 * of the node's zonelist that the request may use (as alloc.c's alloc_fast() finds
 * it) and the migratetype's list; 0 where the full path must decide
 * (GMM_ZERO, invalid flags, interleave, GMM_THISNODE without a node, no
 * eligible first zone).  Row 0 follows the pool's policy: rewritten by
 * gmm_pool_set_policy().
 */
void pcp_fast_fill(struct gmm_pool *p, unsigned int row)
{
	enum gmm_policy_mode mode = GMM_POLICY_PREFERRED;
	uint64_t nodes = row ? 1ull << (row - 1) : 0;

	/* concurrent policy changes: the last fill reads the last policy */
	pthread_mutex_lock(&p->pcp->fast_lock);
	if (!row)
		pool_policy(p, &mode, &nodes);
	for (unsigned int flags = 0; flags <= GMM_FLAGS_ALL; flags++) {
		uint64_t mask = ~0ull;
		struct gmm_zone *z;
		uint32_t e = 0;
		int node = __builtin_ctzll(nodes), mt, hz;

		if (!row && mode == GMM_POLICY_BIND)
			mask = nodes;
		if (row && (flags & GMM_THISNODE))
			mask = nodes;
		hz = (flags & GMM_MOVABLE) && !(flags & GMM_NO_MOVABLE_ZONE) ? GMM_ZONE_MOVABLE :
									   GMM_ZONE_NORMAL;
		z = pcp_first_zone(p, node, hz);
		if (!(flags & GMM_ZERO) &&
		    (flags & (GMM_MOVABLE | GMM_RECLAIMABLE)) != (GMM_MOVABLE | GMM_RECLAIMABLE) &&
		    !(!row && (mode == GMM_POLICY_INTERLEAVE || (flags & GMM_THISNODE))) && z &&
		    ((mask >> z->node) & 1)) {
			mt = flags_migratetype(p, flags);
			e = PCP_FAST_ENTRY(z->pcp_off + offsetof(struct pcp_zone, lists[mt]),
					   FR_ALLOC | (mt == GMM_MT_MOVABLE ? FR_FLAG : 0));
		}
		__atomic_store_n(&p->pcp->fast[row][flags], e, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&p->pcp->fast_lock);
}


int pcp_pool_init(struct gmm_pool *p)
{
	struct pcp_pool *pp = calloc(1, sizeof(*pp));

	if (!pp)
		return gmm_set_error(-ENOMEM, "cannot allocate the cache state");
	pthread_mutex_init(&pp->lock, NULL);
	pthread_mutex_init(&pp->fast_lock, NULL);
	pp->nr_zones = p->cfg.nr_nodes * GMM_NR_ZONES;
	p->pcp = pp;
	for (unsigned int n = 0; n < p->cfg.nr_nodes; n++) {
		for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
			struct gmm_zone *z = &p->nodes[n].zones[zt];

			__atomic_store_n(&z->pcp_gen, PCP_GEN_VALID, __ATOMIC_RELAXED);
		}
	}
	for (unsigned int n = 0; n < p->cfg.nr_nodes; n++) {
		struct gmm_node *nd = &p->nodes[n];

		for (int hz = 0; hz < GMM_NR_ZONES; hz++)
			for (unsigned int i = nd->nr_zonelist; i-- > 0;)
				if ((int)nd->zonelist[i]->type <= hz)
					pp->first_zone[n][hz] = nd->zonelist[i];
	}
	pcp_update_sizes(p);
	for (unsigned int row = 0; row <= p->cfg.nr_nodes; row++)
		pcp_fast_fill(p, row);
	p->drain_all = drain_all_hook;
	return 0;
}

/* Threads attached to @p now (a pool is not destroyed while any is). */
unsigned int pcp_nr_attached(struct gmm_pool *p)
{
	unsigned int n;

	if (!p->pcp)
		return 0;
	pcp_lock(p);
	n = p->pcp->nr_threads;
	pcp_unlock(p);
	return n;
}

void pcp_pool_destroy(struct gmm_pool *p)
{
	struct pcp_pool *pp = p->pcp;

	if (!pp)
		return;
	while (pp->threads) {
		struct gmm_thread *t = pp->threads;

		pp->threads = t->next;
		free(t->cache);
		free(t->spare);
		free(t);
	}
	pthread_mutex_destroy(&pp->lock);
	pthread_mutex_destroy(&pp->fast_lock);
	free(pp);
	p->pcp = NULL;
	p->drain_all = NULL;
}

/* --- invariant check ---------------------------------------------------------- */

static int check_list(struct gmm_zone *z, const struct pfn_list *l, unsigned int pi,
		      uint64_t *frames)
{
	struct gmm_pool *p = z->pool;
	uint32_t prev = PFN_NIL, cur = l->head;
	unsigned int order = pindex_order(pi);
	uint64_t n = 0;

	for (; cur != PFN_NIL; prev = cur, cur = pl_next(p, cur)) {
		uint32_t head = pcp_elem_head(cur, order);

		if (++n > p->nr_pfns || pfn_zone(p, cur) != z)
			return gmm_set_error(-EUCLEAN, "cache list %u: loop or foreign pfn %u", pi,
					     cur);
		if (cur != pcp_elem(head, order) || fr_kind(p, head) != FR_PCP ||
		    fr_order(p, head) != order)
			return gmm_set_error(-EUCLEAN, "cache list %u holds pfn %u that is not a "
					     "cached block of order %u", pi, cur, order);
		if (cur != l->head && pl_prev(p, cur) != prev) /* a head's prev is stale */
			return gmm_set_error(-EUCLEAN, "cache list %u: bad prev link at %u", pi, cur);
		*frames += 1ull << order;
	}
	if (prev != PFN_NIL && l->tail != prev) /* an empty list's tail is stale */
		return gmm_set_error(-EUCLEAN, "cache list %u: tail wrong", pi);
	return 0;
}

/*
 * pcp_free0()'s condition: trim_at is 0 or the high mark of a settled
 * state within the current sizes, the zone not below its high watermark
 * (writers of the zone word reset it).
 */
static bool trim_at_valid(const struct gmm_zone *z, const struct pcp_zone *pz)
{
	struct pcp_sizes sz = pcp_sizes(z);

	if (!pz_trim_at(pz))
		return true;
	return !(sz.gen & PCP_GEN_BELOW_HIGH) && !pz->alloc_factor &&
	       !(pz->flags & PCPF_PREV_FREE_HIGH_ORDER) && pz_trim_at(pz) == pz->high &&
	       pz->high >= sz.hmin && pz->high <= sz.hmax &&
	       pz->fc_cap == sz.batch << PCP_BATCH_SCALE_MAX;
}

/* Under pcp_lock() and every zone lock; owners must be between gmm calls. */
int pcp_check_zone(struct gmm_zone *z, uint64_t *cached)
{
	struct gmm_pool *p = z->pool;

	*cached = 0;
	for (struct gmm_thread *t = p->pcp->threads; t; t = t->next) {
		struct pcp_cache *c = rcu_dereference(t->cache);
		struct pcp_zone *pz = &c->zones[zone_idx(z)];
		uint64_t frames = 0;

		if (t->spare->zones[zone_idx(z)].count)
			return gmm_set_error(-EUCLEAN, "a spare cache is not empty");
		for (unsigned int pi = 0; pi < NR_PCP_LISTS; pi++) {
			int err = check_list(z, &pz->lists[pi], pi, &frames);

			if (err)
				return err;
		}
		if (frames != __atomic_load_n(&pz->count, __ATOMIC_RELAXED))
			return gmm_set_error(-EUCLEAN, "zone %d/%d: a cache holds %llu frames, "
					     "counts %u", z->node, z->type,
					     (unsigned long long)frames, pz->count);
		if (!trim_at_valid(z, pz))
			return gmm_set_error(-EUCLEAN, "zone %d/%d: a cache's trim_at %u does not "
					     "match its state (high %u, alloc_factor %u, flags %u)",
					     z->node, z->type, pz_trim_at(pz), pz->high,
					     pz->alloc_factor, pz->flags);
		*cached += frames;
	}
	return 0;
}

/* --- statistics ------------------------------------------------------------------ */

static void stats_from(struct gmm_pcp_stats *o, const struct pcp_counters *c)
{
	o->alloc_hit += c->alloc_hit;
	o->alloc_miss += c->alloc_miss;
	o->alloc_fail += c->alloc_fail;
	o->free += c->free;
	o->refill += c->refill;
	o->refill_frames += c->refill_frames;
	o->drain += c->drain;
	o->drain_frames += c->drain_frames;
	o->bulk_alloc += c->bulk_alloc;
}

static uint64_t cache_frames(const struct pcp_cache *c)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < c->nr_zones; i++)
		n += __atomic_load_n(&c->zones[i].count, __ATOMIC_RELAXED);
	return n;
}

static void stats_finish(struct gmm_pcp_stats *o)
{
	uint64_t a = o->alloc_hit + o->alloc_miss;

	o->hit_permille = a ? o->alloc_hit * 1000 / a : 0;
}

int gmm_pcp_stats(struct gmm_pool *p, struct gmm_pcp_stats *out)
{
	struct pcp_pool *pp;
	struct pcp_counters sum;

	if (!p || !out)
		return gmm_set_error(-EINVAL, "gmm_pcp_stats: NULL argument");
	pp = p->pcp;
	memset(out, 0, sizeof(*out));
	pcp_lock(p);
	sum = pp->retired;
	out->remote_drain = pp->retired_remote_drain;
	out->remote_frames = pp->retired_remote_frames;
	out->drain_all = pp->drain_all;
	for (struct gmm_thread *t = pp->threads; t; t = t->next) {
		counters_add(&sum, &t->ctr);
		out->threads++;
		out->remote_drain += t->remote_drain;
		out->remote_frames += t->remote_frames;
		out->cached += cache_frames(__atomic_load_n(&t->cache, __ATOMIC_ACQUIRE));
	}
	pcp_unlock(p);
	stats_from(out, &sum);
	stats_finish(out);
	return 0;
}

int gmm_pcp_thread_stats(struct gmm_pool *p, struct gmm_pcp_stats *out)
{
	int i = p ? tls_find(p) : -1;
	struct gmm_thread *t;

	if (!p || !out)
		return gmm_set_error(-EINVAL, "gmm_pcp_thread_stats: NULL argument");
	if (i < 0)
		return gmm_set_error(-ENOENT, "thread is not attached to this pool");
	t = tls_att[i].t;
	memset(out, 0, sizeof(*out));
	out->threads = 1;
	stats_from(out, &t->ctr);
	pcp_lock(p);
	out->remote_drain = t->remote_drain;
	out->remote_frames = t->remote_frames;
	out->cached = cache_frames(__atomic_load_n(&t->cache, __ATOMIC_ACQUIRE));
	pcp_unlock(p);
	stats_finish(out);
	return 0;
}

int gmm_pcp_zone_params(struct gmm_pool *p, int node, enum gmm_zone_type zone,
			unsigned int *batch, unsigned int *high_min, unsigned int *high_max)
{
	unsigned int i;

	if (!p || !batch || !high_min || !high_max)
		return gmm_set_error(-EINVAL, "gmm_pcp_zone_params: NULL argument");
	if (node < 0 || node >= (int)p->cfg.nr_nodes || zone >= GMM_NR_ZONES ||
	    !p->nodes[node].zones[zone].managed)
		return gmm_set_error(-ENOENT, "no zone %d/%d in the pool", node, zone);
	i = (unsigned int)node * GMM_NR_ZONES + (unsigned int)zone;
	*batch = __atomic_load_n(&p->pcp->batch[i], __ATOMIC_RELAXED);
	*high_min = __atomic_load_n(&p->pcp->high_min[i], __ATOMIC_RELAXED);
	*high_max = __atomic_load_n(&p->pcp->high_max[i], __ATOMIC_RELAXED);
	return 0;
}

#define PCP_FIELDS(X)                          \
	X("threads", st.threads)               \
	X("cached", st.cached)                 \
	X("alloc_hit", st.alloc_hit)           \
	X("alloc_miss", st.alloc_miss)         \
	X("alloc_fail", st.alloc_fail)         \
	X("free", st.free)                     \
	X("refill", st.refill)                 \
	X("refill_frames", st.refill_frames)   \
	X("drain", st.drain)                   \
	X("drain_frames", st.drain_frames)     \
	X("remote_drain", st.remote_drain)     \
	X("remote_frames", st.remote_frames)   \
	X("drain_all", st.drain_all)           \
	X("bulk_alloc", st.bulk_alloc)         \
	X("hit_permille", st.hit_permille)

static void pcp_text(FILE *f, struct gmm_pool *p, const struct gmm_pcp_stats *st0)
{
	struct gmm_pcp_stats st = *st0;

	fprintf(f, "pagesets (per-thread caches)\n");
#define X(name, v) fprintf(f, "  %-24s %llu\n", name, (unsigned long long)(v));
	PCP_FIELDS(X)
#undef X
	for_each_zone(p, zn) {
		unsigned int batch, hmin, hmax;

		if (gmm_pcp_zone_params(p, zn->node, zn->type, &batch, &hmin, &hmax))
			continue;
		fprintf(f, "Node %d, zone %8s  high: %u..%u  batch: %u\n", zn->node,
			zn->type == GMM_ZONE_NORMAL ? "Normal" : "Movable", hmin, hmax, batch);
	}
}

static json_object *pcp_json(struct gmm_pool *p, const struct gmm_pcp_stats *st0)
{
	struct gmm_pcp_stats st = *st0;
	json_object *o = json_object_new_object(), *zones = json_object_new_array();

#define X(name, v) json_object_object_add(o, name, json_object_new_uint64(v));
	PCP_FIELDS(X)
#undef X
	for_each_zone(p, zn) {
		unsigned int batch, hmin, hmax;
		json_object *z;

		if (gmm_pcp_zone_params(p, zn->node, zn->type, &batch, &hmin, &hmax))
			continue;
		z = json_object_new_object();
		json_object_object_add(z, "node", json_object_new_int(zn->node));
		json_object_object_add(z, "zone", json_object_new_string(
					zn->type == GMM_ZONE_NORMAL ? "Normal" : "Movable"));
		json_object_object_add(z, "high_min", json_object_new_int((int)hmin));
		json_object_object_add(z, "high_max", json_object_new_int((int)hmax));
		json_object_object_add(z, "batch", json_object_new_int((int)batch));
		json_object_array_add(zones, z);
	}
	json_object_object_add(o, "zones", zones);
	return o;
}

int gmm_stat_pcp(struct gmm_pool *p, enum gmm_stat_format fmt, char **out)
{
	struct gmm_pcp_stats st;
	size_t len = 0;
	FILE *f;

	if (!p || !out)
		return gmm_set_error(-EINVAL, "gmm_stat_pcp: NULL argument");
	if (fmt != GMM_STAT_TEXT && fmt != GMM_STAT_JSON)
		return gmm_set_error(-EINVAL, "gmm_stat_pcp: unknown format %d", (int)fmt);
	f = open_memstream(out, &len);
	if (!f)
		return gmm_set_error(-ENOMEM, "out of memory rendering statistics");
	gmm_pcp_stats(p, &st);
	if (fmt == GMM_STAT_JSON) {
		json_object *o = pcp_json(p, &st);

		fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), f);
		json_object_put(o);
	} else {
		pcp_text(f, p, &st);
	}
	gmm_clear_error();
	return fclose(f) ? gmm_set_error(-ENOMEM, "out of memory rendering statistics") : 0;
}
