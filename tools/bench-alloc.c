/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-alloc.c - benchmarks of the allocator core.
 *
 *   pair   order-0 alloc+free pairs through the locked buddy path, ns per
 *          pair for batch sizes 1..16384, against a mutex-protected LIFO
 *          stack of frame numbers measured in the same run (the cheapest
 *          possible locked allocator: the ratio is the buddy's overhead);
 *   frag   fragmentation stress with mixed mobility (stress-highalloc in
 *          spirit): defrag mode with compaction (the movable frames owned
 *          and movable, kcompactd running, direct compaction), and as
 *          baselines compaction without defrag mode, grouping alone, and
 *          grouping off; order-9 blocks allocatable at rest and clean
 *          pageblocks against the theoretical maximum, total pageblocks -
 *          ceil(unmovable+reclaimable frames / 512);
 *   compact compaction throughput: a 1 GiB pool fragmented by the frag
 *          workload compacted whole, in defrag mode (the default, the
 *          headline) and without it: GiB/s migrated against memcpy of the
 *          same bytes in the same run, frames scanned per frame produced
 *          (newly free in whole pageblocks) and per frame migrated;
 *   scale  metadata bytes per GiB, pool creation time and order-0/order-9
 *          costs for pools of 1 GiB, 64 GiB and 1 TiB (memory reserved,
 *          never touched), as ratios to the 1 GiB pool.
 *
 *   contig alloc_contig_range / alloc_contig_pages of 2 MiB and 1 GiB on a
 *          16 GiB pool 90% full of owned movable blocks: success and
 *          latency (min/median/max) against the same calls on an empty pool
 *          and order-9 gmm_alloc in the same run; and 2 MiB after the frag
 *          load, random ranges against the search.
 *
 * Usage: bench-alloc [pair|frag|compact|scale|contig|all] [--quick] [--steps N]
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>
#include <gmm/memfd.h>
#include <gmm/migrate.h>

#include "../tests/sysfs_long.h"
#include "bench_clock.h"
#include "fragload.h"

#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)

static bool quick;
static uint64_t frag_steps; /* --steps N: one frag report of N steps */

/* A pool of @bytes (memory blocks of @block_bytes, 0: the default); exits on failure. */
static struct gmm_pool *pool_make(uint64_t bytes, bool grouping, uint64_t block_bytes)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;

	gmm_pool_config_init(&c, bytes);
	c.mobility_grouping = grouping;
	if (block_bytes)
		c.block_bytes = block_bytes;
	if (gmm_pool_create(&c, &p)) {
		fprintf(stderr, "bench-alloc: pool of %" PRIu64 " MiB: %s\n", bytes / MIB,
			gmm_last_error());
		exit(1);
	}
	return p;
}

static struct gmm_pool *pool_of(uint64_t bytes, bool grouping)
{
	return pool_make(bytes, grouping, 0);
}

/* --- pair ------------------------------------------------------------------ */

struct lifo {
	pthread_mutex_t lock;
	uint64_t *v;
	uint64_t n;
};

static uint64_t lifo_pop(struct lifo *l)
{
	uint64_t x = GMM_PFN_NONE;

	pthread_mutex_lock(&l->lock);
	if (l->n)
		x = l->v[--l->n];
	pthread_mutex_unlock(&l->lock);
	return x;
}

static void lifo_push(struct lifo *l, uint64_t x)
{
	pthread_mutex_lock(&l->lock);
	l->v[l->n++] = x;
	pthread_mutex_unlock(&l->lock);
}

static double pair_buddy(struct gmm_pool *p, uint64_t *buf, unsigned int batch, uint64_t pairs)
{
	double t0 = (1e9 * now_s());

	for (uint64_t done = 0; done < pairs; done += batch) {
		for (unsigned int i = 0; i < batch; i++)
			buf[i] = gmm_alloc(p, 0, GMM_MOVABLE, GMM_NO_NODE);
		for (unsigned int i = 0; i < batch; i++)
			gmm_free(p, buf[i], 0);
	}
	return ((1e9 * now_s()) - t0) / (double)pairs;
}

static double pair_lifo(struct lifo *l, uint64_t *buf, unsigned int batch, uint64_t pairs)
{
	double t0 = (1e9 * now_s());

	for (uint64_t done = 0; done < pairs; done += batch) {
		for (unsigned int i = 0; i < batch; i++)
			buf[i] = lifo_pop(l);
		for (unsigned int i = 0; i < batch; i++)
			lifo_push(l, buf[i]);
	}
	return ((1e9 * now_s()) - t0) / (double)pairs;
}

static void bench_pair(void)
{
	struct gmm_pool *p = pool_of(GIB, true);
	struct lifo l = { .lock = PTHREAD_MUTEX_INITIALIZER };
	uint64_t pairs = quick ? 1 << 18 : 1 << 22, *buf = malloc(16384 * sizeof(*buf));

	l.n = gmm_pool_nr_pages(p);
	l.v = malloc(l.n * sizeof(*l.v));
	for (uint64_t i = 0; i < l.n; i++)
		l.v[i] = l.n - 1 - i;
	printf("== pair: order-0 alloc+free through the locked buddy path (1 GiB pool)\n");
	printf("   baseline: mutex-protected LIFO stack of pfns, same run\n");
	printf("%8s %12s %12s %8s\n", "batch", "buddy ns", "lifo ns", "ratio");
	for (unsigned int batch = 1; batch <= 16384; batch *= 4) {
		double b, s;

		pair_buddy(p, buf, batch, pairs / 8); /* warm up */
		b = pair_buddy(p, buf, batch, pairs);
		s = pair_lifo(&l, buf, batch, pairs);
		printf("%8u %12.1f %12.1f %7.2fx\n", batch, b, s, b / s);
	}
	if (gmm_pool_check(p))
		printf("POOL CHECK FAILED: %s\n", gmm_last_error());
	free(l.v);
	free(buf);
	gmm_pool_destroy(p);
}

