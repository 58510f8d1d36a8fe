/* SPDX-License-Identifier: MIT */
/*
 * gmm/migrate.h - moving allocated frames: owners, the reverse map, pins.
 *
 * An allocated block can be moved (migrated) only when its owner says how.
 * An owner registers a gmm_migrate_ops and receives an owner id; it then
 * records, for each block it holds, a reverse map entry (owner id, key) in
 * the block's frame metadata.  A guest address space (gmm/guest.h) is such
 * an owner, with its gfn as the key; an embedder may be one too (a cache of
 * its own, a benchmark), with any 48-bit key.
 *
 * The reverse map (rmap) word, one per frame, in the pool's link[] array:
 *   bit 63       1: the frame is owned (0: no owner, never migrated)
 *   bits 48..62  owner id (1..GMM_MAX_OWNERS-1)
 *   bits 0..47   key (guest frame number for a guest)
 * Who reads and writes it, with what atomicity:
 *  - the owner writes it with gmm_rmap_set()/gmm_rmap_clear() while it holds
 *    the block (between gmm_alloc and gmm_free), with relaxed 64-bit atomic
 *    stores;
 *  - compaction reads the word of a block head under the zone lock, with a
 *    relaxed atomic load, only when the head's state byte says "allocated
 *    and movable".  The word may be stale (the owner is freeing the block at
 *    that moment): the owner's migrate callback is the authority and checks,
 *    under its own locks, that @key still maps @old_pfn;
 *  - the buddy allocator and the per-thread caches use the same word as
 *    list links while the block is free or cached, under their own rules;
 *    they never read it as an rmap.
 *
 * Pins: an owner must refuse (-EBUSY) to migrate a block that something may
 * write without going through the owner (a device holding a pointer into
 * guest RAM): no such write may be lost.  Guests expose this as
 * gmm_guest_pin() / gmm_guest_unpin(); gmm_guest_ptr() pins for good.
 */
#ifndef GMM_MIGRATE_H
#define GMM_MIGRATE_H

#include <stdint.h>

#include <gmm/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Owner ids per pool (guests included); id 0 means "no owner". */
#define GMM_MAX_OWNERS 256
/** Keys are 48 bits. */
#define GMM_RMAP_KEY_MASK ((1ull << 48) - 1)

/** Migration modes, the kernel's enum migrate_mode. */
enum gmm_migrate_mode {
	GMM_MIGRATE_ASYNC = 0,      /* never block: skip what is busy */
	GMM_MIGRATE_SYNC_LIGHT = 1, /* may block on the owner's locks, briefly */
	GMM_MIGRATE_SYNC = 2,       /* may wait */
};

/** Most blocks handed to gmm_migrate_ops.migrate_batch in one call. */
#define GMM_MIGRATE_BATCH_MAX 32

/** One block of a gmm_migrate_ops.migrate_batch call. */
struct gmm_migrate_item {
	uint64_t key, old_pfn, new_pfn; /* as gmm_migrate_ops.migrate's arguments */
	unsigned int order;
	int err;                        /* out: what migrate() would return */
};

/** How an owner moves its blocks. */
struct gmm_migrate_ops {
	const char *name;
	/*
	 * Move the block of 2^@order frames at @old_pfn, recorded with @key,
	 * to the block at @new_pfn (allocated, same order, its content
	 * undefined).  Called from compaction with no pool lock held, possibly
	 * from an allocating thread (direct compaction): the callback must not
	 * allocate from the pool and must not block in GMM_MIGRATE_ASYNC mode.
	 * On success it has copied the content, made every user see @new_pfn,
	 * and set the rmap of @new_pfn (gmm_rmap_set); @old_pfn's rmap is
	 * cleared and the block freed by the caller.  Return 0, -EAGAIN (busy
	 * or @key no longer maps @old_pfn: the caller frees @new_pfn), -EBUSY
	 * (pinned).
	 */
	int (*migrate)(void *ctx, uint64_t key, uint64_t old_pfn, uint64_t new_pfn,
		       unsigned int order, enum gmm_migrate_mode mode);
	/*
	 * Optional (NULL: migrate() per block): move @n blocks of this owner
	 * (1..GMM_MIGRATE_BATCH_MAX) in one call, each under migrate()'s
	 * contract, setting each item's err.  Compaction hands an owner each
	 * run of its blocks in a cluster at once, so an owner whose write stop
	 * costs per call (pausing a guest's vCPUs) pays it once per run.
	 */
	void (*migrate_batch)(void *ctx, struct gmm_migrate_item *items, unsigned int n,
			      enum gmm_migrate_mode mode);
};

/**
 * gmm_owner_register() - become an owner of frames.
 * @pool: the pool
 * @ops:  how to move a block; must outlive the registration
 * @ctx:  passed to @ops->migrate
 * @id:   receives the owner id for gmm_rmap_set()
 *
 * Return: 0, -EINVAL, -ENOSPC (GMM_MAX_OWNERS - 1 owners already).
 */
int gmm_owner_register(struct gmm_pool *pool, const struct gmm_migrate_ops *ops, void *ctx,
		       unsigned int *id);

