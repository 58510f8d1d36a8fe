/* SPDX-License-Identifier: MIT */
/*
 * memmgr/migrate.c - frame owners and the move of one owned block.
 *
 * Owners are a table indexed by rmap id, under the pool's guests_lock; a
 * callback in flight holds a count that gmm_owner_unregister() waits for.
 * The rmap rules are in gmm/migrate.h.
 */
#include <sched.h>

#include "internal.h"

int gmm_owner_register(struct gmm_pool *p, const struct gmm_migrate_ops *ops, void *ctx,
		       unsigned int *id)
{
	int err;

	if (!p || !ops || !ops->migrate || !id)
		return gmm_set_error(-EINVAL, "gmm_owner_register: NULL argument");
	err = -ENOSPC;
	pthread_mutex_lock(&p->guests_lock);
	for (unsigned int i = 1; i < GMM_MAX_OWNERS; i++) {
		struct gmm_owner *o = &p->owners[i];

		if (o->ops || __atomic_load_n(&o->busy, __ATOMIC_ACQUIRE))
			continue;
		o->ctx = ctx;
		__atomic_store_n(&o->ops, ops, __ATOMIC_RELEASE);
		*id = i;
		err = 0;
		break;
	}
	pthread_mutex_unlock(&p->guests_lock);
	if (err)
		return gmm_set_error(err, "pool has %d frame owners already", GMM_MAX_OWNERS - 1);
	return 0;
}

void gmm_owner_unregister(struct gmm_pool *p, unsigned int id)
{
	struct gmm_owner *o;

	if (!p || !id || id >= GMM_MAX_OWNERS)
		return;
	o = &p->owners[id];
	pthread_mutex_lock(&p->guests_lock);
	__atomic_store_n(&o->ops, NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&p->guests_lock);
	while (__atomic_load_n(&o->busy, __ATOMIC_ACQUIRE))
		sched_yield();
}

/* Take a reference on owner @id; NULL when there is none. */
static struct gmm_owner *owner_get(struct gmm_pool *p, unsigned int id)
{
	struct gmm_owner *o = NULL;

	if (!id || id >= GMM_MAX_OWNERS)
		return NULL;
	pthread_mutex_lock(&p->guests_lock);
	if (p->owners[id].ops) {
		o = &p->owners[id];
		__atomic_fetch_add(&o->busy, 1, __ATOMIC_ACQ_REL);
	}
	pthread_mutex_unlock(&p->guests_lock);
	return o;
}

static void owner_put(struct gmm_owner *o)
{
	__atomic_fetch_sub(&o->busy, 1, __ATOMIC_ACQ_REL);
}

static bool block_ok(const struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	return pfn < p->nr_pfns && order <= p->max_order && !(pfn & ((1ull << order) - 1)) &&
	       pfn + (1ull << order) <= p->nr_pfns;
}

int gmm_rmap_set(struct gmm_pool *p, uint64_t pfn, unsigned int order, unsigned int id,
		 uint64_t key)
{
	if (!p || !block_ok(p, pfn, order) || !id || id >= GMM_MAX_OWNERS ||
	    key > GMM_RMAP_KEY_MASK)
		return gmm_set_error(-EINVAL, "gmm_rmap_set: bad block, owner or key");
	for (uint64_t i = 0; i < 1ull << order; i++)
		rmap_store(p, pfn + i, rmap_make(id, key));
	return 0;
}

void gmm_rmap_clear(struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	if (!p || !block_ok(p, pfn, order))
		return;
	for (uint64_t i = 0; i < 1ull << order; i++)
		rmap_store(p, pfn + i, 0);
}

void migrate_free(struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	struct gmm_zone *z = pfn_zone(p, pfn);

	pthread_mutex_lock(&z->lock);
	buddy_free_range(z, pfn, order);
	z->ev.free++;
	zone_maybe_clear_boost(z);
	pthread_mutex_unlock(&z->lock);
}

/* The rmap of an allocated movable block of @order at @pfn, or 0. */
static uint64_t movable_rmap(struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	struct gmm_zone *z = pfn_zone(p, pfn);
	uint8_t want = (uint8_t)(FR_ALLOC | FR_FLAG | (order << FR_ORDER_SHIFT));
	uint64_t l = 0;

	if (!z)
		return 0;
	pthread_mutex_lock(&z->lock);
	if (fr_state(p, pfn) == want)
		l = rmap_load(p, pfn);
	pthread_mutex_unlock(&z->lock);
	return l & RMAP_OWNED ? l : 0;
}

int migrate_block_to(struct gmm_pool *p, uint64_t old, uint64_t new, unsigned int order,
		     enum gmm_migrate_mode mode)
{
	uint64_t l = movable_rmap(p, old, order);
	struct gmm_owner *o;
	int err;

	if (!l)
		return -ENOENT;
	o = owner_get(p, rmap_owner(l));
	if (!o)
		return -ENOENT;
	err = o->ops->migrate(o->ctx, l & RMAP_GFN_MASK, old, new, order, mode);
	owner_put(o);
	if (err)
		return err;
	gmm_rmap_clear(p, old, order);
	migrate_free(p, old, order);
	return 0;
}

/* The order of the allocated block headed at @pfn, or -1. */
static int alloc_order(struct gmm_pool *p, uint64_t pfn)
{
	struct gmm_zone *z = pfn_zone(p, pfn);
	int o = -1;

	if (!z)
		return -1;
	pthread_mutex_lock(&z->lock);
	if (fr_kind(p, pfn) == FR_ALLOC)
		o = (int)fr_order(p, pfn);
	pthread_mutex_unlock(&z->lock);
	return o;
}

int gmm_migrate_block(struct gmm_pool *p, uint64_t pfn, enum gmm_migrate_mode mode,
		      uint64_t *new_pfn)
{
	uint64_t new;
	int order, err;

	if (!p)
		return gmm_set_error(-EINVAL, "gmm_migrate_block: NULL pool");
	order = alloc_order(p, pfn);
	if (order < 0)
		return gmm_set_error(-EINVAL, "migrate: pfn %llu heads no allocated block",
				     (unsigned long long)pfn);
	if (!movable_rmap(p, pfn, (unsigned int)order))
		return gmm_set_error(-ENOENT, "migrate: pfn %llu is not movable or has no owner",
				     (unsigned long long)pfn);
	/* the same node and zone: the block keeps its placement */
	new = gmm_alloc(p, (unsigned int)order, GMM_MOVABLE | GMM_THISNODE |
			(gmm_pfn_zone(p, pfn) == GMM_ZONE_NORMAL ? GMM_NO_MOVABLE_ZONE : 0),
			gmm_pfn_node(p, pfn));
	if (new == GMM_PFN_NONE)
		return -ENOMEM;
	err = migrate_block_to(p, pfn, new, (unsigned int)order, mode);
	if (err) {
		gmm_free(p, new, (unsigned int)order);
		return gmm_set_error(err, "migrate: owner of pfn %llu refused (%d)",
				     (unsigned long long)pfn, err);
	}
	if (new_pfn)
		*new_pfn = new;
	return 0;
}
