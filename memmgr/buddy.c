/* SPDX-License-Identifier: MIT */
/*
 * memmgr/buddy.c - the buddy allocator of one zone.
 *
 * Owns the free lists (per order and migratetype), splitting (expand),
 * merging (__free_one_page), the fallback table with the claim and steal
 * rules of Linux 6.15 (__rmqueue_claim / __rmqueue_steal), watermark boost
 * after a fallback, and the HIGHATOMIC reserve.  Every function here runs
 * with zone->lock held.
 */
#include "internal.h"

/* The kernel's fallback table: which lists a migratetype may borrow from. */
static const int fallbacks[MT_PCPTYPES][MT_PCPTYPES - 1] = {
	[GMM_MT_UNMOVABLE] = { GMM_MT_RECLAIMABLE, GMM_MT_MOVABLE },
	[GMM_MT_MOVABLE] = { GMM_MT_RECLAIMABLE, GMM_MT_UNMOVABLE },
	[GMM_MT_RECLAIMABLE] = { GMM_MT_UNMOVABLE, GMM_MT_MOVABLE },
};

/* --- free lists --------------------------------------------------------- */

static inline void account_free(struct gmm_zone *z, int mt, int64_t nr, bool reported)
{
	z->nr_free_mt[mt] += (uint64_t)nr;
	if (mt != GMM_MT_ISOLATE) {
		z->nr_free += (uint64_t)nr;
		if (reported)
			z->nr_reported += (uint64_t)nr;
	}
}

/* Put a free block on its list and mark its head (@reported: host memory discarded). */
void freelist_add_flag(struct gmm_zone *z, uint64_t pfn, unsigned int order, int mt, bool tail,
		       bool reported)
{
	struct gmm_pool *p = z->pool;
	struct freelist *fl = &z->area[order][mt];

	fr_set(p, pfn, FR_FREE, order, reported);
	if (tail)
		pl_add_tail(p, &fl->list, (uint32_t)pfn);
	else
		pl_add_head(p, &fl->list, (uint32_t)pfn);
	fl->nr++;
	z->area_nr[order]++;
	account_free(z, mt, (int64_t)1 << order, reported);
	pb_nfree_account(p, pfn, order, true);
}

/* Take a free block off its list; its head becomes a plain tail frame. */
void freelist_del(struct gmm_zone *z, uint64_t pfn, unsigned int order, int mt)
{
	struct gmm_pool *p = z->pool;
	struct freelist *fl = &z->area[order][mt];
	bool reported = fr_reported(p, pfn);

	pl_del(p, &fl->list, (uint32_t)pfn);
	fr_state_set(p, pfn, FR_TAIL);
	fl->nr--;
	z->area_nr[order]--;
	account_free(z, mt, -((int64_t)1 << order), reported);
	pb_nfree_account(p, pfn, order, false);
}

static void freelist_move_tail(struct gmm_zone *z, uint64_t pfn, unsigned int order,
			       int old_mt, int new_mt)
{
	bool reported = fr_reported(z->pool, pfn);

	freelist_del(z, pfn, order, old_mt);
	freelist_add_flag(z, pfn, order, new_mt, true, reported);
}

/* --- merging ------------------------------------------------------------ */

/* Is @buddy the head of a free block of exactly @order in @z? */
static inline bool page_is_buddy(const struct gmm_zone *z, uint64_t buddy, unsigned int order)
{
	const struct gmm_pool *p = z->pool;
	uint8_t s;

	if (buddy >= p->nr_pfns || pfn_mblock(p, buddy)->zone != z)
		return false;
	s = fr_state(p, buddy) & (uint8_t)~FR_FLAG;
	return s == (uint8_t)(FR_FREE | (order << FR_ORDER_SHIFT));
}

/* The kernel's buddy_merge_likely(): is the block one level up free too? */
static bool merge_likely(struct gmm_zone *z, uint64_t pfn, uint64_t buddy, unsigned int order)
{
	uint64_t higher;

	if (order >= z->pool->max_order - 1)
		return false;
	higher = buddy & pfn;
	return page_is_buddy(z, higher ^ (1ull << (order + 1)), order + 1);
}

static void change_pageblock_range(struct gmm_pool *p, uint64_t pfn, unsigned int order, int mt)
{
	uint64_t n = order >= GMM_PAGEBLOCK_ORDER ? 1ull << (order - GMM_PAGEBLOCK_ORDER) : 1;

	for (uint64_t i = 0; i < n; i++)
		pb_set_type(p, pfn + (i << GMM_PAGEBLOCK_ORDER), mt);
}

