/* SPDX-License-Identifier: MIT */
/*
 * gmm/pool.h - the page pool: create, destroy, allocate and free frames.
 *
 * A pool manages host memory in 4 KiB frames numbered by pool frame number
 * (pfn), the way the Linux kernel manages physical memory: NUMA nodes, zones
 * NORMAL and MOVABLE, a buddy allocator with free lists per order and
 * migratetype, pageblocks grouped by mobility, watermarks and a HIGHATOMIC
 * reserve.  Which host memory stands behind the frames is decided by a
 * pluggable backing (gmm/backing.h).
 *
 * Errors (every header of gmm follows these rules, stated only here):
 *  - A function that can fail says so in its result: a negative errno value
 *    for an int result; GMM_PFN_NONE, NULL or 0 (as its "Return:" says) for
 *    a function that returns a pfn, a pointer or a count, with the negative
 *    errno value in gmm_errno().  In both cases gmm_last_error() holds a
 *    message.  Like errno, they are meaningful only right after a failure,
 *    on the same thread (a call that succeeds may leave or clear them).
 *  - Nothing aborts or crashes on bad input, and a refused call changes
 *    nothing.
 *  - NULL: every pointer parameter must point to a valid object unless its
 *    description allows NULL ("or NULL", "may be NULL", "NULL: ...").  A
 *    NULL passed where one is required is
 *    bad input like any other: the call fails with -EINVAL (functions
 *    without a result do nothing and set gmm_errno() to -EINVAL).  The
 *    objects (pool, guest) must be live: a pointer to a destroyed pool is
 *    not detected.
 */
#ifndef GMM_POOL_H
#define GMM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Size of one pool frame. */
#define GMM_PAGE_SHIFT 12
#define GMM_PAGE_SIZE (1UL << GMM_PAGE_SHIFT)
/** Pageblock order: 2 MiB, the guest THP size. */
#define GMM_PAGEBLOCK_ORDER 9
#define GMM_PAGEBLOCK_PAGES (1UL << GMM_PAGEBLOCK_ORDER)
/** Default and largest supported maximum buddy order (4 MiB and 1 GiB). */
#define GMM_DEFAULT_MAX_ORDER 10
#define GMM_MAX_ORDER_LIMIT 18
/** The kernel's PAGE_ALLOC_COSTLY_ORDER. */
#define GMM_COSTLY_ORDER 3
/** Largest number of NUMA nodes in one pool. */
#define GMM_MAX_NODES 16
/** "No node": let the pool's policy choose. */
#define GMM_NO_NODE (-1)
/** Returned by the allocation functions on failure. */
#define GMM_PFN_NONE UINT64_MAX

/**
 * Migratetypes, numbered as the kernel numbers them.
 *
 * Merging: free buddies inside one pageblock always merge.  Free blocks of
 * a pageblock or more merge across pageblocks when both have the same type,
 * or when both are UNMOVABLE, MOVABLE or RECLAIMABLE (the merged block takes
 * the freed block's type); HIGHATOMIC, CMA and isolated pageblocks merge
 * only with their own kind.  When a pageblock's type changes (a HIGHATOMIC
 * reserve released, isolation undone) its free blocks merge again as far as
 * these rules allow.
 */
enum gmm_migratetype {
	GMM_MT_UNMOVABLE = 0,
	GMM_MT_MOVABLE = 1,
	GMM_MT_RECLAIMABLE = 2,
	GMM_MT_HIGHATOMIC = 3,
	GMM_MT_CMA = 4,
	GMM_MT_ISOLATE = 5,
	GMM_MT_NR = 6,
};

/** Zones of a node. */
enum gmm_zone_type {
	GMM_ZONE_NORMAL = 0,
	GMM_ZONE_MOVABLE = 1,
	GMM_NR_ZONES = 2,
};

/*
 * Allocation flags (the gfp_t of gmm).
 *
 * Mobility: none of GMM_MOVABLE / GMM_RECLAIMABLE means unmovable (pinned).
 * Depth: GMM_HIGH may dig into half of the min watermark (__GFP_HIGH);
 * GMM_NOWAIT says the caller cannot wait for memory to be freed or moved
 * (no __GFP_DIRECT_RECLAIM: a quarter more of the reserve, and order > 0
 * requests may use and create the HIGHATOMIC reserve); GMM_ATOMIC is both.
 * GMM_NO_WATERMARKS ignores watermarks entirely (emergency use).
 */
