/* SPDX-License-Identifier: MIT */
/*
 * tests/pcp/test_pcp_unit.c - unit tests of the per-thread caches: batch and
 * high against the kernel's formulas, refill and trim counts, frames in
 * caches in gmm_pool_check, frees into isolated blocks, the drain before
 * an allocation fails, bulk allocation and free.
 */
#include <pthread.h>
#include <unistd.h>
#include <string.h>

#include "pcp_test.h"

/* The kernel's zone_batchsize() and zone_highsize(), written out again. */
static unsigned int k_batch(unsigned long long managed)
{
	unsigned long long b = managed >> 10;
	unsigned long long r = 1;

	if (b > 256)
		b = 256;
	b /= 4;
	if (b < 1)
		b = 1;
	while (r * 2 <= b + b / 2)
		r *= 2;
	return r - 1 ? (unsigned int)(r - 1) : 1;
}

static unsigned int k_high(unsigned long long low, unsigned int batch, unsigned int cpus)
{
	unsigned long long h = low / (cpus ? cpus : 1);

	return h < batch * 4ull ? batch * 4 : (unsigned int)h;
}

static void check_sizes(struct gmm_pool *p, enum gmm_zone_type zt, unsigned int threads,
			unsigned int want_batch)
{
	struct gmm_zone_stats st;
	unsigned int batch, high, high_max;

	CHECK(gmm_zone_stats(p, 0, zt, &st) == 0);
	CHECK(gmm_pcp_zone_params(p, 0, zt, &batch, &high, &high_max) == 0);
	CHECK_EQ(batch, want_batch);
	CHECK_EQ(batch, k_batch(st.managed));
	CHECK_EQ(high, k_high(st.wmark_low, batch, threads));
	CHECK_EQ(high_max, k_high(st.managed / 8, batch, threads));
}

static pthread_barrier_t bar;

static void *attach_and_wait(void *arg)
{
	struct gmm_pool *p = arg;

	CHECK(gmm_thread_attach(p) == 0);
	gmm_thread_offline();
	pthread_barrier_wait(&bar); /* attached */
	pthread_barrier_wait(&bar); /* sizes checked */
	gmm_thread_online();
	CHECK(gmm_thread_detach(p) == 0);
	return NULL;
}

static void test_sizing(void)
{
	struct gmm_pool *p = test_pool(1024 * MIB, 128 * MIB);
	pthread_t th[7];

	/* 1 GiB: min(262144 >> 10, 256) / 4 = 64 -> rounddown_pow2(96) - 1 = 63 */
	check_sizes(p, GMM_ZONE_NORMAL, 1, 63);
	/* 128 MiB: 32 / 4 = 8 -> rounddown_pow2(12) - 1 = 7 */
	check_sizes(p, GMM_ZONE_MOVABLE, 1, 7);
	CHECK(gmm_thread_attach(p) == 0);
	CHECK(gmm_thread_attach(p) == -EEXIST);
	check_sizes(p, GMM_ZONE_NORMAL, 1, 63);
	pthread_barrier_init(&bar, NULL, 8);
	for (int i = 0; i < 7; i++)
		pthread_create(&th[i], NULL, attach_and_wait, p);
	gmm_thread_offline();
	pthread_barrier_wait(&bar);
	gmm_thread_online();
	/* 8 threads: the low watermark split 8 ways is below 4 batches */
	check_sizes(p, GMM_ZONE_NORMAL, 8, 63);
	check_sizes(p, GMM_ZONE_MOVABLE, 8, 7);
	gmm_thread_offline();
	pthread_barrier_wait(&bar);
	for (int i = 0; i < 7; i++)
		pthread_join(th[i], NULL);
	gmm_thread_online();
	check_sizes(p, GMM_ZONE_NORMAL, 1, 63);
	CHECK(gmm_thread_detach(p) == 0);
	CHECK(gmm_thread_detach(p) == -ENOENT);
	pthread_barrier_destroy(&bar);
	gmm_pool_destroy(p);
}

