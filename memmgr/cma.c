/* SPDX-License-Identifier: MIT */
/*
 * memmgr/cma.c - the contiguous memory allocator (the kernel's cma_alloc
 * and cma_release) over the CMA pageblocks a node reserves at pool
 * creation (gmm_node_config.cma_bytes).  Movable allocations borrow free
 * CMA frames; a CMA allocation takes a range of CMA pageblocks by
 * migration (contig.c), moving the borrowed frames out.  The frames' own
 * state is the area's bitmap: a range taken holds allocated unmovable
 * frames, which no later search accepts.
 */
#include <gmm/cma.h>

#include "internal.h"

uint64_t gmm_cma_alloc(struct gmm_pool *p, int node, uint64_t nr_pages, unsigned int align_order)
{
	int first = node, last = node;

	if (!p || !nr_pages || nr_pages > p->nr_pfns || align_order > GMM_MAX_ORDER_LIMIT ||
	    (node != GMM_NO_NODE && (node < 0 || node >= (int)p->cfg.nr_nodes))) {
		gmm_set_error(-EINVAL, "gmm_cma_alloc: bad pool, size %llu, alignment order %u "
			      "or node %d", (unsigned long long)nr_pages, align_order, node);
		return GMM_PFN_NONE;
	}
	if (node == GMM_NO_NODE) {
		first = 0;
		last = (int)p->cfg.nr_nodes - 1;
	}
	for (int n = first; n <= last; n++) {
		struct gmm_zone *z = &p->nodes[n].zones[GMM_ZONE_NORMAL];
		uint64_t pfn;

		if (!z->present || !p->cfg.nodes[n].cma_bytes)
			continue;
		pfn = contig_search(p, z, nr_pages, 1ull << align_order, true);
		if (pfn != GMM_PFN_NONE)
			return pfn;
	}
	gmm_set_error(-ENOMEM, "CMA: no range of %llu frames aligned to order %u holds only "
		      "free and movable frames that could be moved (node %d)",
		      (unsigned long long)nr_pages, align_order, node);
	return GMM_PFN_NONE;
}

int gmm_cma_release(struct gmm_pool *p, uint64_t pfn, uint64_t nr_pages)
{
	if (!p || !nr_pages || pfn >= p->nr_pfns || nr_pages > p->nr_pfns - pfn)
		return gmm_set_error(-EINVAL, "gmm_cma_release: bad range");
	for (uint64_t b = pfn & ~(uint64_t)(GMM_PAGEBLOCK_PAGES - 1); b < pfn + nr_pages;
	     b += GMM_PAGEBLOCK_PAGES)
		if (!pfn_zone(p, b) || pb_type(p, b) != GMM_MT_CMA)
			return gmm_set_error(-EINVAL, "gmm_cma_release: pfn %llu is not in a CMA "
					     "pageblock", (unsigned long long)b);
	return gmm_free_contig_range(p, pfn, pfn + nr_pages);
}
