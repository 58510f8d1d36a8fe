/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/test_collapse.c - collapse onto 2 MiB blocks and khugepaged,
 * without KVM.
 *
 *  - khugepaged collapses scattered chunks of a shmem guest while writer
 *    threads write checked patterns through the guest mapping (no lost
 *    write), with each write stop (mprotect, uffd-wp, the pause with the
 *    writers standing in for vCPUs), skips the chunks with a pinned page or a gmm_guest_ptr() page,
 *    and its counters and the guest's agree;
 *  - the guest's count of host mappings equals a recount of the kernel's
 *    (/proc/self/maps) after collapse and after migration;
 *  - max_ptes_none: chunks with unbacked pages are collapsed only up to it,
 *    the added pages read zero, a wholly unbacked chunk never;
 *  - a guest whose unbacked pages are userfaultfd placeholders: holes
 *    filled by collapse (max_ptes_none 511), the mapping count still right;
 *  - hugetlbfs: khugepaged beside compaction under writers: nothing to
 *    collapse, no lost write;
 *  - start/stop/configure: errors, repeated starts and stops, a guest
 *    destroyed and the pool destroyed while the thread runs (TSan);
 *  - concurrent pin/unpin of one page: the count never wraps.
 *
 * The hugetlbfs part reserves hugepages through /proc/sys/vm/nr_hugepages
 * (root) and restores the old value at exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>
#include <gmm/migrate.h>

#include "../../tools/guest_writer.h"
#include "../check.h"
#include "guest_fixtures.h"
#include "../sysfs_long.h"

#define MIB (1ull << 20)
#define CHUNK (2 * MIB)
#define NR_WRITERS 2
#define WAIT_STEP_US 2000
#define WAIT_STEPS 60000 /* a hang guard (120 s), not a speed limit */

/* A 4 KiB-faulting guest with write stop @mode (uffd-wp: on @uffd). */
static struct gmm_guest *guest_stop(struct gmm_pool *p, uint64_t ram, int mode, int uffd,
				    uint64_t features, struct gmm_memslot *s)
{
	struct gmm_guest_config gc;
	struct gmm_guest *g;
	struct gmm_wstop_stats ws;

	gmm_guest_config_init(&gc);
	gc.huge_fault = false;
	gc.write_stop = mode;
	gc.uffd = uffd;
	gc.uffd_features = features;
	CHECK(gmm_guest_create(p, &gc, &g) == 0);
	if (mode == GMM_WSTOP_PAUSE)
		CHECK(gmm_guest_set_pause(g, gw_pause_ops(), NULL) == 0);
	CHECK(gmm_guest_wstop_stats(g, &ws) == 0);
	CHECK(mode == GMM_WSTOP_DEFAULT || ws.mode == mode);
	CHECK(gmm_guest_add_ram(g, 0, ram, 0, s) == 0);
	CHECK(gmm_guest_populate(g, 0, ram) == 0);
	return g;
}

/* The kernel's mappings in [hva, hva + size): lines of /proc/self/maps. */
static uint64_t recount_maps(const void *hva, uint64_t size)
{
	uintptr_t lo = (uintptr_t)hva, hi = lo + size;
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	uint64_t n = 0;

	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		uintptr_t a, b;

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &a, &b) == 2 && a < hi && b > lo)
			n++;
	}
	fclose(f);
	return n;
}

static void check_maps_count(struct gmm_guest *g, const struct gmm_memslot *s)
{
	struct gmm_guest_stats st;
	uint64_t real = recount_maps(s->hva, s->size);

	CHECK(gmm_guest_stats(g, &st) == 0);
	if (st.host_mappings != real)
		printf("host mappings: guest counts %llu, the kernel has %llu\n",
		       (unsigned long long)st.host_mappings, (unsigned long long)real);
	CHECK_EQ(st.host_mappings, real);
}

/* Put every 7th page on another frame: discard them, re-back them in a
 * shuffled order (the allocator hands frames back in its own order). */
static void scatter(struct gmm_guest *g, uint64_t ram)
{
	uint64_t n = (ram / GMM_PAGE_SIZE + 6) / 7, k = n % 37 ? 37 : 41;

	for (uint64_t gpa = 0; gpa < ram; gpa += 7 * GMM_PAGE_SIZE)
		CHECK(gmm_guest_discard(g, gpa, GMM_PAGE_SIZE) == 0);
	for (uint64_t i = 0; i < n; i++)
		CHECK(gmm_guest_populate(g, (i * k % n) * 7 * GMM_PAGE_SIZE, GMM_PAGE_SIZE) == 0);
}