static void test_refill_and_trim(void)
{
	struct gmm_pool *p = test_pool(1024 * MIB, 0);
	uint64_t total = gmm_pool_nr_pages(p), pfn, pfn2, *v, refilled;
	struct gmm_pcp_stats s;
	unsigned int batch, high, high_max;
	const int n = 4000;

	CHECK(gmm_pcp_zone_params(p, 0, GMM_ZONE_NORMAL, &batch, &high, &high_max) == 0);
	CHECK(gmm_thread_attach(p) == 0);
	pfn = gmm_alloc(p, 0, 0, 0);
	CHECK(pfn != GMM_PFN_NONE);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.alloc_miss, 1);
	CHECK_EQ(s.alloc_hit, 0);
	CHECK_EQ(s.refill, 1);
	/* a batch, rounded up to whole 64-frame chunks (the first frame may be a
	 * single taken while claiming a pageblock for the migratetype) */
	CHECK(s.refill_frames >= batch && s.refill_frames <= batch + 65);
	refilled = s.refill_frames;
	CHECK_EQ(s.cached, refilled - 1);
	pfn2 = gmm_alloc(p, 0, 0, 0);
	CHECK(pfn2 != GMM_PFN_NONE && pfn2 != pfn);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.alloc_hit, 1);
	CHECK_EQ(gmm_pool_nr_free(p), total - refilled);
	CHECK(gmm_pool_check(p) == 0);
	/* the last frame freed is the next one handed out (LIFO, cache-hot) */
	CHECK(gmm_free(p, pfn2, 0) == 0);
	CHECK_EQ(gmm_alloc(p, 0, 0, 0), pfn2);
	CHECK(gmm_free(p, pfn2, 0) == 0);
	CHECK(gmm_free(p, pfn2, 0) == -EINVAL); /* double free into the cache */
	CHECK(gmm_free(p, pfn, 1) == -EINVAL);  /* wrong order */
	CHECK(gmm_free(p, pfn, 0) == 0);
	CHECK(gmm_pool_check(p) == 0);

	/* order 3: max(batch >> 3, 2) blocks per refill */
	pfn = gmm_alloc(p, 3, GMM_MOVABLE, 0);
	CHECK(pfn != GMM_PFN_NONE && !(pfn & 7));
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.refill, 2);
	CHECK(s.refill_frames >= refilled + ((batch >> 3) < 2 ? 2 : batch >> 3) * 8);
	CHECK(s.refill_frames <= refilled + 64);
	CHECK(gmm_free(p, pfn, 3) == 0);

	/*
	 * allocate n, free n: consecutive refills double (alloc_factor), so
	 * fewer refills than n / batch; frees trim the cache in batches, and
	 * the high mark adapts above high_min but never beyond high_max
	 */
	v = calloc(n, sizeof(*v));
	for (int i = 0; i < n; i++) {
		v[i] = gmm_alloc(p, 0, 0, 0);
		CHECK(v[i] != GMM_PFN_NONE);
	}
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK(s.refill_frames >= (unsigned)n);
	CHECK(s.refill < (unsigned)n / batch);
	uint64_t most = 0;
	for (int i = 0; i < n; i++) {
		CHECK(gmm_free(p, v[i], 0) == 0);
		if (i % 97 == 0) {
			CHECK(gmm_pcp_thread_stats(p, &s) == 0);
			CHECK(s.cached <= high_max);
			most = s.cached > most ? s.cached : most;
		}
	}
	CHECK(most > high);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK(s.cached <= high_max);
	CHECK(gmm_pool_check(p) == 0);
	CHECK_EQ(gmm_pool_nr_free(p) + s.cached, total);

	/*
	 * an idle cache above high_min decays once a second at quiescent states
	 * (by an eighth of high: a few seconds before high falls below the count)
	 */
	uint64_t before = s.cached;
	for (int i = 0; i < 100 && s.cached == before; i++) {
		usleep(100000);
		gmm_thread_quiescent();
		CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	}
	printf("decay: %llu -> %llu (high_min %u)\n", (unsigned long long)before,
	       (unsigned long long)s.cached, high);
	CHECK(before > high);
	CHECK(s.cached < before && s.cached >= high);
	CHECK_EQ(gmm_pool_nr_free(p) + s.cached, total);

	/* the free_high heuristic returns runs of order-3 frees promptly */
	for (int i = 0; i < 200; i++) {
		v[i] = gmm_alloc(p, 3, 0, 0);
		CHECK(v[i] != GMM_PFN_NONE);
	}
	for (int i = 0; i < 200; i++)
		CHECK(gmm_free(p, v[i], 3) == 0);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK(s.cached <= batch + high / 2 + 8);
	CHECK(gmm_pool_check(p) == 0);

	/* drain everything: the drainer is itself attached and online */
	CHECK_EQ(gmm_drain_all_caches(p), s.cached);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.cached, 0);
	CHECK_EQ(s.remote_drain, 1);
	CHECK_EQ(gmm_pool_nr_free(p), total);
	CHECK(gmm_pool_check(p) == 0);
	CHECK(gmm_thread_detach(p) == 0);
	CHECK(gmm_pcp_stats(p, &s) == 0);
	CHECK_EQ(s.threads, 0);
	CHECK(s.alloc_hit > 0 && s.hit_permille > 900);
	free(v);
	gmm_pool_destroy(p);
}

