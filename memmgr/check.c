/* SPDX-License-Identifier: MIT */
/*
 * memmgr/check.c - the full invariant check of a pool (gmm_pool_check).
 *
 * Walks all frame metadata block by block, every free list and every
 * per-thread cache list, with the cache lock and every zone lock held, and
 * compares what it finds with the counters.  Every frame is a tail of one
 * block, and every block is free in exactly one free list, cached in
 * exactly one cache list, or allocated.
 */
#include <stdlib.h>

#include "internal.h"

struct tally {
	uint64_t nr[GMM_MAX_ORDER_LIMIT + 1][GMM_MT_NR];
	uint64_t heads;
	uint64_t highatomic_blocks;
	uint64_t cached; /* frames in FR_PCP blocks */
};

static bool may_merge(const struct gmm_pool *p, uint64_t pfn, uint64_t buddy, unsigned int o)
{
	int a = pb_mt(p, pfn), b = pb_mt(p, buddy);

	return o < GMM_PAGEBLOCK_ORDER || a == b || (mt_mergeable(a) && mt_mergeable(b));
}

static int check_free_head(struct gmm_zone *z, uint64_t pfn, unsigned int o, uint64_t end,
			   struct tally *t)
{
	struct gmm_pool *p = z->pool;
	uint64_t buddy = pfn ^ (1ull << o);
	int mt = pb_mt(p, pfn);

	for (uint64_t b = pfn; b < pfn + (1ull << o); b += GMM_PAGEBLOCK_PAGES)
		if (pb_mt(p, b) != mt)
			return gmm_set_error(-EUCLEAN, "free block %llu order %u spans pageblocks "
					     "of different types", (unsigned long long)pfn, o);
	if (o < p->max_order && buddy < end && buddy >= (pfn & ~((1ull << p->block_shift) - 1)) &&
	    fr_kind(p, buddy) == FR_FREE && fr_order(p, buddy) == o && may_merge(p, pfn, buddy, o))
		return gmm_set_error(-EUCLEAN, "free buddies %llu and %llu of order %u not merged",
				     (unsigned long long)pfn, (unsigned long long)buddy, o);
	t->nr[o][mt]++;
	t->heads++;
	return 0;
}

/* The free frames of pageblock @b, walked head by head, against pb_nfree. */
static int check_pb_nfree(struct gmm_pool *p, uint64_t b)
{
	uint64_t h = buddy_find_head(p, b), n = 0, pfn = b;

	if (h != GMM_PFN_NONE && h < b && fr_kind(p, h) == FR_FREE) {
		n = GMM_PAGEBLOCK_PAGES; /* inside a free block larger than a pageblock */
		pfn += GMM_PAGEBLOCK_PAGES;
	}
	while (pfn < b + GMM_PAGEBLOCK_PAGES) {
		unsigned int kind = fr_kind(p, pfn), o = fr_order(p, pfn);

		if (kind == FR_FREE)
			n += o < GMM_PAGEBLOCK_ORDER ? 1ull << o : GMM_PAGEBLOCK_PAGES;
		pfn += kind == FR_TAIL ? 1 : 1ull << o;
	}
	if (n != p->pb_nfree[b >> GMM_PAGEBLOCK_ORDER])
		return gmm_set_error(-EUCLEAN, "pageblock %llu: %llu frames free, its count says %u",
				     (unsigned long long)b, (unsigned long long)n,
				     p->pb_nfree[b >> GMM_PAGEBLOCK_ORDER]);
	return 0;
}

/* Walk one memory block head by head; every other frame must be a tail. */
static int check_mblock(struct gmm_zone *z, uint64_t start, struct tally *t)
{
	struct gmm_pool *p = z->pool;
	uint64_t end = start + (1ull << p->block_shift), pfn = start;

	for (uint64_t b = start; b < end; b += GMM_PAGEBLOCK_PAGES)
		t->highatomic_blocks += pb_type(p, b) == GMM_MT_HIGHATOMIC;
	while (pfn < end) {
		unsigned int kind = fr_kind(p, pfn), o = fr_order(p, pfn);
		int err;

		if (kind == FR_TAIL)
			return gmm_set_error(-EUCLEAN, "frame %llu belongs to no block",
					     (unsigned long long)pfn);
		if (o > p->max_order || (pfn & ((1ull << o) - 1)) || pfn + (1ull << o) > end)
			return gmm_set_error(-EUCLEAN, "block %llu has a bad order %u",
					     (unsigned long long)pfn, o);
		if (kind == FR_FREE) {
			err = check_free_head(z, pfn, o, end, t);
			if (err)
				return err;
		}
		if (kind == FR_PCP) {
			if (!pcp_allowed_order(o))
				return gmm_set_error(-EUCLEAN, "cached block %llu has order %u",
						     (unsigned long long)pfn, o);
			t->cached += 1ull << o;
		}
		for (uint64_t i = pfn + 1; i < pfn + (1ull << o); i++)
			if (fr_state(p, i) != FR_TAIL)
				return gmm_set_error(-EUCLEAN, "frame %llu inside block %llu is a head",
						     (unsigned long long)i, (unsigned long long)pfn);
		pfn += 1ull << o;
	}
	for (uint64_t b = start; b < end; b += GMM_PAGEBLOCK_PAGES) {
		int err = check_pb_nfree(p, b);

		if (err)
			return err;
		if (p->pb[b >> GMM_PAGEBLOCK_ORDER].pcp_off != z->pcp_off)
			return gmm_set_error(-EUCLEAN, "pageblock %llu: cache offset %u, its zone's "
					     "is %u", (unsigned long long)b,
					     p->pb[b >> GMM_PAGEBLOCK_ORDER].pcp_off, z->pcp_off);
	}
	return 0;
}

