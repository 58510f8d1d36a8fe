/* SPDX-License-Identifier: MIT */
/*
 * tests/test-backing.c - host backing and guest address space without KVM:
 * memfd pools on shmem and hugetlbfs, map/write/discard/re-fault with data
 * and host memory checks, free page reporting (worker and direct), the
 * reported bit and GMM_ZERO, pool hotplug, eager population, bad input.
 *
 * The hugetlbfs part reserves 2 MiB hugepages through
 * /proc/sys/vm/nr_hugepages (root) and restores the old value at exit,
 * also when a check fails or a signal arrives.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <gmm/gmm.h>

#include "../check.h"

#include "../sysfs_long.h"

#define MIB (1ull << 20)

static const char *nr_huge_path = "/proc/sys/vm/nr_hugepages";
static long saved_huge = -1;

static void restore_huge(void)
{
	if (saved_huge >= 0)
		write_long(nr_huge_path, saved_huge);
}

static void on_signal(int sig)
{
	restore_huge();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Resident pages of [addr, addr+len) in this process's view. */
static uint64_t resident(void *addr, size_t len)
{
	size_t n = len / 4096;
	unsigned char *v = malloc(n);
	uint64_t r = 0;

	CHECK(v && mincore(addr, len, v) == 0);
	for (size_t i = 0; i < n; i++)
		r += v[i] & 1;
	free(v);
	return r;
}

static uint64_t file_bytes(void *ctx)
{
	struct gmm_memfd_stats st;

	CHECK(gmm_memfd_stats(ctx, &st) == 0);
	return st.allocated_bytes;
}

static struct gmm_pool *make_pool(uint64_t page_size, uint64_t bytes, uint64_t hotplug,
				  void **ctx)
{
	struct gmm_memfd_config mc = { .page_size = page_size };
	struct gmm_pool_config cfg;
	struct gmm_pool *p = NULL;

	CHECK(gmm_memfd_create(&mc, ctx) == 0);
	gmm_pool_config_init(&cfg, bytes);
	cfg.nodes[0].hotplug_bytes = hotplug;
	cfg.nodes[0].host_node = 3; /* a fake node: folded onto an online one */
	cfg.backing = &gmm_backing_memfd;
	cfg.backing_ctx = *ctx;
	CHECK(gmm_pool_create(&cfg, &p) == 0);
	return p;
}

static void fill(uint8_t *buf, uint64_t gpa, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((gpa + i) * 7 + 1);
}

