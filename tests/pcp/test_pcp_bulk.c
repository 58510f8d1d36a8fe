/* SPDX-License-Identifier: MIT */
/*
 * tests/pcp/test_pcp_bulk.c - gmm_alloc_bulk() and gmm_free_bulk() against
 * single allocations and frees, attached and not.
 *
 * Two pools of the same configuration go through the same operations, one
 * with single calls and one with bulk calls; a bulk call must leave its pool
 * exactly as the singles leave theirs: the same frames handed out in the
 * same order, the same cache counters (refills, trims, frames cached), the
 * same free lists (per order and migratetype), and the same frames handed
 * out afterwards (the cache lists in the same order).  Batches mix zones,
 * migratetypes, pageblocks, refused frames (double frees, frames outside the
 * pool, free frames) and cache size changes (another thread attaching).
 * Property checks on top: frames distinct, of the node and zone asked for,
 * allocated order-0 frames (gmm_pool_check()), and every pool back to its
 * start state once everything is freed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcp_test.h"

#define NR_NODES 2
#define MAX_BATCH 3000
#define ROUNDS 60

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t bound)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % bound;
}

/* Two nodes, each with 128 MiB of ZONE_NORMAL and of ZONE_MOVABLE:
 * small enough that batches of MAX_BATCH frames cross high and trim. */
static struct gmm_pool *pool_new(void)
{
	struct gmm_pool_config cfg;
	struct gmm_pool *p = NULL;

	gmm_pool_config_init(&cfg, 128 * MIB);
	cfg.nr_nodes = NR_NODES;
	for (int n = 0; n < NR_NODES; n++) {
		cfg.nodes[n].normal_bytes = 128 * MIB;
		cfg.nodes[n].movable_bytes = 128 * MIB;
	}
	CHECK(gmm_pool_create(&cfg, &p) == 0);
	return p;
}

struct pool_state {
	struct gmm_zone_stats z[NR_NODES][GMM_NR_ZONES];
	uint64_t nr_free;
};

static void pool_state(struct gmm_pool *p, struct pool_state *s)
{
	memset(s, 0, sizeof(*s));
	for (int n = 0; n < NR_NODES; n++)
		for (int zt = 0; zt < GMM_NR_ZONES; zt++)
			if (gmm_zone_stats(p, n, (enum gmm_zone_type)zt, &s->z[n][zt]))
				memset(&s->z[n][zt], 0, sizeof(s->z[n][zt])); /* no such zone */
	s->nr_free = gmm_pool_nr_free(p);
}

/* The free lists of every zone and their event counters are the same. */
static void check_same_buddy(struct gmm_pool *a, struct gmm_pool *b)
{
	struct pool_state sa, sb;

	pool_state(a, &sa);
	pool_state(b, &sb);
	CHECK_EQ(sa.nr_free, sb.nr_free);
	for (int n = 0; n < NR_NODES; n++)
		for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
			CHECK_EQ(sa.z[n][zt].free, sb.z[n][zt].free);
			CHECK(!memcmp(sa.z[n][zt].nr_free, sb.z[n][zt].nr_free,
				      sizeof(sa.z[n][zt].nr_free)));
			CHECK(!memcmp(&sa.z[n][zt].events, &sb.z[n][zt].events,
				      sizeof(sa.z[n][zt].events)));
		}
}

/*
 * Everything free again: the free blocks of each order are those of the
 * start (fallbacks may have changed pageblocks' migratetypes meanwhile).
 */
static void check_merged(struct gmm_pool *p, const struct pool_state *start)
{
	struct pool_state s;

	pool_state(p, &s);
	CHECK_EQ(s.nr_free, gmm_pool_nr_pages(p));
	for (int n = 0; n < NR_NODES; n++)
		for (int zt = 0; zt < GMM_NR_ZONES; zt++)
			for (unsigned int o = 0; o <= GMM_MAX_ORDER_LIMIT; o++) {
				uint64_t now = 0, then = 0;

				for (int mt = 0; mt < GMM_MT_NR; mt++) {
					now += s.z[n][zt].nr_free[o][mt];
					then += start->z[n][zt].nr_free[o][mt];
				}
				CHECK_EQ(now, then);
			}
}