/* --- frag ------------------------------------------------------------------ */

/*
 * The configurations compared in one run: defrag mode with compaction (the
 * default), compaction without defrag mode, grouping without compaction
 * (the kernel's defaults before defrag mode), and grouping off.
 */
enum frag_cfg { FRAG_DEFRAG, FRAG_COMPACT, FRAG_GROUPING, FRAG_OFF, FRAG_NR_CFG };

static const char *const frag_cfg_name[FRAG_NR_CFG] = { "defrag", "compact", "grouping", "off" };

struct frag_result {
	double secs;
	struct gmm_compact_events ev;
	uint64_t blocks;           /* pageblocks in the pool */
	uint64_t nonmovable;       /* unmovable + reclaimable frames held at the end */
	uint64_t clean;            /* pageblocks holding no unmovable/reclaimable frame */
	uint64_t at_rest;          /* order-9 allocations after freeing the movable memory */
	uint64_t steals, claims, defrag_fallbacks;
};

/*
 * The theoretical maximum of order-9 blocks: the pageblocks that would be
 * free of unmovable/reclaimable frames if those frames were packed
 * perfectly, total - ceil(non-movable frames / 512).
 */
static uint64_t frag_max(const struct frag_result *r)
{
	uint64_t used = (r->nonmovable + GMM_PAGEBLOCK_PAGES - 1) / GMM_PAGEBLOCK_PAGES;

	return r->blocks > used ? r->blocks - used : 0;
}

static void frag_measure(struct fragload *f, struct frag_result *r)
{
	uint8_t *dirty = calloc(r->blocks, 1);
	struct gmm_zone_stats st;

	if (!dirty)
		exit(1);
	r->nonmovable = f->frames[FRAG_UNMOVABLE] + f->frames[FRAG_RECLAIMABLE];
	for (uint64_t i = 0; i < f->n; i++) {
		uint64_t first = f->a[i].pfn, last = first + (1ull << f->a[i].order) - 1;

		if (f->a[i].mob == FRAG_MOVABLE)
			continue;
		for (uint64_t b = first / GMM_PAGEBLOCK_PAGES; b <= last / GMM_PAGEBLOCK_PAGES; b++)
			dirty[b] = 1;
	}
	r->clean = r->blocks;
	for (uint64_t b = 0; b < r->blocks; b++)
		r->clean -= dirty[b];
	gmm_zone_stats(f->pool, 0, GMM_ZONE_NORMAL, &st);
	r->steals = st.events.steal;
	r->claims = st.events.claim;
	r->defrag_fallbacks = st.events.defrag_fallback;
	free(dirty);
}

/* After the churn: free all movable memory, count order-9 allocations that succeed. */
static uint64_t frag_at_rest(struct fragload *f)
{
	uint64_t got = 0;

	fragload_free_mobility(f, FRAG_MOVABLE);
	while (gmm_alloc(f->pool, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE | GMM_HIGH, GMM_NO_NODE) !=
	       GMM_PFN_NONE)
		got++;
	return got;
}

static void frag_run(enum frag_cfg cfg, uint64_t steps, struct frag_result *r)
{
	struct gmm_pool *p = pool_of(GIB, cfg != FRAG_OFF);
	bool compaction = cfg == FRAG_DEFRAG || cfg == FRAG_COMPACT;
	struct fragload f;
	double t0 = (1e9 * now_s());

	memset(r, 0, sizeof(*r));
	r->blocks = gmm_pool_nr_pages(p) / GMM_PAGEBLOCK_PAGES;
	gmm_pool_set_defrag_mode(p, cfg == FRAG_DEFRAG);
	if (fragload_init(&f, p, 0x2545f4914f6cdd1dull))
		exit(1);
	if (compaction && (fragload_own(&f) || gmm_kcompactd_start(p, 20))) {
		fprintf(stderr, "bench-alloc: %s\n", gmm_last_error());
		exit(1);
	}
	fragload_run(&f, steps);
	gmm_kcompactd_stop(p);
	r->secs = ((1e9 * now_s()) - t0) / 1e9;
	gmm_compact_stats(p, &r->ev);
	frag_measure(&f, r);
	r->at_rest = frag_at_rest(&f);
	if (gmm_pool_check(p))
		printf("POOL CHECK FAILED: %s\n", gmm_last_error());
	fragload_release(&f);
	gmm_pool_destroy(p);
}

static double ratio(double a, double b)
{
	return a / (b > 0 ? b : 1e-9);
}

/* One figure in pageblocks: share of the pool and ratio to the maximum, per configuration. */
static void frag_line(const char *what, const struct frag_result *r, size_t field)
{
	printf("%-50s", what);
	for (int c = 0; c < FRAG_NR_CFG; c++) {
		uint64_t v = *(const uint64_t *)((const char *)&r[c] + field);

		printf(" %5.1f%% %5.1f%%", 100.0 * (double)v / (double)r[c].blocks,
		       100.0 * ratio((double)v, (double)frag_max(&r[c])));
	}
	printf("\n");
}

