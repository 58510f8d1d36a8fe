/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-backing.c - benchmarks of the host backing and the guest
 * address space, each against a baseline measured in the same run:
 *   prealloc  gmm_pool_populate() GiB/s vs mmap(MAP_POPULATE) of a memfd
 *   fault     first touch per 4 KiB / 2 MiB through gmm_guest_fault() vs a
 *             plain anonymous mapping
 *   scaling   4 KiB faults per second from 1 and 2 attached threads in one region
 *   report    after freeing X MiB, time until 95% (and 50/90/100%) is back
 *             on the host (memfd st_blocks) with the default 2 s delay
 * Usage: bench-backing [MiB]   (default 1024); --help
 * The hugetlbfs fault case raises /proc/sys/vm/nr_hugepages for its run
 * (it says so) and restores it.
 */
#include "bench_clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <gmm/gmm.h>

#include "../tests/sysfs_long.h"

#define MIB (1ull << 20)

/* A pool over a memfd: shmem, or hugetlbfs with @page_size 2 MiB. */
static struct gmm_pool *pool_paged(uint64_t bytes, uint64_t page_size, void **ctx)
{
	struct gmm_memfd_config mc = { .page_size = page_size };
	struct gmm_pool_config cfg;
	struct gmm_pool *p;

	if (gmm_memfd_create(&mc, ctx))
		return NULL;
	gmm_pool_config_init(&cfg, bytes);
	cfg.backing = &gmm_backing_memfd;
	cfg.backing_ctx = *ctx;
	if (gmm_pool_create(&cfg, &p)) {
		gmm_backing_memfd.destroy(*ctx);
		return NULL;
	}
	return p;
}

static struct gmm_pool *pool(uint64_t bytes, void **ctx)
{
	return pool_paged(bytes, 0, ctx);
}

static uint64_t file_bytes(void *ctx)
{
	struct gmm_memfd_stats st;

	gmm_memfd_stats(ctx, &st);
	return st.allocated_bytes;
}

/*
 * Touch @bytes once and give them back, so that both sides of a comparison
 * find the host's memory in the same state (on a virtual machine the first
 * touch of guest-physical memory also faults in the hypervisor).
 */
static void warm_up(uint64_t bytes)
{
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (m != MAP_FAILED)
		munmap(m, bytes);
}

static int bench_prealloc(uint64_t bytes, unsigned int threads)
{
	double t0, gmm, base;
	struct gmm_pool *p;
	void *ctx, *m;
	int fd;

	warm_up(bytes + (bytes >> 3));
	p = pool(bytes, &ctx);
	if (!p)
		return 1;
	t0 = now_s();
	if (gmm_pool_populate(p, 0, UINT64_MAX, threads, NULL, NULL))
		return 1;
	gmm = (double)bytes / (now_s() - t0) / (1 << 30);
	gmm_pool_destroy(p);
	fd = (int)syscall(SYS_memfd_create, "base", 0);
	if (fd < 0 || ftruncate(fd, (off_t)bytes))
		return 1;
	t0 = now_s();
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (m == MAP_FAILED)
		return 1;
	base = (double)bytes / (now_s() - t0) / (1 << 30);
	munmap(m, bytes);
	close(fd);
	printf("prealloc %llu MiB shmem: gmm_pool_populate (%s) %.2f GiB/s, "
	       "mmap(MAP_POPULATE) %.2f GiB/s, ratio %.2f\n", (unsigned long long)(bytes >> 20),
	       threads == 1 ? "1 thread" : "a thread per CPU", gmm, base, gmm / base);
	return 0;
}

/* First touch of @bytes of guest RAM in 4 KiB or 2 MiB faults (on @page_size host pages). */
static double gmm_touch(uint64_t bytes, bool huge, uint64_t page_size)
{
	struct gmm_guest_config gc;
	struct gmm_memslot s;
	struct gmm_guest *g;
	struct gmm_pool *p;
	uint64_t v = 1;
	double t0, t;
	void *ctx;

	warm_up(bytes + 128 * MIB);
	p = pool_paged(bytes + 128 * MIB, page_size, &ctx);
	gmm_guest_config_init(&gc);
	gc.huge_fault = huge;
	if (!p || gmm_guest_create(p, &gc, &g) || gmm_guest_add_ram(g, 0, bytes, 0, &s))
		return -1;
	t0 = now_s();
	for (uint64_t gpa = 0; gpa < bytes; gpa += 4096) {
		/* the vCPU exit path: back + complete the access, then the guest runs on */
		if (gmm_guest_gpa_to_pfn(g, gpa) == GMM_PFN_NONE)
			gmm_guest_fault(g, gpa, 8, true, &v);
		else
			((volatile uint64_t *)s.hva)[gpa / 8] = v;
	}
	t = now_s() - t0;
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	return t;
}