/* The calling thread's cache counters of @a and @b are the same (bulk_alloc apart). */
static void check_same_cache(struct gmm_pool *a, struct gmm_pool *b)
{
	struct gmm_pcp_stats x, y;

	CHECK(gmm_pcp_thread_stats(a, &x) == 0);
	CHECK(gmm_pcp_thread_stats(b, &y) == 0);
	CHECK_EQ(x.cached, y.cached);
	CHECK_EQ(x.alloc_hit, y.alloc_hit);
	CHECK_EQ(x.alloc_miss, y.alloc_miss);
	CHECK_EQ(x.alloc_fail, y.alloc_fail);
	CHECK_EQ(x.free, y.free);
	CHECK_EQ(x.refill, y.refill);
	CHECK_EQ(x.refill_frames, y.refill_frames);
	CHECK_EQ(x.drain, y.drain);
	CHECK_EQ(x.drain_frames, y.drain_frames);
}

/* Allocation flags and node of a request: zones, migratetypes and nodes mixed. */
static void pick_request(unsigned int *flags, int *node)
{
	/* mostly movable: fewer fallbacks, so the caches' lists keep long runs */
	static const unsigned int fl[] = { 0, GMM_RECLAIMABLE, GMM_MOVABLE, GMM_MOVABLE,
					   GMM_MOVABLE | GMM_NO_MOVABLE_ZONE,
					   GMM_MOVABLE | GMM_NO_MOVABLE_ZONE,
					   GMM_MOVABLE | GMM_THISNODE };

	*flags = fl[rnd(sizeof(fl) / sizeof(fl[0]))];
	*node = (int)rnd(NR_NODES + 1) - 1; /* -1: GMM_NO_NODE */
	if (*node < 0) {
		*node = GMM_NO_NODE;
		*flags &= ~(unsigned int)GMM_THISNODE;
	}
}

/* The same @n single allocations in both pools, in runs of one request: the same frames. */
static void alloc_singles(struct gmm_pool *a, struct gmm_pool *b, size_t n, uint64_t *va,
			  uint64_t *vb)
{
	unsigned int flags = 0;
	int node = 0;

	for (size_t i = 0; i < n; i++) {
		if (!i || !rnd(300))
			pick_request(&flags, &node);
		va[i] = gmm_alloc(a, 0, flags, node);
		vb[i] = gmm_alloc(b, 0, flags, node);
		CHECK(va[i] != GMM_PFN_NONE);
		CHECK_EQ(va[i], vb[i]);
	}
}