static void frag_report(uint64_t steps)
{
	struct frag_result r[FRAG_NR_CFG];
	uint64_t scanned;

	for (int c = 0; c < FRAG_NR_CFG; c++)
		frag_run((enum frag_cfg)c, steps, &r[c]);
	printf("-- after %" PRIu64 " workload steps (per configuration: share of the pool's "
	       "pageblocks, ratio to the theoretical maximum)\n", steps);
	printf("%-50s", "");
	for (int c = 0; c < FRAG_NR_CFG; c++)
		printf(" %13s", frag_cfg_name[c]);
	printf("\n%-50s", "");
	for (int c = 0; c < FRAG_NR_CFG; c++)
		printf(" %6s %6s", "pool", "/max");
	printf("\n");
	printf("%-50s", "theoretical maximum (pageblocks)");
	for (int c = 0; c < FRAG_NR_CFG; c++)
		printf(" %6" PRIu64 " %5.1f%%", frag_max(&r[c]),
		       100.0 * (double)frag_max(&r[c]) / (double)r[c].blocks);
	printf("\n");
	frag_line("pageblocks holding no unmovable/reclaimable frame", r,
		  offsetof(struct frag_result, clean));
	frag_line("order-9 allocatable after freeing movable", r,
		  offsetof(struct frag_result, at_rest));
	printf("    fallbacks (steals of a frame / claims of a pageblock / defrag last resort):");
	for (int c = 0; c < FRAG_NR_CFG; c++)
		printf(" %s %" PRIu64 "/%" PRIu64 "/%" PRIu64 "%s", frag_cfg_name[c], r[c].steals,
		       r[c].claims, r[c].defrag_fallbacks, c + 1 < FRAG_NR_CFG ? "," : "\n");
	printf("    order-9 allocatable, defrag vs each baseline in this run:");
	for (int c = FRAG_COMPACT; c < FRAG_NR_CFG; c++) {
		if (r[c].at_rest)
			printf(" %.2fx %s", (double)r[FRAG_DEFRAG].at_rest / (double)r[c].at_rest,
			       frag_cfg_name[c]);
		else
			printf(" %" PRIu64 " vs 0 %s", r[FRAG_DEFRAG].at_rest, frag_cfg_name[c]);
		printf("%s", c + 1 < FRAG_NR_CFG ? "," : "\n");
	}
	printf("    run time");
	for (int c = 0; c < FRAG_NR_CFG; c++)
		printf(" %s %.1f s%s", frag_cfg_name[c], r[c].secs, c + 1 < FRAG_NR_CFG ? "," : "\n");
	for (int c = FRAG_DEFRAG; c <= FRAG_COMPACT; c++) {
		scanned = r[c].ev.compact_migrate_scanned + r[c].ev.compact_free_scanned;
		printf("    %s: %" PRIu64 " frames migrated, %.2f scanned per migrated, %" PRIu64
		       " stalls (%" PRIu64 " captured), %" PRIu64 " kcompactd wakes\n",
		       frag_cfg_name[c], r[c].ev.pgmigrate_success,
		       ratio((double)scanned, (double)r[c].ev.pgmigrate_success),
		       r[c].ev.compact_stall, r[c].ev.compact_capture, r[c].ev.compact_daemon_wake);
	}
}

static void bench_frag(void)
{
	printf("== frag: 1 GiB, ~10%% long-lived unmovable, ~15%% reclaimable churn, movable churn to 92%%\n");
	printf("   defrag: defrag mode + compaction (kcompactd, proactiveness 20, direct); baselines in\n"
	       "   the same run: compact = compaction without defrag mode, grouping = neither,\n"
	       "   off = mobility grouping off.  Theoretical maximum of order-9 blocks: total\n"
	       "   pageblocks - ceil(unmovable+reclaimable frames / 512), the pageblocks free of\n"
	       "   them were they packed perfectly.  Goal: order-9 allocatable >= 97%% of it.\n");
	if (frag_steps) {
		frag_report(frag_steps);
		return;
	}
	frag_report(quick ? 400000 : 4000000);
	frag_report(quick ? 4000000 : 40000000);
}

/* --- compact ---------------------------------------------------------------- */

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
#define COMPACT_POOL GIB
/* hugepages this run adds to the host's reservation: the pool and a margin */
#define COMPACT_HUGEPAGES ((long)(COMPACT_POOL >> 21) + 8)

static bool raised_hugepages;

/* Give back what this run added (relative: other users may have changed it meanwhile). */
static void restore_hugepages(void)
{
	long now = read_long(NR_HUGEPAGES);

	if (!raised_hugepages || now < 0)
		return;
	raised_hugepages = false;
	write_long(NR_HUGEPAGES, now > COMPACT_HUGEPAGES ? now - COMPACT_HUGEPAGES : 0);
}

/*
 * Allocate every frame once and free it, as a pool that has served guests
 * for a while: its free frames hold host memory and are not marked reported
 * (fresh memory is; a target taken from it would first be restored through
 * the backing, one system call per target on hugetlbfs, which is free page
 * reporting's cost and not what this benchmark measures).
 */