/* Is the chunk at @gpa on one aligned block (every page on its frame)? */
static bool chunk_huge(struct gmm_guest *g, uint64_t gpa)
{
	uint64_t pfn = gmm_guest_gpa_to_pfn(g, gpa);

	if (pfn == GMM_PFN_NONE || pfn % GMM_PAGEBLOCK_PAGES)
		return false;
	for (uint64_t i = 1; i < GMM_PAGEBLOCK_PAGES; i++)
		if (gmm_guest_gpa_to_pfn(g, gpa + i * GMM_PAGE_SIZE) != pfn + i)
			return false;
	return true;
}

static void fast_config(struct gmm_khugepaged_config *c, unsigned int max_ptes_none)
{
	gmm_khugepaged_config_init(c);
	c->pages_to_scan = 1024;
	c->scan_sleep_millisecs = 1;
	c->alloc_sleep_millisecs = 10;
	c->max_ptes_none = max_ptes_none;
}

/* Wait until khugepaged made @scans more full scans (and @g collapsed @chunks). */
static void wait_scans(struct gmm_pool *p, struct gmm_guest *g, uint64_t scans, uint64_t chunks)
{
	struct gmm_collapse_stats ks;
	struct gmm_guest_stats st;
	uint64_t start;

	CHECK(gmm_khugepaged_stats(p, &ks, NULL) == 0);
	start = ks.full_scans;
	for (int i = 0; i < WAIT_STEPS; i++) {
		CHECK(gmm_khugepaged_stats(p, &ks, NULL) == 0);
		CHECK(gmm_guest_stats(g, &st) == 0);
		if (ks.full_scans >= start + scans && st.pages_collapsed >= chunks)
			return;
		usleep(WAIT_STEP_US);
	}
	printf("khugepaged: %llu full scans, %llu chunks collapsed: stuck\n",
	       (unsigned long long)ks.full_scans, (unsigned long long)st.pages_collapsed);
	CHECK(0);
}

/* Writers through three passes more, then khugepaged and the writers stop:
 * no write may have been lost. */
static void stop_and_verify(struct gmm_pool *p, struct gmm_guest *g, struct gw_writer *ws)
{
	while (gw_min_passes(ws, NR_WRITERS) < 3)
		usleep(WAIT_STEP_US);
	gmm_khugepaged_stop(p);
	CHECK_EQ(gw_stop(ws, NR_WRITERS), 0);
	CHECK_EQ(gw_verify(ws, NR_WRITERS, g, 0), 0);
}