/**
 * gmm_owner_unregister() - stop being an owner.
 * @pool: the pool
 * @id:   the id from gmm_owner_register()
 *
 * Waits for callbacks of this owner that are running; none starts after.
 * Call before freeing what @ctx points to.  Blocks still carrying the
 * id's rmap are simply not migrated.
 */
void gmm_owner_unregister(struct gmm_pool *pool, unsigned int id);

/**
 * gmm_rmap_set() - record the owner of an allocated block.
 * @pool:  the pool
 * @pfn:   head of a block the caller holds
 * @order: its order
 * @id:    owner id
 * @key:   the owner's key for the block (48 bits)
 *
 * Every frame of the block gets the same word.  Return: 0 or -EINVAL.
 */
int gmm_rmap_set(struct gmm_pool *pool, uint64_t pfn, unsigned int order, unsigned int id,
		 uint64_t key);

/**
 * gmm_rmap_clear() - forget the owner of a block (before freeing it).
 * @pool:  the pool
 * @pfn:   head of a block the caller holds
 * @order: its order
 */
void gmm_rmap_clear(struct gmm_pool *pool, uint64_t pfn, unsigned int order);

/**
 * gmm_migrate_block() - move one owned, movable block elsewhere now.
 * @pool:    the pool
 * @pfn:     head of an allocated movable block with an rmap
 * @mode:    GMM_MIGRATE_*
 * @new_pfn: receives the new head (may be NULL)
 *
 * The target comes from the allocator (movable, same node).  For tests
 * and for an embedder evacuating a frame by hand; compaction chooses its
 * own targets.
 *
 * Return: 0, -EINVAL (not an allocated block), -ENOENT (no owner),
 * -ENOMEM (no target), or the owner's -EAGAIN / -EBUSY.
 */
int gmm_migrate_block(struct gmm_pool *pool, uint64_t pfn, enum gmm_migrate_mode mode,
		      uint64_t *new_pfn);

/**
 * gmm_alloc_contig_range() - take a range of frames, moving what uses it.
 * @pool:  the pool
 * @start: first pfn
 * @end:   end pfn (exclusive), in the same zone; any alignment
 *
 * The kernel's alloc_contig_range(): the pageblocks covering the range are
 * isolated (so nothing else allocates there meanwhile), every owned
 * movable block in the range is migrated out (to other frames of its node:
 * there must be room), and once all its frames are free they are taken as
 * single allocated frames (not movable); free blocks that reach beyond
 * the range are split and their outer parts stay free.  The isolation is
 * undone either way.  Frames whose host memory was discarded by free page
 * reporting are repopulated by the backing first (gmm/report.h): every
 * frame is usable on return, its content undefined.  The host memory of
 * the range is contiguous only within a memory block (gmm_pfn_to_host()).
 * Free with gmm_free_contig_range().  Not for a thread holding an
 * owner's locks (its callbacks run here).
 *
 * Return: 0, -EINVAL (range), -EBUSY (an unmovable, unowned or pinned
 * block stays in the range, an owner stayed busy, no target for a move, or
 * a pageblock of the range is isolated already: nothing is taken then,
 * blocks already moved stay where they went), -ENOMEM (the backing could
 * not repopulate discarded frames: nothing is taken).
 */
int gmm_alloc_contig_range(struct gmm_pool *pool, uint64_t start, uint64_t end);

/**
 * gmm_alloc_contig_pages() - find and take @nr_pages contiguous frames.
 * @pool:     the pool
 * @nr_pages: frames wanted (1 up to the pool's size)
 * @node:     the node to search first, or GMM_NO_NODE (node 0 first); the
 *            others follow by distance
 *
 * The kernel's alloc_contig_pages(): candidate ranges start at multiples
 * of @nr_pages rounded up to a power of two (at most 2^GMM_MAX_ORDER_LIMIT
 * frames), lowest first, in ZONE_NORMAL only (a range taken is not
 * movable: ZONE_MOVABLE must stay removable) and outside CMA pageblocks
 * (gmm/cma.h) and isolated ones.  A candidate is tried with
 * gmm_alloc_contig_range() only when every frame of it is free, in a
 * per-thread cache, or part of a movable block (pfn_range_valid_contig());
 * the search goes on after a candidate fails (a pinned or unowned block).
 * Free with gmm_free_contig_range().  Not for a thread holding an owner's
 * locks.
 *
 * Return: the first pfn, or GMM_PFN_NONE (-EINVAL: bad arguments; -ENOMEM:
 * no range could be taken).
 */
uint64_t gmm_alloc_contig_pages(struct gmm_pool *pool, uint64_t nr_pages, int node);

/**
 * gmm_free_contig_range() - free a range from gmm_alloc_contig_range() or
 * gmm_alloc_contig_pages() (or part of one).
 * @pool:  the pool
 * @start: first pfn
 * @end:   end pfn (exclusive)
 *
 * Return: 0, or -EINVAL (a frame of the range is not an allocated single
 * frame: nothing is freed).
 */
int gmm_free_contig_range(struct gmm_pool *pool, uint64_t start, uint64_t end);

#ifdef __cplusplus
}
#endif
#endif
