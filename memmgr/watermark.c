/* SPDX-License-Identifier: MIT */
/*
 * memmgr/watermark.c - the zone watermark checks (the kernel's
 * __zone_watermark_ok and zone_watermark_fast) and the end of a watermark
 * boost.  Called under the zone lock by the allocation paths (alloc.c) and
 * the cache refill (pcp.c); calls nothing else in memmgr.
 */
#include "internal.h"

/* The kernel's __zone_watermark_unusable_free(). */
static int64_t unusable_free(const struct gmm_zone *z, unsigned int order,
			     unsigned int alloc_flags)
{
	int64_t n = ((int64_t)1 << order) - 1;

	if (likely(!(alloc_flags & ALLOC_RESERVES)))
		n += (int64_t)z->nr_free_mt[GMM_MT_HIGHATOMIC];
	if (!(alloc_flags & ALLOC_CMA))
		n += (int64_t)z->nr_free_mt[GMM_MT_CMA];
	return n;
}

/* The kernel's __zone_watermark_ok(). */
static bool zone_watermark_ok(struct gmm_zone *z, unsigned int order, uint64_t mark,
		       int highest_zoneidx, unsigned int alloc_flags)
{
	int64_t min = (int64_t)mark;
	int64_t free = (int64_t)z->nr_free - unusable_free(z, order, alloc_flags);

	if (alloc_flags & ALLOC_MIN_RESERVE) {
		min -= min / 2;
		if (alloc_flags & ALLOC_NON_BLOCK)
			min -= min / 4;
	}
	if (free <= min + (int64_t)z->lowmem_reserve[highest_zoneidx])
		return false;
	if (!order)
		return true;
	for (unsigned int o = order; o <= z->pool->max_order; o++) {
		if (!z->area_nr[o])
			continue;
		for (int mt = 0; mt < MT_PCPTYPES; mt++)
			if (z->area[o][mt].list.head != PFN_NIL)
				return true;
		if ((alloc_flags & ALLOC_CMA) && z->area[o][GMM_MT_CMA].list.head != PFN_NIL)
			return true;
		if ((alloc_flags & ALLOC_HIGHATOMIC) && z->area[o][GMM_MT_HIGHATOMIC].list.head != PFN_NIL)
			return true;
	}
	return false;
}

/* The kernel's zone_watermark_fast(), with the boost of the watermark. */
bool zone_watermark_fast(struct gmm_zone *z, unsigned int order, int highest_zoneidx,
			 unsigned int alloc_flags)
{
	unsigned int wm = alloc_flags & ALLOC_WMARK_MASK;
	uint64_t mark = z->wmark[wm] + z->boost;

	if (zone_watermark_ok(z, order, mark, highest_zoneidx, alloc_flags))
		return true;
	/* __GFP_HIGH order-0 at the min watermark ignores the boost */
	if (!order && (alloc_flags & ALLOC_MIN_RESERVE) && z->boost && wm == WMARK_MIN)
		return zone_watermark_ok(z, 0, z->wmark[WMARK_MIN], highest_zoneidx, alloc_flags);
	return false;
}

/* After a boost, the zone counts as balanced again once above high + boost. */
void zone_maybe_clear_boost(struct gmm_zone *z)
{
	if (unlikely(z->boost) && z->nr_free >= z->wmark[WMARK_HIGH] + z->boost)
		z->boost = 0;
}