static void test_khugepaged_shmem(int mode)
{
	const uint64_t ram = 16 * MIB, chunks = ram / CHUNK;
	struct gmm_pool *p = memfd_pool(0, 64 * MIB);
	uint64_t features = 0, pinned_pfn, ptr_pfn, new;
	int uffd = mode == GMM_WSTOP_UFFD_WP ? uffd_wp_open(&features) : -1;
	struct gmm_khugepaged_config kc;
	struct gw_writer ws[NR_WRITERS];
	struct gmm_collapse_stats ks;
	struct gmm_wstop_stats wst;
	struct gmm_guest_stats st;
	struct gmm_memslot s;
	struct gmm_guest *g = guest_stop(p, ram, mode, uffd, features, &s);

	scatter(g, ram);
	check_maps_count(g, &s);
	/* chunk 2 has a pinned page, chunk 5 a page handed out by gmm_guest_ptr() */
	CHECK(gmm_guest_pin(g, 2 * CHUNK + 5 * GMM_PAGE_SIZE, 1) == 0);
	CHECK(gmm_guest_ptr(g, 5 * CHUNK, 8) != NULL);
	pinned_pfn = gmm_guest_gpa_to_pfn(g, 2 * CHUNK + 5 * GMM_PAGE_SIZE);
	ptr_pfn = gmm_guest_gpa_to_pfn(g, 5 * CHUNK);
	gw_install(g);
	CHECK(gw_start(ws, NR_WRITERS, s.hva, ram / GMM_PAGE_SIZE, NULL) == 0);
	fast_config(&kc, 0);
	CHECK(gmm_khugepaged_start(p, &kc) == 0);
	wait_scans(p, g, 2, chunks - 2);
	stop_and_verify(p, g, ws);

	CHECK(gmm_guest_stats(g, &st) == 0);
	CHECK_EQ(st.huge_bytes, ram - 2 * CHUNK);
	CHECK_EQ(st.pages_collapsed, chunks - 2);
	CHECK_EQ(st.thp_collapse_alloc, chunks - 2);
	CHECK_EQ(st.thp_collapse_alloc_failed, 0);
	for (uint64_t c = 0; c < chunks; c++)
		CHECK(chunk_huge(g, c * CHUNK) == (c != 2 && c != 5));
	CHECK_EQ(gmm_guest_gpa_to_pfn(g, 2 * CHUNK + 5 * GMM_PAGE_SIZE), pinned_pfn);
	CHECK_EQ(gmm_guest_gpa_to_pfn(g, 5 * CHUNK), ptr_pfn);
	CHECK(gmm_khugepaged_stats(p, &ks, NULL) == 0);
	CHECK_EQ(ks.pages_collapsed, chunks - 2);
	CHECK(ks.full_scans >= 2 && ks.pages_scanned >= 2 * ram / GMM_PAGE_SIZE);
	check_maps_count(g, &s);
	/* every collapse went through the guest's write stop */
	CHECK(gmm_guest_wstop_stats(g, &wst) == 0);
	CHECK(wst.mode == mode && wst.fallbacks == 0);
	CHECK(wst.batches >= chunks - 2 && wst.units >= chunks - 2);
	printf("khugepaged (shmem, %s): %llu of %llu chunks collapsed under %d writers (%llu "
	       "writes waited), pinned chunks left alone; %llu full scans, %llu host mappings\n",
	       gmm_write_stop_name(mode), (unsigned long long)st.pages_collapsed,
	       (unsigned long long)chunks, NR_WRITERS,
	       (unsigned long long)gw_waits, (unsigned long long)ks.full_scans,
	       (unsigned long long)st.host_mappings);
	gmm_khugepaged_print_stats(p, stdout);

	/* migration keeps the count too: 4 KiB pages of the pinned chunk
	 * (splitting its runs) and a collapsed 2 MiB block */
	for (uint64_t i = 100; i < 110; i++) {
		CHECK(gmm_migrate_block(p, gmm_guest_gpa_to_pfn(g, 2 * CHUNK + i * GMM_PAGE_SIZE),
					GMM_MIGRATE_SYNC, &new) == 0);
		check_maps_count(g, &s);
	}
	CHECK(gmm_migrate_block(p, gmm_guest_gpa_to_pfn(g, 3 * CHUNK), GMM_MIGRATE_SYNC, &new) == 0);
	CHECK(chunk_huge(g, 3 * CHUNK));
	check_maps_count(g, &s);
	/* unpinned, chunk 2 collapses; chunk 5's gmm_guest_ptr() pin is for good */
	CHECK(gmm_guest_unpin(g, 2 * CHUNK + 5 * GMM_PAGE_SIZE, 1) == 0);
	CHECK(gmm_guest_collapse(g, UINT64_MAX, &ks) == 0);
	CHECK_EQ(ks.pages_collapsed, 1);
	CHECK(chunk_huge(g, 2 * CHUNK) && !chunk_huge(g, 5 * CHUNK));
	check_maps_count(g, &s);
	CHECK(gmm_pool_check(p) == 0);
	gmm_guest_destroy(g);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	gmm_pool_destroy(p);
	if (uffd >= 0)
		close(uffd);
}

static bool page_is(struct gmm_guest *g, uint64_t gpa, uint8_t v)
{
	uint8_t buf[GMM_PAGE_SIZE];

	CHECK(gmm_guest_read(g, gpa, buf, sizeof(buf)) == 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != v)
			return false;
	return true;
}