static void test_isolated_free(void)
{
	struct gmm_pool *p = test_pool(128 * MIB, 0);
	struct gmm_pcp_stats s, s2;
	uint64_t pfn, blk;
	struct gmm_zone_stats zs;

	CHECK(gmm_thread_attach(p) == 0);
	pfn = gmm_alloc(p, 0, GMM_MOVABLE, 0);
	CHECK(pfn != GMM_PFN_NONE);
	blk = pfn & ~(GMM_PAGEBLOCK_PAGES - 1);
	CHECK(gmm_isolate_range(p, blk, blk + GMM_PAGEBLOCK_PAGES) == 0);
	/* isolation drained the caches */
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.cached, 0);
	CHECK(gmm_free(p, pfn, 0) == 0);
	CHECK(gmm_pcp_thread_stats(p, &s2) == 0);
	CHECK_EQ(s2.cached, 0);
	CHECK_EQ(s2.free, s.free);
	CHECK(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &zs) == 0);
	CHECK_EQ(zs.nr_blocks[GMM_MT_ISOLATE], 1);
	CHECK(gmm_pool_check(p) == 0);
	CHECK(gmm_undo_isolate_range(p, blk, blk + GMM_PAGEBLOCK_PAGES) == 0);
	CHECK(gmm_thread_detach(p) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	CHECK(gmm_pool_check(p) == 0);
	gmm_pool_destroy(p);
}

static void *hoard(void *arg)
{
	struct gmm_pool *p = arg;
	uint64_t v[200];

	CHECK(gmm_thread_attach(p) == 0);
	for (int i = 0; i < 200; i++)
		CHECK((v[i] = gmm_alloc(p, 0, 0, 0)) != GMM_PFN_NONE);
	for (int i = 0; i < 200; i++)
		CHECK(gmm_free(p, v[i], 0) == 0);
	gmm_thread_offline();
	pthread_barrier_wait(&bar); /* frames cached */
	pthread_barrier_wait(&bar); /* pool exhausted */
	gmm_thread_online();
	CHECK(gmm_thread_detach(p) == 0);
	return NULL;
}