/*
 * The kernel's __free_one_page(): merge @pfn with free buddies as long as
 * allowed, then put the result on the list of @mt, at the tail when a
 * merge one level up looks likely.  Blocks of order >= pageblock order do
 * not merge across pageblocks whose types may not mix (HIGHATOMIC, CMA,
 * ISOLATE).  The result is reported only when every merged part was: one
 * unreported part means the host may hold memory behind it.  An unreported
 * result of at least the reporting order wakes the reporter.
 */
void buddy_free_one_flag(struct gmm_zone *z, uint64_t pfn, unsigned int order, int mt,
			 bool reported)
{
	struct gmm_pool *p = z->pool;
	uint64_t buddy = pfn;

	fr_state_set(p, pfn, FR_TAIL);
	p->link[pfn] = 0;
	while (order < p->max_order) {
		int buddy_mt = mt;

		buddy = pfn ^ (1ull << order);
		if (!page_is_buddy(z, buddy, order))
			break;
		if (order >= GMM_PAGEBLOCK_ORDER) {
			buddy_mt = pb_mt(p, buddy);
			if (mt != buddy_mt && (!mt_mergeable(mt) || !mt_mergeable(buddy_mt)))
				break;
		}
		reported &= fr_reported(p, buddy);
		freelist_del(z, buddy, order, buddy_mt);
		if (buddy_mt != mt)
			change_pageblock_range(p, buddy, order, mt);
		pfn &= buddy;
		order++;
	}
	freelist_add_flag(z, pfn, order, mt, buddy != pfn && merge_likely(z, pfn, buddy, order),
			  reported);
	if (!reported && order >= __atomic_load_n(&p->report_order, __ATOMIC_RELAXED)) {
		void (*notify)(struct gmm_pool *) = __atomic_load_n(&p->report_notify,
								    __ATOMIC_ACQUIRE);

		if (notify)
			notify(p);
	}
}

/*
 * Merge again every free block in [@lo, @hi) as far as the rules allow,
 * after pageblock types changed (isolation, release of a HIGHATOMIC
 * reserve): blocks that could not merge under the old types may now.
 */
void buddy_remerge(struct gmm_zone *z, uint64_t lo, uint64_t hi)
{
	struct gmm_pool *p = z->pool;
	uint64_t pfn = lo;

	while (pfn < hi) {
		unsigned int o = fr_order(p, pfn);
		bool reported;
		int mt;

		if (fr_kind(p, pfn) != FR_FREE) {
			pfn += fr_kind(p, pfn) == FR_ALLOC ? 1ull << o : 1;
			continue;
		}
		mt = pb_mt(p, pfn);
		reported = fr_reported(p, pfn);
		freelist_del(z, pfn, o, mt);
		buddy_free_one_flag(z, pfn, o, mt, reported);
		pfn += 1ull << o;
	}
}

void buddy_free_one(struct gmm_zone *z, uint64_t pfn, unsigned int order, int mt)
{
	buddy_free_one_flag(z, pfn, order, mt, false);
}

/*
 * Free 2^@order frames at @pfn.  Blocks larger than a pageblock are freed
 * one pageblock at a time with each block's own type (split_large_buddy).
 */
void buddy_free_range(struct gmm_zone *z, uint64_t pfn, unsigned int order)
{
	struct gmm_pool *p = z->pool;
	uint64_t end = pfn + (1ull << order);

	if (order > GMM_PAGEBLOCK_ORDER)
		order = GMM_PAGEBLOCK_ORDER;
	for (; pfn < end; pfn += 1ull << order)
		buddy_free_one(z, pfn, order, pb_mt(p, pfn));
}

/* --- splitting ----------------------------------------------------------- */

/*
 * The kernel's expand(): give back the upper halves from @high down to @low.
 * Pieces of a reported block stay reported.
 */
static void expand(struct gmm_zone *z, uint64_t pfn, unsigned int low, unsigned int high, int mt,
		   bool reported)
{
	while (high > low) {
		high--;
		freelist_add_flag(z, pfn + (1ull << high), high, mt, false, reported);
	}
}

/* Take a free block and split it; *@reported says whether it was reported. */
static void del_and_expand(struct gmm_zone *z, uint64_t pfn, unsigned int low,
			   unsigned int high, int mt, bool *reported)
{
	*reported = fr_reported(z->pool, pfn);
	freelist_del(z, pfn, high, mt);
	expand(z, pfn, low, high, mt, *reported);
}