static void warm_up(struct gmm_pool *p)
{
	uint64_t n = gmm_pool_nr_pages(p) >> GMM_PAGEBLOCK_ORDER, got = 0;
	uint64_t *v = malloc(n * sizeof(*v));

	while (got < n && (v[got] = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE | GMM_NOWAIT,
					       GMM_NO_NODE)) != GMM_PFN_NONE)
		got++;
	while (got)
		gmm_free(p, v[--got], GMM_PAGEBLOCK_ORDER);
	free(v);
}

/*
 * The compaction pool: resident memory, as a guest's RAM is.  Hugetlbfs 2 MiB
 * pages when the host can reserve them for this run (the reservation is
 * raised here and restored at exit), else shmem; populated up front so that
 * neither the migration nor the baseline pays a host page fault.
 */
static struct gmm_pool *resident_pool(const char **what)
{
	struct gmm_memfd_config mc = { .fallback_shmem = true };
	struct gmm_pool_config c;
	struct gmm_pool *p;
	void *ctx;
	long old = read_long(NR_HUGEPAGES);

	if (old >= 0 && write_long(NR_HUGEPAGES, old + COMPACT_HUGEPAGES) == 0) {
		raised_hugepages = true;
		atexit(restore_hugepages);
		if (gmm_hugepages_free(GMM_HUGEPAGE_2M, -1) >= COMPACT_HUGEPAGES - 8)
			mc.page_size = GMM_HUGEPAGE_2M;
	}
	if (gmm_memfd_create(&mc, &ctx)) {
		fprintf(stderr, "bench-alloc: memfd backing: %s\n", gmm_last_error());
		exit(1);
	}
	gmm_pool_config_init(&c, COMPACT_POOL);
	c.backing = &gmm_backing_memfd;
	c.backing_ctx = ctx;
	if (gmm_pool_create(&c, &p) || gmm_pool_populate(p, 0, UINT64_MAX, 0, NULL, NULL)) {
		fprintf(stderr, "bench-alloc: resident pool: %s\n", gmm_last_error());
		exit(1);
	}
	*what = mc.page_size ? "hugetlbfs 2 MiB" : "shmem 4 KiB (no hugepages could be reserved)";
	warm_up(p);
	return p;
}

/* Free frames in free blocks of at least a pageblock (what compaction produces). */
static uint64_t free_in_pageblocks(struct gmm_pool *p)
{
	struct gmm_zone_stats st;
	uint64_t n = 0;

	gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st);
	for (unsigned int o = GMM_PAGEBLOCK_ORDER; o <= st.max_order; o++)
		for (int mt = 0; mt < GMM_MT_NR; mt++)
			n += st.nr_free[o][mt] << o;
	return n;
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

/*
 * The baseline: memcpy of @frames frames, 4 KiB at a time, between resident
 * frames of the same pool through the pool's own mapping (what a migration
 * copies with), each frame copied once from a distinct source to a distinct
 * destination as a migration does (fewer pairs, reused, if the pool has not
 * that many free).  Returns ns.
 */
static double memcpy_frames(struct gmm_pool *p, uint64_t frames)
{
	uint64_t *src = malloc(frames * sizeof(*src)), *dst = malloc(frames * sizeof(*dst));
	uint64_t pairs = 0;
	double t;

	while (pairs < frames) {
		src[pairs] = gmm_alloc(p, 0, GMM_MOVABLE | GMM_NOWAIT, GMM_NO_NODE);
		dst[pairs] = gmm_alloc(p, 0, GMM_MOVABLE | GMM_NOWAIT, GMM_NO_NODE);
		if (src[pairs] == GMM_PFN_NONE || dst[pairs] == GMM_PFN_NONE) {
			if (src[pairs] != GMM_PFN_NONE)
				gmm_free(p, src[pairs], 0);
			if (dst[pairs] != GMM_PFN_NONE)
				gmm_free(p, dst[pairs], 0);
			break;
		}
		memset(gmm_pfn_to_host(p, src[pairs]), (int)pairs, GMM_PAGE_SIZE);
		memset(gmm_pfn_to_host(p, dst[pairs]), ~(int)pairs, GMM_PAGE_SIZE);
		pairs++;
	}
	if (!pairs) {
		fprintf(stderr, "bench-alloc: no frames for the memcpy baseline\n");
		exit(1);
	}
	t = (1e9 * now_s());
	for (uint64_t i = 0; i < frames; i++)
		memcpy(gmm_pfn_to_host(p, dst[i % pairs]), gmm_pfn_to_host(p, src[i % pairs]),
		       GMM_PAGE_SIZE);
	t = (1e9 * now_s()) - t;
	for (uint64_t i = 0; i < pairs; i++) {
		gmm_free(p, src[i], 0);
		gmm_free(p, dst[i], 0);
	}
	free(src);
	free(dst);
	return t;
}

/*
 * One whole-zone sync pass over the pool the frag workload left, with the
 * reclaimable memory freed and, if @nth, every @nth movable allocation too.
 */
