/* SPDX-License-Identifier: MIT */
/*
 * gmm/thread.h - per-thread page caches (the kernel's per-CPU page lists),
 * their remote drain, and bulk allocation.
 *
 * A thread that allocates often (a vCPU thread backing guest pages on its
 * faults) attaches to a pool and gets its own cache: per zone, lists per
 * migratetype (unmovable, movable, reclaimable) and order 0..3
 * (GMM_COSTLY_ORDER), and two lists of pageblock-order (THP) blocks
 * (unmovable and reclaimable together, movable), as Linux 5.13+ keeps on its
 * per-CPU lists.  gmm_alloc() and gmm_free() of those orders then use the
 * calling thread's cache without any lock or atomic read-modify-write, and
 * go to the buddy allocator (under the zone lock) only to refill or trim the
 * cache by a batch of frames.  A thread that is not attached, or that is
 * offline, uses the locked path.
 *
 * Other threads (an allocation that failed, isolation, compaction, memory
 * removal) may empty every cache at any time with gmm_drain_all_caches().
 * Caches are protected by RCU (liburcu, QSBR flavour): the drainer swaps in
 * a fresh empty cache and waits for every attached thread to pass through a
 * quiescent state before it takes the old cache's frames.  A thread in QSBR
 * announces quiescent states itself, so the embedder's vCPU loop must:
 *
 *	gmm_thread_attach(pool);
 *	for (;;) {
 *		gmm_thread_offline();      // about to block in the kernel
 *		ioctl(vcpu_fd, KVM_RUN, 0);
 *		gmm_thread_online();
 *		handle_exit();             // may call gmm_alloc()/gmm_free()
 *		gmm_thread_quiescent();    // holds no gmm state across this point
 *	}
 *	gmm_thread_detach(pool);
 *
 * Any other blocking while online (poll, sleeping, waiting for a lock that
 * another thread may hold while it calls into gmm, which may drain) must
 * likewise be bracketed by gmm_thread_offline()/gmm_thread_online(), or
 * drains wait for it (or deadlock with it).  A thread that never announces a quiescent state
 * while online blocks every drain; a drain never waits for an offline one.
 * Quiescent states are per thread, not per pool: the same calls serve every
 * pool the thread is attached to.
 */
#ifndef GMM_THREAD_H
#define GMM_THREAD_H

#include <stdint.h>

#include <gmm/pool.h>
#include <gmm/stats.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest number of pools one thread may be attached to at the same time. */
#define GMM_THREAD_MAX_POOLS 8

/**
 * gmm_thread_attach() - give the calling thread a page cache of @pool.
 * @pool: the pool
 *
 * Registers the thread with RCU on its first attachment (the thread is then
 * online) and resizes every cache's high mark, which is shared among the
 * attached threads.  May block on a drain in progress (the thread is
 * offline meanwhile, so this is a quiescent state).
 *
 * Return: 0, -EEXIST when already attached to @pool, -ENOSPC when attached
 * to GMM_THREAD_MAX_POOLS pools, -ENOMEM.
 */
int gmm_thread_attach(struct gmm_pool *pool);

/**
 * gmm_thread_detach() - drain and release the calling thread's cache of @pool.
 * @pool: the pool
 *
 * Frames in the cache go back to the buddy allocator.  After the last
 * detachment the thread is unregistered from RCU.  Call it before the
 * thread exits; a quiescent state.  A thread that exits still attached is
 * detached from every pool by a thread-specific-data destructor (the pools
 * must still exist then).
 *
 * Return: 0, or -ENOENT when the thread is not attached to @pool.
 */
int gmm_thread_detach(struct gmm_pool *pool);

/**
 * gmm_thread_quiescent() - announce that the calling thread holds no
 * reference into any cache (it is between gmm calls).
 *
 * Cheap (a few plain stores and a fence).  Call it at every exit of the
 * vCPU loop.  Does nothing for a thread that is not attached.
 */
void gmm_thread_quiescent(void);

/**
 * gmm_thread_offline() - the calling thread will block for long (KVM_RUN):
 * drains stop waiting for it.
 *
 * While offline, gmm_alloc()/gmm_free() of the thread take the locked path
 * (its cache is left alone and may be drained meanwhile).  Does nothing for
 * a thread that is not attached or already offline.
 */
void gmm_thread_offline(void);

/**
 * gmm_thread_online() - the calling thread is back from a blocking call
 * and uses its caches again.  Does nothing when it is not offline.
 */
void gmm_thread_online(void);

/**
 * gmm_drain_all_caches() - return the frames of every thread's cache of
 * @pool to the buddy allocator.
 * @pool: the pool
 *
 * Publishes a preallocated empty cache for each attached thread, waits for
 * one RCU grace period (every online attached thread passes a quiescent
 * state; offline threads are not waited for), then frees the old caches'
 * frames under the zone locks.  Allocates nothing.  May be called from any
 * thread, attached or not (an attached caller goes offline while it waits);
 * it must not be called by a thread that is inside another gmm call.  The
 * allocator calls it itself before it fails an allocation, and after
 * isolating pageblocks.
 *
 * Return: the number of frames returned to the buddy allocator (0 and
 * -EINVAL for a NULL pool).
 */
uint64_t gmm_drain_all_caches(struct gmm_pool *pool);