/* An allocation drains other threads' caches before it fails. */
static void test_drain_before_failure(void)
{
	struct gmm_pool *p = test_pool(128 * MIB, 0);
	uint64_t total = gmm_pool_nr_pages(p), got = 0, *v = calloc(total + 1, sizeof(*v));
	struct gmm_pcp_stats s;
	pthread_t th;

	pthread_barrier_init(&bar, NULL, 2);
	pthread_create(&th, NULL, hoard, p);
	pthread_barrier_wait(&bar);
	CHECK(gmm_pcp_stats(p, &s) == 0);
	CHECK(s.cached > 0);
	while ((v[got] = gmm_alloc(p, 0, GMM_NO_WATERMARKS, 0)) != GMM_PFN_NONE)
		got++;
	CHECK_EQ(got, total);
	CHECK(gmm_pcp_stats(p, &s) == 0);
	CHECK(s.remote_drain >= 1 && s.cached == 0);
	CHECK(gmm_pool_check(p) == 0);
	pthread_barrier_wait(&bar);
	pthread_join(th, NULL);
	CHECK(gmm_free_bulk(p, got, v) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), total);
	pthread_barrier_destroy(&bar);
	free(v);
	gmm_pool_destroy(p);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void bulk_round(struct gmm_pool *p, bool attached)
{
	const size_t n = 5000;
	uint64_t *v = calloc(n + 1, sizeof(*v)), total = gmm_pool_nr_pages(p);
	struct gmm_pcp_stats s;
	size_t got;

	got = gmm_alloc_bulk(p, GMM_MOVABLE | GMM_ZERO, GMM_NO_NODE, n, v);
	CHECK_EQ(got, n);
	for (size_t i = 0; i < n; i++)
		CHECK(((char *)gmm_pfn_to_host(p, v[i]))[100] == 0);
	CHECK(gmm_pool_check(p) == 0);
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 1; i < n; i++)
		CHECK(v[i] != v[i - 1]);
	if (attached) {
		CHECK(gmm_pcp_thread_stats(p, &s) == 0);
		CHECK_EQ(s.bulk_alloc, n);
		CHECK(s.refill <= n / 63 + 2);
	}
	v[n] = v[0]; /* a double free in the batch: refused, the rest freed */
	CHECK(gmm_free_bulk(p, n + 1, v) == -EINVAL);
	gmm_drain_all_caches(p);
	CHECK_EQ(gmm_pool_nr_free(p), total);
	CHECK(gmm_pool_check(p) == 0);
	free(v);
}

static void test_bulk(void)
{
	struct gmm_pool *p = test_pool(1024 * MIB, 0);
	uint64_t v[4];

	bulk_round(p, false);
	CHECK(gmm_thread_attach(p) == 0);
	bulk_round(p, true);
	CHECK_EQ(gmm_alloc_bulk(p, GMM_MOVABLE | GMM_RECLAIMABLE, 0, 4, v), 0);
	CHECK(gmm_thread_detach(p) == 0);
	gmm_pool_destroy(p);
}

/*
 * Attached bulk allocation moves on to the next zone of the zonelist when
 * the first one's refill is refused (alloc_pages_bulk()): movable frames
 * come from ZONE_NORMAL once ZONE_MOVABLE is below its watermark, within
 * one call.
 */
static void test_bulk_zone_fallback(void)
{
	struct gmm_pool *p = test_pool(128 * MIB, 128 * MIB);
	size_t cap = (256 * MIB) / GMM_PAGE_SIZE, nr = 0, got, normal = 0;
	uint64_t *held = malloc(cap * sizeof(*held)), v[256];

	CHECK(held != NULL);
	CHECK(gmm_thread_attach(p) == 0);
	/* singles until they come from ZONE_NORMAL: ZONE_MOVABLE is below its watermark */
	for (;;) {
		CHECK(nr < cap);
		held[nr] = gmm_alloc(p, 0, GMM_MOVABLE, 0);
		CHECK(held[nr] != GMM_PFN_NONE);
		if (gmm_pfn_zone(p, held[nr++]) == GMM_ZONE_NORMAL)
			break;
	}
	got = gmm_alloc_bulk(p, GMM_MOVABLE, 0, 256, v);
	CHECK_EQ(got, (size_t)256);
	for (size_t i = 0; i < got; i++)
		normal += gmm_pfn_zone(p, v[i]) == GMM_ZONE_NORMAL;
	CHECK(normal > 0);
	CHECK_EQ(gmm_free_bulk(p, got, v), 0);
	CHECK_EQ(gmm_free_bulk(p, nr, held), 0);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK(gmm_thread_detach(p) == 0);
	gmm_pool_destroy(p);
	free(held);
}

