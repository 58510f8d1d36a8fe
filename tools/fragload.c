/* SPDX-License-Identifier: MIT */
/*
 * tools/fragload.c - the mixed-mobility fragmentation workload.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <gmm/migrate.h>

#include "fragload.h"

static const unsigned int mob_flags[FRAG_NR_MOB] = { 0, GMM_MOVABLE, GMM_RECLAIMABLE };

static uint64_t rnd(struct fragload *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return f->rng;
}

int fragload_init(struct fragload *f, struct gmm_pool *pool, uint64_t seed)
{
	f->pool = pool;
	f->n = 0;
	for (int m = 0; m < FRAG_NR_MOB; m++)
		f->frames[m] = 0;
	f->rng = seed | 1;
	f->owned = false;
	f->moved = 0;
	pthread_mutex_init(&f->lock, NULL);
	f->a = malloc(gmm_pool_nr_pages(pool) * sizeof(*f->a));
	return f->a ? 0 : -ENOMEM;
}

/* The owner callback: move allocation @key from @old to @new (under f->lock). */
static int fragload_migrate(void *ctx, uint64_t key, uint64_t old, uint64_t new,
			    unsigned int order, enum gmm_migrate_mode mode)
{
	struct fragload *f = ctx;
	int err = -EAGAIN;

	if (mode == GMM_MIGRATE_ASYNC ? pthread_mutex_trylock(&f->lock) :
					pthread_mutex_lock(&f->lock))
		return -EAGAIN;
	if (key < f->n && f->a[key].pfn == old && f->a[key].order == order) {
		memcpy(gmm_pfn_to_host(f->pool, new), gmm_pfn_to_host(f->pool, old),
		       GMM_PAGE_SIZE << order);
		f->a[key].pfn = new;
		gmm_rmap_set(f->pool, new, order, f->owner_id, key);
		f->moved += 1ull << order;
		err = 0;
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

static const struct gmm_migrate_ops fragload_ops = {
	.name = "fragload",
	.migrate = fragload_migrate,
};

int fragload_own(struct fragload *f)
{
	int err = gmm_owner_register(f->pool, &fragload_ops, f, &f->owner_id);

	f->owned = !err;
	return err;
}

/* gmm_alloc runs unlocked: it may compact, and compaction calls back. */
static void take(struct fragload *f, int mob, unsigned int order)
{
	uint64_t pfn = gmm_alloc(f->pool, order, mob_flags[mob], GMM_NO_NODE);

	if (pfn == GMM_PFN_NONE)
		return;
	pthread_mutex_lock(&f->lock);
	if (f->owned && mob == FRAG_MOVABLE)
		gmm_rmap_set(f->pool, pfn, order, f->owner_id, f->n);
	f->a[f->n++] = (struct frag_alloc){ pfn, order, mob };
	f->frames[mob] += 1ull << order;
	pthread_mutex_unlock(&f->lock);
}

static void give(struct fragload *f, uint64_t k)
{
	struct frag_alloc x;

	pthread_mutex_lock(&f->lock);
	x = f->a[k];
	if (f->owned && x.mob == FRAG_MOVABLE)
		gmm_rmap_clear(f->pool, x.pfn, x.order);
	f->frames[x.mob] -= 1ull << x.order;
	f->a[k] = f->a[--f->n];
	if (f->owned && k < f->n && f->a[k].mob == FRAG_MOVABLE)
		gmm_rmap_set(f->pool, f->a[k].pfn, f->a[k].order, f->owner_id, k);
	pthread_mutex_unlock(&f->lock);
	gmm_free(f->pool, x.pfn, x.order);
}

/* Free a random allocation of mobility @mob (a few tries). */
static void give_random(struct fragload *f, int mob)
{
	for (int tries = 0; tries < 64 && f->n; tries++) {
		uint64_t k = rnd(f) % f->n;

		if (f->a[k].mob == mob) {
			give(f, k);
			return;
		}
	}
}

static unsigned int small_order(struct fragload *f, unsigned int one_in, unsigned int max)
{
	return rnd(f) % one_in ? 0 : (unsigned int)(rnd(f) % (max + 1));
}

void fragload_run(struct fragload *f, uint64_t steps)
{
	uint64_t total = gmm_pool_nr_pages(f->pool);

	for (uint64_t s = 0; s < steps; s++) {
		uint64_t used = f->frames[0] + f->frames[1] + f->frames[2];
		unsigned int r = rnd(f) % 100;

		if (f->frames[FRAG_UNMOVABLE] < total / 10 && r < 3)
			take(f, FRAG_UNMOVABLE, small_order(f, 4, 2));
		else if (r < 12 && f->frames[FRAG_RECLAIMABLE] < total * 15 / 100)
			take(f, FRAG_RECLAIMABLE, 0);
		else if (r < 12)
			give_random(f, FRAG_RECLAIMABLE);
		else if (used < total * 92 / 100)
			take(f, FRAG_MOVABLE, small_order(f, 8, 3));
		else
			give_random(f, rnd(f) % 6 ? FRAG_MOVABLE : FRAG_RECLAIMABLE);
	}
}

void fragload_free_mobility(struct fragload *f, int mob)
{
	for (uint64_t i = f->n; i-- > 0;)
		if (f->a[i].mob == mob)
			give(f, i);
}

void fragload_free_every(struct fragload *f, int mob, unsigned int nth)
{
	uint64_t seen = 0;

	for (uint64_t i = f->n; i-- > 0;)
		if (f->a[i].mob == mob && ++seen % nth == 0)
			give(f, i);
}

void fragload_release(struct fragload *f)
{
	while (f->n)
		give(f, f->n - 1);
	if (f->owned)
		gmm_owner_unregister(f->pool, f->owner_id);
	f->owned = false;
	pthread_mutex_destroy(&f->lock);
	free(f->a);
	f->a = NULL;
}
