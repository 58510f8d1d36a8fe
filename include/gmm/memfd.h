/* SPDX-License-Identifier: MIT */
/*
 * gmm/memfd.h - host backing from memfd segments bound to host NUMA nodes.
 *
 * The pool's frames live in one memfd (pool frame number x 4 KiB is the file
 * offset): hugetlbfs (MFD_HUGETLB, 2 MiB or 1 GiB pages) when requested and
 * available, otherwise shmem advised with MADV_HUGEPAGE.  Each memory block
 * is mapped shared into the pool and bound with mbind(MPOL_BIND) to the host
 * node of its pool node; pool nodes naming host nodes that do not exist
 * (fake topologies for tests) are folded onto the online host nodes,
 * round robin.  Population is lazy (pages appear when touched) unless
 * gmm_pool_populate() is called.  Discard punches holes in the file, so
 * host memory really goes back.  Because frames are in a file, guest RAM
 * can map them a second time (gmm/guest.h).
 *
 * hugetlbfs: creating a block reserves its hugepages (a clear -ENOMEM at
 * creation or plug time when the host has too few free, never a SIGBUS
 * later); memory goes back to the host in whole hugepages only.
 */
#ifndef GMM_MEMFD_H
#define GMM_MEMFD_H

#include <stdbool.h>
#include <stdint.h>

#include <gmm/backing.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Host page sizes of gmm_memfd_config.page_size. */
#define GMM_HUGEPAGE_2M (2ull << 20)
#define GMM_HUGEPAGE_1G (1ull << 30)

/** Options of a memfd backing.  Zero-fill for shmem with no fallback. */
struct gmm_memfd_config {
	/* 0: shmem (4 KiB pages, MADV_HUGEPAGE); GMM_HUGEPAGE_2M / _1G: hugetlbfs */
	uint64_t page_size;
	/* hugetlbfs unavailable (none reserved, or too few free): use shmem */
	bool fallback_shmem;
	/* do not verify node placement of populated memory */
	bool no_verify;
};

/** Host memory of a memfd backing, for statistics. */
struct gmm_memfd_stats {
	uint64_t page_size;         /* host page size in use (4096: shmem) */
	bool hugetlb;               /* hugetlbfs (else shmem) */
	uint64_t mapped_bytes;      /* size of the present blocks */
	uint64_t allocated_bytes;   /* host memory the file holds (st_blocks) */
	unsigned int nr_host_nodes; /* host nodes online */
	/* per host node: bytes of resident pool memory (sampled with move_pages) */
	uint64_t node_bytes[64];
	/* per host node: hugepages total and free in sysfs (hugetlb only) */
	uint64_t node_huge_total[64];
	uint64_t node_huge_free[64];
	uint64_t misplaced_pages;   /* resident pages found off their bound node */
};

/** The memfd backing; its context comes from gmm_memfd_create(). */
extern const struct gmm_backing_ops gmm_backing_memfd;

/**
 * gmm_memfd_create() - create the context of a memfd backing.
 * @cfg: options (copied); NULL for shmem defaults
 * @ctx: receives the context; put it in gmm_pool_config.backing_ctx with
 *       .backing = &gmm_backing_memfd.  The pool frees it (destroy).
 *
 * Hugetlbfs availability is checked here (hugepages of the size reserved on
 * the host, or -ENOMEM unless @cfg->fallback_shmem); each block checks again
 * when it is added.
 *
 * Return: 0, -EINVAL (bad page size), -ENOMEM, or the errno of memfd_create.
 */
int gmm_memfd_create(const struct gmm_memfd_config *cfg, void **ctx);

/**
 * gmm_memfd_stats() - host memory of a memfd backing.
 * @ctx: the context from gmm_memfd_create()
 * @st:  receives the figures
 *
 * Walks the present blocks (mincore, move_pages): not for hot paths.
 *
 * Return: 0 or a negative errno.
 */
int gmm_memfd_stats(void *ctx, struct gmm_memfd_stats *st);

/**
 * gmm_host_nodes() - the online host NUMA nodes, from sysfs.
 *
 * Return: a bit mask of node numbers below 64 (node 0 when sysfs says
 * nothing).
 */
uint64_t gmm_host_nodes(void);

/**
 * gmm_hugepages_free() - free hugepages of a size on the host.
 * @page_size: GMM_HUGEPAGE_2M or GMM_HUGEPAGE_1G
 * @host_node: a host node, or -1 for all
 *
 * Return: the count from sysfs, or a negative errno when unknown.
 */
int64_t gmm_hugepages_free(uint64_t page_size, int host_node);

#ifdef __cplusplus
}
#endif
#endif