/*
 * The order-0 cache hit looks the (node, flags) pair up in a table; the
 * GMM_NO_NODE row follows the pool's policy, so a policy change takes
 * effect on the next allocation of an attached thread, as on the full path.
 */
static void test_policy_fast_path(void)
{
	struct gmm_pool_config cfg;
	struct gmm_pool *p = NULL;
	uint64_t v[64];

	gmm_pool_config_init(&cfg, 128 * MIB);
	cfg.nr_nodes = 2;
	cfg.nodes[1].normal_bytes = 128 * MIB;
	CHECK(gmm_pool_create(&cfg, &p) == 0);
	CHECK(gmm_thread_attach(p) == 0);
	for (int node = 0; node < 2; node++) {
		CHECK(gmm_pool_set_policy(p, GMM_POLICY_BIND, 1ull << node) == 0);
		for (int round = 0; round < 2; round++) { /* the second round hits the cache */
			for (int i = 0; i < 64; i++) {
				v[i] = gmm_alloc(p, 0, round ? GMM_MOVABLE : 0, GMM_NO_NODE);
				CHECK(v[i] != GMM_PFN_NONE);
				CHECK_EQ(gmm_pfn_node(p, v[i]), node);
			}
			for (int i = 0; i < 64; i++)
				CHECK_EQ(gmm_free(p, v[i], 0), 0);
		}
		/* an explicit node and GMM_THISNODE are not the policy's */
		v[0] = gmm_alloc(p, 0, GMM_THISNODE, 1 - node);
		CHECK(v[0] != GMM_PFN_NONE);
		CHECK_EQ(gmm_pfn_node(p, v[0]), 1 - node);
		CHECK_EQ(gmm_free(p, v[0], 0), 0);
	}
	/* interleave alternates (the full path), GMM_THISNODE without a node is refused */
	CHECK(gmm_pool_set_policy(p, GMM_POLICY_INTERLEAVE, 3) == 0);
	for (int i = 0; i < 4; i++)
		v[i] = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	CHECK(gmm_pfn_node(p, v[0]) != gmm_pfn_node(p, v[1]));
	CHECK(gmm_pfn_node(p, v[2]) != gmm_pfn_node(p, v[3]));
	CHECK_EQ(gmm_free_bulk(p, 4, v), 0);
	CHECK_EQ(gmm_alloc(p, 0, GMM_THISNODE, GMM_NO_NODE), GMM_PFN_NONE);
	CHECK_EQ(gmm_errno(), -EINVAL);
	CHECK_EQ(gmm_alloc(p, 0, GMM_MOVABLE | GMM_RECLAIMABLE, 0), GMM_PFN_NONE);
	CHECK_EQ(gmm_alloc(p, 0, 1u << 20, 0), GMM_PFN_NONE);
	CHECK_EQ(gmm_errno(), -EINVAL);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK(gmm_thread_detach(p) == 0);
	gmm_pool_destroy(p);
}

static void test_stat_render(void)
{
	struct gmm_pool *p = test_pool(128 * MIB, 0);
	char *s = NULL;

	CHECK(gmm_thread_attach(p) == 0);
	CHECK(gmm_free(p, gmm_alloc(p, 0, 0, 0), 0) == 0);
	CHECK(gmm_stat_pcp(p, GMM_STAT_TEXT, &s) == 0);
	CHECK(strstr(s, "alloc_miss") && strstr(s, "batch: 7"));
	free(s);
	CHECK(gmm_stat_pcp(p, GMM_STAT_JSON, &s) == 0);
	CHECK(strstr(s, "\"hit_permille\":0") && strstr(s, "\"batch\":7"));
	free(s);
	CHECK(gmm_thread_detach(p) == 0);
	gmm_pool_destroy(p);
}