static void test_max_ptes_none(void)
{
	const uint64_t ram = 8 * MIB;
	struct gmm_pool *p = memfd_pool(0, 32 * MIB);
	struct gmm_khugepaged_config kc;
	struct gmm_collapse_stats cs;
	struct gmm_guest_stats st;
	struct gmm_memslot s;
	struct gmm_guest *g = guest_4k(p, ram, &s);
	uint8_t buf[GMM_PAGE_SIZE];

	scatter(g, ram);
	memset(buf, 0xa5, sizeof(buf));
	for (uint64_t gpa = 0; gpa < ram; gpa += GMM_PAGE_SIZE)
		CHECK(gmm_guest_write(g, gpa, buf, sizeof(buf)) == 0);
	/* chunk 0: 3 holes; chunk 1: none backed; chunk 2: 1 hole; chunk 3 whole */
	for (uint64_t i = 0; i < 3; i++)
		CHECK(gmm_guest_discard(g, (10 + 50 * i) * GMM_PAGE_SIZE, GMM_PAGE_SIZE) == 0);
	CHECK(gmm_guest_discard(g, CHUNK, CHUNK) == 0);
	CHECK(gmm_guest_discard(g, 2 * CHUNK + 7 * GMM_PAGE_SIZE, GMM_PAGE_SIZE) == 0);
	check_maps_count(g, &s);
	/* the pass adds no memory: only chunk 3 */
	CHECK(gmm_guest_collapse(g, UINT64_MAX, &cs) == 0);
	CHECK_EQ(cs.pages_collapsed, 1);
	CHECK(chunk_huge(g, 3 * CHUNK) && cs.pages_added == 0);
	check_maps_count(g, &s);
	/* khugepaged with max_ptes_none 2: chunk 2 */
	fast_config(&kc, 2);
	CHECK(gmm_khugepaged_start(p, &kc) == 0);
	wait_scans(p, g, 2, 2);
	CHECK(chunk_huge(g, 2 * CHUNK) && !chunk_huge(g, 0));
	/* 511: chunk 0 too; chunk 1 has nothing backed and stays so */
	fast_config(&kc, 511);
	CHECK(gmm_khugepaged_configure(p, &kc) == 0);
	wait_scans(p, g, 2, 3);
	gmm_khugepaged_stop(p);
	CHECK(chunk_huge(g, 0));
	CHECK(gmm_guest_gpa_to_pfn(g, CHUNK) == GMM_PFN_NONE);
	CHECK(gmm_khugepaged_stats(p, &cs, NULL) == 0);
	CHECK_EQ(cs.pages_added, 4);
	CHECK_EQ(cs.pages_collapsed, 2);
	CHECK(gmm_guest_stats(g, &st) == 0);
	CHECK_EQ(st.backed_pages, 3 * GMM_PAGEBLOCK_PAGES);
	CHECK_EQ(st.huge_bytes, 3 * CHUNK);
	for (uint64_t i = 0; i < 3; i++)
		CHECK(page_is(g, (10 + 50 * i) * GMM_PAGE_SIZE, 0));
	CHECK(page_is(g, 2 * CHUNK + 7 * GMM_PAGE_SIZE, 0));
	CHECK(page_is(g, 11 * GMM_PAGE_SIZE, 0xa5) && page_is(g, 3 * CHUNK + 9 * GMM_PAGE_SIZE, 0xa5));
	check_maps_count(g, &s);
	CHECK(gmm_pool_check(p) == 0);
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	printf("max_ptes_none: 0 adds nothing, 2 and 511 fill 1 and 3 holes with zeros: ok\n");
}

/* With a userfaultfd, unbacked pages are registered anonymous placeholders. */
static void test_uffd_holes(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct gmm_pool *p = memfd_pool(0, 32 * MIB);
	struct gmm_khugepaged_config kc;
	struct gmm_guest_config gc;
	struct gmm_collapse_stats ks;
	struct gmm_memslot s;
	struct gmm_guest *g;
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	CHECK(uffd >= 0);
	CHECK(ioctl(uffd, UFFDIO_API, &api) == 0);
	gmm_guest_config_init(&gc);
	gc.huge_fault = false;
	gc.uffd = uffd;
	CHECK(gmm_guest_create(p, &gc, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, 4 * MIB, 0, &s) == 0);
	CHECK(gmm_guest_populate(g, 0, 4 * MIB) == 0);
	scatter(g, 4 * MIB);
	for (uint64_t i = 0; i < 3; i++)
		CHECK(gmm_guest_discard(g, (20 + 100 * i) * GMM_PAGE_SIZE, GMM_PAGE_SIZE) == 0);
	check_maps_count(g, &s);
	fast_config(&kc, 511);
	CHECK(gmm_khugepaged_start(p, &kc) == 0);
	wait_scans(p, g, 2, 2);
	gmm_khugepaged_stop(p);
	CHECK(chunk_huge(g, 0) && chunk_huge(g, CHUNK));
	CHECK(gmm_khugepaged_stats(p, &ks, NULL) == 0);
	CHECK_EQ(ks.pages_added, 3);
	for (uint64_t i = 0; i < 3; i++)
		CHECK(page_is(g, (20 + 100 * i) * GMM_PAGE_SIZE, 0));
	check_maps_count(g, &s);
	gmm_guest_destroy(g);
	close(uffd);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	gmm_pool_destroy(p);
	printf("userfaultfd placeholders: 3 holes filled by collapse, mapping count right\n");
}

