/* SPDX-License-Identifier: MIT */
/*
 * gmm/compact.h - memory compaction (the kernel's mm/compaction.c).
 *
 * Compaction moves owned movable blocks (gmm/migrate.h) from the bottom of
 * a zone to free frames at its top: a migrate scanner walks up from the
 * zone's start, a free scanner walks down from its end, and the pass ends
 * when they meet or when a block of the requested order is free.  It runs
 *  - directly, in the allocator's slow path, for a failed allocation of
 *    order > 0 without GMM_NOWAIT (async first, then sync-light); the block
 *    it frees is taken for the caller under the same zone lock (capture);
 *  - in kcompactd, a thread per node woken by failed high-order
 *    allocations and by watermark boosts (fallbacks), and every 500 ms for
 *    proactive compaction toward a fragmentation score;
 *  - on request: gmm_compact_zone() / gmm_compact_pool().
 * Pageblocks where nothing was found get the skip bit until a pass
 * completes; a zone that failed for an order defers compaction for it
 * (1, 2, 4 .. 64 attempts).  Counters use the kernel's vmstat names.
 */
#ifndef GMM_COMPACT_H
#define GMM_COMPACT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <gmm/migrate.h>
#include <gmm/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Compaction counters (frames, or events), as in /proc/vmstat. */
struct gmm_compact_events {
	uint64_t compact_migrate_scanned;
	uint64_t compact_free_scanned;
	uint64_t compact_isolated;       /* frames taken by both scanners */
	uint64_t compact_stall;          /* direct compaction runs */
	uint64_t compact_fail;           /* ... that produced no block */
	uint64_t compact_success;        /* ... that did */
	uint64_t compact_daemon_wake;
	uint64_t compact_daemon_migrate_scanned;
	uint64_t compact_daemon_free_scanned;
	uint64_t pgmigrate_success;      /* frames migrated */
	uint64_t pgmigrate_fail;         /* frames whose owner refused or was busy */
	uint64_t compact_capture;        /* blocks taken for the requester by compaction */
	uint64_t compact_deferred;       /* runs skipped by deferral */
};

/** What one compaction run did. */
struct gmm_compact_result {
	uint64_t migrate_scanned, free_scanned, migrated, failed;
	int complete; /* the scanners met */
};

/**
 * gmm_compact_zone() - compact one zone now, from the calling thread.
 * @pool:  the pool
 * @node:  node number
 * @zone:  GMM_ZONE_*
 * @order: stop once a free block of this order exists; -1: the whole zone
 *         (the kernel's /proc/sys/vm/compact_memory)
 * @mode:  GMM_MIGRATE_ASYNC (only MOVABLE pageblocks, skip busy owners) or
 *         a sync mode (every pageblock; in defrag mode, a pass for whole
 *         pageblocks, @order -1 or >= the pageblock order, leaves a
 *         pageblock at its first non-movable frame: it cannot be produced)
 * @res:   receives what was done (may be NULL)
 *
 * The caller must not hold locks of a frame owner (it would be skipped).
 *
 * Return: 0 (a block of @order is free, or the whole zone was compacted),
 * -EAGAIN (the scanners met without producing it), -ENOENT (no such zone),
 * -EINVAL.
 */
int gmm_compact_zone(struct gmm_pool *pool, int node, enum gmm_zone_type zone, int order,
		     int mode, struct gmm_compact_result *res);

/**
 * gmm_compact_pool() - compact every zone of the pool, synchronously.
 * @pool: the pool
 *
 * Return: 0 or -EINVAL.
 */
int gmm_compact_pool(struct gmm_pool *pool);

/**
 * gmm_compact_stats() - the compaction counters, summed over the zones.
 * @pool: the pool
 * @out:  receives them
 *
 * Return: 0 or -EINVAL.
 */
int gmm_compact_stats(struct gmm_pool *pool, struct gmm_compact_events *out);

/**
 * gmm_compact_print_stats() - the counters as "name value" lines.
 * @pool: the pool
 * @f:    where to
 */
void gmm_compact_print_stats(struct gmm_pool *pool, FILE *f);