#define GMM_MOVABLE (1u << 0)
#define GMM_RECLAIMABLE (1u << 1)
#define GMM_HIGH (1u << 2)
#define GMM_NOWAIT (1u << 3)
#define GMM_ATOMIC (GMM_HIGH | GMM_NOWAIT)
#define GMM_NO_WATERMARKS (1u << 4)
/** Fill the frames with zeroes before returning them. */
#define GMM_ZERO (1u << 5)
/** Only the named node (no fallback to other nodes, the policy is ignored). */
#define GMM_THISNODE (1u << 6)
/** A movable allocation that must not be placed in ZONE_MOVABLE. */
#define GMM_NO_MOVABLE_ZONE (1u << 7)
/**
 * An opportunistic order > 0 request (the kernel's GFP_TRANSHUGE_LIGHT, as
 * for a guest's 2 MiB fault): fail rather than drain the per-thread caches
 * or compact; kcompactd is still woken to make such blocks for later.
 */
#define GMM_LIGHT (1u << 8)
#define GMM_FLAGS_ALL ((1u << 9) - 1)

/** Node policies, as in set_mempolicy(2). */
enum gmm_policy_mode {
	GMM_POLICY_PREFERRED = 0, /* the first node of the mask, then by distance */
	GMM_POLICY_BIND = 1,      /* only nodes in the mask, nearest first */
	GMM_POLICY_INTERLEAVE = 2, /* round robin over the mask */
};

/** Memory of one node, in bytes (multiples of the memory block size). */
struct gmm_node_config {
	uint64_t normal_bytes;  /* ZONE_NORMAL */
	uint64_t movable_bytes; /* ZONE_MOVABLE: only movable allocations */
	uint64_t cma_bytes;     /* part of ZONE_NORMAL reserved as CMA */
	int host_node;          /* host NUMA node behind it, -1 = any */
	/* pfn space and metadata reserved for gmm_pool_add_block() */
	uint64_t hotplug_bytes;
};

/** How a pool is laid out.  Fill with gmm_pool_config_init() first. */
struct gmm_pool_config {
	unsigned int nr_nodes;
	struct gmm_node_config nodes[GMM_MAX_NODES];
	/* Node distances as in the ACPI SLIT; 0 entries get 10 (self) / 20. */
	uint8_t distance[GMM_MAX_NODES][GMM_MAX_NODES];
	unsigned int max_order;    /* largest buddy order, default 10 (4 MiB) */
	uint64_t block_bytes;      /* memory block (hotplug unit), default 128 MiB */
	bool mobility_grouping;    /* false: one free list for everything */
	bool nofragment;           /* try ALLOC_NOFRAGMENT first, default true */
	/*
	 * The kernel's vm.defrag_mode (default true; gmm_pool_set_defrag_mode()
	 * changes it at run time): a fallback to another migratetype may only
	 * take a whole free pageblock; before a request takes part of another
	 * type's pageblock, the slow path compacts to free a whole one, and only
	 * when that fails (or for GMM_NOWAIT) does the fragmenting fallback
	 * happen, as the last resort; kcompactd keeps the high watermark free in
	 * whole pageblocks.  See gmm/compact.h.
	 */
	bool defrag_mode;
	/* Backing; NULL = anonymous private memory (gmm/backing.h). */
	const struct gmm_backing_ops *backing;
	void *backing_ctx;
};

struct gmm_pool;

/** Node policy used by gmm_alloc_policy(). */
struct gmm_policy {
	enum gmm_policy_mode mode;
	uint64_t nodes; /* bit mask of pool nodes */
	unsigned int next; /* interleave cursor, advanced by the allocator */
};

/**
 * gmm_last_error() - the message of the last error on this thread.
 *
 * Return: a string owned by gmm, valid until the next gmm call on this
 * thread; "" when no error happened yet.
 */
const char *gmm_last_error(void);