static double anon_touch(uint64_t bytes, bool huge)
{
	char *m;
	double t0, t;

	warm_up(bytes + 128 * MIB);
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	madvise(m, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	t0 = now_s();
	for (uint64_t off = 0; off < bytes; off += 4096)
		((volatile char *)m)[off] = 1;
	t = now_s() - t0;
	munmap(m, bytes);
	return t;
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

/* The 2 MiB case on hugetlbfs, with hugepages reserved for it and restored. */
static double gmm_touch_hugetlb(uint64_t bytes)
{
	long old = read_long(NR_HUGEPAGES), want = (long)((bytes + 128 * MIB) >> 21) + 8;
	double t = -1;

	if (old < 0)
		goto out;
	printf("hugetlbfs case: raising %s from %ld to %ld for this run (restored after)\n",
	       NR_HUGEPAGES, old, old + want);
	if (write_long(NR_HUGEPAGES, old + want) || read_long(NR_HUGEPAGES) < old + want)
		goto out;
	t = gmm_touch(bytes, true, GMM_HUGEPAGE_2M);
out:
	if (old >= 0)
		write_long(NR_HUGEPAGES, old);
	return t;
}

static void bench_fault(uint64_t bytes)
{
	double g4 = gmm_touch(bytes, false, 0), a4 = anon_touch(bytes, false);
	double g2 = gmm_touch(bytes, true, 0), a2 = anon_touch(bytes, true);
	double h2 = gmm_touch_hugetlb(bytes);
	double n4 = (double)(bytes >> 12), n2 = (double)(bytes >> 21);

	printf("first touch per 4 KiB: gmm %.2f us, anonymous %.2f us, ratio %.2f\n",
	       g4 / n4 * 1e6, a4 / n4 * 1e6, g4 / a4);
	printf("first touch per 2 MiB (all 512 pages written): gmm on shmem %.1f us, anonymous "
	       "(MADV_HUGEPAGE) %.1f us, ratio %.2f\n", g2 / n2 * 1e6, a2 / n2 * 1e6, g2 / a2);
	if (h2 < 0)
		printf("first touch per 2 MiB on hugetlbfs: SKIP (cannot reserve 2 MiB hugepages)\n");
	else
		printf("first touch per 2 MiB (all 512 pages written): gmm on hugetlbfs %.1f us, "
		       "anonymous (MADV_HUGEPAGE) %.1f us, ratio %.2f\n", h2 / n2 * 1e6,
		       a2 / n2 * 1e6, h2 / a2);
}

static int bench_report(uint64_t bytes)
{
	uint64_t n = bytes >> 21, *pfns = calloc(n, sizeof(*pfns)), start, left;
	double t0, t50 = 0, t90 = 0, t95 = 0, t100 = 0;
	struct gmm_pool *p;
	void *ctx;

	p = pool(bytes + 128 * MIB, &ctx);
	if (!p || !pfns || gmm_report_start(p, NULL))
		return 1;
	for (uint64_t i = 0; i < n; i++) {
		pfns[i] = gmm_alloc(p, 9, GMM_MOVABLE, 0);
		if (pfns[i] == GMM_PFN_NONE)
			return 1;
		memset(gmm_pfn_to_host(p, pfns[i]), 1, 2 * MIB);
	}
	usleep(2500000); /* the start-up pass is over */
	start = file_bytes(ctx);
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++)
		gmm_free(p, pfns[i], 9);
	while (now_s() - t0 < 10) {
		double t = now_s() - t0;

		left = file_bytes(ctx);
		if (!t50 && left <= start - bytes / 2)
			t50 = t;
		if (!t90 && left <= start - bytes * 9 / 10)
			t90 = t;
		if (!t95 && left <= start - bytes * 95 / 100)
			t95 = t;
		if (left <= start - bytes) {
			t100 = t;
			break;
		}
		usleep(1000);
	}
	printf("report %llu MiB freed (delay 2 s): 95%% back on the host after %.3f s "
	       "(50%% %.3f s, 90%% %.3f s, 100%% %.3f s; 0: not within 10 s); host memory "
	       "%llu -> %llu MiB\n", (unsigned long long)(bytes >> 20), t95, t50, t90, t100,
	       (unsigned long long)(start >> 20), (unsigned long long)(file_bytes(ctx) >> 20));
	gmm_pool_destroy(p);
	free(pfns);
	return 0;
}

/* --- fault scaling: vCPU threads faulting concurrently ---------------------- */

struct fault_worker {
	struct gmm_guest *guest;
	struct gmm_pool *pool;
	uint64_t first, end; /* gpa range, interleaved with the other workers' */
	unsigned int stride;
};

static void *fault_worker(void *arg)
{
	struct fault_worker *w = arg;
	uint64_t v = 1;

	gmm_thread_attach(w->pool);
	/* each worker takes every stride-th 2 MiB chunk: neighbours share regions */
	for (uint64_t c = w->first; c < w->end; c += (uint64_t)w->stride << 21)
		for (uint64_t gpa = c; gpa < c + (2ull << 20); gpa += 4096) {
			gmm_guest_fault(w->guest, gpa, 8, true, &v);
			gmm_thread_quiescent();
		}
	gmm_thread_detach(w->pool);
	return NULL;
}

/* 4 KiB faults per second with @threads vCPU-like threads in one region. */
static double fault_rate(uint64_t bytes, unsigned int threads)
{
	struct fault_worker w[8];
	struct gmm_guest_config gc;
	struct gmm_memslot s;
	struct gmm_guest *g;
	struct gmm_pool *p;
	pthread_t t[8];
	double t0, t1;
	void *ctx;

	warm_up(bytes + 128 * MIB);
	p = pool(bytes + 128 * MIB, &ctx);
	gmm_guest_config_init(&gc);
	gc.huge_fault = false;
	if (!p || gmm_guest_create(p, &gc, &g) || gmm_guest_add_ram(g, 0, bytes, 0, &s))
		return -1;
	t0 = now_s();
	for (unsigned int i = 0; i < threads; i++) {
		w[i] = (struct fault_worker){ g, p, (uint64_t)i << 21, bytes, threads };
		pthread_create(&t[i], NULL, fault_worker, &w[i]);
	}
	for (unsigned int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	t1 = now_s();
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	return (double)(bytes >> 12) / (t1 - t0);
}

static void bench_fault_scaling(uint64_t bytes)
{
	double one = fault_rate(bytes, 1), two = fault_rate(bytes, 2);

	printf("fault scaling (4 KiB faults, one region, attached threads): 1 thread %.0f/s, "
	       "2 threads %.0f/s, ratio %.2f\n", one, two, two / one);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-backing [MiB]   (default 1024, rounded up to 128 MiB)\n"
		"Benchmarks of the host backing and the guest address space, each with a\n"
		"baseline of the same run: eager population vs mmap(MAP_POPULATE), first\n"
		"touch vs anonymous memory (4 KiB, 2 MiB, 2 MiB on hugetlbfs), fault scaling\n"
		"1 -> 2 threads, and the time until freed memory is back on the host.\n"
		"The hugetlbfs case raises /proc/sys/vm/nr_hugepages for its run (root).\n");
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024, bytes;
	char *end;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 1) {
		mib = strtoull(argv[1], &end, 0);
		if (argc > 2 || *end || !mib || mib > (1ull << 20)) {
			fprintf(stderr, "bench-backing: bad argument '%s'\n", argv[argc > 2 ? 2 : 1]);
			usage(stderr);
			return 2;
		}
	}
	bytes = ((mib + 127) / 128 * 128) * MIB;

	if (bench_prealloc(bytes, 1) || bench_prealloc(bytes, 0)) {
		fprintf(stderr, "prealloc failed: %s\n", gmm_last_error());
		return 1;
	}
	bench_fault(bytes < 512 * MIB ? bytes : 512 * MIB);
	bench_fault_scaling(bytes < 512 * MIB ? bytes : 512 * MIB);
	if (bench_report(bytes)) {
		fprintf(stderr, "report failed: %s\n", gmm_last_error());
		return 1;
	}
	return 0;
}