/* The kernel's __rmqueue_smallest(): the smallest free block of @mt that fits. */
static uint64_t rmqueue_smallest(struct gmm_zone *z, unsigned int order, int mt,
				 bool *reported)
{
	for (unsigned int o = order; o <= z->pool->max_order; o++) {
		uint32_t head = z->area[o][mt].list.head;

		if (head == PFN_NIL)
			continue;
		del_and_expand(z, head, order, o, mt, reported);
		return head;
	}
	return GMM_PFN_NONE;
}

/* --- fallback: claim and steal ------------------------------------------ */

static bool should_try_claim_block(const struct gmm_pool *p, unsigned int order, int start_mt)
{
	if (order >= GMM_PAGEBLOCK_ORDER)
		return true;
	if (order >= GMM_PAGEBLOCK_ORDER / 2)
		return true;
	if (start_mt == GMM_MT_RECLAIMABLE || start_mt == GMM_MT_UNMOVABLE)
		return true;
	return !p->cfg.mobility_grouping;
}

/* -2: orders too low to claim; -1: nothing there; else the list to take from. */
static int find_suitable_fallback(struct gmm_zone *z, unsigned int order, int mt, bool claim)
{
	if (claim && !should_try_claim_block(z->pool, order, mt))
		return -2;
	if (!z->area_nr[order])
		return -1;
	for (int i = 0; i < MT_PCPTYPES - 1; i++) {
		int fb = fallbacks[mt][i];

		if (z->area[order][fb].list.head != PFN_NIL)
			return fb;
	}
	return -1;
}

static void boost_watermark(struct gmm_zone *z)
{
	uint64_t max_boost;

	/* small zones: boosting could exhaust them */
	if (GMM_PAGEBLOCK_PAGES * 4 > z->managed)
		return;
	/* watermark_boost_factor 15000: up to 150% of the high watermark */
	max_boost = z->wmark[WMARK_HIGH] * 15000 / 10000;
	if (!max_boost)
		return;
	if (max_boost < GMM_PAGEBLOCK_PAGES)
		max_boost = GMM_PAGEBLOCK_PAGES;
	z->boost += GMM_PAGEBLOCK_PAGES;
	if (z->boost > max_boost)
		z->boost = max_boost;
	z->ev.boost++;
}

/* Walk a pageblock by block heads; the block must not sit inside a larger free block. */
static void buddy_block_count(struct gmm_pool *p, uint64_t start, uint64_t *free_pages,
		       uint64_t *movable_pages)
{
	uint64_t end = start + GMM_PAGEBLOCK_PAGES, pfn = start;

	*free_pages = 0;
	*movable_pages = 0;
	while (pfn < end) {
		uint8_t s = fr_state(p, pfn);
		uint64_t n = 1ull << ((s & FR_ORDER_MASK) >> FR_ORDER_SHIFT);

		switch (s & FR_KIND_MASK) {
		case FR_FREE:
			*free_pages += n;
			break;
		case FR_ALLOC:
			if (s & FR_FLAG)
				*movable_pages += n;
			break;
		default:
			n = 1;
			break;
		}
		pfn += n;
	}
}

/*
 * Move every free block of a pageblock from @old_mt's lists to @new_mt's
 * (the kernel's __move_freepages_block).  Returns the frames moved.
 */
uint64_t buddy_move_freepages_block(struct gmm_zone *z, uint64_t start, int old_mt, int new_mt)
{
	struct gmm_pool *p = z->pool;
	uint64_t end = start + GMM_PAGEBLOCK_PAGES, moved = 0, pfn = start;

	while (pfn < end) {
		unsigned int o = fr_order(p, pfn);

		if (fr_kind(p, pfn) == FR_FREE) {
			freelist_move_tail(z, pfn, o, old_mt, new_mt);
			moved += 1ull << o;
		} else if (fr_kind(p, pfn) != FR_ALLOC) {
			o = 0;
		}
		pfn += 1ull << o;
	}
	return moved;
}

/* The kernel's try_to_claim_block(). */
static uint64_t try_to_claim_block(struct gmm_zone *z, uint64_t pfn, unsigned int cur_order,
				   unsigned int order, int start_mt, int block_mt, bool *reported)
{
	struct gmm_pool *p = z->pool;
	uint64_t start, free_pages, movable_pages, alike;

	if (cur_order >= GMM_PAGEBLOCK_ORDER) {
		*reported = fr_reported(p, pfn);
		freelist_del(z, pfn, cur_order, block_mt);
		change_pageblock_range(p, pfn, cur_order, start_mt);
		expand(z, pfn, order, cur_order, start_mt, *reported);
		z->ev.claim++;
		return pfn;
	}
	boost_watermark(z);
	start = pfn & ~(GMM_PAGEBLOCK_PAGES - 1);
	buddy_block_count(p, start, &free_pages, &movable_pages);
	if (start_mt == GMM_MT_MOVABLE)
		alike = movable_pages;
	else if (block_mt == GMM_MT_MOVABLE)
		alike = GMM_PAGEBLOCK_PAGES - (free_pages + movable_pages);
	else
		alike = 0;
	if (free_pages + alike < GMM_PAGEBLOCK_PAGES / 2 && p->cfg.mobility_grouping)
		return GMM_PFN_NONE;
	buddy_move_freepages_block(z, start, block_mt, start_mt);
	pb_set_type(p, start, start_mt);
	z->ev.claim++;
	return rmqueue_smallest(z, order, start_mt, reported);
}

