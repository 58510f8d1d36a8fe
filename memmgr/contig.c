/* SPDX-License-Identifier: MIT */
/*
 * memmgr/contig.c - contiguous allocation by migration (the kernel's
 * alloc_contig_range): isolate the pageblocks, move the owned movable
 * blocks out, and take the range once every frame is free.
 */
#include <sched.h>

#include "internal.h"

#define CONTIG_MIGRATE_TRIES 5 /* passes over the range before giving up */

/* The next allocated movable block head at or after @pfn below @end, or @end. */
static uint64_t next_used(struct gmm_pool *p, struct gmm_zone *z, uint64_t pfn, uint64_t end,
			  bool *unmovable)
{
	pthread_mutex_lock(&z->lock);
	while (pfn < end) {
		uint8_t s = fr_state(p, pfn);
		unsigned int o = (s & FR_ORDER_MASK) >> FR_ORDER_SHIFT;

		if ((s & FR_KIND_MASK) == FR_ALLOC) {
			if (!(s & FR_FLAG))
				*unmovable = true;
			break;
		}
		pfn += (s & FR_KIND_MASK) == FR_FREE ? 1ull << o : 1;
	}
	pthread_mutex_unlock(&z->lock);
	return pfn;
}

/* One pass: move every allocated block out; returns the blocks left. */
static uint64_t evacuate(struct gmm_pool *p, struct gmm_zone *z, uint64_t start, uint64_t end,
			 bool *unmovable)
{
	uint64_t left = 0, pfn = start;

	while ((pfn = next_used(p, z, pfn, end, unmovable)) < end) {
		unsigned int o = fr_order(p, pfn);

		if (*unmovable)
			return 1;
		if (gmm_migrate_block(p, pfn, GMM_MIGRATE_SYNC, NULL))
			left++;
		pfn += 1ull << o;
	}
	return left;
}

/* Every frame of the range free on the ISOLATE lists: take them as order-0 frames. */
static int take_range(struct gmm_pool *p, struct gmm_zone *z, uint64_t start, uint64_t end)
{
	uint64_t pfn = start;

	pthread_mutex_lock(&z->lock);
	while (pfn < end) {
		uint8_t s = fr_state(p, pfn);

		if ((s & FR_KIND_MASK) != FR_FREE) {
			pthread_mutex_unlock(&z->lock);
			return -EBUSY;
		}
		pfn += 1ull << ((s & FR_ORDER_MASK) >> FR_ORDER_SHIFT);
	}
	for (pfn = start; pfn < end;) {
		unsigned int o = fr_order(p, pfn);

		freelist_del(z, pfn, o, GMM_MT_ISOLATE);
		for (uint64_t i = 0; i < 1ull << o; i++) {
			p->link[pfn + i] = 0;
			fr_set(p, pfn + i, FR_ALLOC, 0, false);
		}
		pfn += 1ull << o;
	}
	z->ev.alloc++;
	pthread_mutex_unlock(&z->lock);
	return 0;
}

int gmm_alloc_contig_range(struct gmm_pool *p, uint64_t start, uint64_t end)
{
	struct gmm_zone *z;
	bool unmovable = false;
	uint64_t left = 1;
	int err;

	if (!p)
		return gmm_set_error(-EINVAL, "gmm_alloc_contig_range: NULL pool");
	err = gmm_isolate_range(p, start, end);
	if (err)
		return err;
	z = pfn_zone(p, start);
	for (int i = 0; i < CONTIG_MIGRATE_TRIES && left && !unmovable; i++) {
		left = evacuate(p, z, start, end, &unmovable);
		if (left)
			sched_yield();
	}
	err = left ? -EBUSY : take_range(p, z, start, end);
	gmm_undo_isolate_range(p, start, end);
	if (err)
		return gmm_set_error(err, "contiguous range [%llu, %llu): %s",
				     (unsigned long long)start, (unsigned long long)end,
				     unmovable ? "holds an unmovable block" :
						 "a movable block could not be moved (pinned?)");
	return 0;
}

int gmm_free_contig_range(struct gmm_pool *p, uint64_t start, uint64_t end)
{
	int err = 0;

	if (!p || start >= end || end > p->nr_pfns)
		return gmm_set_error(-EINVAL, "gmm_free_contig_range: bad range");
	for (uint64_t pfn = start; pfn < end; pfn++)
		if (gmm_free(p, pfn, 0))
			err = -EINVAL;
	return err;
}
