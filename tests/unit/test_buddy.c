/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/test_buddy.c - unit tests of the allocator core: split, merge,
 * tail placement, fallback order, claim versus steal, ALLOC_NOFRAGMENT,
 * watermarks, the HIGHATOMIC reserve, zones, CMA, isolation, grouping off.
 * White-box where the public API cannot show a detail (list order, types).
 */
#include "../../memmgr/internal.h"
#include "../harness.h"

#define MIB (1ull << 20)

static struct gmm_pool *make_pool(struct gmm_pool_config *c)
{
	struct gmm_pool *p = NULL;

	if (gmm_pool_create(c, &p)) {
		fprintf(stderr, "  pool_create: %s\n", gmm_last_error());
		return NULL;
	}
	return p;
}

/* A one-node pool of @mib MiB in 4 MiB memory blocks. */
static struct gmm_pool *small_pool(uint64_t mib, bool nofragment)
{
	struct gmm_pool_config c;

	gmm_pool_config_init(&c, mib * MIB);
	c.block_bytes = 4 * MIB;
	c.nofragment = nofragment;
	return make_pool(&c);
}

static struct gmm_zone *zone0(struct gmm_pool *p)
{
	return &p->nodes[0].zones[GMM_ZONE_NORMAL];
}

static void check_pool(struct gmm_pool *p)
{
	int err = gmm_pool_check(p);

	if (err)
		fprintf(stderr, "  pool_check: %s\n", gmm_last_error());
	CHECK_EQ(err, 0);
}

