/* SPDX-License-Identifier: MIT */
/*
 * gmm/backing.h - the host memory behind a pool, as a pluggable part.
 *
 * A pool asks its backing for host memory one memory block at a time (the
 * unit of pool growth) and tells it when frames may be given back to the
 * host.  gmm ships an anonymous backing (private memory, reserved with
 * MAP_NORESERVE and touched only when used) and a caller-memory backing;
 * memfd/hugetlbfs segments bound to host nodes plug in the same way.
 */
#ifndef GMM_BACKING_H
#define GMM_BACKING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * struct gmm_backing_ops - what a backing provides.
 * @name:         short name for statistics ("anon", "user", "memfd", ...)
 * @block_add:    provide host memory for @nr_pages frames starting at pool
 *                frame @first_pfn on host node @host_node (-1: any); store
 *                the pool's own mapping of the first frame in *@addr.
 *                Return 0 or a negative errno (set a message with
 *                gmm_set_error()).
 * @block_remove: the block is gone from the pool: release its memory.
 * @discard:      the frames are free: give their host memory back (their
 *                content is lost, they read as zero afterwards).  May be
 *                NULL when the backing cannot give memory back.
 * @destroy:      the pool is destroyed: release @ctx.  May be NULL.
 *
 * Optional callbacks (NULL when the backing cannot do it):
 * @frame_fd:     where frame @pfn lives in a file: store a descriptor and
 *                the byte offset, so that the frame can be mapped a second
 *                time (guest RAM is mapped from there, gmm/guest.h).  The
 *                descriptor stays owned by the backing.
 * @populate:     make host memory present behind the frames now (eager
 *                preallocation); must fail cleanly (-ENOMEM) when the host
 *                has no memory, never leave a later access to SIGBUS.
 * @repopulate:   an allocation is taking frames that were discarded: make
 *                them usable again (hugetlbfs: allocate the host pages so a
 *                later touch cannot SIGBUS).  Return 0 or -ENOMEM.
 * @page_order:   log2 of the host page in frames (0: 4 KiB, 9: 2 MiB,
 *                18: 1 GiB); memory goes back to the host in whole host
 *                pages, guest RAM is mapped in whole host pages.
 */
struct gmm_backing_ops {
	const char *name;
	int (*block_add)(void *ctx, uint64_t first_pfn, uint64_t nr_pages, int host_node,
			 void **addr);
	void (*block_remove)(void *ctx, uint64_t first_pfn, uint64_t nr_pages, void *addr);
	int (*discard)(void *ctx, uint64_t pfn, uint64_t nr_pages, void *addr);
	void (*destroy)(void *ctx);
	int (*frame_fd)(void *ctx, uint64_t pfn, int *fd, uint64_t *offset);
	int (*populate)(void *ctx, uint64_t pfn, uint64_t nr_pages, void *addr);
	int (*repopulate)(void *ctx, uint64_t pfn, uint64_t nr_pages, void *addr);
	unsigned int (*page_order)(void *ctx);
};

/**
 * gmm_backing_anon - anonymous private memory (the default backing).
 *
 * Each block is an mmap(MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE) mapping, so
 * memory the pool never touches costs nothing; discard is MADV_DONTNEED.
 * Use with a NULL context.
 */
extern const struct gmm_backing_ops gmm_backing_anon;

/**
 * struct gmm_user_memory - context of gmm_backing_user.
 * @base:  caller-provided memory, page aligned
 * @bytes: its size
 *
 * Block addresses are @base plus the block's offset in the pool; the pool's
 * memory must fit in @bytes.  The memory stays the caller's: nothing is
 * discarded or unmapped.
 */
struct gmm_user_memory {
	void *base;
	size_t bytes;
};

/** gmm_backing_user - memory the caller provides (context: gmm_user_memory). */
extern const struct gmm_backing_ops gmm_backing_user;

/**
 * gmm_set_error() - set this thread's error message (printf format).
 * @err: the negative errno value to return
 * @fmt: message format
 *
 * For backings and other plug-ins that report errors through gmm.
 *
 * Return: @err, for "return gmm_set_error(-EINVAL, ...)".
 */
int gmm_set_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