/*
 * The kernel's __rmqueue_claim(): the largest block of another type,
 * claimed; *@whole: it was a whole free pageblock (no pollution).
 */
static uint64_t rmqueue_claim(struct gmm_zone *z, unsigned int order, int mt,
			      unsigned int alloc_flags, bool *reported, bool *whole)
{
	unsigned int min_order = order;

	if (order < GMM_PAGEBLOCK_ORDER && (alloc_flags & ALLOC_NOFRAGMENT))
		min_order = GMM_PAGEBLOCK_ORDER;
	for (int o = (int)z->pool->max_order; o >= (int)min_order; o--) {
		int fb = find_suitable_fallback(z, (unsigned int)o, mt, true);
		uint64_t pfn;

		if (fb == -1)
			continue;
		if (fb == -2)
			break;
		pfn = try_to_claim_block(z, z->area[o][fb].list.head, (unsigned int)o, order, mt,
					 fb, reported);
		*whole = o >= GMM_PAGEBLOCK_ORDER;
		if (pfn != GMM_PFN_NONE)
			return pfn;
	}
	return GMM_PFN_NONE;
}

/* The kernel's __rmqueue_steal(): the smallest block of another type, split. */
static uint64_t rmqueue_steal(struct gmm_zone *z, unsigned int order, int mt, bool *reported)
{
	for (unsigned int o = order; o <= z->pool->max_order; o++) {
		int fb = find_suitable_fallback(z, o, mt, false);
		uint64_t pfn;

		if (fb < 0)
			continue;
		pfn = z->area[o][fb].list.head;
		del_and_expand(z, pfn, order, o, fb, reported);
		z->ev.steal++;
		return pfn;
	}
	return GMM_PFN_NONE;
}

/* The kernel's __rmqueue(). */
static uint64_t rmqueue(struct gmm_zone *z, unsigned int order, int mt, unsigned int alloc_flags,
		       bool *reported)
{
	bool claimed_whole = false;
	uint64_t pfn;

	/* balance CMA: use it first when it holds more than half the free memory */
	if ((alloc_flags & ALLOC_CMA) && z->nr_free_mt[GMM_MT_CMA] > z->nr_free / 2) {
		pfn = rmqueue_smallest(z, order, GMM_MT_CMA, reported);
		if (pfn != GMM_PFN_NONE)
			return pfn;
	}
	pfn = rmqueue_smallest(z, order, mt, reported);
	if (pfn != GMM_PFN_NONE)
		return pfn;
	if (alloc_flags & ALLOC_CMA) {
		pfn = rmqueue_smallest(z, order, GMM_MT_CMA, reported);
		if (pfn != GMM_PFN_NONE)
			return pfn;
	}
	if (mt >= MT_PCPTYPES)
		return GMM_PFN_NONE;
	/* defrag mode: only the slow path's last resort may fragment, whoever asks
	 * (the per-thread caches' refills and bulk requests included) */
	if (!(alloc_flags & ALLOC_DEFRAG_LAST) && pool_defrag_mode(z->pool))
		alloc_flags |= ALLOC_NOFRAGMENT;
	pfn = rmqueue_claim(z, order, mt, alloc_flags, reported, &claimed_whole);
	if (pfn != GMM_PFN_NONE) {
		z->ev.fallback++;
		if (!claimed_whole && (alloc_flags & ALLOC_DEFRAG_LAST))
			z->ev.defrag_fallback++;
		return pfn;
	}
	/* ALLOC_NOFRAGMENT: no single-frame steal from another type's pageblock */
	if (alloc_flags & ALLOC_NOFRAGMENT)
		return GMM_PFN_NONE;
	pfn = rmqueue_steal(z, order, mt, reported);
	if (pfn != GMM_PFN_NONE) {
		z->ev.fallback++;
		if (alloc_flags & ALLOC_DEFRAG_LAST)
			z->ev.defrag_fallback++;
	}
	return pfn;
}

