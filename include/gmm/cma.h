/* SPDX-License-Identifier: MIT */
/*
 * gmm/cma.h - the contiguous memory allocator (the kernel's CMA).
 *
 * A node's CMA area is the last gmm_node_config.cma_bytes of its
 * ZONE_NORMAL, as CMA pageblocks, reserved at pool creation.  Until a CMA
 * allocation needs them, movable allocations borrow its free frames (the
 * allocator uses them first when they hold more than half of the zone's
 * free memory, as the kernel does); unmovable and reclaimable ones never
 * do.  gmm_cma_alloc() takes a range of the area by migration
 * (gmm_alloc_contig_range(), gmm/migrate.h): the borrowed frames move
 * elsewhere, so it succeeds whenever the borrowers are owned (gmm/migrate.h)
 * and not pinned, and the node has room for them outside the range.
 */
#ifndef GMM_CMA_H
#define GMM_CMA_H

#include <stdint.h>

#include <gmm/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * gmm_cma_alloc() - take @nr_pages contiguous frames of a CMA area.
 * @pool:        the pool
 * @node:        the node whose area to use, or GMM_NO_NODE (every node's
 *               area in turn, node 0 first)
 * @nr_pages:    frames wanted, at least 1
 * @align_order: the first pfn is a multiple of 2^@align_order
 *               (0..GMM_MAX_ORDER_LIMIT)
 *
 * The kernel's cma_alloc(): candidate ranges of the area, lowest first,
 * whose frames are all free or movable are tried with
 * gmm_alloc_contig_range() until one succeeds.  The frames come back
 * allocated as single frames, not movable, their content undefined.  Not
 * for a thread holding an owner's locks (its callbacks run here).
 *
 * Return: the first pfn, or GMM_PFN_NONE (-EINVAL: bad arguments;
 * -ENOMEM: no range of the area could be taken).
 */
uint64_t gmm_cma_alloc(struct gmm_pool *pool, int node, uint64_t nr_pages,
		       unsigned int align_order);

/**
 * gmm_cma_release() - give frames from gmm_cma_alloc() back to the area.
 * @pool:     the pool
 * @pfn:      first frame (a range from gmm_cma_alloc() or part of one)
 * @nr_pages: frames
 *
 * The kernel's cma_release().  The frames are free again and movable
 * allocations may borrow them.
 *
 * Return: 0, or -EINVAL (not in CMA pageblocks, or a frame is not an
 * allocated single frame: nothing is freed).
 */
int gmm_cma_release(struct gmm_pool *pool, uint64_t pfn, uint64_t nr_pages);

#ifdef __cplusplus
}
#endif
#endif