static int check_list(struct gmm_zone *z, unsigned int o, int mt, uint64_t limit)
{
	struct gmm_pool *p = z->pool;
	struct freelist *fl = &z->area[o][mt];
	uint32_t prev = PFN_NIL, cur = fl->list.head;
	uint64_t n = 0;

	for (; cur != PFN_NIL; prev = cur, cur = pl_next(p, cur)) {
		if (++n > limit || pfn_zone(p, cur) != z)
			return gmm_set_error(-EUCLEAN, "list order %u type %d: loop or foreign entry",
					     o, mt);
		if (fr_kind(p, cur) != FR_FREE || fr_order(p, cur) != o || pb_mt(p, cur) != mt)
			return gmm_set_error(-EUCLEAN, "list order %u type %d holds pfn %u that is "
					     "not a free block of that order and type", o, mt, cur);
		if (cur != fl->list.head && pl_prev(p, cur) != prev) /* a head's prev is stale */
			return gmm_set_error(-EUCLEAN, "list order %u type %d: bad prev link at %u",
					     o, mt, cur);
	}
	if (fl->list.tail != prev || n != fl->nr)
		return gmm_set_error(-EUCLEAN, "list order %u type %d: tail or count wrong "
				     "(%llu walked, %llu counted)", o, mt,
				     (unsigned long long)n, (unsigned long long)fl->nr);
	return 0;
}

static int check_counters(struct gmm_zone *z, const struct tally *t)
{
	struct gmm_pool *p = z->pool;
	uint64_t total = 0;

	for (int mt = 0; mt < GMM_MT_NR; mt++) {
		uint64_t frames = 0;

		for (unsigned int o = 0; o <= p->max_order; o++) {
			if (t->nr[o][mt] != z->area[o][mt].nr)
				return gmm_set_error(-EUCLEAN, "zone %d/%d order %u type %d: %llu "
						     "blocks found, list says %llu", z->node,
						     z->type, o, mt, (unsigned long long)t->nr[o][mt],
						     (unsigned long long)z->area[o][mt].nr);
			frames += t->nr[o][mt] << o;
		}
		if (frames != z->nr_free_mt[mt])
			return gmm_set_error(-EUCLEAN, "zone %d/%d type %d: %llu free frames, "
					     "counter %llu", z->node, z->type, mt,
					     (unsigned long long)frames,
					     (unsigned long long)z->nr_free_mt[mt]);
		if (mt != GMM_MT_ISOLATE)
			total += frames;
	}
	for (unsigned int o = 0; o <= p->max_order; o++) {
		uint64_t n = 0;

		for (int mt = 0; mt < GMM_MT_NR; mt++)
			n += z->area[o][mt].nr;
		if (n != z->area_nr[o])
			return gmm_set_error(-EUCLEAN, "zone %d/%d order %u count wrong", z->node,
					     z->type, o);
	}
	if (total != z->nr_free)
		return gmm_set_error(-EUCLEAN, "zone %d/%d: NR_FREE %llu, lists hold %llu",
				     z->node, z->type, (unsigned long long)z->nr_free,
				     (unsigned long long)total);
	if (t->highatomic_blocks * GMM_PAGEBLOCK_PAGES != z->nr_reserved_highatomic)
		return gmm_set_error(-EUCLEAN, "zone %d/%d: %llu HIGHATOMIC blocks but %llu "
				     "frames reserved", z->node, z->type,
				     (unsigned long long)t->highatomic_blocks,
				     (unsigned long long)z->nr_reserved_highatomic);
	return 0;
}

static int check_zone(struct gmm_zone *z)
{
	struct gmm_pool *p = z->pool;
	struct tally *t = calloc(1, sizeof(*t));
	uint64_t cached = 0;
	int err = 0;

	if (!t)
		return gmm_set_error(-ENOMEM, "gmm_pool_check: out of memory");
	for (uint64_t i = 0; i < p->nr_mblocks && !err; i++)
		if (p->mblocks[i].zone == z)
			err = check_mblock(z, i << p->block_shift, t);
	for (unsigned int o = 0; o <= p->max_order && !err; o++)
		for (int mt = 0; mt < GMM_MT_NR && !err; mt++)
			err = check_list(z, o, mt, t->heads);
	if (!err)
		err = check_counters(z, t);
	if (!err)
		err = pcp_check_zone(z, &cached);
	if (!err && cached != t->cached)
		err = gmm_set_error(-EUCLEAN, "zone %d/%d: %llu frames marked cached, cache "
				    "lists hold %llu", z->node, z->type,
				    (unsigned long long)t->cached, (unsigned long long)cached);
	free(t);
	return err;
}

int gmm_pool_check(struct gmm_pool *p)
{
	int err = 0;
	bool was;

	if (!p)
		return gmm_set_error(-EINVAL, "gmm_pool_check: NULL pool");
	/*
	 * A reporting pass holds a batch of free blocks off the free lists
	 * (they are neither free nor allocated meanwhile): let it put them
	 * back first.  Waited for offline: hotplug holds the lock while it
	 * drains the caches.
	 */
	was = pcp_offline_begin();
	pthread_mutex_lock(&p->report_lock);
	pcp_offline_end(was);
	pcp_lock(p);
	zones_lock_all(p, true);
	for_each_zone(p, z) {
		err = check_zone(z);
		if (err)
			break;
	}
	zones_lock_all(p, false);
	pcp_unlock(p);
	pthread_mutex_unlock(&p->report_lock);
	return err;
}
