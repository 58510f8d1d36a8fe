/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/guest_fixtures.h - pools, userfaultfds and guests the guest migration
 * and collapse tests share (test_migrate.c, test_collapse.c).  Failures
 * end the test through CHECK.
 */
#ifndef GMM_TESTS_GUEST_FIXTURES_H
#define GMM_TESTS_GUEST_FIXTURES_H

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gmm/gmm.h>

#include "../check.h"
#include "../sysfs_long.h"

/* A pool of @bytes on a memfd of @page_size pages (4 KiB shmem or 2 MiB hugetlbfs). */
static inline struct gmm_pool *memfd_pool(uint64_t page_size, uint64_t bytes)
{
	struct gmm_memfd_config mc = { .page_size = page_size };
	struct gmm_pool_config cfg;
	struct gmm_pool *p = NULL;
	void *ctx;

	CHECK(gmm_memfd_create(&mc, &ctx) == 0);
	gmm_pool_config_init(&cfg, bytes);
	cfg.block_bytes = 8 << 20;
	cfg.backing = &gmm_backing_memfd;
	cfg.backing_ctx = ctx;
	CHECK(gmm_pool_create(&cfg, &p) == 0);
	return p;
}

/* A userfaultfd that can write-protect shmem and hugetlbfs (root, Linux 5.19+);
 * its features in @features. */
static inline int uffd_wp_open(uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	CHECK(fd >= 0);
	CHECK(ioctl(fd, UFFDIO_API, &api) == 0);
	*features = api.features;
	return fd;
}

/* A guest of @ram bytes at gpa 0 on node 0, backed 4 KiB at a time (no 2 MiB
 * faults) and populated; its memslot in @s. */
static inline struct gmm_guest *guest_4k(struct gmm_pool *p, uint64_t ram,
					 struct gmm_memslot *s)
{
	struct gmm_guest_config gc;
	struct gmm_guest *g;

	gmm_guest_config_init(&gc);
	gc.huge_fault = false;
	CHECK(gmm_guest_create(p, &gc, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, ram, 0, s) == 0);
	CHECK(gmm_guest_populate(g, 0, ram) == 0);
	return g;
}

/*
 * A guest of @ram bytes at gpa 0 (default configuration), populated, on a
 * new pool of @pool_bytes over 2 MiB hugetlbfs pages: @want hugepages are
 * reserved first (hugepages_give_back() returns them).  The pool in *@p,
 * the memslot in @s.
 */
static inline struct gmm_guest *hugetlb_guest(uint64_t ram, uint64_t pool_bytes, long want,
					      struct gmm_pool **p, struct gmm_memslot *s)
{
	struct gmm_guest *g;

	CHECK(hugepages_reserve(want) == 0);
	CHECK(gmm_hugepages_free(GMM_HUGEPAGE_2M, -1) >= (int64_t)want);
	*p = memfd_pool(GMM_HUGEPAGE_2M, pool_bytes);
	CHECK(gmm_guest_create(*p, NULL, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, ram, 0, s) == 0);
	CHECK(gmm_guest_populate(g, 0, ram) == 0);
	return g;
}

#endif