static void compact_case(struct gmm_pool *p, unsigned int nth)
{
	struct gmm_compact_result res;
	uint64_t before, produced, scanned;
	struct frag_result fr = { .blocks = gmm_pool_nr_pages(p) / GMM_PAGEBLOCK_PAGES };
	struct fragload f;
	double t, tc, gib;
	long faults;

	if (fragload_init(&f, p, 0x9e3779b97f4a7c15ull) || fragload_own(&f))
		exit(1);
	fragload_run(&f, quick ? 400000 : 2000000);
	fragload_free_mobility(&f, FRAG_RECLAIMABLE);
	if (nth)
		fragload_free_every(&f, FRAG_MOVABLE, nth);
	frag_measure(&f, &fr);
	printf("-- reclaimable%s freed, pool %.0f%% full; %" PRIu64 " of %" PRIu64
	       " pageblocks hold an unmovable frame\n", nth == 2 ?
	       " and every other movable allocation" : "",
	       100.0 - 100.0 * (double)gmm_pool_nr_free(p) / (double)gmm_pool_nr_pages(p),
	       fr.blocks - fr.clean, fr.blocks);
	before = free_in_pageblocks(p);
	faults = minor_faults();
	t = (1e9 * now_s());
	gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, &res);
	t = (1e9 * now_s()) - t;
	faults = minor_faults() - faults;
	produced = free_in_pageblocks(p) - before;
	scanned = res.migrate_scanned + res.free_scanned;
	gib = (double)(res.migrated * GMM_PAGE_SIZE) / GIB;
	tc = memcpy_frames(p, res.migrated);
	printf("   migrated %.3f GiB in %.1f ms: %.2f GiB/s; baseline memcpy of the same bytes "
	       "4 KiB at a time\n   between resident frames of the pool %.2f GiB/s "
	       "(migration at %.2fx of memcpy)\n", gib, t / 1e6, gib / (t / 1e9),
	       gib / (tc / 1e9), tc / t);
	printf("   scanned (compact_migrate_scanned %" PRIu64 " + compact_free_scanned %" PRIu64
	       ") per produced\n   (frames newly free in whole pageblocks, %" PRIu64 "): %.2f; "
	       "per frame migrated (%" PRIu64 "): %.2f\n", res.migrate_scanned, res.free_scanned,
	       produced, ratio((double)scanned, (double)produced), res.migrated,
	       ratio((double)scanned, (double)res.migrated));
	printf("   not moved (owner refused or no target): %" PRIu64 " frames; host page faults "
	       "during the pass: %ld\n", res.failed, faults);
	printf("   fragmentation score %d (order-9 blocks hold %d%% of free memory)\n",
	       gmm_fragmentation_score(p, 0), 100 - gmm_fragmentation_score(p, 0));
	if (gmm_pool_check(p))
		printf("POOL CHECK FAILED: %s\n", gmm_last_error());
	fragload_release(&f);
}

/*
 * The headline is a pool in the state defrag mode (the default) keeps under
 * the frag workload; the second, the same workload without defrag mode
 * (unmovable frames stolen into movable pageblocks), on a fresh pool.
 * Neither runs kcompactd, so each run is deterministic: the workload's own
 * direct compaction (defrag mode) is all that ran before the pass.
 */
static void bench_compact(void)
{
	for (int defrag = 1; defrag >= 0; defrag--) {
		const char *backing;
		struct gmm_pool *p = resident_pool(&backing);

		gmm_pool_set_defrag_mode(p, defrag);
		printf("== compact (%s): 1 GiB pool on %s, populated; the frag workload\n"
		       "   (%s steps), then one whole-zone sync compaction pass\n",
		       defrag ? "defrag mode, the default" : "without defrag mode", backing,
		       quick ? "400 000" : "2 000 000");
		compact_case(p, 0);
		compact_case(p, 2);
		gmm_pool_destroy(p);
		restore_hugepages();
	}
}

/* --- scale ----------------------------------------------------------------- */

struct scale_result {
	double create_ms;
	double o0_ns;
	double o9_ns;
	double meta_per_gib;
};

/* Allocate and free batches of 256 blocks of @order; ns per pair. */
static double cycle(struct gmm_pool *p, unsigned int order, uint64_t n)
{
	uint64_t *v = malloc(256 * sizeof(*v));
	double t0 = (1e9 * now_s());

	for (uint64_t done = 0; done < n; done += 256) {
		for (int i = 0; i < 256; i++)
			v[i] = gmm_alloc(p, order, GMM_MOVABLE, GMM_NO_NODE);
		for (int i = 0; i < 256; i++)
			gmm_free(p, v[i], order);
	}
	free(v);
	return ((1e9 * now_s()) - t0) / (double)n;
}

static void scale_one(uint64_t bytes, struct scale_result *r)
{
	double t0 = (1e9 * now_s());
	struct gmm_pool *p = pool_of(bytes, true);

	r->create_ms = ((1e9 * now_s()) - t0) / 1e6;
	r->meta_per_gib = (double)gmm_metadata_bytes(p) / ((double)bytes / GIB);
	cycle(p, 0, 1 << 16);
	cycle(p, 9, 1 << 12);
	r->o0_ns = cycle(p, 0, quick ? 1 << 18 : 1 << 21);
	r->o9_ns = cycle(p, 9, quick ? 1 << 13 : 1 << 15);
	gmm_pool_destroy(p);
}