static void test_split(void)
{
	struct gmm_pool *p = small_pool(128, true);
	struct gmm_zone *z;
	uint64_t pfn;

	REQUIRE(p);
	z = zone0(p);
	pfn = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	REQUIRE(pfn != GMM_PFN_NONE);
	CHECK_EQ(pfn % 1024, 0);
	/* one max-order block claimed and split: one free buddy per lower order */
	for (unsigned int o = 0; o < 10; o++) {
		CHECK_EQ(z->area[o][GMM_MT_UNMOVABLE].nr, 1);
		CHECK_EQ(z->area[o][GMM_MT_UNMOVABLE].list.head, pfn + (1ull << o));
	}
	CHECK_EQ(z->area[10][GMM_MT_MOVABLE].nr, 31);
	CHECK_EQ(pb_type(p, pfn), GMM_MT_UNMOVABLE);
	CHECK_EQ(pb_type(p, pfn + 512), GMM_MT_UNMOVABLE);
	CHECK_EQ(z->nr_free, 32768 - 1);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_merge(void)
{
	struct gmm_pool *p = small_pool(128, true);
	uint64_t a, b, c;

	REQUIRE(p);
	a = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	b = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	c = gmm_alloc(p, 2, 0, GMM_NO_NODE);
	REQUIRE(a != GMM_PFN_NONE && b != GMM_PFN_NONE && c != GMM_PFN_NONE);
	CHECK_EQ(b, a ^ 1);
	CHECK_EQ(c % 4, 0);
	CHECK_EQ(gmm_free(p, b, 0), 0);
	CHECK_EQ(zone0(p)->area[0][GMM_MT_UNMOVABLE].nr, 1);
	check_pool(p);
	CHECK_EQ(gmm_free(p, a, 0), 0);
	CHECK_EQ(gmm_free(p, c, 2), 0);
	/* everything merged back to max order; the claimed blocks keep their type */
	CHECK_EQ(zone0(p)->area[10][GMM_MT_UNMOVABLE].nr + zone0(p)->area[10][GMM_MT_MOVABLE].nr,
		 32);
	CHECK_EQ(zone0(p)->area[10][GMM_MT_UNMOVABLE].nr, 1);
	CHECK_EQ(zone0(p)->area_nr[0], 0);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_no_merge_across_types(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;
	struct gmm_zone *z;

	gmm_pool_config_init(&c, 16 * MIB);
	c.block_bytes = 4 * MIB;
	c.nodes[0].cma_bytes = 2 * MIB;
	p = make_pool(&c);
	REQUIRE(p);
	z = zone0(p);
	/* the last pageblock is CMA: it must not merge with its MOVABLE buddy */
	CHECK_EQ(z->area[9][GMM_MT_CMA].nr, 1);
	CHECK_EQ(z->area[9][GMM_MT_MOVABLE].nr, 1);
	CHECK_EQ(z->area[10][GMM_MT_MOVABLE].nr, 3);
	CHECK_EQ(pb_type(p, 4096 - 512), GMM_MT_CMA);
	check_pool(p);
	/* an isolated pageblock does not merge either, and merges again after undo */
	CHECK_EQ(gmm_isolate_range(p, 1024, 1536), 0);
	CHECK_EQ(z->area[9][GMM_MT_ISOLATE].nr, 1);
	CHECK_EQ(z->area[9][GMM_MT_MOVABLE].nr, 2);
	CHECK_EQ(z->nr_free, 4096 - 512);
	check_pool(p);
	CHECK_EQ(gmm_undo_isolate_range(p, 1024, 1536), 0);
	CHECK_EQ(z->area[10][GMM_MT_MOVABLE].nr, 3);
	CHECK_EQ(z->nr_free, 4096);
	check_pool(p);
	gmm_pool_destroy(p);
}

/* White-box: free hand-picked blocks and watch where they land in the lists. */
static void test_tail_placement(void)
{
	struct gmm_pool *p = small_pool(4, true);
	struct gmm_zone *z;
	int mt = GMM_MT_MOVABLE;

	REQUIRE(p);
	z = zone0(p);
	pthread_mutex_lock(&z->lock);
	freelist_del(z, 0, 10, mt);
	buddy_free_one(z, 8, 3, mt);  /* higher buddy 16 not free: head */
	buddy_free_one(z, 4, 2, mt);  /* 0's order-3 buddy 8 is free: tail */
	buddy_free_one(z, 18, 1, mt); /* 16's order-2 buddy 20 not free: head */
	buddy_free_one(z, 2, 1, mt);  /* 0's order-2 buddy 4 is free: tail */
	buddy_free_one(z, 26, 1, mt); /* 24's order-2 buddy 28 not free: head */
	CHECK_EQ(z->area[1][mt].nr, 3);
	CHECK_EQ(z->area[1][mt].list.head, 26);
	CHECK_EQ(z->area[1][mt].list.tail, 2);
	/* give back everything else frame by frame: all merges to one block */
	for (uint64_t pfn = 0; pfn < 1024; pfn++) {
		if ((pfn >= 2 && pfn < 16) || pfn == 18 || pfn == 19 || pfn == 26 || pfn == 27)
			continue;
		buddy_free_one(z, pfn, 0, mt);
	}
	CHECK_EQ(z->area[10][mt].nr, 1);
	CHECK_EQ(z->area_nr[0] + z->area_nr[1] + z->area_nr[2] + z->area_nr[3], 0);
	pthread_mutex_unlock(&z->lock);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_fallback_order(void)
{
	struct gmm_pool *p = small_pool(16, true);
	uint64_t r, u, m;

	REQUIRE(p);
	/* make one RECLAIMABLE and one UNMOVABLE max-order block, then free them */
	r = gmm_alloc(p, 0, GMM_RECLAIMABLE, GMM_NO_NODE);
	u = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	REQUIRE(r != GMM_PFN_NONE && u != GMM_PFN_NONE);
	CHECK(r / 1024 != u / 1024);
	CHECK_EQ(gmm_free(p, r, 0), 0);
	CHECK_EQ(gmm_free(p, u, 0), 0);
	CHECK_EQ(pb_type(p, r), GMM_MT_RECLAIMABLE);
	CHECK_EQ(pb_type(p, u), GMM_MT_UNMOVABLE);
	/* MOVABLE borrows from RECLAIMABLE before UNMOVABLE */
	m = gmm_alloc(p, 10, GMM_MOVABLE | GMM_NO_WATERMARKS, GMM_NO_NODE);
	m = m == GMM_PFN_NONE ? m : gmm_alloc(p, 10, GMM_MOVABLE | GMM_NO_WATERMARKS, GMM_NO_NODE);
	REQUIRE(m != GMM_PFN_NONE);
	/* both MOVABLE blocks used: next movable request must take the RECLAIMABLE one */
	m = gmm_alloc(p, 10, GMM_MOVABLE | GMM_NO_WATERMARKS, GMM_NO_NODE);
	CHECK_EQ(m, r);
	CHECK_EQ(pb_type(p, r), GMM_MT_MOVABLE);
	/* UNMOVABLE borrows from RECLAIMABLE first: make one again and compare */
	check_pool(p);
	gmm_pool_destroy(p);

	p = small_pool(16, true);
	REQUIRE(p);
	r = gmm_alloc(p, 0, GMM_RECLAIMABLE, GMM_NO_NODE);
	CHECK_EQ(gmm_free(p, r, 0), 0);
	m = gmm_alloc(p, 0, GMM_MOVABLE, GMM_NO_NODE); /* own list: not the reclaimable block */
	CHECK(m / 1024 != r / 1024);
	u = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	CHECK_EQ(u / 1024, r / 1024);
	CHECK_EQ(pb_type(p, r), GMM_MT_UNMOVABLE);
	CHECK_EQ(zone0(p)->ev.fallback, 2);
	check_pool(p);
	gmm_pool_destroy(p);
}

/* Fill a pool completely with movable order-0 frames. */
static uint64_t fill_movable(struct gmm_pool *p)
{
	uint64_t n = 0;

	while (gmm_alloc(p, 0, GMM_MOVABLE | GMM_NO_WATERMARKS, GMM_NO_NODE) != GMM_PFN_NONE)
		n++;
	return n;
}

static void test_claim_vs_steal(void)
{
	struct gmm_pool *p = small_pool(8, false);
	struct gmm_zone *z;
	uint64_t pfn;

	REQUIRE(p);
	z = zone0(p);
	CHECK_EQ(fill_movable(p), 2048);
	/* pageblock 0: 200 scattered free frames, under half: steal, no claim */
	for (uint64_t i = 0; i < 200; i++)
		CHECK_EQ(gmm_free(p, 2 * i, 0), 0);
	pfn = gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE);
	CHECK(pfn < 400 && pfn % 2 == 0);
	CHECK_EQ(z->ev.steal, 1);
	CHECK_EQ(z->ev.claim, 0);
	CHECK_EQ(pb_type(p, 0), GMM_MT_MOVABLE);
	/* pageblock 1: 300 contiguous free frames, over half: the block is claimed */
	for (uint64_t f = 512; f < 812; f++)
		CHECK_EQ(gmm_free(p, f, 0), 0);
	pfn = gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE);
	CHECK(pfn >= 512 && pfn < 812);
	CHECK_EQ(z->ev.claim, 1);
	CHECK_EQ(pb_type(p, 512), GMM_MT_UNMOVABLE);
	CHECK_EQ(z->nr_free_mt[GMM_MT_UNMOVABLE], 299);
	CHECK(z->boost > 0 || GMM_PAGEBLOCK_PAGES * 4 > z->managed);
	check_pool(p);
	gmm_pool_destroy(p);
}

/* Two nodes of 8 MiB; node 0 holds only scattered movable free frames. */
static struct gmm_pool *scattered_node0(bool nofragment, bool defrag)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;

	gmm_pool_config_init(&c, 8 * MIB);
	c.nr_nodes = 2;
	c.nodes[1].normal_bytes = 8 * MIB;
	c.block_bytes = 4 * MIB;
	c.nofragment = nofragment;
	c.defrag_mode = defrag;
	p = make_pool(&c);
	if (!p)
		return NULL;
	while (gmm_alloc(p, 0, GMM_MOVABLE | GMM_NO_WATERMARKS | GMM_THISNODE, 0) != GMM_PFN_NONE)
		;
	for (uint64_t i = 0; i < 600; i++)
		CHECK_EQ(gmm_free(p, 3 * i, 0), 0);
	return p;
}