/**
 * gmm_errno() - the error code of the last failure on this thread.
 *
 * For the functions whose result cannot carry a code (GMM_PFN_NONE, NULL,
 * a count of 0), like DPDK's rte_errno; set by every failure.
 *
 * Return: a negative errno value (-EINVAL, -ENOMEM, ...), 0 when no call
 * failed yet on this thread.
 */
int gmm_errno(void);

/**
 * gmm_pool_config_init() - fill @cfg with the defaults for a one-node pool.
 * @cfg:   the configuration to fill
 * @bytes: ZONE_NORMAL size of node 0
 */
void gmm_pool_config_init(struct gmm_pool_config *cfg, uint64_t bytes);

/**
 * gmm_pool_create() - create a pool.
 * @cfg:  layout and options; copied, the caller may free it afterwards
 * @pool: receives the pool
 *
 * All memory starts free.  Metadata is allocated lazily: a pool whose frames
 * are never touched costs little more than its free-list heads.
 *
 * The backing context (@cfg->backing_ctx) belongs to the pool once this
 * succeeds (gmm_pool_destroy() releases it); when it fails, it is still the
 * caller's.
 *
 * Return: 0, or -EINVAL for a bad configuration, -ENOMEM when metadata or
 * backing cannot be had.
 */
int gmm_pool_create(const struct gmm_pool_config *cfg, struct gmm_pool **pool);

/**
 * gmm_pool_destroy() - free the pool, its metadata and its backing.
 * @pool: the pool, or NULL (nothing to do)
 *
 * Allocated frames are not checked: their memory simply goes away.  Every
 * thread must have detached from the pool (gmm_thread_detach()) and every
 * guest on it must be destroyed first: otherwise nothing is freed (a
 * thread's exit would detach it from freed memory).
 *
 * Return: 0, or -EBUSY when a thread is attached or a guest exists.
 */
int gmm_pool_destroy(struct gmm_pool *pool);

/**
 * gmm_alloc() - allocate 2^@order contiguous frames.
 * @pool:  the pool
 * @order: 0..max_order
 * @flags: GMM_* allocation flags
 * @node:  preferred node, or GMM_NO_NODE for the pool's default policy
 *
 * The returned first pfn is aligned to 2^@order, and the block's host
 * memory is contiguous: gmm_pfn_to_host(pfn) + i * GMM_PAGE_SIZE is frame
 * pfn + i (blocks never cross a memory block, whose mapping is one range).
 * The allocator drains the per-thread caches and releases the HIGHATOMIC
 * reserve before it fails.
 *
 * Return: the first pfn, or GMM_PFN_NONE (-ENOMEM: no memory; -EINVAL: bad
 * arguments; the code is in gmm_errno()).
 */
uint64_t gmm_alloc(struct gmm_pool *pool, unsigned int order, unsigned int flags, int node);

/**
 * gmm_alloc_policy() - allocate following a node policy.
 * @pool:   the pool
 * @order:  0..max_order
 * @flags:  GMM_* allocation flags (GMM_THISNODE is not allowed here)
 * @policy: the policy; its interleave cursor is advanced atomically, so
 *          threads may share one (changing its mode or nodes while others
 *          use it is the caller's to serialise)
 *
 * Return: the first pfn, or GMM_PFN_NONE with gmm_errno() -ENOMEM or
 * -EINVAL.
 */
uint64_t gmm_alloc_policy(struct gmm_pool *pool, unsigned int order, unsigned int flags,
			  struct gmm_policy *policy);

/**
 * gmm_free() - free frames allocated with gmm_alloc().
 * @pool:  the pool
 * @pfn:   the first pfn, as returned
 * @order: the order it was allocated with
 *
 * A pfn that is not the start of an allocated block of that order (double
 * free, wrong order, out of range) is refused and nothing changes.
 *
 * Return: 0 or -EINVAL.
 */
int gmm_free(struct gmm_pool *pool, uint64_t pfn, unsigned int order);

/**
 * gmm_pool_set_policy() - set the policy used when no node is named.
 * @pool:   the pool
 * @mode:   GMM_POLICY_*
 * @nodes:  mask of pool nodes, non-empty, only existing nodes
 *
 * Safe while other threads allocate: they see the old or the new policy,
 * never a mix.
 *
 * Return: 0 or -EINVAL.
 */