static void bench_scale(void)
{
	const uint64_t sizes[] = { GIB, 64 * GIB, 1024 * GIB };
	struct scale_result r[3];

	printf("== scale: pools reserved, never touched (only metadata is real)\n");
	printf("   metadata: %u bytes per 4 KiB frame + 3 bytes per pageblock\n",
	       gmm_metadata_bytes_per_frame());
	printf("   baseline: the 1 GiB pool, same run\n");
	printf("%8s %14s %12s %12s %12s %10s %10s %10s\n", "pool", "meta MiB/GiB", "create ms",
	       "order0 ns", "order9 ns", "create x", "order0 x", "order9 x");
	for (int i = 0; i < 3; i++) {
		scale_one(sizes[i], &r[i]);
		printf("%6" PRIu64 "Gi %14.2f %12.2f %12.1f %12.1f %9.2fx %9.2fx %9.2fx\n",
		       sizes[i] / GIB, r[i].meta_per_gib / MIB, r[i].create_ms, r[i].o0_ns, r[i].o9_ns,
		       r[i].create_ms / r[0].create_ms, r[i].o0_ns / r[0].o0_ns,
		       r[i].o9_ns / r[0].o9_ns);
	}
	printf("   creation per GiB: %.3f ms (1 GiB) vs %.3f ms (1 TiB)\n", r[0].create_ms,
	       r[2].create_ms / 1024);
}

/* --- contig ------------------------------------------------------------------ */

/*
 * A simple movable load for contig: blocks of order 0..3, owned (key =
 * index), filled to the watermark and thinned at random to 90%, so that
 * every range holds about 90% used frames spread evenly (the worst case for
 * moving them out).  One thread: the owner needs no lock.
 */
struct movload {
	struct gmm_pool *pool;
	unsigned int id;
	uint64_t *pfn;
	uint8_t *order;
	uint64_t n, frames, moved, rng;
};

static int movload_migrate(void *ctx, uint64_t key, uint64_t old, uint64_t new, unsigned int order,
			   enum gmm_migrate_mode mode)
{
	struct movload *m = ctx;

	(void)mode;
	if (key >= m->n || m->pfn[key] != old || m->order[key] != order)
		return -EAGAIN;
	memcpy(gmm_pfn_to_host(m->pool, new), gmm_pfn_to_host(m->pool, old), GMM_PAGE_SIZE << order);
	m->pfn[key] = new;
	m->moved += 1ull << order;
	return gmm_rmap_set(m->pool, new, order, m->id, key);
}

static const struct gmm_migrate_ops movload_ops = {
	.name = "bench-contig",
	.migrate = movload_migrate,
};

static void movload_drop(struct movload *m, uint64_t k)
{
	gmm_rmap_clear(m->pool, m->pfn[k], m->order[k]);
	gmm_free(m->pool, m->pfn[k], m->order[k]);
	m->frames -= 1ull << m->order[k];
	m->n--;
	m->pfn[k] = m->pfn[m->n];
	m->order[k] = m->order[m->n];
	if (k < m->n)
		gmm_rmap_set(m->pool, m->pfn[k], m->order[k], m->id, k);
}

/* Allocate until @full of the pool is used (or the allocator refuses). */
static void movload_topup(struct movload *m, double full)
{
	double total = (double)gmm_pool_nr_pages(m->pool);

	while ((double)m->frames < full * total) {
		unsigned int o = (m->rng = m->rng * 6364136223846793005ull + 1) >> 62;
		uint64_t pfn = gmm_alloc(m->pool, o, GMM_MOVABLE, GMM_NO_NODE);

		if (pfn == GMM_PFN_NONE)
			break;
		gmm_rmap_set(m->pool, pfn, o, m->id, m->n);
		m->pfn[m->n] = pfn;
		m->order[m->n++] = (uint8_t)o;
		m->frames += 1ull << o;
	}
}

static void movload_init(struct movload *m, struct gmm_pool *p, double full, uint64_t seed)
{
	uint64_t total = gmm_pool_nr_pages(p);

	memset(m, 0, sizeof(*m));
	m->pool = p;
	m->pfn = malloc(total * sizeof(*m->pfn));
	m->order = malloc(total);
	if (!m->pfn || !m->order || gmm_owner_register(p, &movload_ops, m, &m->id))
		exit(1);
	m->rng = seed | 1;
	movload_topup(m, 1.0);
	while ((double)m->frames > full * (double)total)
		movload_drop(m, ((m->rng = m->rng * 6364136223846793005ull + 1) >> 16) % m->n);
}