static void test_nofragment_locality(void)
{
	for (int nf = 0; nf < 2; nf++) {
		struct gmm_pool *p = scattered_node0(nf, false);

		REQUIRE(p);
		/* locality beats fragmentation avoidance: stays on node 0, stealing */
		uint64_t pfn = gmm_alloc(p, 0, 0, 0);
		CHECK_EQ(gmm_pfn_node(p, pfn), 0);
		CHECK_EQ(p->nodes[1].zones[0].ev.nofragment_retry, nf ? 1 : 0);
		check_pool(p);
		gmm_pool_destroy(p);
	}
}

/*
 * Defrag mode keeps ALLOC_NOFRAGMENT on remote nodes too: the request takes
 * node 1's whole free pageblock rather than a frame of node 0's movable
 * blocks (nothing there can be compacted: no owner).  Turned off at run
 * time, the same request steals on node 0.
 */
static void test_defrag_mode_remote(void)
{
	struct gmm_pool *p = scattered_node0(true, true);
	uint64_t pfn;

	REQUIRE(p);
	CHECK(gmm_pool_defrag_mode(p));
	pfn = gmm_alloc(p, 0, 0, 0);
	CHECK_EQ(gmm_pfn_node(p, pfn), 1);
	CHECK_EQ(p->nodes[0].zones[0].ev.steal, 0);
	CHECK_EQ(p->nodes[1].zones[0].ev.claim, 1);
	CHECK_EQ(p->nodes[1].zones[0].ev.nofragment_retry, 0);
	CHECK_EQ(gmm_pool_set_defrag_mode(p, false), 0);
	CHECK(!gmm_pool_defrag_mode(p));
	CHECK_EQ(gmm_free(p, pfn, 0), 0);
	pfn = gmm_alloc(p, 0, 0, 0);
	CHECK_EQ(gmm_pfn_node(p, pfn), 0);
	CHECK_EQ(p->nodes[0].zones[0].ev.steal, 1);
	check_pool(p);
	gmm_pool_destroy(p);
	CHECK_EQ(gmm_pool_set_defrag_mode(NULL, true), -EINVAL);
	CHECK(!gmm_pool_defrag_mode(NULL));
	CHECK_EQ(gmm_errno(), -EINVAL);
}