int gmm_pool_set_policy(struct gmm_pool *pool, enum gmm_policy_mode mode, uint64_t nodes);

/**
 * gmm_pfn_to_host() - the pool's own mapping of a frame.
 * @pool: the pool
 * @pfn:  a frame in the pool
 *
 * The frames of one memory block (gmm_pool_config.block_bytes) are mapped
 * contiguously, so are those of every allocated block; two memory blocks
 * need not be adjacent.
 *
 * Return: the host address of the frame, or NULL (-EINVAL) when @pfn is
 * not in a present memory block.
 */
void *gmm_pfn_to_host(struct gmm_pool *pool, uint64_t pfn);

/**
 * gmm_pool_nr_pages() - frames managed by the pool (present memory).
 * @pool: the pool
 *
 * Return: the number of frames (0 and -EINVAL for a NULL pool).
 */
uint64_t gmm_pool_nr_pages(const struct gmm_pool *pool);

/**
 * gmm_pool_nr_free() - free frames in the pool, all zones.
 * @pool: the pool
 *
 * The kernel's NR_FREE_PAGES: frames on the free lists.  Not counted:
 * frames in per-thread caches (gmm/thread.h), free frames in isolated
 * pageblocks (they are out of the allocator's reach until the isolation is
 * undone; gmm_zone_stats() shows them as nr_free[][GMM_MT_ISOLATE]) and
 * frames a reporting pass holds (gmm/report.h).
 *
 * Return: the number of frames (0 and -EINVAL for a NULL pool).
 */
uint64_t gmm_pool_nr_free(struct gmm_pool *pool);

/**
 * gmm_pfn_node() - the node a frame belongs to.
 * @pool: the pool
 * @pfn:  a frame
 *
 * Return: the node, or -EINVAL when @pfn is not in a present block.
 */
int gmm_pfn_node(const struct gmm_pool *pool, uint64_t pfn);

/**
 * gmm_pfn_zone() - the zone type a frame belongs to.
 * @pool: the pool
 * @pfn:  a frame
 *
 * Return: GMM_ZONE_NORMAL / GMM_ZONE_MOVABLE, or -EINVAL.
 */
int gmm_pfn_zone(const struct gmm_pool *pool, uint64_t pfn);

/**
 * gmm_pageblock_migratetype() - the migratetype of the pageblock of a frame.
 * @pool: the pool
 * @pfn:  a frame
 *
 * Return: a GMM_MT_* value (GMM_MT_ISOLATE while isolated), or -EINVAL.
 */
int gmm_pageblock_migratetype(struct gmm_pool *pool, uint64_t pfn);

/**
 * gmm_isolate_range() - isolate the pageblocks of [@start_pfn, @end_pfn).
 * @pool:      the pool
 * @start_pfn: pageblock-aligned first frame
 * @end_pfn:   pageblock-aligned end (exclusive), in the same zone
 *
 * Free frames in the range leave the normal free lists (they go to the
 * ISOLATE lists) and frames freed into the range later stay there, so the
 * range can be emptied and taken.  The blocks keep their migratetype, which
 * comes back with gmm_undo_isolate_range().
 *
 * Return: 0, -EINVAL for a bad range, -EBUSY when a block is already
 * isolated (nothing is changed then).
 */
int gmm_isolate_range(struct gmm_pool *pool, uint64_t start_pfn, uint64_t end_pfn);

/**
 * gmm_undo_isolate_range() - give isolated pageblocks back to the allocator.
 * @pool:      the pool
 * @start_pfn: as given to gmm_isolate_range()
 * @end_pfn:   as given to gmm_isolate_range()
 *
 * Return: 0 or -EINVAL.
 */
int gmm_undo_isolate_range(struct gmm_pool *pool, uint64_t start_pfn, uint64_t end_pfn);

/**
 * gmm_pool_add_block() - grow the pool by one memory block.
 * @pool:      the pool
 * @node:      pool node
 * @zone:      GMM_ZONE_NORMAL or GMM_ZONE_MOVABLE (only movable allocations;
 *             such a block can always be emptied and removed)
 * @first_pfn: receives the block's first pfn (may be NULL)
 *
 * The block takes the node's first absent block of pfn space: its reserve
 * (gmm_node_config.hotplug_bytes) or a block removed earlier, so growth
 * needs no reallocation.  Its pageblocks are MOVABLE and all its frames
 * free (and reported: they hold no host memory yet).  Watermarks follow.
 *
 * Return: 0, -EINVAL, -ENOSPC when the node has no pfn space left, or the
 * backing's error (e.g. -ENOMEM when hugepages are missing).
 */