/* The kernel's rmqueue_buddy() without the lock: HIGHATOMIC first for atomic high orders. */
uint64_t buddy_rmqueue(struct gmm_zone *z, unsigned int order, int mt, unsigned int alloc_flags,
		       bool *reported)
{
	uint64_t pfn = GMM_PFN_NONE;

	*reported = false;
	if (alloc_flags & ALLOC_HIGHATOMIC)
		pfn = rmqueue_smallest(z, order, GMM_MT_HIGHATOMIC, reported);
	if (pfn == GMM_PFN_NONE)
		pfn = rmqueue(z, order, mt, alloc_flags, reported);
	if (pfn == GMM_PFN_NONE && (alloc_flags & ALLOC_NON_BLOCK))
		pfn = rmqueue_smallest(z, order, GMM_MT_HIGHATOMIC, reported);
	return pfn;
}

/* --- the HIGHATOMIC reserve ---------------------------------------------- */

/*
 * The kernel's reserve_highatomic_pageblock(): after a high-order atomic
 * allocation, turn its pageblock into reserve, up to about 1% of the zone
 * (rounded up to a pageblock; nothing when 1% is less than a pageblock).
 */
void buddy_reserve_highatomic(struct gmm_zone *z, uint64_t pfn, unsigned int order)
{
	struct gmm_pool *p = z->pool;
	uint64_t max_managed, one_pct = z->managed / 100;
	int mt;

	if (one_pct < GMM_PAGEBLOCK_PAGES)
		return;
	max_managed = (one_pct + GMM_PAGEBLOCK_PAGES - 1) & ~(GMM_PAGEBLOCK_PAGES - 1);
	if (z->nr_reserved_highatomic >= max_managed)
		return;
	mt = pb_mt(p, pfn);
	if (!mt_mergeable(mt))
		return;
	if (order < GMM_PAGEBLOCK_ORDER) {
		uint64_t start = pfn & ~(GMM_PAGEBLOCK_PAGES - 1);

		buddy_move_freepages_block(z, start, mt, GMM_MT_HIGHATOMIC);
		pb_set_type(p, start, GMM_MT_HIGHATOMIC);
		z->nr_reserved_highatomic += GMM_PAGEBLOCK_PAGES;
	} else {
		change_pageblock_range(p, pfn, order, GMM_MT_HIGHATOMIC);
		z->nr_reserved_highatomic += 1ull << order;
	}
	z->ev.highatomic_reserve++;
}

/*
 * The kernel's unreserve_highatomic_pageblock(): under pressure, give one
 * reserved block (holding a free block) back to @mt.  Unless @force, one
 * pageblock stays reserved.
 */
bool buddy_unreserve_highatomic(struct gmm_zone *z, int mt, bool force)
{
	struct gmm_pool *p = z->pool;

	if (!force && z->nr_reserved_highatomic <= GMM_PAGEBLOCK_PAGES)
		return false;
	for (unsigned int o = 0; o <= p->max_order; o++) {
		uint32_t pfn = z->area[o][GMM_MT_HIGHATOMIC].list.head;
		uint64_t size;

		if (pfn == PFN_NIL)
			continue;
		size = o > GMM_PAGEBLOCK_ORDER ? 1ull << o : GMM_PAGEBLOCK_PAGES;
		if (size > z->nr_reserved_highatomic)
			size = z->nr_reserved_highatomic;
		z->nr_reserved_highatomic -= size;
		if (o < GMM_PAGEBLOCK_ORDER) {
			uint64_t start = pfn & ~(GMM_PAGEBLOCK_PAGES - 1);

			buddy_move_freepages_block(z, start, GMM_MT_HIGHATOMIC, mt);
			pb_set_type(p, start, mt);
			buddy_remerge(z, start, start + GMM_PAGEBLOCK_PAGES);
		} else {
			freelist_move_tail(z, pfn, o, GMM_MT_HIGHATOMIC, mt);
			change_pageblock_range(p, pfn, o, mt);
			buddy_remerge(z, pfn, pfn + (1ull << o));
		}
		z->ev.highatomic_unreserve++;
		return true;
	}
	return false;
}

/* The head of the block (free or allocated) that covers @pfn. */
uint64_t buddy_find_head(const struct gmm_pool *p, uint64_t pfn)
{
	for (unsigned int o = 0; o <= p->max_order; o++) {
		uint64_t head = pfn & ~((1ull << o) - 1);

		if (fr_kind(p, head) != FR_TAIL && fr_order(p, head) >= o)
			return head;
	}
	return GMM_PFN_NONE;
}