static void movload_fini(struct movload *m)
{
	while (m->n)
		movload_drop(m, m->n - 1);
	gmm_owner_unregister(m->pool, m->id);
	free(m->pfn);
	free(m->order);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Latencies of the successful attempts: min, median, max (sorted in place). */
struct lat {
	double v[64];
	int n, tries;
};

static void lat_add(struct lat *l, double ns, bool ok)
{
	l->tries++;
	if (ok)
		l->v[l->n++] = ns;
}

static double lat_med(struct lat *l)
{
	qsort(l->v, (size_t)l->n, sizeof(l->v[0]), cmp_double);
	return l->n ? l->v[l->n / 2] : 0;
}

static void lat_line(const char *what, struct lat *l, struct lat *base, const char *base_what)
{
	double med = lat_med(l), bmed = base ? lat_med(base) : 0;

	printf("   %-34s %3d/%-3d ok  min %9.1f  median %9.1f  max %9.1f us", what, l->n, l->tries,
	       l->n ? l->v[0] / 1e3 : 0, med / 1e3, l->n ? l->v[l->n - 1] / 1e3 : 0);
	if (base)
		printf("  (%.0fx %s)", bmed > 0 ? med / bmed : 0, base_what);
	printf("\n");
}


/* @tries contig allocations of @nr frames at random aligned ranges (or found, when !random). */
static void contig_tries(struct gmm_pool *p, uint64_t nr, int tries, bool random, uint64_t seed,
			 struct movload *m, struct lat *l)
{
	double full = m ? (double)m->frames / (double)gmm_pool_nr_pages(p) : 0;

	uint64_t ranges = gmm_pool_nr_pages(p) / nr;

	for (int i = 0; i < tries; i++) {
		/* an odd stride over a power-of-two count: no range is tried twice */
		uint64_t s = ((seed + (uint64_t)i * 0x9e3779b1ull) % ranges) * nr;
		double t = (1e9 * now_s());
		bool ok;

		if (random) {
			ok = !gmm_alloc_contig_range(p, s, s + nr);
		} else {
			s = gmm_alloc_contig_pages(p, nr, 0);
			ok = s != GMM_PFN_NONE;
		}
		lat_add(l, (1e9 * now_s()) - t, ok);
		if (ok)
			gmm_free_contig_range(p, s, s + nr);
		if (ok && m) /* as full as before for the next attempt */
			movload_topup(m, full);
	}
}

/* Write every frame of @p once: the host's first touches are not the allocator's cost. */
static void contig_touch(struct gmm_pool *p)
{
	for (uint64_t pfn = 0; pfn < gmm_pool_nr_pages(p); pfn += GIB / GMM_PAGE_SIZE)
		memset(gmm_pfn_to_host(p, pfn), 0, GIB);
}

/* The baselines: order-9 gmm_alloc+free, and the same contig call, on an empty pool. */
static void contig_empty(uint64_t bytes, uint64_t nr, int tries, bool touch, struct lat *order9,
			 struct lat *empty)
{
	struct gmm_pool *p = pool_make(bytes, true, GIB);

	if (touch)
		contig_touch(p);
	for (int i = 0; order9 && i < 64; i++) {
		double t = (1e9 * now_s());
		uint64_t pfn = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, GMM_NO_NODE);

		gmm_free(p, pfn, GMM_PAGEBLOCK_ORDER);
		lat_add(order9, (1e9 * now_s()) - t, pfn != GMM_PFN_NONE);
	}
	contig_tries(p, nr, tries, true, 7, NULL, empty);
	gmm_pool_destroy(p);
}

/* 2 MiB at random ranges of a 1 GiB pool 90% full, its memory touched beforehand. */
static void bench_contig_2m(void)
{
	struct lat l2 = { 0 }, l2e = { 0 }, o9 = { 0 };
	struct gmm_pool *p = pool_make(GIB, true, GIB);
	struct movload m;
	double fill;

	contig_touch(p);
	movload_init(&m, p, 0.90, 0x243f6a8885a308d3ull);
	fill = 100.0 * (double)m.frames / (double)gmm_pool_nr_pages(p);
	contig_tries(p, GMM_PAGEBLOCK_PAGES, quick ? 16 : 64, true, 11, &m, &l2);
	printf("== contig: pools %.1f%% full of owned movable blocks (order 0-3, spread evenly);\n"
	       "   baselines in the same run: the same contig call on an empty pool, order-9 "
	       "gmm_alloc+free\n", fill);
	printf("   2 MiB on a 1 GiB pool, its memory touched first (%.1f frames moved per "
	       "attempt):\n", l2.tries ? (double)m.moved / l2.tries : 0);
	movload_fini(&m);
	gmm_pool_destroy(p);
	contig_empty(GIB, GMM_PAGEBLOCK_PAGES, quick ? 16 : 64, true, &o9, &l2e);
	lat_line("2 MiB alloc_contig_range, random", &l2, &l2e, "empty pool");
	lat_line("", &l2, &o9, "order-9 gmm_alloc");
	lat_line("2 MiB, empty pool", &l2e, NULL, NULL);
	lat_line("order-9 gmm_alloc+free, empty pool", &o9, NULL, NULL);
}

/*
 * 1 GiB on a 16 GiB pool 90% full (a 1 GiB range holds 0.9 GiB to move:
 * the pool needs that much free outside it).  Its memory is not touched
 * beforehand (16 GiB): the host's first touch of each target frame counts.
 */
static void bench_contig_1g(void)
{
	const uint64_t bytes = 16 * GIB, huge = GIB / GMM_PAGE_SIZE;
	struct lat l1g = { 0 }, l1ge = { 0 };
	double tc, t, moved = 0;
	char *a, *b;

	/* a fresh pool per attempt: a range freed again would be found empty next time */
	for (int i = 0; i < (quick ? 1 : 3); i++) {
		struct gmm_pool *p = pool_make(bytes, true, GIB);
		struct movload m;

		movload_init(&m, p, 0.90, 0x13198a2e03707344ull + (uint64_t)i);
		contig_tries(p, huge, 1, false, 0, NULL, &l1g);
		moved += (double)m.moved * GMM_PAGE_SIZE;
		movload_fini(&m);
		gmm_pool_destroy(p);
	}
	contig_empty(bytes, huge, quick ? 1 : 3, false, NULL, &l1ge);
	printf("   1 GiB on a 16 GiB pool, memory not touched first (%.0f MiB moved per attempt):\n",
	       l1g.tries ? moved / MIB / l1g.tries : 0);
	lat_line("1 GiB alloc_contig_pages", &l1g, &l1ge, "empty pool");
	lat_line("1 GiB, empty pool", &l1ge, NULL, NULL);
	/* the floor of moving: memcpy of the same bytes between touched buffers */
	a = malloc(256 * MIB);
	b = malloc(256 * MIB);
	memset(a, 1, 256 * MIB);
	memset(b, 2, 256 * MIB);
	tc = (1e9 * now_s());
	for (uint64_t done = 0; done < (uint64_t)moved; done += GMM_PAGE_SIZE)
		memcpy(b + done % (256 * MIB), a + done % (256 * MIB), GMM_PAGE_SIZE);
	tc = (1e9 * now_s()) - tc;
	t = 0;
	for (int i = 0; i < l1g.n; i++)
		t += l1g.v[i];
	printf("   1 GiB: moved at %.2f GiB/s; memcpy of the same bytes %.2f GiB/s (%.1fx)\n",
	       t > 0 ? moved / GIB / (t / 1e9) : 0, tc > 0 ? moved / GIB / (tc / 1e9) : 0,
	       t > 0 && tc > 0 ? t / tc : 0);
	free(a);
	free(b);
}