/**
 * gmm_alloc_bulk() - allocate up to @n single frames (order 0).
 * @pool:  the pool
 * @flags: GMM_* allocation flags (GMM_ZERO zeroes each frame)
 * @node:  preferred node, or GMM_NO_NODE for the pool's policy
 * @n:     how many frames are wanted
 * @pfns:  receives the frames, @n entries
 *
 * The kernel's alloc_pages_bulk(): frames come from the calling thread's
 * cache when it has one (a run popped off the cache list, refilled a batch
 * at a time), and the zone lock is taken once per batch of frames taken
 * from the buddy.  Without a cache, each batch takes whole free blocks off
 * the buddy's lists, smallest first.  Either way the frames, and their
 * order in @pfns, are those that @n gmm_alloc() calls would return when
 * memory is plentiful, except under an interleave policy (one call takes
 * all its frames from one node); unlike them, an attached thread's bulk
 * allocations leave the cache's count of recent frees as it is (as the
 * kernel's bulk path does).
 * When the zones run short it stops early rather than enter the slow path;
 * only when it got nothing does it fall back to one gmm_alloc() (with its
 * drain and reserves).
 *
 * Return: how many frames were stored in @pfns[0..ret-1] (0 on failure,
 * see gmm_errno() and gmm_last_error()).  The bulk_alloc counter counts the
 * frames of attached threads only, the fallback's frame included.
 */
size_t gmm_alloc_bulk(struct gmm_pool *pool, unsigned int flags, int node, size_t n,
		      uint64_t *pfns);

/**
 * gmm_free_bulk() - free @n frames of order 0.
 * @pool: the pool
 * @n:    number of frames
 * @pfns: the frames
 *
 * Into the calling thread's cache when attached, else one zone lock per
 * run of frames of the same zone.  Frames that are not allocated order-0
 * frames are refused and skipped (a frame listed twice: its second entry).
 * The result is that of gmm_free() on each frame in turn: the same cache
 * lists in the same order, the same trims and counters, the same free
 * blocks.  Attached, frames of one cache list in a row move onto it at
 * once; unattached, consecutive frames (pfn, pfn + 1, ...) go to the buddy
 * as aligned blocks.
 *
 * Return: 0, or -EINVAL when some frame was refused (the others are freed).
 */
int gmm_free_bulk(struct gmm_pool *pool, size_t n, const uint64_t *pfns);

/** Counters of the per-thread caches (pool-wide sums, or one thread's). */
struct gmm_pcp_stats {
	uint64_t threads;        /* attached threads (pool-wide only) */
	uint64_t cached;         /* frames sitting in caches now */
	uint64_t alloc_hit;      /* allocations served from the cache list */
	uint64_t alloc_miss;     /* allocations that had to refill first */
	uint64_t alloc_fail;     /* refills refused (watermark) */
	uint64_t free;           /* frees into a cache */
	uint64_t refill;         /* refills (rmqueue_bulk), one zone lock each */
	uint64_t refill_frames;  /* frames taken by refills */
	uint64_t drain;          /* trims by the owner (free_pcppages_bulk) */
	uint64_t drain_frames;   /* frames returned by owner trims and detach */
	uint64_t remote_drain;   /* caches emptied by gmm_drain_all_caches() */
	uint64_t remote_frames;  /* frames returned by remote drains */
	uint64_t drain_all;      /* gmm_drain_all_caches() calls */
	uint64_t bulk_alloc;     /* frames handed out by gmm_alloc_bulk() */
	uint64_t hit_permille;   /* alloc_hit * 1000 / (hit + miss), 0 if none */
};

/**
 * gmm_pcp_stats() - the cache counters of @pool: every attached thread's
 * plus those of threads that detached already.
 * @pool: the pool
 * @out:  receives the sums
 *
 * Counters are read without stopping the threads: each is exact, their
 * sum is a snapshot taken over a short time.
 *
 * Return: 0.
 */
int gmm_pcp_stats(struct gmm_pool *pool, struct gmm_pcp_stats *out);

/**
 * gmm_pcp_thread_stats() - the calling thread's own counters for @pool.
 * @pool: the pool
 * @out:  receives them (threads = 1)
 *
 * Return: 0, or -ENOENT when the thread is not attached to @pool.
 */
int gmm_pcp_thread_stats(struct gmm_pool *pool, struct gmm_pcp_stats *out);

/**
 * gmm_pcp_zone_params() - the cache sizes of a zone.
 * @pool:  the pool
 * @node:  node number
 * @zone:  GMM_ZONE_*
 * @batch: receives the batch (frames moved per refill or trim), as the
 *         kernel's zone_batchsize()
 * @high_min: receives the lowest high mark of each cache, as the kernel's
 *         zone_highsize(): the low watermark shared among the attached
 *         threads, at least 4 batches
 * @high_max: receives the highest high mark: an eighth of the zone shared
 *         among the attached threads (the kernel's
 *         MIN_PERCPU_PAGELIST_HIGH_FRACTION)
 *
 * Each cache's high mark moves between the two as Linux 6.7+ tunes it: up
 * while frees overflow the cache and refills follow each other, down while
 * the zone is below its high watermark, after high-order free bursts, and by
 * an eighth per second of gmm_thread_quiescent() calls (decay_pcp_high).
 *
 * Return: 0, or -ENOENT when the zone does not exist or is empty.
 */
int gmm_pcp_zone_params(struct gmm_pool *pool, int node, enum gmm_zone_type zone,
			unsigned int *batch, unsigned int *high_min, unsigned int *high_max);

/**
 * gmm_stat_pcp() - render the cache counters, sizes and hit rate, like the
 * "pagesets" part of /proc/zoneinfo.
 * @pool: the pool
 * @fmt:  GMM_STAT_TEXT or GMM_STAT_JSON
 * @out:  receives a malloc()ed string; free() it
 *
 * Return: 0 or -ENOMEM.
 */
int gmm_stat_pcp(struct gmm_pool *pool, enum gmm_stat_format fmt, char **out);

#ifdef __cplusplus
}
#endif
#endif