/*
 * Defrag mode holds whoever asks the buddy, even with the `nofragment`
 * configuration off: a bulk request on node 0 (no whole free pageblock,
 * nothing to compact) falls back only as the slow path's last resort.
 */
static void test_defrag_mode_bulk(void)
{
	struct gmm_pool *p = scattered_node0(false, true);
	struct gmm_zone *z;
	uint64_t pfn;

	REQUIRE(p);
	z = &p->nodes[0].zones[0];
	CHECK_EQ(gmm_alloc_bulk(p, GMM_THISNODE, 0, 1, &pfn), 1);
	CHECK_EQ(gmm_pfn_node(p, pfn), 0);
	CHECK_EQ(z->ev.steal, 1);
	CHECK_EQ(z->ev.defrag_fallback, 1);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_watermarks(void)
{
	struct gmm_pool *p = small_pool(1024, true);
	struct gmm_zone_stats st;
	uint64_t n;

	REQUIRE(p);
	REQUIRE(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st) == 0);
	/* min_free_kbytes = sqrt(16 * 1 GiB in KiB) = 4096 KiB; scale factor 10 */
	CHECK_EQ(st.wmark_min, 1024);
	CHECK_EQ(st.wmark_low, 1024 + 262);
	CHECK_EQ(st.wmark_high, 1024 + 2 * 262);
	for (n = 0; gmm_alloc(p, 0, 0, GMM_NO_NODE) != GMM_PFN_NONE; n++)
		;
	CHECK_EQ(n, 262144 - 1024);
	for (n = 0; gmm_alloc(p, 0, GMM_HIGH, GMM_NO_NODE) != GMM_PFN_NONE; n++)
		;
	CHECK_EQ(n, 512);
	for (n = 0; gmm_alloc(p, 0, GMM_ATOMIC, GMM_NO_NODE) != GMM_PFN_NONE; n++)
		;
	CHECK_EQ(n, 128);
	for (n = 0; gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE) != GMM_PFN_NONE; n++)
		;
	CHECK_EQ(n, 384);
	CHECK_EQ(gmm_pool_nr_free(p), 0);
	CHECK(strstr(gmm_last_error(), "no free block") != NULL);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_highatomic(void)
{
	struct gmm_pool *p = small_pool(1024, true);
	struct gmm_zone *z;
	uint64_t a, b, c;

	REQUIRE(p);
	z = zone0(p);
	while (gmm_alloc(p, 0, 0, GMM_NO_NODE) != GMM_PFN_NONE)
		;
	CHECK_EQ(z->nr_free, 1024);
	/* a high-order atomic request in the slow path reserves its pageblock */
	a = gmm_alloc(p, 1, GMM_ATOMIC, GMM_NO_NODE);
	REQUIRE(a != GMM_PFN_NONE);
	CHECK_EQ(pb_type(p, a), GMM_MT_HIGHATOMIC);
	CHECK_EQ(z->nr_reserved_highatomic, 512);
	CHECK_EQ(z->nr_free_mt[GMM_MT_HIGHATOMIC], 510);
	CHECK_EQ(z->ev.highatomic_reserve, 1);
	/* the next atomic high-order request is served from the reserve */
	b = gmm_alloc(p, 1, GMM_ATOMIC, GMM_NO_NODE);
	CHECK_EQ(b / 512, a / 512);
	check_pool(p);
	/* the reserve is not usable free memory for others... */
	CHECK_EQ(gmm_alloc(p, 0, GMM_HIGH | GMM_NOWAIT, GMM_NO_NODE) != GMM_PFN_NONE, 1);
	/* ...until pressure releases it: keep taking with GMM_HIGH */
	for (int i = 0; i < 600 && (c = gmm_alloc(p, 0, GMM_HIGH, GMM_NO_NODE)) != GMM_PFN_NONE;
	     i++)
		;
	CHECK_EQ(z->ev.highatomic_unreserve, 1);
	CHECK_EQ(z->nr_reserved_highatomic, 0);
	CHECK_EQ(pb_type(p, a), GMM_MT_UNMOVABLE);
	check_pool(p);
	gmm_pool_destroy(p);
}

/*
 * Releasing a reserve changes its pageblock's type: its free blocks must
 * merge with their buddies, which they could not do while the types
 * differed (a HIGHATOMIC block never merges with a MOVABLE one).
 */
