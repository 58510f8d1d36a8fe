/* SPDX-License-Identifier: MIT */
/*
 * memmgr/isolate.c - pageblock isolation (start/undo_isolate_page_range).
 *
 * An isolated pageblock keeps its migratetype and gains the isolate bit;
 * its free frames sit on the ISOLATE lists, out of the allocator's reach,
 * and frames freed into it stay there.  Free blocks larger than a pageblock
 * that straddle the isolation boundary are split first, and everything is
 * merged again as far as the rules allow once the bits are set or cleared.
 */
#include "internal.h"

/* Split a free block of order > pageblock that covers @b into pageblocks. */
static void split_large_free(struct gmm_zone *z, uint64_t b, uint64_t *lo, uint64_t *hi)
{
	struct gmm_pool *p = z->pool;
	uint64_t h = buddy_find_head(p, b), end;
	unsigned int o;
	bool reported;
	int mt;

	if (h == GMM_PFN_NONE || fr_kind(p, h) != FR_FREE)
		return;
	o = fr_order(p, h);
	if (o <= GMM_PAGEBLOCK_ORDER)
		return;
	mt = pb_mt(p, h);
	end = h + (1ull << o);
	reported = fr_reported(p, h);
	freelist_del(z, h, o, mt);
	for (uint64_t pc = h; pc < end; pc += GMM_PAGEBLOCK_PAGES)
		freelist_add_flag(z, pc, GMM_PAGEBLOCK_ORDER, pb_mt(p, pc), true, reported);
	if (h < *lo)
		*lo = h;
	if (end > *hi)
		*hi = end;
}

static int check_range(struct gmm_pool *p, uint64_t start, uint64_t end, struct gmm_zone **zp)
{
	struct gmm_zone *z = p ? pfn_zone(p, start) : NULL;

	if ((start | end) & (GMM_PAGEBLOCK_PAGES - 1) || start >= end || !z)
		return gmm_set_error(-EINVAL, "isolation range [%llu, %llu): must be non-empty, "
				     "pageblock aligned and in the pool",
				     (unsigned long long)start, (unsigned long long)end);
	for (uint64_t b = start; b < end; b += 1ull << p->block_shift)
		if (pfn_zone(p, b) != z || pfn_zone(p, end - 1) != z)
			return gmm_set_error(-EINVAL, "isolation range [%llu, %llu) spans zones",
					     (unsigned long long)start, (unsigned long long)end);
	*zp = z;
	return 0;
}

/* Every block of the range must be (un)isolated already: none may be. */
static int check_blocks(struct gmm_pool *p, uint64_t start, uint64_t end, bool isolate)
{
	for (uint64_t b = start; b < end; b += GMM_PAGEBLOCK_PAGES) {
		bool iso = *pb_byte(p, b) & PB_ISOLATE;

		if (iso == isolate)
			return gmm_set_error(isolate ? -EBUSY : -EINVAL,
					     "pageblock at pfn %llu is %s isolated",
					     (unsigned long long)b, iso ? "already" : "not");
	}
	return 0;
}

/*
 * Set or clear the isolate bit of every pageblock in the range, moving
 * their free blocks between the ISOLATE lists and their type's lists.
 */
static int set_isolation(struct gmm_pool *p, uint64_t start, uint64_t end, bool isolate)
{
	struct gmm_zone *z = NULL;
	uint64_t lo = start, hi = end;
	int err = check_range(p, start, end, &z);

	if (err)
		return err;
	pthread_mutex_lock(&z->lock);
	err = check_blocks(p, start, end, isolate);
	if (err) {
		pthread_mutex_unlock(&z->lock);
		return err;
	}
	for (uint64_t b = start; b < end; b += GMM_PAGEBLOCK_PAGES)
		split_large_free(z, b, &lo, &hi);
	for (uint64_t b = start; b < end; b += GMM_PAGEBLOCK_PAGES) {
		uint8_t v = *pb_byte(p, b);

		pb_store(p, b, isolate ? v | PB_ISOLATE : v & (uint8_t)~PB_ISOLATE);
		if (isolate)
			buddy_move_freepages_block(z, b, pb_type(p, b), GMM_MT_ISOLATE);
		else
			buddy_move_freepages_block(z, b, GMM_MT_ISOLATE, pb_type(p, b));
	}
	buddy_remerge(z, lo, hi);
	pthread_mutex_unlock(&z->lock);
	return 0;
}

int gmm_isolate_range(struct gmm_pool *p, uint64_t start, uint64_t end)
{
	int err = set_isolation(p, start, end, true);

	if (!err && p->drain_all)
		p->drain_all(p);
	return err;
}

int gmm_undo_isolate_range(struct gmm_pool *p, uint64_t start, uint64_t end)
{
	return set_isolation(p, start, end, false);
}
