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

/* The rmap of an allocated movable block of @order at @pfn, or 0.  Under @pfn's zone lock. */
static uint64_t movable_rmap_locked(struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	uint8_t want = (uint8_t)(FR_ALLOC | FR_FLAG | (order << FR_ORDER_SHIFT));
	uint64_t l = fr_state(p, pfn) == want ? rmap_load(p, pfn) : 0;

	return l & RMAP_OWNED ? l : 0;
}

uint64_t movable_rmap(struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	struct gmm_zone *z = pfn_zone(p, pfn);
	uint64_t l;

	if (!z)
		return 0;
	pthread_mutex_lock(&z->lock);
	l = movable_rmap_locked(p, pfn, order);
	pthread_mutex_unlock(&z->lock);
	return l;
}

/* Lock the zone of @pfn unless @held (the lock held now) is it; returns the held zone. */
static struct gmm_zone *relock(struct gmm_pool *p, struct gmm_zone *held, uint64_t pfn)
{
	struct gmm_zone *z = pfn_zone(p, pfn);

	if (z == held)
		return held;
	if (held)
		pthread_mutex_unlock(&held->lock);
	pthread_mutex_lock(&z->lock);
	return z;
}

/* Read the rmaps of the batch's old blocks, one lock round per zone. */
static void batch_read_rmaps(struct gmm_pool *p, struct migrate_req *r, unsigned int n)
{
	struct gmm_zone *held = NULL;

	for (unsigned int i = 0; i < n; i++) {
		if (r[i].err)
			continue; /* refused by the caller already */
		held = relock(p, held, r[i].old);
		r[i].rmap = movable_rmap_locked(p, r[i].old, r[i].order);
		r[i].err = r[i].rmap ? 0 : -ENOENT;
	}
	if (held)
		pthread_mutex_unlock(&held->lock);
}

/*
 * Hand owner @o (id @id) its run of blocks from r[@i] (owned by it, not
 * failed) in one migrate_batch() call; returns the index past the run.
 */
static unsigned int call_owner_batch(struct gmm_owner *o, unsigned int id, struct migrate_req *r,
				     unsigned int i, unsigned int n, enum gmm_migrate_mode mode)
{
	struct gmm_migrate_item it[GMM_MIGRATE_BATCH_MAX];
	unsigned int idx[GMM_MIGRATE_BATCH_MAX], k = 0, j;

	for (j = i; j < n && k < GMM_MIGRATE_BATCH_MAX; j++) {
		if (r[j].err)
			continue;
		if (rmap_owner(r[j].rmap) != id)
			break;
		idx[k] = j;
		it[k++] = (struct gmm_migrate_item){ r[j].rmap & RMAP_GFN_MASK, r[j].old, r[j].new,
						     r[j].order, 0 };
	}
	o->ops->migrate_batch(o->ctx, it, k, mode);
	for (unsigned int m = 0; m < k; m++)
		r[idx[m]].err = it[m].err;
	return j;
}

/* Call the owners, one reference per run of blocks of the same owner. */
static void batch_call_owners(struct gmm_pool *p, struct migrate_req *r, unsigned int n,
			      enum gmm_migrate_mode mode)
{
	struct gmm_owner *o = NULL;
	unsigned int id = 0;

	for (unsigned int i = 0; i < n;) {
		if (r[i].err) {
			i++;
			continue;
		}
		if (!o || rmap_owner(r[i].rmap) != id) {
			if (o)
				owner_put(o);
			id = rmap_owner(r[i].rmap);
			o = owner_get(p, id);
		}
		if (o && o->ops->migrate_batch) {
			i = call_owner_batch(o, id, r, i, n, mode);
			continue;
		}
		r[i].err = o ? o->ops->migrate(o->ctx, r[i].rmap & RMAP_GFN_MASK, r[i].old,
					       r[i].new, r[i].order, mode) :
			       -ENOENT;
		i++;
	}
	if (o)
		owner_put(o);
}

/*
 * Free each moved block's old frames, or the target of each failed move
 * (with any rmap the owner wrote on it cleared), one lock round per zone.
 */
static void batch_free(struct gmm_pool *p, struct migrate_req *r, unsigned int n)
{
	struct gmm_zone *held = NULL;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t pfn = r[i].err ? r[i].new : r[i].old;

		if (r[i].err && r[i].keep_target)
			continue;
		held = relock(p, held, pfn);
		for (uint64_t f = 0; f < 1ull << r[i].order; f++)
			rmap_store(p, pfn + f, 0);
		if (!r[i].err && r[i].keep_old)
			continue;
		buddy_free_range(held, pfn, r[i].order);
		held->ev.free++;
		zone_maybe_clear_boost(held);
	}
	if (held)
		pthread_mutex_unlock(&held->lock);
}

void migrate_batch(struct gmm_pool *p, struct migrate_req *r, unsigned int n,
		   enum gmm_migrate_mode mode)
{
	batch_read_rmaps(p, r, n);
	batch_call_owners(p, r, n, mode);
	batch_free(p, r, n);
}

int migrate_block_to(struct gmm_pool *p, uint64_t old, uint64_t new, unsigned int order,
		     enum gmm_migrate_mode mode)
{
	struct migrate_req r = { .old = old, .new = new, .order = order, .keep_target = true };

	migrate_batch(p, &r, 1, mode);
	if (r.err)
		gmm_rmap_clear(p, new, order); /* the caller frees it */
	return r.err;
}