static void test_highatomic_release_merges(void)
{
	struct gmm_pool *p = small_pool(256, true);
	struct gmm_zone *z;
	uint64_t a;

	REQUIRE(p);
	z = zone0(p);
	a = gmm_alloc(p, 1, GMM_MOVABLE, GMM_NO_NODE);
	REQUIRE(a != GMM_PFN_NONE);
	pthread_mutex_lock(&z->lock);
	buddy_reserve_highatomic(z, a, 1);
	pthread_mutex_unlock(&z->lock);
	CHECK_EQ(pb_type(p, a), GMM_MT_HIGHATOMIC);
	CHECK_EQ(gmm_free(p, a, 1), 0);
	/* a free HIGHATOMIC pageblock beside a free MOVABLE one: not merged */
	CHECK_EQ(z->area[GMM_PAGEBLOCK_ORDER][GMM_MT_HIGHATOMIC].nr, 1);
	check_pool(p);
	pthread_mutex_lock(&z->lock);
	CHECK(buddy_unreserve_highatomic(z, GMM_MT_MOVABLE, true));
	pthread_mutex_unlock(&z->lock);
	CHECK_EQ(pb_type(p, a), GMM_MT_MOVABLE);
	check_pool(p);
	CHECK_EQ(z->area[GMM_PAGEBLOCK_ORDER][GMM_MT_MOVABLE].nr, 0);
	CHECK_EQ(z->area[10][GMM_MT_MOVABLE].nr, 64);
	gmm_pool_destroy(p);
}

/* A message that quotes the previous one (gmm_last_error() as an argument). */
static void test_nested_error(void)
{
	char want[256];

	CHECK_EQ(gmm_set_error(-ENOMEM, "inner %d", 42), -ENOMEM);
	CHECK_EQ(gmm_set_error(-ENOMEM, "outer: %s", gmm_last_error()), -ENOMEM);
	CHECK(strcmp(gmm_last_error(), "outer: inner 42") == 0);
	memset(want, 'x', sizeof(want) - 1);
	want[sizeof(want) - 1] = 0;
	gmm_set_error(-EINVAL, "%s", want);
	gmm_set_error(-EINVAL, "again: %s", gmm_last_error());
	CHECK(strncmp(gmm_last_error(), "again: xxxx", 11) == 0);
	CHECK_EQ(strlen(gmm_last_error()), sizeof(want) - 1);
}

static struct gmm_pool *numa_pool(unsigned int nodes, uint64_t mib_each)
{
	struct gmm_pool_config c;

	gmm_pool_config_init(&c, mib_each * MIB);
	c.nr_nodes = nodes;
	c.block_bytes = 4 * MIB;
	for (unsigned int n = 1; n < nodes; n++)
		c.nodes[n].normal_bytes = mib_each * MIB;
	if (nodes == 4) {
		static const uint8_t d[4][4] = {
			{ 10, 40, 20, 30 }, { 40, 10, 30, 20 }, { 20, 30, 10, 40 }, { 30, 20, 40, 10 },
		};
		for (int i = 0; i < 4; i++)
			memcpy(c.distance[i], d[i], 4);
	}
	return make_pool(&c);
}