static void *exit_attached(void *arg)
{
	struct gmm_pool *p = arg;

	CHECK(gmm_thread_attach(p) == 0);
	CHECK(gmm_free(p, gmm_alloc(p, 0, 0, 0), 0) == 0);
	return NULL; /* no detach */
}

/* A thread that exits attached is detached: no reader left behind, frames back. */
static void test_exit_attached(void)
{
	struct gmm_pool *p = test_pool(128 * MIB, 0);
	struct gmm_pcp_stats s;
	pthread_t th;

	pthread_create(&th, NULL, exit_attached, p);
	pthread_join(th, NULL);
	CHECK(gmm_pcp_stats(p, &s) == 0);
	CHECK_EQ(s.threads, 0);
	CHECK_EQ(s.cached, 0);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	CHECK_EQ(gmm_drain_all_caches(p), 0);
	CHECK(gmm_pool_check(p) == 0);
	gmm_pool_destroy(p);
}

/* Two pools on one thread; after a detach the pool is served by the locked path. */
static void test_two_pools(void)
{
	struct gmm_pool *a = test_pool(128 * MIB, 0), *b = test_pool(128 * MIB, 0);
	struct gmm_pcp_stats s;
	uint64_t pa, pb;

	CHECK(gmm_thread_attach(a) == 0);
	CHECK(gmm_thread_attach(b) == 0);
	pa = gmm_alloc(a, 0, 0, 0);
	pb = gmm_alloc(b, 0, 0, 0);
	CHECK(pa != GMM_PFN_NONE && pb != GMM_PFN_NONE);
	CHECK(gmm_pcp_thread_stats(a, &s) == 0 && s.alloc_miss == 1);
	CHECK(gmm_pcp_thread_stats(b, &s) == 0 && s.alloc_miss == 1);
	CHECK(gmm_free(a, pa, 0) == 0);
	CHECK(gmm_thread_detach(a) == 0);
	/* a's cache is gone: its frames went back, and a is served unattached */
	CHECK_EQ(gmm_pool_nr_free(a), gmm_pool_nr_pages(a));
	CHECK(gmm_pcp_thread_stats(a, &s) == -ENOENT);
	pa = gmm_alloc(a, 0, 0, 0);
	CHECK(pa != GMM_PFN_NONE);
	CHECK_EQ(gmm_pool_nr_free(a), gmm_pool_nr_pages(a) - 1);
	CHECK(gmm_free(a, pa, 0) == 0);
	/* b still has its cache */
	CHECK(gmm_free(b, pb, 0) == 0);
	CHECK(gmm_pcp_thread_stats(b, &s) == 0 && s.free == 1);
	CHECK(gmm_thread_detach(b) == 0);
	/* no attachment left: b is served unattached too (no stale cache) */
	pb = gmm_alloc(b, 0, 0, 0);
	CHECK(pb != GMM_PFN_NONE && gmm_free(b, pb, 0) == 0);
	CHECK(gmm_pool_check(a) == 0 && gmm_pool_check(b) == 0);
	gmm_pool_destroy(a);
	gmm_pool_destroy(b);
}

/*
 * Pageblock-order (THP) blocks are cached as the kernel does since 5.13:
 * a refill takes max(batch >> 9, 2) blocks, frees stay in the cache until
 * the count (in frames) reaches high, and a remote drain returns them.
 */