int gmm_pool_add_block(struct gmm_pool *pool, int node, enum gmm_zone_type zone,
		       uint64_t *first_pfn);

/**
 * gmm_pool_remove_block() - empty a memory block and take it out of the pool.
 * @pool:      the pool
 * @first_pfn: the block's first pfn
 *
 * The kernel's offline_pages(): the block is isolated (nothing is
 * allocated from it meanwhile), every owned movable block in it is
 * migrated out (gmm/migrate.h; to other frames of the same node, or of
 * the other nodes when it has no room; a ZONE_NORMAL block stays in
 * ZONE_NORMAL), and when every frame is free the block leaves the pool
 * and its host memory goes back.  Otherwise the isolation is undone and the block stays as it
 * was, but for the blocks already moved out, which stay where they went.
 * A block of ZONE_MOVABLE holds only movable frames, so it can be removed
 * unless one is pinned or unowned or the pool lacks room.  Not for a
 * thread holding an owner's locks (its callbacks run here).
 *
 * Return: 0, -EINVAL (not a present block), -EBUSY (an unmovable, unowned
 * or pinned block remains, an owner stayed busy, no room to move to, or the
 * block is isolated already).
 */
int gmm_pool_remove_block(struct gmm_pool *pool, uint64_t first_pfn);

/**
 * gmm_split() - turn an allocated block into 2^@order order-0 allocations.
 * @pool:  the pool
 * @pfn:   first pfn of the block, as returned by gmm_alloc()
 * @order: its order
 *
 * Afterwards each frame is freed on its own with gmm_free(pfn, 0), like
 * the kernel's split_page().
 *
 * Return: 0 or -EINVAL.
 */
int gmm_split(struct gmm_pool *pool, uint64_t pfn, unsigned int order);

/**
 * gmm_pool_populate() - allocate host memory behind present frames now.
 * @pool:      the pool
 * @start_pfn: first frame (rounded down to the host page)
 * @nr_pages:  frames; UINT64_MAX for everything from @start_pfn on
 * @threads:   worker threads (0: one per online CPU, at most 16)
 * @progress:  called on the calling thread about every 100 ms and at the
 *             end with bytes done and bytes in all; may be NULL
 * @arg:       passed to @progress
 *
 * Eager preallocation: each block range is populated through the backing's
 * populate callback (MADV_POPULATE_WRITE for memfd), so missing memory
 * (hugepages) is a clean -ENOMEM here, never a SIGBUS later.  Absent
 * blocks in the range are skipped.  Populated free frames stay marked
 * reported (they read as zero) until the reporter or an allocation sees them.
 *
 * Return: 0, -EOPNOTSUPP when the backing cannot populate, or the first
 * error of a worker.
 */
int gmm_pool_populate(struct gmm_pool *pool, uint64_t start_pfn, uint64_t nr_pages,
		      unsigned int threads,
		      void (*progress)(void *arg, uint64_t done_bytes, uint64_t total_bytes),
		      void *arg);

/**
 * gmm_pool_check() - verify every invariant of the allocator.
 * @pool: the pool
 *
 * Every frame is in exactly one free block, in exactly one block cached in a
 * per-thread cache (gmm/thread.h), or allocated exactly once; no two free
 * buddies of equal order are left unmerged where merging is allowed; each
 * free block is on the list its pageblock type says; every cache list holds
 * only cached blocks of its order and zone; all counters agree.
 * Slow (walks all metadata): for tests and debugging.  Threads attached to
 * the pool may exist, but for an exact answer none of them may be inside a
 * gmm call meanwhile (their caches change without a lock).  A reporting
 * pass in progress is waited for (gmm/report.h).
 *
 * Return: 0, or -EUCLEAN with the first violation in gmm_last_error().
 */
int gmm_pool_check(struct gmm_pool *pool);

#ifdef __cplusplus
}
#endif
#endif