static void test_policy_preferred_and_fallback(void)
{
	struct gmm_pool *p = numa_pool(4, 16);
	int expect[] = { 0, 2, 3, 1 };
	uint64_t pfn;

	REQUIRE(p);
	CHECK_EQ(gmm_pfn_node(p, gmm_alloc(p, 0, 0, 1)), 1);
	CHECK_EQ(gmm_pfn_node(p, gmm_alloc(p, 0, 0, 3)), 3);
	/* exhaust node 0 step by step: the spill goes by distance 0 -> 2 -> 3 -> 1 */
	for (int step = 1; step < 4; step++) {
		int node;

		do {
			pfn = gmm_alloc(p, 0, GMM_MOVABLE, 0);
			node = pfn == GMM_PFN_NONE ? -1 : gmm_pfn_node(p, pfn);
		} while (node == expect[step - 1] || (step > 1 && node == expect[step - 2]) ||
			 (step > 2 && node == expect[0]));
		CHECK_EQ(node, expect[step]);
	}
	/* THISNODE: no fallback */
	while (gmm_alloc(p, 0, GMM_MOVABLE | GMM_THISNODE | GMM_NO_WATERMARKS, 0) != GMM_PFN_NONE)
		;
	CHECK_EQ(gmm_alloc(p, 0, GMM_MOVABLE | GMM_THISNODE, 0), GMM_PFN_NONE);
	CHECK(gmm_pfn_node(p, gmm_alloc(p, 0, GMM_MOVABLE, 0)) != 0);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_policy_bind_interleave(void)
{
	struct gmm_pool *p = numa_pool(4, 8);
	struct gmm_policy bind = { .mode = GMM_POLICY_BIND, .nodes = 0x6 };
	struct gmm_policy il = { .mode = GMM_POLICY_INTERLEAVE, .nodes = 0xf };
	uint64_t pfn, n = 0;

	REQUIRE(p);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(gmm_pfn_node(p, gmm_alloc_policy(p, 0, 0, &il)), i % 4);
	while ((pfn = gmm_alloc_policy(p, 0, GMM_NO_WATERMARKS, &bind)) != GMM_PFN_NONE) {
		int node = gmm_pfn_node(p, pfn);

		CHECK(node == 1 || node == 2);
		n++;
	}
	/* nodes 1 and 2 (8 MiB each) are full, minus the interleaved frames */
	CHECK_EQ(n, 2 * 2048 - 4);
	CHECK(gmm_alloc(p, 0, 0, 0) != GMM_PFN_NONE);
	CHECK_EQ(gmm_pool_set_policy(p, GMM_POLICY_INTERLEAVE, 0x9), 0);
	CHECK_EQ(gmm_pfn_node(p, gmm_alloc(p, 0, 0, GMM_NO_NODE)), 0);
	CHECK_EQ(gmm_pfn_node(p, gmm_alloc(p, 0, 0, GMM_NO_NODE)), 3);
	CHECK_EQ(gmm_pool_set_policy(p, GMM_POLICY_BIND, 0x10), -EINVAL);
	check_pool(p);
	gmm_pool_destroy(p);

	p = numa_pool(2, 8);
	REQUIRE(p);
	CHECK_EQ(gmm_pool_set_policy(p, GMM_POLICY_BIND, 0x2), 0);
	for (n = 0; (pfn = gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE)) != GMM_PFN_NONE; n++)
		CHECK_EQ(gmm_pfn_node(p, pfn), 1);
	CHECK_EQ(n, 2048);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_bad_config(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p = NULL;

	gmm_pool_config_init(&c, 64 * MIB);
	c.nr_nodes = 0;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	CHECK(strlen(gmm_last_error()) > 0);
	gmm_pool_config_init(&c, 64 * MIB);
	c.max_order = 19;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	c.max_order = 8;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	gmm_pool_config_init(&c, 64 * MIB);
	c.block_bytes = 3 * MIB;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	gmm_pool_config_init(&c, 100 * MIB);
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	gmm_pool_config_init(&c, 128 * MIB);
	c.nodes[0].cma_bytes = 256 * MIB;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	gmm_pool_config_init(&c, 128 * MIB);
	c.nr_nodes = 2;
	c.distance[0][1] = 5;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	gmm_pool_config_init(&c, 0);
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	CHECK_EQ(gmm_pool_create(NULL, &p), -EINVAL);
	/* sizes whose sum wraps around 2^64 */
	gmm_pool_config_init(&c, 0 - 128 * MIB);
	c.nodes[0].movable_bytes = 256 * MIB;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	gmm_pool_config_init(&c, 1ull << 63);
	c.nr_nodes = 2;
	c.nodes[1].normal_bytes = (1ull << 63) + 256 * MIB;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	gmm_pool_config_init(&c, 128 * MIB);
	c.nodes[0].hotplug_bytes = 0 - 128 * MIB;
	CHECK_EQ(gmm_pool_create(&c, &p), -EINVAL);
	CHECK(strstr(gmm_last_error(), "16 TiB") != NULL);
	CHECK(p == NULL);
}

static void test_bad_calls(void)
{
	struct gmm_pool *p = small_pool(16, true);
	uint64_t a, free0;

	REQUIRE(p);
	a = gmm_alloc(p, 2, 0, GMM_NO_NODE);
	REQUIRE(a != GMM_PFN_NONE);
	free0 = gmm_pool_nr_free(p);
	CHECK_EQ(gmm_alloc(p, 11, 0, GMM_NO_NODE), GMM_PFN_NONE);
	CHECK_EQ(gmm_alloc(p, 0, 1u << 30, GMM_NO_NODE), GMM_PFN_NONE);
	CHECK_EQ(gmm_alloc(p, 0, GMM_MOVABLE | GMM_RECLAIMABLE, GMM_NO_NODE), GMM_PFN_NONE);
	CHECK_EQ(gmm_alloc(p, 0, 0, 5), GMM_PFN_NONE);
	CHECK_EQ(gmm_alloc(p, 0, GMM_THISNODE, GMM_NO_NODE), GMM_PFN_NONE);
	CHECK_EQ(gmm_free(p, a, 1), -EINVAL);       /* wrong order */
	CHECK_EQ(gmm_free(p, a + 1, 0), -EINVAL);   /* a tail frame */
	CHECK_EQ(gmm_free(p, a + 4, 2), -EINVAL);   /* a free block */
	CHECK_EQ(gmm_free(p, 1ull << 40, 0), -EINVAL);
	CHECK_EQ(gmm_free(p, a + 2, 2), -EINVAL);   /* unaligned */
	CHECK_EQ(gmm_isolate_range(p, 1, 512), -EINVAL);
	CHECK_EQ(gmm_isolate_range(p, 0, 1ull << 30), -EINVAL);
	CHECK_EQ(gmm_undo_isolate_range(p, 0, 512), -EINVAL);
	CHECK_EQ(gmm_pool_nr_free(p), free0);
	check_pool(p);
	CHECK_EQ(gmm_free(p, a, 2), 0);
	CHECK_EQ(gmm_free(p, a, 2), -EINVAL);       /* double free */
	CHECK(strstr(gmm_last_error(), "double free") != NULL);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_grouping_off(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;
	struct gmm_zone_stats st;

	gmm_pool_config_init(&c, 16 * MIB);
	c.block_bytes = 4 * MIB;
	c.mobility_grouping = false;
	p = make_pool(&c);
	REQUIRE(p);
	for (int i = 0; i < 300; i++) {
		unsigned int f = i % 3 == 0 ? GMM_MOVABLE : i % 3 == 1 ? GMM_RECLAIMABLE : 0;

		CHECK(gmm_alloc(p, (unsigned int)i % 4, f, GMM_NO_NODE) != GMM_PFN_NONE);
	}
	REQUIRE(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st) == 0);
	CHECK_EQ(st.nr_blocks[GMM_MT_UNMOVABLE], 8);
	CHECK_EQ(st.free, zone0(p)->nr_free_mt[GMM_MT_UNMOVABLE]);
	CHECK_EQ(st.events.fallback, 0);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_isolation(void)
{
	struct gmm_pool *p = small_pool(16, true);
	struct gmm_zone *z;
	uint64_t x, pfn, n = 0;

	REQUIRE(p);
	z = zone0(p);
	x = gmm_alloc(p, 0, GMM_MOVABLE, GMM_NO_NODE);
	REQUIRE(x != GMM_PFN_NONE);
	CHECK_EQ(gmm_isolate_range(p, x & ~511ull, (x & ~511ull) + 1024), 0);
	CHECK_EQ(gmm_isolate_range(p, x & ~511ull, (x & ~511ull) + 512), -EBUSY);
	CHECK_EQ(gmm_pageblock_migratetype(p, x), GMM_MT_ISOLATE);
	CHECK_EQ(pb_type(p, x), GMM_MT_MOVABLE);
	CHECK_EQ(z->nr_free_mt[GMM_MT_ISOLATE], 1023);
	/* freeing into an isolated block keeps the frame isolated */
	CHECK_EQ(gmm_free(p, x, 0), 0);
	CHECK_EQ(z->nr_free_mt[GMM_MT_ISOLATE], 1024);
	CHECK_EQ(z->area[10][GMM_MT_ISOLATE].nr, 1);
	check_pool(p);
	while ((pfn = gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE)) != GMM_PFN_NONE) {
		CHECK(pfn < (x & ~511ull) || pfn >= (x & ~511ull) + 1024);
		n++;
	}
	CHECK_EQ(n, 4096 - 1024);
	CHECK_EQ(gmm_undo_isolate_range(p, x & ~511ull, (x & ~511ull) + 1024), 0);
	CHECK_EQ(z->nr_free, 1024);
	CHECK_EQ(z->area[10][GMM_MT_MOVABLE].nr, 1);
	CHECK_EQ(gmm_pageblock_migratetype(p, x), GMM_MT_MOVABLE);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_movable_zone(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;
	uint64_t pfn, n;

	gmm_pool_config_init(&c, 64 * MIB);
	c.nodes[0].movable_bytes = 64 * MIB;
	c.block_bytes = 4 * MIB;
	p = make_pool(&c);
	REQUIRE(p);
	CHECK_EQ(p->nodes[0].zones[GMM_ZONE_NORMAL].lowmem_reserve[GMM_ZONE_MOVABLE], 16384 / 32);
	pfn = gmm_alloc(p, 0, GMM_MOVABLE, GMM_NO_NODE);
	CHECK_EQ(gmm_pfn_zone(p, pfn), GMM_ZONE_MOVABLE);
	pfn = gmm_alloc(p, 0, GMM_MOVABLE | GMM_NO_MOVABLE_ZONE, GMM_NO_NODE);
	CHECK_EQ(gmm_pfn_zone(p, pfn), GMM_ZONE_NORMAL);
	for (n = 0; (pfn = gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE)) != GMM_PFN_NONE; n++)
		CHECK_EQ(gmm_pfn_zone(p, pfn), GMM_ZONE_NORMAL);
	CHECK_EQ(n, 16384 - 1);
	CHECK_EQ(gmm_alloc(p, 0, GMM_RECLAIMABLE | GMM_NO_WATERMARKS, GMM_NO_NODE), GMM_PFN_NONE);
	CHECK(gmm_alloc(p, 0, GMM_MOVABLE, GMM_NO_NODE) != GMM_PFN_NONE);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_cma(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;
	uint64_t pfn, cma_start = (64 - 8) * 256, n_cma = 0;

	gmm_pool_config_init(&c, 64 * MIB);
	c.block_bytes = 4 * MIB;
	c.nodes[0].cma_bytes = 8 * MIB;
	p = make_pool(&c);
	REQUIRE(p);
	while ((pfn = gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE)) != GMM_PFN_NONE)
		CHECK(pfn < cma_start);
	CHECK_EQ(zone0(p)->nr_free_mt[GMM_MT_CMA], 2048);
	while ((pfn = gmm_alloc(p, 0, GMM_MOVABLE | GMM_NO_WATERMARKS, GMM_NO_NODE)) != GMM_PFN_NONE)
		n_cma += pfn >= cma_start;
	CHECK_EQ(n_cma, 2048);
	check_pool(p);
	gmm_pool_destroy(p);
}

static void test_frag_indices(void)
{
	struct gmm_zone_stats st;

	memset(&st, 0, sizeof(st));
	st.max_order = 10;
	CHECK_EQ(gmm_fragmentation_index(&st, 2), 0);
	CHECK_EQ(gmm_unusable_index(&st, 2), 1000);
	st.nr_free[0][GMM_MT_MOVABLE] = 100;
	CHECK_EQ(gmm_fragmentation_index(&st, 2), 740);
	CHECK_EQ(gmm_unusable_index(&st, 2), 1000);
	CHECK_EQ(gmm_unusable_index(&st, 0), 0);
	st.nr_free[3][GMM_MT_UNMOVABLE] = 1;
	CHECK_EQ(gmm_fragmentation_index(&st, 2), -1000);
	CHECK_EQ(gmm_unusable_index(&st, 2), 925);
}

static void test_stat_renderers(void)
{
	struct gmm_pool *p = numa_pool(2, 8);
	char *s = NULL;

	REQUIRE(p);
	gmm_alloc(p, 3, 0, 1);
	REQUIRE(gmm_stat_buddyinfo(p, GMM_STAT_TEXT, &s) == 0);
	CHECK(strstr(s, "Node 0, zone   Normal      0      0      0      0      0      0      0"
			"      0      0      0      2 ") != NULL);
	CHECK(strstr(s, "Node 1, zone   Normal      0      0      0      1      1      1      1"
			"      1      1      1      1 ") != NULL);
	free(s);
	REQUIRE(gmm_stat_pagetypeinfo(p, GMM_STAT_JSON, &s) == 0);
	CHECK(strstr(s, "\"node\":1,\"zone\":\"Normal\",\"free\":{\"Unmovable\":"
			"[0,0,0,1,1,1,1,1,1,1,0]") != NULL);
	CHECK(strstr(s, "\"blocks\":{\"Unmovable\":2,\"Movable\":2,") != NULL);
	free(s);
	REQUIRE(gmm_stat_zoneinfo(p, GMM_STAT_TEXT, &s) == 0);
	CHECK(strstr(s, "pages_free               2040") != NULL);
	free(s);
	REQUIRE(gmm_stat_extfrag(p, GMM_STAT_TEXT, &s) == 0);
	CHECK(strstr(s, "unusable_index  Node 1, zone   Normal 0.000 ") != NULL);
	free(s);
	gmm_pool_destroy(p);
}

static void test_big_orders(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;
	uint64_t a;

	gmm_pool_config_init(&c, 2048 * MIB);
	c.max_order = 18;
	c.block_bytes = 1024 * MIB;
	p = make_pool(&c);
	REQUIRE(p);
	CHECK_EQ(zone0(p)->area[18][GMM_MT_MOVABLE].nr, 2);
	a = gmm_alloc(p, 18, GMM_MOVABLE, GMM_NO_NODE);
	CHECK(a != GMM_PFN_NONE && a % (1u << 18) == 0);
	CHECK_EQ(gmm_free(p, a, 18), 0);
	CHECK_EQ(zone0(p)->area[18][GMM_MT_MOVABLE].nr, 2);
	check_pool(p);
	gmm_pool_destroy(p);
}

TEST_MAIN(T(test_split), T(test_merge), T(test_no_merge_across_types), T(test_tail_placement),
	  T(test_fallback_order), T(test_claim_vs_steal), T(test_nofragment_locality), T(test_defrag_mode_remote), T(test_defrag_mode_bulk),
	  T(test_watermarks), T(test_highatomic), T(test_highatomic_release_merges),
	  T(test_nested_error), T(test_policy_preferred_and_fallback),
	  T(test_policy_bind_interleave), T(test_bad_config), T(test_bad_calls),
	  T(test_grouping_off), T(test_isolation), T(test_movable_zone), T(test_cma),
	  T(test_frag_indices), T(test_stat_renderers), T(test_big_orders));