static void test_thp(void)
{
	struct gmm_pool *p = test_pool(1024 * MIB, 0);
	uint64_t total = gmm_pool_nr_pages(p), v[96], refills = 0, trims = 0;
	const uint64_t thp = GMM_PAGEBLOCK_PAGES;
	unsigned int batch, high, high_max;
	struct gmm_pcp_stats s;
	int n;

	CHECK(gmm_pcp_zone_params(p, 0, GMM_ZONE_NORMAL, &batch, &high, &high_max) == 0);
	CHECK(high < 3 * thp && high_max >= 32 * thp && high_max < 96 * thp);
	CHECK(gmm_thread_attach(p) == 0);
	v[0] = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, 0);
	CHECK(v[0] != GMM_PFN_NONE && !(v[0] & (thp - 1)));
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.refill, 1);
	CHECK_EQ(s.refill_frames, 2 * thp);
	CHECK_EQ(s.cached, thp);
	v[1] = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, 0);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.alloc_hit, 1);
	CHECK_EQ(s.cached, 0);
	/* an unmovable THP comes from the other THP list: a refill */
	v[2] = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, 0, 0);
	CHECK(v[2] != GMM_PFN_NONE);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.refill, 2);
	CHECK(gmm_pool_check(p) == 0);
	/* frees are cached (and checked); each refill grew high by its 2 THPs */
	CHECK(gmm_free(p, v[0], GMM_PAGEBLOCK_ORDER) == 0);
	CHECK(gmm_free(p, v[0], GMM_PAGEBLOCK_ORDER) == -EINVAL);
	CHECK(gmm_free(p, v[1], 0) == -EINVAL);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.cached, 2 * thp);
	CHECK(gmm_pool_check(p) == 0);
	CHECK(gmm_free(p, v[1], GMM_PAGEBLOCK_ORDER) == 0);
	CHECK(gmm_free(p, v[2], GMM_PAGEBLOCK_ORDER) == 0);
	CHECK(gmm_pcp_thread_stats(p, &s) == 0);
	CHECK_EQ(s.drain, 0);
	CHECK_EQ(s.cached, 4 * thp);
	CHECK_EQ(gmm_pool_nr_free(p) + s.cached, total);

	/*
	 * A working set of 24 THPs: the first round takes the two cached
	 * movable ones, then refills 2 at a time and grows high by 2 THPs each
	 * time (11 refills, no trim); from
	 * then on the set stays in the cache: no zone lock at all.  (With high
	 * grown by batch frames a refill, as the kernel does, high would stay
	 * below 9 THPs and every round would refill and trim.)
	 */
	for (int round = 0; round < 6; round++) {
		for (n = 0; n < 24; n++) {
			v[n] = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, 0);
			CHECK(v[n] != GMM_PFN_NONE);
		}
		for (n = 0; n < 24; n++)
			CHECK(gmm_free(p, v[n], GMM_PAGEBLOCK_ORDER) == 0);
		CHECK(gmm_pcp_thread_stats(p, &s) == 0);
		if (!round) {
			CHECK_EQ(s.refill, 2 + 11);
			CHECK_EQ(s.drain, 0);
			refills = s.refill;
			trims = s.drain;
		}
		CHECK_EQ(s.refill, refills);
		CHECK_EQ(s.drain, trims);
	}
	CHECK(s.cached >= 24 * thp);
	CHECK(gmm_pool_check(p) == 0);

	/* beyond high_max the frees trim: the cache never holds more */
	for (n = 0; n < 96; n++) {
		v[n] = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, 0);
		CHECK(v[n] != GMM_PFN_NONE);
	}
	for (n = 0; n < 96; n++) {
		CHECK(gmm_free(p, v[n], GMM_PAGEBLOCK_ORDER) == 0);
		CHECK(gmm_pcp_thread_stats(p, &s) == 0);
		CHECK(s.cached <= high_max);
	}
	CHECK(s.drain > trims);
	CHECK_EQ(gmm_pool_nr_free(p) + s.cached, total);
	CHECK(gmm_pool_check(p) == 0);
	/* the remote drain covers the THP lists */
	CHECK(s.cached >= thp);
	CHECK_EQ(gmm_drain_all_caches(p), s.cached);
	CHECK_EQ(gmm_pool_nr_free(p), total);
	CHECK(gmm_pool_check(p) == 0);
	CHECK(gmm_thread_detach(p) == 0);
	gmm_pool_destroy(p);
}