/**
 * gmm_fragmentation_score() - the kernel's fragmentation_score_node().
 * @pool: the pool
 * @node: node number
 *
 * The share (0..100) of free memory not in free blocks of order 9 or more,
 * averaged over the node's zones weighted by their size.
 *
 * Return: the score, or -EINVAL.
 */
int gmm_fragmentation_score(struct gmm_pool *pool, int node);

/**
 * gmm_kcompactd_start() - start a compaction thread per node.
 * @pool:           the pool
 * @proactiveness:  0..100, the kernel's vm.compaction_proactiveness (20 by
 *                  default there); 0 turns proactive compaction off
 *
 * Stopped by gmm_kcompactd_stop() or gmm_pool_destroy().
 *
 * Return: 0, -EBUSY (already running), -EINVAL, -ENOMEM.
 */
int gmm_kcompactd_start(struct gmm_pool *pool, unsigned int proactiveness);

/**
 * gmm_kcompactd_stop() - stop the threads and wait for them.
 * @pool: the pool
 */
void gmm_kcompactd_stop(struct gmm_pool *pool);

/**
 * gmm_pool_set_defrag_mode() - turn defrag mode on or off (vm.defrag_mode).
 * @pool: the pool
 * @on:   true: fallbacks take only whole pageblocks until compaction has
 *        failed to free one (the default); false: the kernel's default
 *        rules (steal single frames from other types' pageblocks when no
 *        block can be claimed)
 *
 * Any thread, at any time: allocations running at that moment follow the
 * old or the new setting.  Defrag mode has no effect on a pool created
 * without mobility grouping.
 *
 * Defrag mode on, a request that finds no free frame of its migratetype:
 *  1. claims a whole free pageblock of another type (ALLOC_NOFRAGMENT: no
 *     single-frame steal, no claim of a partly used block, on every node of
 *     the zonelist, including remote ones);
 *  2. otherwise, unless GMM_NOWAIT or GMM_LIGHT, compacts (async, then
 *     sync-light) until a whole pageblock is free, and takes its frames
 *     from it, whatever the order (order 0 included);
 *  3. otherwise falls back as without defrag mode (the last resort: no
 *     allocation fails for defrag mode's sake), counted in the zone's
 *     `defrag_fallback` event, and wakes kcompactd.
 * kcompactd (when started) compacts each zone every round until its free
 * frames in whole pageblocks reach the high watermark.  Compaction passes
 * for whole pageblocks leave a pageblock at its first non-movable frame
 * (without defrag mode the sync modes empty it of its movable frames, as
 * the kernel's: its non-movable frame was stolen, and its type may claim
 * the emptied pageblock later).
 * The price: a request that would have stolen a frame may stall for a
 * compaction run (bounded by the usual deferral after failures).
 * On by default (off in the kernel): a host that packs guests tightly runs
 * its pool full, where single-frame fallbacks pollute a new pageblock each
 * time and guest THP backing, collapse and contiguous allocations lose the
 * free pageblocks they need (docs/compaction.md, "Defrag mode").
 *
 * Return: 0, or -EINVAL for a NULL pool.
 */
int gmm_pool_set_defrag_mode(struct gmm_pool *pool, bool on);

/**
 * gmm_pool_defrag_mode() - is defrag mode on?
 * @pool: the pool
 *
 * Return: true when on (and the pool groups by mobility); false for a NULL
 * pool (gmm_errno() -EINVAL).
 */
bool gmm_pool_defrag_mode(struct gmm_pool *pool);

/**
 * gmm_pageblock_map() - a picture of the pageblocks, one character each.
 * @pool: the pool
 * @f:    where to
 * @cols: characters per line (e.g. 64)
 *
 * Letter by migratetype (U unmovable, M movable, R reclaimable, H
 * highatomic, C CMA, I isolated), lower case when the block is more than
 * half free, '.' when entirely free, ' ' for holes.
 */
void gmm_pageblock_map(struct gmm_pool *pool, FILE *f, unsigned int cols);

#ifdef __cplusplus
}
#endif
#endif