static void test_khugepaged_hugetlb(void)
{
	const uint64_t ram = 16 * MIB;
	const long want = 24;
	struct gmm_khugepaged_config kc;
	struct gw_writer ws[NR_WRITERS];
	struct gmm_compact_result res;
	struct gmm_guest_stats st;
	struct gmm_collapse_stats ks;
	struct gmm_memslot s;
	struct gmm_guest *g;
	struct gmm_pool *p;

	g = hugetlb_guest(ram, 32 * MIB, want, &p, &s);
	gw_install(g);
	CHECK(gw_start(ws, NR_WRITERS, s.hva, ram / GMM_PAGE_SIZE, NULL) == 0);
	fast_config(&kc, 0);
	CHECK(gmm_khugepaged_start(p, &kc) == 0);
	/* every unit moved twice by hand, then a compaction pass */
	for (uint64_t gpa = 0; gpa < 2 * ram; gpa += CHUNK) {
		int err = gmm_migrate_block(p, gmm_guest_gpa_to_pfn(g, gpa % ram), GMM_MIGRATE_SYNC,
					    NULL);

		CHECK(err == 0 || err == -EAGAIN);
	}
	CHECK(gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, &res) == 0);
	wait_scans(p, g, 2, 0);
	stop_and_verify(p, g, ws);
	CHECK(gmm_guest_stats(g, &st) == 0);
	CHECK(gmm_khugepaged_stats(p, &ks, NULL) == 0);
	CHECK_EQ(st.huge_bytes, ram);
	CHECK_EQ(ks.pages_collapsed, 0);
	CHECK(ks.pages_scanned > 0);
	CHECK(gmm_guest_migrated(g) > 0);
	check_maps_count(g, &s);
	printf("khugepaged (hugetlbfs): nothing to collapse, %llu pages migrated beside it under "
	       "%d writers, no lost write\n", (unsigned long long)gmm_guest_migrated(g), NR_WRITERS);
	CHECK(gmm_pool_check(p) == 0);
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	hugepages_give_back();
}

/* Threads of this process named as khugepaged names its thread. */
static unsigned int nr_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned int n = 0;

	CHECK(d != NULL);
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* exited meanwhile */
		n += fgets(comm, sizeof(comm), f) && !strcmp(comm, "gmm-khugepaged\n");
		fclose(f);
	}
	closedir(d);
	return n;
}

/*
 * nr_threads() once it equals @want, or after 2 s: a joined thread's task
 * leaves /proc/self/task a moment after pthread_join() returns (the kernel
 * wakes the joiner before it reaps the task).
 */
static unsigned int nr_threads_settled(unsigned int want)
{
	unsigned int n = nr_threads();

	for (int i = 0; i < 2000 && n != want; i++) {
		usleep(1000);
		n = nr_threads();
	}
	return n;
}

