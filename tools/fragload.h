/* SPDX-License-Identifier: MIT */
/*
 * tools/fragload.h - a fragmentation workload with mixed mobility
 * (mmtests stress-highalloc in spirit), shared by bench-alloc and gmm-stat.
 *
 * About 10% of the pool is long-lived unmovable, about 15% reclaimable
 * that churns, and movable memory churns up to 92% of the pool.
 */
#ifndef GMM_TOOLS_FRAGLOAD_H
#define GMM_TOOLS_FRAGLOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <gmm/gmm.h>

enum { FRAG_UNMOVABLE, FRAG_MOVABLE, FRAG_RECLAIMABLE, FRAG_NR_MOB };

struct frag_alloc {
	uint64_t pfn;
	unsigned int order;
	int mob;
};

struct fragload {
	struct gmm_pool *pool;
	struct frag_alloc *a;
	uint64_t n;
	uint64_t frames[FRAG_NR_MOB];
	uint64_t rng;
	/* migration: movable blocks are owned (key = index in a[]) */
	bool owned;
	unsigned int owner_id;
	pthread_mutex_t lock; /* a[] against the owner callback */
	uint64_t moved;       /* frames migrated */
};

/* Prepare a workload on @pool; returns 0 or -ENOMEM. */
int fragload_init(struct fragload *f, struct gmm_pool *pool, uint64_t seed);

/* Own the movable blocks so that compaction can move them (before running). */
int fragload_own(struct fragload *f);

/* Run @steps random allocation/free steps. */
void fragload_run(struct fragload *f, uint64_t steps);

/* Free every allocation of mobility @mob (FRAG_*). */
void fragload_free_mobility(struct fragload *f, int mob);

/* Free every @nth allocation of mobility @mob (FRAG_*), in the table's order. */
void fragload_free_every(struct fragload *f, int mob, unsigned int nth);

/* Free everything the workload holds and its bookkeeping. */
void fragload_release(struct fragload *f);

#endif