/* The mixed frag load: random ranges fail on unmovable frames, a search does not. */
static void bench_contig_frag(void)
{
	struct gmm_pool *p = pool_of(GIB, true);
	uint64_t blocks = gmm_pool_nr_pages(p) / GMM_PAGEBLOCK_PAGES, clean;
	struct lat rnd = { 0 }, found = { 0 };
	struct fragload f;
	uint8_t *dirty;

	if (fragload_init(&f, p, 0x51ed2701a3f9c5b1ull) || fragload_own(&f))
		exit(1);
	/* 400 000 steps: later, every pageblock holds an unmovable or reclaimable frame */
	fragload_run(&f, 400000);
	dirty = calloc(blocks, 1);
	for (uint64_t i = 0; i < f.n; i++)
		if (f.a[i].mob != FRAG_MOVABLE)
			dirty[f.a[i].pfn / GMM_PAGEBLOCK_PAGES] = 1;
	clean = blocks;
	for (uint64_t b = 0; b < blocks; b++)
		clean -= dirty[b];
	free(dirty);
	printf("== contig: 1 GiB pool after 400 000 steps of the frag load (10%% unmovable, 15%% "
	       "reclaimable, %.0f%% full):\n   %" PRIu64 " of %" PRIu64 " pageblocks (%.0f%%) hold "
	       "only free and movable frames\n",
	       100.0 - 100.0 * (double)gmm_pool_nr_free(p) / (double)gmm_pool_nr_pages(p), clean,
	       blocks, 100.0 * (double)clean / (double)blocks);
	contig_tries(p, GMM_PAGEBLOCK_PAGES, quick ? 16 : 64, true, 13, NULL, &rnd);
	contig_tries(p, GMM_PAGEBLOCK_PAGES, quick ? 16 : 64, false, 0, NULL, &found);
	lat_line("2 MiB alloc_contig_range, random", &rnd, NULL, NULL);
	lat_line("2 MiB alloc_contig_pages (search)", &found, NULL, NULL);
	printf("   a random range fails only when it holds an unmovable or reclaimable frame\n");
	fragload_release(&f);
	gmm_pool_destroy(p);
}

static void bench_contig_mode(void)
{
	bench_contig_2m();
	bench_contig_1g();
	bench_contig_frag();
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-alloc [pair|frag|compact|scale|contig|all] [--quick] [--steps N]\n"
		"Benchmarks of the allocator core, each against a baseline of the same run:\n"
		"  pair   order-0 alloc+free pairs vs a mutex-protected LIFO stack\n"
		"  frag   mixed-mobility fragmentation: defrag mode vs compaction alone,\n"
		"         grouping alone and grouping off\n"
		"  compact  compaction throughput (GiB/s vs memcpy), scanned per produced,\n"
		"           defrag mode (the default) and without it\n"
		"  scale  metadata and costs of 1 GiB, 64 GiB and 1 TiB pools vs 1 GiB\n"
		"  contig alloc_contig_range/pages of 2 MiB and 1 GiB on a 90%% full pool vs\n"
		"         an empty one and order-9 gmm_alloc\n"
		"  all    all of them (the default)\n"
		"  --quick  fewer iterations\n"
		"  --steps N  frag: one report after N workload steps\n"
		"  --help   this text\n");
}

int main(int argc, char **argv)
{
	static const char *const benches[] = { "pair", "frag", "compact", "scale", "contig", "all" };
	const char *what = "all";

	for (int i = 1; i < argc; i++) {
		bool known = false;

		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
			continue;
		}
		if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
			char *end;

			frag_steps = strtoull(argv[++i], &end, 10);
			if (*end || !frag_steps) {
				fprintf(stderr, "bench-alloc: --steps wants a positive number\n");
				return 2;
			}
			continue;
		}
		for (size_t b = 0; b < sizeof(benches) / sizeof(benches[0]); b++)
			known |= !strcmp(argv[i], benches[b]);
		if (!known) {
			fprintf(stderr, "bench-alloc: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
		what = argv[i];
	}
	if (!strcmp(what, "pair") || !strcmp(what, "all"))
		bench_pair();
	if (!strcmp(what, "frag") || !strcmp(what, "all"))
		bench_frag();
	if (!strcmp(what, "compact") || !strcmp(what, "all"))
		bench_compact();
	if (!strcmp(what, "scale") || !strcmp(what, "all"))
		bench_scale();
	if (!strcmp(what, "contig") || !strcmp(what, "all"))
		bench_contig_mode();
	return 0;
}