static void test_start_stop(void)
{
	unsigned int threads = nr_threads_settled(0); /* earlier tests stopped theirs */
	struct gmm_pool *p = memfd_pool(0, 32 * MIB);
	struct gmm_khugepaged_config kc;
	struct gmm_collapse_stats ks;
	struct gmm_memslot s;
	struct gmm_guest *g;

	fast_config(&kc, 0);
	CHECK(gmm_khugepaged_configure(p, &kc) == -ESRCH);
	CHECK(gmm_khugepaged_start(NULL, &kc) == -EINVAL);
	kc.max_ptes_none = 512;
	CHECK(gmm_khugepaged_start(p, &kc) == -EINVAL);
	kc.max_ptes_none = 0;
	kc.pages_to_scan = 0;
	CHECK(gmm_khugepaged_start(p, &kc) == -EINVAL);
	CHECK(gmm_khugepaged_stats(p, &ks, NULL) == 0 && ks.full_scans == 0);
	gmm_khugepaged_stop(p); /* never started: nothing */
	fast_config(&kc, 0);
	CHECK(gmm_khugepaged_start(p, &kc) == 0);
	CHECK(gmm_khugepaged_start(p, &kc) == -EBUSY);
	kc.pages_to_scan = 0;
	CHECK(gmm_khugepaged_configure(p, &kc) == -EINVAL);
	/* guests come and go while it runs; it stops and starts under them */
	for (int i = 0; i < 20; i++) {
		g = guest_4k(p, 4 * MIB, &s);
		scatter(g, 4 * MIB);
		if (i & 1) {
			gmm_khugepaged_stop(p);
			gmm_khugepaged_stop(p);
			fast_config(&kc, 0);
			CHECK(gmm_khugepaged_start(p, &kc) == 0);
		}
		usleep(1000);
		gmm_guest_destroy(g);
	}
	CHECK(gmm_pool_check(p) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	CHECK(gmm_khugepaged_print_stats(NULL, stdout) == -EINVAL);
	CHECK_EQ(nr_threads_settled(threads + 1), threads + 1);
	gmm_khugepaged_stop(p);
	CHECK_EQ(nr_threads_settled(threads), threads);
	CHECK(gmm_khugepaged_start(p, &kc) == 0);
	CHECK_EQ(nr_threads_settled(threads + 1), threads + 1);
	gmm_pool_destroy(p); /* stops the thread */
	CHECK_EQ(nr_threads_settled(threads), threads);
	printf("khugepaged start/stop: ok\n");
}

/* --- pins: concurrent unpin/re-pin of a page pinned once ------------------- */

#define PIN_THREADS 4
#define PIN_ROUNDS 20000

static struct gmm_guest *pin_guest;

static void *pin_main(void *arg)
{
	uint64_t *wins = arg;

	for (int i = 0; i < PIN_ROUNDS; i++) {
		if (gmm_guest_unpin(pin_guest, 0x1000, 1) == 0) {
			(*wins)++;
			CHECK(gmm_guest_pin(pin_guest, 0x1000, 1) == 0);
		}
	}
	return NULL;
}

static void test_pin_race(void)
{
	struct gmm_pool *p = memfd_pool(0, 16 * MIB);
	pthread_t th[PIN_THREADS];
	uint64_t wins[PIN_THREADS] = { 0 }, pfn, new;
	struct gmm_memslot s;

	pin_guest = guest_4k(p, 2 * MIB, &s);
	CHECK(gmm_guest_pin(pin_guest, 0x1000, 1) == 0);
	for (int i = 0; i < PIN_THREADS; i++)
		CHECK(pthread_create(&th[i], NULL, pin_main, &wins[i]) == 0);
	for (int i = 0; i < PIN_THREADS; i++)
		CHECK(pthread_join(th[i], NULL) == 0);
	/* exactly the one pin is left, and the entry's other bits are intact */
	pfn = gmm_guest_gpa_to_pfn(pin_guest, 0x1000);
	CHECK(gmm_migrate_block(p, pfn, GMM_MIGRATE_SYNC, NULL) == -EBUSY);
	CHECK(gmm_guest_unpin(pin_guest, 0x1000, 1) == 0);
	CHECK(gmm_guest_unpin(pin_guest, 0x1000, 1) == -EINVAL);
	CHECK(gmm_migrate_block(p, pfn, GMM_MIGRATE_SYNC, &new) == 0);
	CHECK_EQ(gmm_guest_gpa_to_pfn(pin_guest, 0x1000), new);
	CHECK_EQ(gmm_guest_migration_wait(pin_guest, (char *)s.hva + 0x1000), 0);
	printf("pin race: %llu + %llu + %llu + %llu unpins won, count intact\n",
	       (unsigned long long)wins[0], (unsigned long long)wins[1],
	       (unsigned long long)wins[2], (unsigned long long)wins[3]);
	gmm_guest_destroy(pin_guest);
	gmm_pool_destroy(p);
}

int main(void)
{
	test_start_stop();
	test_pin_race();
	test_max_ptes_none();
	test_uffd_holes();
	for (int m = GMM_WSTOP_MPROTECT; m <= GMM_WSTOP_PAUSE; m++)
		test_khugepaged_shmem(m);
	test_khugepaged_hugetlb();
	printf("ok\n");
	return 0;
}
