/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-alloc.c - benchmarks of the allocator core.
 *
 *   pair   order-0 alloc+free pairs through the locked buddy path, ns per
 *          pair for batch sizes 1..16384, against a mutex-protected LIFO
 *          stack of frame numbers measured in the same run (the cheapest
 *          possible locked allocator: the ratio is the buddy's overhead);
 *   frag   fragmentation stress with mixed mobility (stress-highalloc in
 *          spirit): grouping on with compaction (the movable frames owned
 *          and movable, kcompactd running, direct compaction), grouping on
 *          without compaction, and grouping off (the baselines);
 *   compact compaction throughput: a fragmented 1 GiB pool compacted whole,
 *          and alloc_contig_range of 2 MiB on a full pool (success, latency),
 *          GiB/s migrated against memcpy of the same bytes in the same run,
 *          and frames scanned per frame migrated;
 *   scale  metadata bytes per GiB, pool creation time and order-0/order-9
 *          costs for pools of 1 GiB, 64 GiB and 1 TiB (memory reserved,
 *          never touched), as ratios to the 1 GiB pool.
 *
 * Usage: bench-alloc [pair|frag|compact|scale|all] [--quick]
 */
#include "bench_clock.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>

#include "fragload.h"

#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)

static bool quick;

static struct gmm_pool *pool_of(uint64_t bytes, bool grouping)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;

	gmm_pool_config_init(&c, bytes);
	c.mobility_grouping = grouping;
	if (gmm_pool_create(&c, &p)) {
		fprintf(stderr, "bench-alloc: pool of %" PRIu64 " MiB: %s\n", bytes / MIB,
			gmm_last_error());
		exit(1);
	}
	return p;
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

struct frag_result {
	double secs;
	struct gmm_compact_events ev;
	double free_in_pageblocks; /* (a) share of free memory in free order>=9 blocks */
	double polluted;           /* (b) share of pageblocks with unmovable/reclaimable frames */
	double compactable;        /* (c) share of memory in blocks of only movable frames or free */
	double hugepages_at_rest;  /* share of memory allocatable as 2 MiB after movable is freed */
};

static void frag_measure(struct fragload *f, struct frag_result *r)
{
	uint64_t blocks = gmm_pool_nr_pages(f->pool) / GMM_PAGEBLOCK_PAGES, nfree = 0, big = 0, bad = 0;
	uint8_t *dirty = calloc(blocks, 1);
	struct gmm_zone_stats st;

	for (uint64_t i = 0; i < f->n; i++) {
		if (f->a[i].mob == FRAG_MOVABLE)
			continue;
		for (uint64_t b = f->a[i].pfn / 512; b <= (f->a[i].pfn + (1ull << f->a[i].order) - 1) / 512;
		     b++)
			dirty[b] = 1;
	}
	for (uint64_t b = 0; b < blocks; b++)
		bad += dirty[b];
	gmm_zone_stats(f->pool, 0, GMM_ZONE_NORMAL, &st);
	for (unsigned int o = 0; o <= st.max_order; o++) {
		for (int mt = 0; mt < GMM_MT_NR; mt++) {
			nfree += st.nr_free[o][mt] << o;
			if (o >= GMM_PAGEBLOCK_ORDER)
				big += st.nr_free[o][mt] << o;
		}
	}
	r->free_in_pageblocks = nfree ? (double)big / (double)nfree : 0;
	r->polluted = (double)bad / (double)blocks;
	r->compactable = (double)(blocks - bad) / (double)blocks;
	free(dirty);
}

/* After the churn: free all movable memory, count order-9 allocations that succeed. */
static double frag_at_rest(struct fragload *f)
{
	uint64_t got = 0, blocks = gmm_pool_nr_pages(f->pool) / GMM_PAGEBLOCK_PAGES;

	fragload_free_mobility(f, FRAG_MOVABLE);
	while (gmm_alloc(f->pool, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE | GMM_HIGH, GMM_NO_NODE) !=
	       GMM_PFN_NONE)
		got++;
	return (double)got / (double)blocks;
}

static void frag_run(bool grouping, bool compaction, uint64_t steps, struct frag_result *r)
{
	struct gmm_pool *p = pool_of(GIB, grouping);
	struct fragload f;
	double t0 = (1e9 * now_s());

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
	r->hugepages_at_rest = frag_at_rest(&f);
	if (gmm_pool_check(p))
		printf("POOL CHECK FAILED: %s\n", gmm_last_error());
	fragload_release(&f);
	gmm_pool_destroy(p);
}

static double ratio(double a, double b)
{
	return a / (b > 0 ? b : 1e-9);
}

static void frag_line(const char *what, double a, double b, double c)
{
	printf("%-46s %8.1f%% %8.1f%% %8.1f%%", what, 100 * a, 100 * b, 100 * c);
	for (int i = 0; i < 2; i++) {
		double d = i ? c : b;

		if (d > 0)
			printf(" %7.2fx", a / d);
		else
			printf(" %8s", "(0)");
	}
	printf("\n");
}

static void frag_report(uint64_t steps)
{
	struct frag_result cmp, on, off;
	uint64_t scanned;

	frag_run(true, true, steps, &cmp);
	frag_run(true, false, steps, &on);
	frag_run(false, false, steps, &off);
	printf("-- after %" PRIu64 " workload steps\n", steps);
	printf("%-46s %9s %9s %9s %8s %8s\n", "", "compact", "grouping", "off", "/group", "/off");
	frag_line("(a) free memory in free order>=9 blocks", cmp.free_in_pageblocks,
		  on.free_in_pageblocks, off.free_in_pageblocks);
	frag_line("(b) pageblocks polluted by unmovable/reclaimable", cmp.polluted, on.polluted,
		  off.polluted);
	frag_line("(c) theoretical maximum: unpolluted pageblocks", cmp.compactable,
		  on.compactable, off.compactable);
	frag_line("(d) order-9 allocatable after freeing movable", cmp.hugepages_at_rest,
		  on.hugepages_at_rest, off.hugepages_at_rest);
	frag_line("    (d) as a share of (c)", ratio(cmp.hugepages_at_rest, cmp.compactable),
		  ratio(on.hugepages_at_rest, on.compactable),
		  ratio(off.hugepages_at_rest, off.compactable));
	scanned = cmp.ev.compact_migrate_scanned + cmp.ev.compact_free_scanned;
	printf("    run time %.1f s vs %.1f s vs %.1f s; compaction: %" PRIu64 " frames migrated, "
	       "%.2f scanned per migrated, %" PRIu64 " stalls (%" PRIu64 " captured), %" PRIu64
	       " kcompactd wakes\n", cmp.secs, on.secs, off.secs, cmp.ev.pgmigrate_success,
	       ratio((double)scanned, (double)cmp.ev.pgmigrate_success), cmp.ev.compact_stall,
	       cmp.ev.compact_capture, cmp.ev.compact_daemon_wake);
}

static void bench_frag(void)
{
	printf("== frag: 1 GiB, ~10%% long-lived unmovable, ~15%% reclaimable churn, movable churn to 92%%\n");
	printf("   compact: grouping + compaction (kcompactd, proactiveness 20, direct); baselines in\n"
	       "   the same run: grouping without compaction, grouping off\n");
	frag_report(quick ? 400000 : 4000000);
	frag_report(quick ? 4000000 : 40000000);
}

/* --- compact ---------------------------------------------------------------- */

#define CONTIG_TRIES 64

/* alloc_contig_range of 2 MiB at random pageblocks of a pool about 90% full. */
static void bench_contig(void)
{
	struct gmm_pool *p = pool_of(GIB, true);
	uint64_t blocks = gmm_pool_nr_pages(p) / GMM_PAGEBLOCK_PAGES, ok = 0, pfn;
	double t_contig = 0, t_plain;
	struct fragload f;

	if (fragload_init(&f, p, 0x51ed2701a3f9c5b1ull) || fragload_own(&f))
		exit(1);
	fragload_run(&f, quick ? 400000 : 2000000);
	for (int i = 0; i < CONTIG_TRIES; i++) {
		uint64_t b = (f.rng = f.rng * 6364136223846793005ull + 1) >> 33;
		double t = (1e9 * now_s());
		int err;

		b %= blocks;
		err = gmm_alloc_contig_range(p, b * GMM_PAGEBLOCK_PAGES, (b + 1) * GMM_PAGEBLOCK_PAGES);
		t_contig += (1e9 * now_s()) - t;
		if (!err) {
			ok++;
			gmm_free_contig_range(p, b * GMM_PAGEBLOCK_PAGES, (b + 1) * GMM_PAGEBLOCK_PAGES);
		}
	}
	printf("== contig: alloc_contig_range of 2 MiB at %d random pageblocks, pool %.0f%% full\n",
	       CONTIG_TRIES, 100.0 - 100.0 * (double)gmm_pool_nr_free(p) / (double)gmm_pool_nr_pages(p));
	fragload_release(&f);
	gmm_pool_destroy(p);
	/* the baseline: order-9 alloc+free on an empty pool of the same size */
	p = pool_of(GIB, true);
	t_plain = (1e9 * now_s());
	for (int i = 0; i < CONTIG_TRIES; i++) {
		pfn = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, GMM_NO_NODE);
		gmm_free(p, pfn, GMM_PAGEBLOCK_ORDER);
	}
	t_plain = (1e9 * now_s()) - t_plain;
	gmm_pool_destroy(p);
	printf("   success %" PRIu64 "/%d (%.0f%%); a failure: an unmovable/reclaimable frame "
	       "or no target\n", ok, CONTIG_TRIES, 100.0 * (double)ok / CONTIG_TRIES);
	printf("   latency %.1f us per attempt vs order-9 alloc+free on an empty pool %.2f us "
	       "(%.0fx)\n", t_contig / CONTIG_TRIES / 1e3, t_plain / CONTIG_TRIES / 1e3,
	       t_contig / t_plain);
}

