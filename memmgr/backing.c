/* SPDX-License-Identifier: MIT */
/*
 * memmgr/backing.c - the host memory behind frames: the pool's mapping of a
 * frame, restoring discarded frames through the pool's backing, and the
 * built-in backings (anonymous private memory, caller-provided memory).
 */
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

void *gmm_pfn_to_host(struct gmm_pool *p, uint64_t pfn)
{
	struct gmm_mblock *mb;

	if (!p || pfn >= p->nr_pfns || !(mb = pfn_mblock(p, pfn))->zone) {
		gmm_set_error(-EINVAL, "gmm_pfn_to_host: pfn %llu is not in a present block%s",
			      (unsigned long long)pfn, p ? "" : " (NULL pool)");
		return NULL;
	}
	return mb->host + ((pfn & ((1ull << p->block_shift) - 1)) << GMM_PAGE_SHIFT);
}

/* Discarded frames read as zero; a backing that needs them back (hugetlbfs) restores them. */
int pool_prepare_reported(struct gmm_pool *p, uint64_t pfn, unsigned int order)
{
	const struct gmm_backing_ops *ops = p->cfg.backing;

	if (!ops->repopulate)
		return 0;
	return ops->repopulate(p->cfg.backing_ctx, pfn, 1ull << order, gmm_pfn_to_host(p, pfn));
}

static int anon_block_add(void *ctx, uint64_t first_pfn, uint64_t nr_pages, int host_node,
			  void **addr)
{
	size_t len = nr_pages << GMM_PAGE_SHIFT;
	void *p;

	(void)ctx;
	(void)first_pfn;
	(void)host_node;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return gmm_set_error(-ENOMEM, "anonymous backing: mmap of %zu bytes: %s", len,
				     strerror(errno));
	*addr = p;
	return 0;
}

static void anon_block_remove(void *ctx, uint64_t first_pfn, uint64_t nr_pages, void *addr)
{
	(void)ctx;
	(void)first_pfn;
	munmap(addr, nr_pages << GMM_PAGE_SHIFT);
}

static int anon_discard(void *ctx, uint64_t pfn, uint64_t nr_pages, void *addr)
{
	(void)ctx;
	(void)pfn;
	if (madvise(addr, nr_pages << GMM_PAGE_SHIFT, MADV_DONTNEED))
		return gmm_set_error(-errno, "anonymous backing: MADV_DONTNEED: %s",
				     strerror(errno));
	return 0;
}

const struct gmm_backing_ops gmm_backing_anon = {
	.name = "anon",
	.block_add = anon_block_add,
	.block_remove = anon_block_remove,
	.discard = anon_discard,
};

static int user_block_add(void *ctx, uint64_t first_pfn, uint64_t nr_pages, int host_node,
			  void **addr)
{
	struct gmm_user_memory *um = ctx;
	uint64_t end = (first_pfn + nr_pages) << GMM_PAGE_SHIFT;

	(void)host_node;
	if (!um || !um->base || ((uintptr_t)um->base & (GMM_PAGE_SIZE - 1)))
		return gmm_set_error(-EINVAL, "user backing: base must be a page-aligned address");
	if (end > um->bytes)
		return gmm_set_error(-EINVAL, "user backing: %zu bytes given, the pool needs %llu",
				     um->bytes, (unsigned long long)end);
	*addr = (char *)um->base + (first_pfn << GMM_PAGE_SHIFT);
	return 0;
}

const struct gmm_backing_ops gmm_backing_user = {
	.name = "user",
	.block_add = user_block_add,
};