static void shuffle(uint64_t *v, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd(i);
		uint64_t t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

static void *attach_detach(void *arg)
{
	struct gmm_pool **pools = arg;

	CHECK(gmm_thread_attach(pools[0]) == 0);
	CHECK(gmm_thread_attach(pools[1]) == 0);
	CHECK(gmm_thread_detach(pools[0]) == 0);
	CHECK(gmm_thread_detach(pools[1]) == 0);
	return NULL;
}

/* Another thread attaches and detaches: the caches' sizes change (the zone word). */
static void resize_caches(struct gmm_pool *a, struct gmm_pool *b)
{
	struct gmm_pool *pools[2] = { a, b };
	pthread_t th;

	CHECK(pthread_create(&th, NULL, attach_detach, pools) == 0);
	CHECK(pthread_join(th, NULL) == 0);
}

/*
 * Single frees in @a, one bulk free in @b, of the same frames; with @bad,
 * two more that both must refuse, at random places: a frame freed twice,
 * a pfn outside the pool.
 */
static void free_both(struct gmm_pool *a, struct gmm_pool *b, uint64_t *v, size_t n,
		      bool bad)
{
	int want = 0, errs = 0;

	if (bad && n) {
		v[n] = v[rnd(n)];                  /* freed twice in the batch */
		v[n + 1] = gmm_pool_nr_pages(a) * 4; /* beyond the pool */
		n += 2;
		shuffle(v, n);
		want = -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		errs += gmm_free(a, v[i], 0) != 0;
	CHECK_EQ(errs, bad && n ? 2 : 0);
	CHECK_EQ(gmm_free_bulk(b, n, v), want);
}

/* Frames freed in bulk go exactly where single frees put them. */
static void test_free_matches_singles(bool attached)
{
	struct gmm_pool *a = pool_new(), *b = pool_new();
	uint64_t *va = malloc(2 * (MAX_BATCH + 2) * sizeof(*va));
	uint64_t *vb = malloc(2 * (MAX_BATCH + 2) * sizeof(*vb));
	uint64_t *held = malloc(ROUNDS * MAX_BATCH * sizeof(*held));
	size_t nheld = 0;
	struct pool_state start;
	struct gmm_pcp_stats s;

	CHECK(va && vb && held);
	pool_state(a, &start);
	if (attached) {
		CHECK(gmm_thread_attach(a) == 0);
		CHECK(gmm_thread_attach(b) == 0);
	}
	for (int r = 0; r < ROUNDS; r++) {
		size_t n = 1 + rnd(r % 3 ? 128 : MAX_BATCH), keep = rnd(4) ? 0 : rnd(n);

		alloc_singles(a, b, n, va, vb);
		if (!rnd(4))
			shuffle(va, n);
		/* some frames stay allocated for a while: the caches' lists vary */
		memcpy(held + nheld, va + n - keep, keep * sizeof(*va));
		nheld += keep;
		n -= keep;
		if (r % 7 == 3)
			resize_caches(a, b);
		free_both(a, b, va, n, r % 5 == 0);
		check_same_buddy(a, b);
		if (attached)
			check_same_cache(a, b);
	}
	/* the caches hand out the same frames in the same order: the same lists */
	alloc_singles(a, b, MAX_BATCH, va, vb);
	free_both(a, b, va, MAX_BATCH, false);
	free_both(a, b, held, nheld, false);
	if (attached) {
		check_same_cache(a, b);
		CHECK(gmm_pcp_thread_stats(b, &s) == 0);
		CHECK(s.drain > 0); /* the batches crossed high */
		CHECK(gmm_thread_detach(a) == 0);
		CHECK(gmm_thread_detach(b) == 0);
	}
	CHECK(gmm_pool_check(a) == 0);
	CHECK(gmm_pool_check(b) == 0);
	check_same_buddy(a, b);
	/* everything is back: the pool as it started, block for block */
	CHECK_EQ(gmm_pool_nr_free(b), gmm_pool_nr_pages(b));
	check_merged(b, &start);
	gmm_pool_destroy(a);
	gmm_pool_destroy(b);
	free(va);
	free(vb);
	free(held);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

/* Frames distinct and in the pool; with @placed, of the node and zone asked for. */
static void check_frames(struct gmm_pool *p, const uint64_t *v, size_t n, unsigned int flags,
			 int node, bool placed)
{
	uint64_t *s = malloc(n * sizeof(*s));
	enum gmm_zone_type zt = (flags & GMM_MOVABLE) && !(flags & GMM_NO_MOVABLE_ZONE) ?
					GMM_ZONE_MOVABLE : GMM_ZONE_NORMAL;

	CHECK(s != NULL);
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		CHECK(s[i] < gmm_pool_nr_pages(p));
		CHECK(!i || s[i] != s[i - 1]);
		if (!placed)
			continue;
		/* with memory to spare, the first zone asked for */
		CHECK_EQ(gmm_pfn_zone(p, s[i]), zt);
		if (node != GMM_NO_NODE)
			CHECK_EQ(gmm_pfn_node(p, s[i]), node);
	}
	free(s);
}

/*
 * One bulk allocation hands out the frames that as many single allocations
 * would, in the same order: attached, with the same refills (bulk_alloc
 * counts them); unattached, taking the buddy's blocks as the singles split
 * them.  Attached, the frees go to the buddy while the thread is offline,
 * so that only the allocations differ between the pools.
 */
static void test_alloc_matches_singles(bool attached)
{
	struct gmm_pool *a = pool_new(), *b = pool_new();
	uint64_t *va = malloc(MAX_BATCH * sizeof(*va)), *vb = malloc(MAX_BATCH * sizeof(*vb));
	struct gmm_pcp_stats s0 = { 0 }, s1 = { 0 };

	CHECK(va && vb);
	if (attached) {
		CHECK(gmm_thread_attach(a) == 0);
		CHECK(gmm_thread_attach(b) == 0);
	}
	for (int r = 0; r < ROUNDS; r++) {
		size_t n = 1 + rnd(r % 3 ? 128 : MAX_BATCH);
		unsigned int flags;
		int node;

		pick_request(&flags, &node);
		if (attached)
			CHECK(gmm_pcp_thread_stats(b, &s0) == 0);
		for (size_t i = 0; i < n; i++)
			CHECK((va[i] = gmm_alloc(a, 0, flags, node)) != GMM_PFN_NONE);
		CHECK_EQ(gmm_alloc_bulk(b, flags, node, n, vb), n);
		for (size_t i = 0; i < n; i++)
			CHECK_EQ(vb[i], va[i]);
		check_frames(b, vb, n, flags, node, true);
		check_same_buddy(a, b);
		if (attached) {
			CHECK(gmm_pcp_thread_stats(b, &s1) == 0);
			CHECK_EQ(s1.bulk_alloc - s0.bulk_alloc, n);
			CHECK_EQ(s1.alloc_hit + s1.alloc_miss - s0.alloc_hit - s0.alloc_miss, n);
			CHECK_EQ(s1.cached, s0.cached + (s1.refill_frames - s0.refill_frames) - n);
			check_same_cache(a, b);
			gmm_thread_offline();
		}
		/* some rounds keep their frames: the next ones start from split blocks */
		if (rnd(3)) {
			CHECK_EQ(gmm_free_bulk(a, n, va), 0);
			CHECK_EQ(gmm_free_bulk(b, n, vb), 0);
		}
		if (attached)
			gmm_thread_online();
		check_same_buddy(a, b);
	}
	CHECK(gmm_pool_check(a) == 0);
	CHECK(gmm_pool_check(b) == 0);
	if (attached) {
		CHECK(gmm_thread_detach(a) == 0);
		CHECK(gmm_thread_detach(b) == 0);
	}
	gmm_pool_destroy(a);
	gmm_pool_destroy(b);
	free(va);
	free(vb);
}

/* Unattached: bulk allocations keep to the node and zone, and the pool
 * comes back whole. */
static void test_alloc_unattached(void)
{
	struct gmm_pool *p = pool_new();
	uint64_t *v = malloc(ROUNDS * MAX_BATCH * sizeof(*v)), total = gmm_pool_nr_pages(p);
	struct pool_state start;
	size_t nv = 0;

	CHECK(v != NULL);
	pool_state(p, &start);
	for (int r = 0; r < ROUNDS / 2; r++) {
		size_t n = 1 + rnd(r % 3 ? 128 : MAX_BATCH);
		unsigned int flags;
		int node;

		pick_request(&flags, &node);
		CHECK_EQ(gmm_alloc_bulk(p, flags, node, n, v + nv), n);
		check_frames(p, v + nv, n, flags, node, true);
		nv += n;
		CHECK_EQ(gmm_pool_nr_free(p), total - nv);
		/* free some, in bulk, out of order; all when a zone could run short */
		if (nv > 6000) {
			shuffle(v, nv);
			CHECK_EQ(gmm_free_bulk(p, nv, v), 0);
			nv = 0;
		} else if (rnd(3) == 0) {
			size_t k = rnd(nv);

			shuffle(v, nv);
			CHECK_EQ(gmm_free_bulk(p, k, v + nv - k), 0);
			nv -= k;
		}
	}
	CHECK(gmm_pool_check(p) == 0);
	check_frames(p, v, nv, 0, GMM_NO_NODE, false);
	CHECK_EQ(gmm_free_bulk(p, nv, v), 0);
	CHECK_EQ(gmm_free_bulk(p, 1, v), -EINVAL); /* freed already */
	CHECK_EQ(gmm_pool_nr_free(p), total);
	CHECK(gmm_pool_check(p) == 0);
	check_merged(p, &start);
	gmm_pool_destroy(p);
	free(v);
}

/*
 * Refused frames inside runs of consecutive frames: one freed already
 * before the batch, one twice within it, one that was never allocated
 * right after the run.  The others are freed, nothing else is touched.
 */
static void test_refused_in_runs(bool attached)
{
	struct gmm_pool *p = pool_new();
	uint64_t v[80], total = gmm_pool_nr_pages(p), last;
	struct gmm_pcp_stats s = { 0 };

	/* a fresh pool: the 64 frames are one aligned block, consecutive */
	if (attached)
		CHECK(gmm_thread_attach(p) == 0);
	CHECK_EQ(gmm_alloc_bulk(p, GMM_MOVABLE, 0, 64, v), 64);
	qsort(v, 64, sizeof(v[0]), cmp_u64);
	last = v[63];
	CHECK_EQ(gmm_free(p, v[5], 0), 0);
	v[64] = v[20];    /* twice */
	v[65] = last + 1; /* not allocated (free or cached): the run's next frame */
	CHECK_EQ(gmm_free_bulk(p, 66, v), -EINVAL);
	CHECK(gmm_pool_check(p) == 0);
	if (attached) {
		CHECK(gmm_pcp_thread_stats(p, &s) == 0);
		CHECK_EQ(s.free, 64);
		CHECK(gmm_thread_detach(p) == 0);
	}
	CHECK_EQ(gmm_pool_nr_free(p), total);
	gmm_pool_destroy(p);
}

int main(void)
{
	test_free_matches_singles(true);
	test_free_matches_singles(false);
	test_alloc_matches_singles(true);
	test_alloc_matches_singles(false);
	test_alloc_unattached();
	test_refused_in_runs(true);
	test_refused_in_runs(false);
	printf("pcp bulk tests passed\n");
	return 0;
}