static void bench_compact(void)
{
	struct gmm_pool *p = pool_of(GIB, true);
	struct gmm_compact_result res;
	struct fragload f;
	double t, tc, gib;
	char *a, *b;

	if (fragload_init(&f, p, 0x9e3779b97f4a7c15ull) || fragload_own(&f))
		exit(1);
	fragload_run(&f, quick ? 400000 : 2000000);
	fragload_free_mobility(&f, FRAG_RECLAIMABLE);
	t = (1e9 * now_s());
	gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, &res);
	t = (1e9 * now_s()) - t;
	gib = (double)(res.migrated * GMM_PAGE_SIZE) / GIB;
	/* the floor: memcpy of the same bytes, 4 KiB at a time, between two buffers */
	a = malloc(256 * MIB);
	b = malloc(256 * MIB);
	memset(a, 1, 256 * MIB);
	memset(b, 2, 256 * MIB);
	tc = (1e9 * now_s());
	for (uint64_t done = 0; done < res.migrated * GMM_PAGE_SIZE; done += GMM_PAGE_SIZE) {
		uint64_t off = done % (256 * MIB);

		memcpy(b + off, a + off, GMM_PAGE_SIZE);
	}
	tc = (1e9 * now_s()) - tc;
	printf("== compact: 1 GiB after the frag workload, reclaimable freed, whole zone, sync\n");
	printf("   migrated %.3f GiB in %.1f ms: %.2f GiB/s; memcpy of the same bytes %.2f GiB/s "
	       "(ratio %.2fx)\n", gib, t / 1e6, gib / (t / 1e9), gib / (tc / 1e9), tc / t);
	printf("   scanned per migrated: %.2f (migrate %" PRIu64 " + free %" PRIu64 ")\n",
	       ratio((double)(res.migrate_scanned + res.free_scanned), (double)res.migrated),
	       res.migrate_scanned, res.free_scanned);
	printf("   fragmentation score %d; order-9 blocks free: ", gmm_fragmentation_score(p, 0));
	printf("%.1f%% of free memory\n", 100.0 - gmm_fragmentation_score(p, 0));
	free(a);
	free(b);
	fragload_release(&f);
	gmm_pool_destroy(p);
	bench_contig();
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
	printf("   metadata: %u bytes per 4 KiB frame + 1 byte per pageblock\n",
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

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-alloc [pair|frag|scale|all] [--quick]\n"
		"Benchmarks of the allocator core, each against a baseline of the same run:\n"
		"  pair   order-0 alloc+free pairs vs a mutex-protected LIFO stack\n"
		"  frag   mixed-mobility fragmentation, grouping on vs off\n"
		"  scale  metadata and costs of 1 GiB, 64 GiB and 1 TiB pools vs 1 GiB\n"
		"  all    all three (the default)\n"
		"  --quick  fewer iterations\n"
		"  --help   this text\n");
}

int main(int argc, char **argv)
{
	static const char *const benches[] = { "pair", "frag", "scale", "all" };
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
		for (int b = 0; b < 4; b++)
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
	return 0;
}