/* Map, write, read back through every path, check owner and host memory. */
static void test_map_write(struct gmm_pool *p, struct gmm_guest *g, struct gmm_memslot *s)
{
	static uint8_t a[3 * 4096], b[3 * 4096];
	struct gmm_guest_stats st;
	unsigned int id;
	uint64_t gfn, pfn;

	CHECK(resident(s->hva, s->size) == 0);
	fill(a, 0x1000, sizeof(a));
	CHECK(gmm_guest_write(g, 0x1000, a, sizeof(a)) == 0);
	CHECK(gmm_guest_read(g, 0x1000, b, sizeof(b)) == 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK(memcmp((char *)s->hva + 0x1000, a, sizeof(a)) == 0);
	pfn = gmm_guest_gpa_to_pfn(g, 0x2000);
	CHECK(pfn != GMM_PFN_NONE);
	CHECK(memcmp(gmm_pfn_to_host(p, pfn), a + 4096, 4096) == 0);
	CHECK(gmm_frame_owner(p, pfn, &id, &gfn) == 0);
	CHECK(id == gmm_guest_id(g) && gfn == 2);
	/* the first touch of an unbacked 2 MiB range took an aligned block */
	CHECK(gmm_guest_stats(g, &st) == 0);
	CHECK(st.huge_bytes == 2 * MIB && st.backed_pages == 512 && st.mappings == 1);
	CHECK(resident(s->hva, 2 * MIB) == 3); /* lazily populated: what was touched */
	CHECK(gmm_guest_gpa_to_pfn(g, 0) % 512 == 0);
}

static void test_discard_refault(struct gmm_pool *p, void *ctx, struct gmm_guest *g,
				 struct gmm_memslot *s)
{
	struct gmm_report_stats rs;
	uint8_t page[4096], zero[4096] = { 0 };
	uint64_t before, pfn;
	unsigned int id;
	uint64_t gfn;

	/* touch 8 MiB at 4 MiB: four 2 MiB blocks, fully written */
	for (uint64_t gpa = 4 * MIB; gpa < 12 * MIB; gpa += 4096) {
		fill(page, gpa, sizeof(page));
		CHECK(gmm_guest_write(g, gpa, page, sizeof(page)) == 0);
	}
	CHECK(resident((char *)s->hva + 4 * MIB, 8 * MIB) == 2048);
	before = file_bytes(ctx);
	CHECK(before >= 8 * MIB);
	/* one 4 KiB page out of a 2 MiB block (split), then 4 MiB whole */
	pfn = gmm_guest_gpa_to_pfn(g, 5 * MIB);
	CHECK(gmm_guest_discard(g, 5 * MIB, 4096) == 0);
	CHECK(gmm_guest_gpa_to_pfn(g, 5 * MIB) == GMM_PFN_NONE);
	CHECK(gmm_frame_owner(p, pfn, &id, &gfn) == -ENOENT);
	CHECK(gmm_guest_discard(g, 8 * MIB, 4 * MIB) == 0);
	CHECK(resident((char *)s->hva + 8 * MIB, 4 * MIB) == 0);
	CHECK(gmm_pool_check(p) == 0);
	/* host memory goes back once reported */
	CHECK(gmm_report_now(p, NULL) >= (int64_t)(4 * MIB));
	CHECK(file_bytes(ctx) <= before - 4 * MIB);
	CHECK(gmm_report_stats(p, &rs) == 0);
	CHECK(rs.free_reported >= 4 * MIB);
	CHECK(gmm_pool_check(p) == 0);
	/* re-fault: discarded pages read zero, the rest kept its data */
	CHECK(gmm_guest_read(g, 5 * MIB, page, sizeof(page)) == 0);
	CHECK(memcmp(page, zero, sizeof(page)) == 0);
	CHECK(gmm_guest_read(g, 10 * MIB, page, sizeof(page)) == 0);
	CHECK(memcmp(page, zero, sizeof(page)) == 0);
	CHECK(gmm_guest_read(g, 5 * MIB + 4096, page, sizeof(page)) == 0);
	fill(zero, 5 * MIB + 4096, sizeof(zero));
	CHECK(memcmp(page, zero, sizeof(page)) == 0);
	CHECK(gmm_guest_fault(g, 9 * MIB + 8, 4, true, "\x11\x22\x33\x44") == 0);
	CHECK(((uint8_t *)s->hva)[9 * MIB + 9] == 0x22);
}

/* The reported bit: a reported block is zero and skips GMM_ZERO's memset. */
static void test_reported_zero(struct gmm_pool *p)
{
	uint64_t pfn = gmm_alloc(p, 9, GMM_MOVABLE, 0), pfn2;
	uint8_t *m;

	CHECK(pfn != GMM_PFN_NONE);
	m = gmm_pfn_to_host(p, pfn);
	memset(m, 0xab, 2 * MIB);
	CHECK(gmm_free(p, pfn, 9) == 0);
	CHECK(gmm_report_now(p, NULL) >= (int64_t)(2 * MIB));
	pfn2 = gmm_alloc(p, 9, GMM_MOVABLE, 0);
	CHECK(pfn2 != GMM_PFN_NONE);
	m = gmm_pfn_to_host(p, pfn2);
	CHECK(m[0] == 0 && m[2 * MIB - 1] == 0 && m[12345] == 0);
	CHECK(gmm_free(p, pfn2, 9) == 0);
	CHECK(gmm_pool_check(p) == 0);
}

/* The worker reports after its delay; host memory follows. */
static void test_worker(struct gmm_pool *p, void *ctx)
{
	struct gmm_report_config rc = { .delay_ms = 50 };
	uint64_t pfns[8], before;
	struct timespec t0, t1;
	double secs;

	CHECK(gmm_report_now(p, NULL) >= 0);
	CHECK(gmm_report_start(p, &rc) == 0);
	CHECK(gmm_report_start(p, &rc) == -EBUSY);
	usleep(200000); /* the first pass (free memory present at start) is done */
	for (int i = 0; i < 8; i++) {
		pfns[i] = gmm_alloc(p, 9, GMM_MOVABLE, 0);
		CHECK(pfns[i] != GMM_PFN_NONE);
		memset(gmm_pfn_to_host(p, pfns[i]), 1, 2 * MIB);
	}
	before = file_bytes(ctx);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 8; i++)
		CHECK(gmm_free(p, pfns[i], 9) == 0);
	do {
		usleep(5000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	} while (file_bytes(ctx) > before - 16 * MIB && secs < 3);
	CHECK(file_bytes(ctx) <= before - 16 * MIB);
	CHECK(secs >= 0.045);
	gmm_report_stop(p);
	CHECK(gmm_pool_check(p) == 0);
}

static void progress(void *arg, uint64_t done, uint64_t total)
{
	uint64_t *last = arg;

	CHECK(done <= total && done >= *last);
	*last = done;
}

/* Hotplug a block, use it, fail to remove it while used, remove it empty. */
static void test_hotplug(struct gmm_pool *p, void *ctx)
{
	uint64_t n0 = gmm_pool_nr_pages(p), first, pfn, last = 0;

	CHECK(gmm_pool_add_block(p, 0, GMM_ZONE_MOVABLE, &first) == 0);
	CHECK(gmm_pool_nr_pages(p) == n0 + 32768);
	CHECK(gmm_pool_add_block(p, 0, GMM_ZONE_MOVABLE, NULL) == -ENOSPC);
	CHECK(gmm_pool_populate(p, first, 32768, 2, progress, &last) == 0);
	CHECK(last == 128 * MIB);
	(void)ctx;
	/* ZONE_MOVABLE comes first in the zonelist for movable allocations */
	pfn = gmm_alloc(p, 0, GMM_MOVABLE, 0);
	CHECK(pfn >= first && pfn < first + 32768);
	CHECK(gmm_pool_remove_block(p, first) == -EBUSY);
	CHECK(gmm_pool_check(p) == 0);
	CHECK(gmm_free(p, pfn, 0) == 0);
	CHECK(gmm_pool_remove_block(p, first) == 0);
	CHECK(gmm_pool_nr_pages(p) == n0);
	CHECK(gmm_pool_remove_block(p, first) == -EINVAL);
	CHECK(gmm_pool_check(p) == 0);
	CHECK(gmm_pool_add_block(p, 0, GMM_ZONE_MOVABLE, &pfn) == 0 && pfn == first);
}

static void test_bad_input(struct gmm_pool *p, struct gmm_guest *g)
{
	uint8_t buf[16];
	uint32_t v;

	CHECK(gmm_guest_write(g, 64 * MIB - 4, buf, 8) == -EFAULT);
	CHECK(gmm_guest_read(g, 1ull << 40, buf, 1) == -EFAULT);
	CHECK(gmm_guest_discard(g, 4097, 4096) == -EINVAL);
	CHECK(gmm_guest_discard(g, 60 * MIB, 8 * MIB) == -EFAULT);
	CHECK(gmm_guest_fault(g, 0x1000, 16, true, buf) == -EINVAL);
	CHECK(gmm_guest_fault(g, 0x1000, 4, true, NULL) == -EINVAL);
	CHECK(gmm_guest_fault(g, 128 * MIB, 4, false, &v) == -EFAULT);
	CHECK(gmm_guest_ptr(g, 63 * MIB, 2 * MIB) == NULL);
	CHECK(gmm_guest_add_ram(g, 32 * MIB, 2 * MIB, 0, NULL) == -EINVAL);
	CHECK(gmm_guest_add_ram(g, 65 * MIB, 2 * MIB, 0, NULL) == -EINVAL);
	CHECK(gmm_guest_add_ram(g, 64 * MIB, 2 * MIB, 5, NULL) == -EINVAL);
	CHECK(gmm_guest_populate(g, 62 * MIB, 4 * MIB) == -EFAULT);
	CHECK(gmm_pool_remove_block(p, 12345) == -EINVAL);
	CHECK(gmm_pool_add_block(p, 7, GMM_ZONE_MOVABLE, NULL) == -EINVAL);
	CHECK(gmm_report_now(NULL, NULL) == -EINVAL);
}

static void test_shmem(void)
{
	struct gmm_guest_stats st;
	struct gmm_memslot s;
	struct gmm_guest *g;
	struct gmm_pool *p;
	void *ctx;

	p = make_pool(0, 256 * MIB, 128 * MIB, &ctx);
	CHECK(gmm_guest_create(p, NULL, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, 64 * MIB, 0, &s) == 0);
	CHECK(s.slot == 0 && s.size == 64 * MIB && ((uintptr_t)s.hva & (2 * MIB - 1)) == 0);
	test_map_write(p, g, &s);
	test_discard_refault(p, ctx, g, &s);
	test_bad_input(p, g);
	CHECK(gmm_guest_populate(g, 32 * MIB, 8 * MIB) == 0);
	CHECK(gmm_guest_stats(g, &st) == 0);
	CHECK(st.backed_pages >= 2048 + 512);
	printf("shmem guest: %llu pages backed, %llu MiB on 2 MiB blocks, %llu mappings\n",
	       (unsigned long long)st.backed_pages, (unsigned long long)(st.huge_bytes >> 20),
	       (unsigned long long)st.mappings);
	gmm_guest_destroy(g);
	CHECK(gmm_pool_nr_free(p) == gmm_pool_nr_pages(p));
	test_reported_zero(p);
	test_worker(p, ctx);
	test_hotplug(p, ctx);
	CHECK(gmm_report_now(p, NULL) >= 0);
	CHECK(file_bytes(ctx) == 0);
	gmm_pool_destroy(p);
}

/* A guest that runs out of memory says so, with the allocator's reason. */
static void test_oom_message(void)
{
	struct gmm_guest *g;
	struct gmm_pool *p;
	const char *msg;
	void *ctx;

	p = make_pool(0, 128 * MIB, 0, &ctx);
	CHECK(gmm_guest_create(p, NULL, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, 256 * MIB, 0, NULL) == 0);
	CHECK(gmm_guest_populate(g, 0, 256 * MIB) == -ENOMEM);
	msg = gmm_last_error();
	printf("out of memory: \"%s\"\n", msg);
	CHECK(strncmp(msg, "guest: no frame for gpa 0x", 26) == 0);
	CHECK(strstr(msg + 1, "guest: no frame") == NULL);
	CHECK(strstr(msg, "order 0") != NULL);
	gmm_guest_destroy(g);
	CHECK(gmm_pool_nr_free(p) == gmm_pool_nr_pages(p));
	gmm_pool_destroy(p);
}

/* hugetlbfs: none free gives clear errors; with pages reserved, map and report. */
static void test_hugetlb(void)
{
	struct gmm_memfd_config mc = { .page_size = GMM_HUGEPAGE_2M };
	struct gmm_pool_config cfg;
	struct gmm_memslot s;
	struct gmm_guest *g;
	struct gmm_pool *p;
	uint8_t page[4096];
	int64_t free0;
	void *ctx;

	saved_huge = read_long(nr_huge_path);
	if (saved_huge < 0 || write_long(nr_huge_path, saved_huge) != 0) {
		printf("SKIP hugetlb part: cannot write %s (not root?)\n", nr_huge_path);
		return;
	}
	atexit(restore_huge);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGABRT, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGBUS, on_signal);
	CHECK(write_long(nr_huge_path, 0) == 0);
	CHECK(gmm_memfd_create(&mc, &ctx) == -ENOMEM);
	CHECK(strstr(gmm_last_error(), "hugepages") != NULL);
	printf("no hugepages: \"%s\"\n", gmm_last_error());
	CHECK(write_long(nr_huge_path, 16) == 0);
	CHECK(gmm_memfd_create(&mc, &ctx) == 0);
	gmm_pool_config_init(&cfg, 128 * MIB);
	cfg.backing = &gmm_backing_memfd;
	cfg.backing_ctx = ctx;
	CHECK(gmm_pool_create(&cfg, &p) == -ENOMEM);
	CHECK(strstr(gmm_last_error(), "hugepages") != NULL);
	printf("too few hugepages: \"%s\"\n", gmm_last_error());
	gmm_backing_memfd.destroy(ctx); /* the failed create left it to us */
	if (write_long(nr_huge_path, 64) != 0 || read_long(nr_huge_path) < 64) {
		printf("SKIP hugetlb mapping: the host gave fewer than 64 hugepages\n");
		return;
	}
	p = make_pool(GMM_HUGEPAGE_2M, 128 * MIB, 0, &ctx);
	free0 = gmm_hugepages_free(GMM_HUGEPAGE_2M, -1);
	CHECK(gmm_guest_create(p, NULL, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, 32 * MIB, 0, &s) == 0);
	for (uint64_t gpa = 0; gpa < 8 * MIB; gpa += 4096) {
		fill(page, gpa, sizeof(page));
		CHECK(gmm_guest_write(g, gpa, page, sizeof(page)) == 0);
	}
	CHECK(gmm_hugepages_free(GMM_HUGEPAGE_2M, -1) == free0 - 4);
	CHECK(gmm_guest_discard(g, 4096, 8192) == 0); /* inside a host page: kept */
	CHECK(gmm_guest_gpa_to_pfn(g, 4096) != GMM_PFN_NONE);
	CHECK(gmm_guest_discard(g, 2 * MIB, 4 * MIB) == 0);
	CHECK(gmm_report_now(p, NULL) >= (int64_t)(4 * MIB));
	CHECK(gmm_hugepages_free(GMM_HUGEPAGE_2M, -1) == free0 - 2);
	CHECK(gmm_guest_read(g, 3 * MIB, page, sizeof(page)) == 0 && page[7] == 0);
	CHECK(gmm_guest_read(g, 6 * MIB + 4096, page, sizeof(page)) == 0);
	CHECK(page[7] == (uint8_t)((6 * MIB + 4096 + 7) * 7 + 1));
	CHECK(gmm_hugepages_free(GMM_HUGEPAGE_2M, -1) == free0 - 3);
	CHECK(gmm_pool_check(p) == 0);
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	printf("hugetlb: ok (free hugepages followed use)\n");
}

int main(void)
{
	test_shmem();
	test_oom_message();
	test_hugetlb();
	printf("PASS\n");
	return 0;
}