/*
 * Order-0 refills come in aligned 64-frame chunks but overshoot the
 * kernel's count (batch << alloc_factor) by at most half a chunk, and a
 * request below half a chunk splits no larger block for a chunk.  A 512 MiB
 * zone has batch 31: its first refill (no order-6 block free yet) takes 31
 * single frames, the next ones 62 -> 64, 124 -> 128, ... frames.
 */
static void test_refill_overshoot(void)
{
	struct gmm_pool *p = test_pool(512 * MIB, 0);
	unsigned int batch, high, high_max, k = 0;
	uint64_t v[2100], frames = 0;
	struct gmm_pcp_stats s;

	CHECK(gmm_pcp_zone_params(p, 0, GMM_ZONE_NORMAL, &batch, &high, &high_max) == 0);
	CHECK_EQ(batch, 31);
	CHECK(gmm_thread_attach(p) == 0);
	for (int i = 0; i < 2100; i++) {
		v[i] = gmm_alloc(p, 0, GMM_MOVABLE, 0);
		CHECK(v[i] != GMM_PFN_NONE);
		CHECK(gmm_pcp_thread_stats(p, &s) == 0);
		if (s.refill == k)
			continue;
		uint64_t got = s.refill_frames - frames, want = (uint64_t)batch << (k < 5 ? k : 5);

		CHECK_EQ(s.refill, k + 1);
		CHECK(got + 32 > want && got <= want + 32);
		if (!k)
			CHECK_EQ(got, batch);
		frames = s.refill_frames;
		k++;
	}
	CHECK(k >= 6);
	CHECK(gmm_free_bulk(p, 2100, v) == 0);
	CHECK(gmm_pool_check(p) == 0);
	CHECK(gmm_thread_detach(p) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	gmm_pool_destroy(p);
}

/*
 * Two caches never hold frames whose metadata share a cache line (64
 * state bytes): each refill takes whole aligned 64-frame chunks.
 */
static uint64_t line_frames[2][256];

static void *take_frames(void *arg)
{
	struct gmm_pool *p = *(struct gmm_pool **)arg;
	uint64_t *v = line_frames[((struct gmm_pool **)arg)[1] != NULL];

	CHECK(gmm_thread_attach(p) == 0);
	for (int i = 0; i < 256; i++) {
		/* in lockstep: the threads' refills alternate */
		gmm_thread_offline();
		pthread_barrier_wait(&bar);
		gmm_thread_online();
		v[i] = gmm_alloc(p, 0, GMM_MOVABLE, 0);
		CHECK(v[i] != GMM_PFN_NONE);
	}
	CHECK(gmm_thread_detach(p) == 0);
	return NULL;
}

static void test_no_shared_lines(void)
{
	struct gmm_pool *p = test_pool(1024 * MIB, 0);
	struct gmm_pool *arg[2][2] = { { p, NULL }, { p, p } };
	pthread_t th[2];

	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, take_frames, arg[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < 256; i++)
		for (int j = 0; j < 256; j++)
			CHECK(line_frames[0][i] / 64 != line_frames[1][j] / 64);
	for (int i = 0; i < 2; i++)
		CHECK(gmm_free_bulk(p, 256, line_frames[i]) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	gmm_pool_destroy(p);
}

int main(void)
{
	test_thp();
	test_no_shared_lines();
	test_refill_overshoot();
	test_sizing();
	test_two_pools();
	test_refill_and_trim();
	test_isolated_free();
	test_drain_before_failure();
	test_bulk();
	test_bulk_zone_fallback();
	test_policy_fast_path();
	test_stat_render();
	test_exit_attached();
	printf("pcp unit tests passed\n");
	return 0;
}
