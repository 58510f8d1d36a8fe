/* SPDX-License-Identifier: MIT */
/*
 * tests/model/test_model.c - the model-based randomized test of the
 * allocator.
 *
 * Seeded random sequences of allocations (mixed orders, mobilities, depths,
 * nodes, zeroing), frees, invalid frees, isolations, migrations and
 * compaction runs (the model owns its movable blocks and refuses some
 * moves, as a pinned page would; direct compaction also moves them from
 * inside allocations), contiguous allocations (alloc_contig_range of any
 * range, alloc_contig_pages, cma_alloc) and hot-remove of ZONE_MOVABLE
 * blocks by migration (added back at once) on a fake 2-node
 * pool with MOVABLE zones and CMA, checked against a reference model that
 * knows which frames are allocated.  Every allocated frame carries a tag in
 * its memory that must survive until it is freed.  The full invariant check
 * (gmm_pool_check) runs at intervals and at the end.  Defrag mode is
 * switched on and off at random; while it is on, no allocation may steal a
 * single frame from another type's pageblock in a zone that held a whole
 * free pageblock it could have claimed (the ALLOC_NOFRAGMENT rule).
 *
 * Usage: test_model [--ops N] [--seed S] [--check-every N]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>
#include <gmm/migrate.h>

#include "../harness.h"

#define MIB (1ull << 20)
#define NODES 2

struct live {
	uint64_t pfn;
	unsigned int order;
	uint64_t tag;
	bool movable; /* owned: rmap key = index in live[] */
};

struct model {
	struct gmm_pool *pool;
	uint64_t nr_pfns;
	uint64_t *owner;  /* tag of the allocation holding each frame, 0 = free */
	struct live *live;
	uint64_t nr_live;
	uint64_t allocated; /* frames */
	uint64_t next_tag;
	uint64_t iso_start, iso_end; /* isolated range, empty when equal */
	uint64_t rng;
	uint64_t allocs, alloc_fails, frees;
	unsigned int owner_id;
	uint64_t moves, refusals, compactions;
	uint64_t defrag_allocs, defrag_steals; /* allocations / steals in defrag mode */
	uint64_t contigs, contig_fails, offlines, offline_fails;
	bool offlining; /* inside gmm_pool_remove_block() */
};

#define NR_ZONES_ALL (NODES * GMM_NR_ZONES)

/* Per zone before an allocation: its steals, and a claimable whole free pageblock. */
struct zone_snap {
	bool present;
	uint64_t steal;
	bool free_block;
};

static uint64_t opt_ops = 1000000, opt_seed = 1, opt_check_every = 20000;

static uint64_t rnd(struct model *m)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return m->rng;
}

static unsigned int pick_order(struct model *m)
{
	unsigned int r = rnd(m) % 100;

	if (r < 70)
		return 0;
	if (r < 85)
		return 1 + rnd(m) % 3;
	if (r < 95)
		return 4 + rnd(m) % 6;
	return 10;
}

static unsigned int pick_flags(struct model *m)
{
	unsigned int r = rnd(m) % 100, f;

	f = r < 60 ? GMM_MOVABLE : r < 85 ? 0 : GMM_RECLAIMABLE;
	r = rnd(m) % 100;
	f |= r < 80 ? 0 : r < 90 ? GMM_HIGH : r < 95 ? GMM_ATOMIC : GMM_NO_WATERMARKS;
	if (rnd(m) % 20 == 0)
		f |= GMM_ZERO;
	if ((f & GMM_MOVABLE) && rnd(m) % 10 == 0)
		f |= GMM_NO_MOVABLE_ZONE;
	return f;
}

static uint64_t *frame(struct model *m, uint64_t pfn)
{
	return gmm_pfn_to_host(m->pool, pfn);
}

/* Where an allocation may land, by its flags. */
static void check_placement(struct model *m, uint64_t pfn, unsigned int order, unsigned int f,
			    int node)
{
	int zone = gmm_pfn_zone(m->pool, pfn);
	int mt = gmm_pageblock_migratetype(m->pool, pfn);

	CHECK(pfn % (1ull << order) == 0);
	CHECK(pfn + (1ull << order) <= m->nr_pfns);
	if (!(f & GMM_MOVABLE) || (f & GMM_NO_MOVABLE_ZONE))
		CHECK_EQ(zone, GMM_ZONE_NORMAL);
	if (!(f & GMM_MOVABLE))
		CHECK(mt != GMM_MT_CMA);
	if (f & GMM_THISNODE)
		CHECK_EQ(gmm_pfn_node(m->pool, pfn), node);
	if (m->iso_start != m->iso_end)
		CHECK(pfn + (1ull << order) <= m->iso_start || pfn >= m->iso_end);
}

static void record(struct model *m, uint64_t pfn, unsigned int order, unsigned int f)
{
	uint64_t tag = ++m->next_tag;

	for (uint64_t i = pfn; i < pfn + (1ull << order); i++) {
		if (m->owner[i]) {
			fprintf(stderr, "  frame %" PRIu64 " handed out twice\n", i);
			harness_failed_checks++;
		}
		m->owner[i] = tag;
		if ((f & GMM_ZERO) && (frame(m, i)[0] || frame(m, i)[511]))
			CHECK(!"GMM_ZERO frame not zeroed");
		frame(m, i)[0] = tag;
	}
	m->live[m->nr_live] = (struct live){ pfn, order, tag, (f & GMM_MOVABLE) != 0 };
	if (f & GMM_MOVABLE)
		CHECK_EQ(gmm_rmap_set(m->pool, pfn, order, m->owner_id, m->nr_live), 0);
	m->nr_live++;
	m->allocated += 1ull << order;
}

/* An order-0 request without watermarks may fail only when nothing usable is free. */
static void check_failure(struct model *m, unsigned int f, int node)
{
	uint64_t usable = 0;

	for (int n = 0; n < NODES; n++) {
		for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
			struct gmm_zone_stats st;

			if ((f & GMM_THISNODE) && n != node)
				continue;
			if (zt == GMM_ZONE_MOVABLE && (!(f & GMM_MOVABLE) || (f & GMM_NO_MOVABLE_ZONE)))
				continue;
			if (gmm_zone_stats(m->pool, n, zt, &st))
				continue;
			usable += st.free - (f & GMM_MOVABLE ? 0 : st.free_cma) -
				  (f & GMM_NOWAIT ? 0 : st.free_highatomic);
		}
	}
	if (usable) {
		fprintf(stderr, "  order-0 request 0x%x failed with %" PRIu64 " usable frames\n",
			f, usable);
		harness_failed_checks++;
	}
}

static void snap_zones(struct model *m, struct zone_snap *s)
{
	for (int i = 0; i < NR_ZONES_ALL; i++) {
		struct gmm_zone_stats st;

		s[i].present = !gmm_zone_stats(m->pool, i / GMM_NR_ZONES, i % GMM_NR_ZONES, &st);
		if (!s[i].present)
			continue;
		s[i].steal = st.events.steal;
		s[i].free_block = false;
		for (unsigned int o = GMM_PAGEBLOCK_ORDER; o <= st.max_order; o++)
			s[i].free_block |= st.nr_free[o][GMM_MT_UNMOVABLE] ||
					   st.nr_free[o][GMM_MT_MOVABLE] ||
					   st.nr_free[o][GMM_MT_RECLAIMABLE];
	}
}

/* Defrag mode: a steal only in a zone that had no whole free pageblock to claim. */
static void check_nofragment(struct model *m, const struct zone_snap *before)
{
	struct zone_snap after[NR_ZONES_ALL];

	snap_zones(m, after);
	for (int i = 0; i < NR_ZONES_ALL; i++) {
		if (!before[i].present || after[i].steal == before[i].steal)
			continue;
		m->defrag_steals++;
		if (before[i].free_block) {
			fprintf(stderr, "  defrag mode: node %d zone %d stole a frame while it held a "
				"whole free pageblock\n", i / GMM_NR_ZONES, i % GMM_NR_ZONES);
			harness_failed_checks++;
		}
	}
}

static void op_alloc(struct model *m)
{
	unsigned int order = pick_order(m), f = pick_flags(m);
	struct zone_snap before[NR_ZONES_ALL];
	bool defrag = gmm_pool_defrag_mode(m->pool);
	int node = GMM_NO_NODE;
	uint64_t pfn;

	if (rnd(m) % 2) {
		node = (int)(rnd(m) % NODES);
		if (rnd(m) % 5 == 0)
			f |= GMM_THISNODE;
	}
	if (defrag)
		snap_zones(m, before);
	pfn = gmm_alloc(m->pool, order, f, node);
	if (defrag) {
		m->defrag_allocs++;
		check_nofragment(m, before);
	}
	if (pfn == GMM_PFN_NONE) {
		m->alloc_fails++;
		if (!order && (f & GMM_NO_WATERMARKS))
			check_failure(m, f, node);
		return;
	}
	m->allocs++;
	check_placement(m, pfn, order, f, node);
	record(m, pfn, order, f);
}

static void op_free(struct model *m)
{
	uint64_t k = rnd(m) % m->nr_live;
	struct live l = m->live[k];

	if (l.movable)
		gmm_rmap_clear(m->pool, l.pfn, l.order);
	m->live[k] = m->live[--m->nr_live];
	if (k < m->nr_live && m->live[k].movable)
		CHECK_EQ(gmm_rmap_set(m->pool, m->live[k].pfn, m->live[k].order, m->owner_id, k), 0);
	for (uint64_t i = l.pfn; i < l.pfn + (1ull << l.order); i++) {
		if (frame(m, i)[0] != l.tag) {
			fprintf(stderr, "  frame %" PRIu64 " lost its content\n", i);
			harness_failed_checks++;
		}
		m->owner[i] = 0;
	}
	CHECK_EQ(gmm_free(m->pool, l.pfn, l.order), 0);
	m->allocated -= 1ull << l.order;
	m->frees++;
}

static bool is_live_head(struct model *m, uint64_t pfn, unsigned int order)
{
	for (uint64_t i = 0; i < m->nr_live; i++)
		if (m->live[i].pfn == pfn)
			return m->live[i].order == order;
	return false;
}

static void op_bad_free(struct model *m)
{
	uint64_t pfn = rnd(m) % (m->nr_pfns + 1024);
	unsigned int order = rnd(m) % 12;

	if (is_live_head(m, pfn, order))
		return;
	CHECK_EQ(gmm_free(m->pool, pfn, order), -EINVAL);
}

static void op_isolate(struct model *m)
{
	uint64_t blocks = m->nr_pfns / 512, b, n;

	if (m->iso_start != m->iso_end) {
		CHECK_EQ(gmm_undo_isolate_range(m->pool, m->iso_start, m->iso_end), 0);
		m->iso_start = m->iso_end = 0;
		return;
	}
	b = rnd(m) % blocks;
	n = 1 + rnd(m) % 4;
	if (b + n > blocks || gmm_pfn_zone(m->pool, b * 512) !=
				      gmm_pfn_zone(m->pool, (b + n) * 512 - 1) ||
	    gmm_pfn_node(m->pool, b * 512) != gmm_pfn_node(m->pool, (b + n) * 512 - 1))
		return;
	CHECK_EQ(gmm_isolate_range(m->pool, b * 512, (b + n) * 512), 0);
	m->iso_start = b * 512;
	m->iso_end = (b + n) * 512;
}

/* The owner callback: the model's block @key moves from @old to @new. */
static int model_migrate(void *ctx, uint64_t key, uint64_t old, uint64_t new, unsigned int order,
			 enum gmm_migrate_mode mode)
{
	struct model *m = ctx;
	struct live *l = &m->live[key];

	(void)mode;
	CHECK(key < m->nr_live && l->movable && l->pfn == old && l->order == order);
	if (rnd(m) % 8 == 0) {
		m->refusals++;
		return -EBUSY; /* as a pinned page */
	}
	/* a NORMAL block stays there (it may have been GMM_NO_MOVABLE_ZONE) */
	if (gmm_pfn_zone(m->pool, old) == GMM_ZONE_NORMAL)
		CHECK_EQ(gmm_pfn_zone(m->pool, new), GMM_ZONE_NORMAL);
	/* hot-remove moves to the other node when the block's own is full */
	if (!m->offlining)
		CHECK_EQ(gmm_pfn_node(m->pool, new), gmm_pfn_node(m->pool, old));
	if (m->iso_start != m->iso_end)
		CHECK(new + (1ull << order) <= m->iso_start || new >= m->iso_end);
	for (uint64_t i = 0; i < 1ull << order; i++) {
		if (m->owner[new + i]) {
			fprintf(stderr, "  migration target %" PRIu64 " is allocated\n", new + i);
			harness_failed_checks++;
		}
		CHECK_EQ(frame(m, old + i)[0], l->tag);
		frame(m, new + i)[0] = l->tag;
		m->owner[new + i] = l->tag;
		m->owner[old + i] = 0;
	}
	l->pfn = new;
	CHECK_EQ(gmm_rmap_set(m->pool, new, order, m->owner_id, key), 0);
	m->moves++;
	return 0;
}

static const struct gmm_migrate_ops model_ops = {
	.name = "model",
	.migrate = model_migrate,
};

/* Move one owned block by hand, or compact a zone. */
static void op_migrate(struct model *m)
{
	static const int orders[] = { -1, 1, 3, 9 };
	struct gmm_compact_result res;
	int node = (int)(rnd(m) % NODES), zone = (int)(rnd(m) % GMM_NR_ZONES), err;

	if (rnd(m) % 4) {
		uint64_t k = rnd(m) % m->nr_live;

		if (!m->live[k].movable)
			return;
		err = gmm_migrate_block(m->pool, m->live[k].pfn, (int)(rnd(m) % 3), NULL);
		CHECK(err == 0 || err == -EBUSY || err == -ENOMEM);
		return;
	}
	err = gmm_compact_zone(m->pool, node, zone, orders[rnd(m) % 4], (int)(rnd(m) % 3), &res);
	CHECK(err == 0 || err == -EAGAIN || err == -ENOENT);
	m->compactions++;
}

/* Frames taken by a contiguous allocation: single unmovable frames of the model. */
static void record_range(struct model *m, uint64_t s, uint64_t nr)
{
	if (m->iso_start != m->iso_end)
		CHECK(s + nr <= m->iso_start || s >= m->iso_end);
	for (uint64_t i = s; i < s + nr; i++)
		record(m, i, 0, 0);
	m->contigs++;
}

/* alloc_contig_range / alloc_contig_pages / cma_alloc of up to 1100 frames, any alignment. */
static void op_contig(struct model *m)
{
	uint64_t nr = 1 + rnd(m) % 1100, s = rnd(m) % m->nr_pfns;
	unsigned int kind = rnd(m) % 3;
	int err;

	if (kind == 1) {
		s = gmm_alloc_contig_pages(m->pool, nr, (int)(rnd(m) % NODES));
		if (s == GMM_PFN_NONE)
			CHECK_EQ(gmm_errno(), -ENOMEM);
		else
			CHECK_EQ(gmm_pfn_zone(m->pool, s), GMM_ZONE_NORMAL);
	} else if (kind == 2) {
		s = gmm_cma_alloc(m->pool, 1, nr / 4 + 1, (unsigned int)(rnd(m) % 10));
		nr = nr / 4 + 1;
		if (s == GMM_PFN_NONE)
			CHECK_EQ(gmm_errno(), -ENOMEM);
		else
			CHECK_EQ(gmm_pageblock_migratetype(m->pool, s), GMM_MT_CMA);
	} else {
		if (s + nr > m->nr_pfns)
			nr = m->nr_pfns - s;
		err = gmm_alloc_contig_range(m->pool, s, s + nr);
		CHECK(err == 0 || err == -EBUSY || err == -EINVAL);
		if (err == -EINVAL) /* only a range over two zones */
			CHECK(gmm_pfn_zone(m->pool, s) != gmm_pfn_zone(m->pool, s + nr - 1) ||
			      gmm_pfn_node(m->pool, s) != gmm_pfn_node(m->pool, s + nr - 1));
		if (err)
			s = GMM_PFN_NONE;
	}
	if (s == GMM_PFN_NONE) {
		m->contig_fails++;
		return;
	}
	for (uint64_t i = s; i < s + nr; i++)
		if (m->owner[i]) {
			fprintf(stderr, "  contiguous range took frame %" PRIu64 " in use\n", i);
			harness_failed_checks++;
		}
	record_range(m, s, nr);
}

/* Hot-remove a ZONE_MOVABLE memory block by migration, and add it back. */
static void op_offline(struct model *m)
{
	uint64_t mb = 4 * MIB / GMM_PAGE_SIZE, b = (rnd(m) % (m->nr_pfns / mb)) * mb, got;
	int err;

	if (gmm_pfn_zone(m->pool, b) != GMM_ZONE_MOVABLE)
		return;
	m->offlining = true;
	err = gmm_pool_remove_block(m->pool, b);
	m->offlining = false;
	CHECK(err == 0 || err == -EBUSY);
	if (err) {
		m->offline_fails++;
		return;
	}
	for (uint64_t i = b; i < b + mb; i++)
		if (m->owner[i]) {
			fprintf(stderr, "  removed block held frame %" PRIu64 "\n", i);
			harness_failed_checks++;
		}
	CHECK_EQ(gmm_pool_nr_pages(m->pool), m->nr_pfns - mb);
	CHECK_EQ(gmm_pool_add_block(m->pool, gmm_pfn_node(m->pool, b - 1), GMM_ZONE_MOVABLE, &got),
		 0);
	CHECK_EQ(got, b);
	m->offlines++;
}

/* free frames (isolated or not) + allocated frames == all frames */
static void check_counts(struct model *m)
{
	uint64_t free = 0;

	for (int n = 0; n < NODES; n++) {
		for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
			struct gmm_zone_stats st;

			if (gmm_zone_stats(m->pool, n, zt, &st))
				continue;
			free += st.free;
			for (unsigned int o = 0; o <= st.max_order; o++)
				free += st.nr_free[o][GMM_MT_ISOLATE] << o;
		}
	}
	CHECK_EQ(free + m->allocated, m->nr_pfns);
}

static void full_check(struct model *m)
{
	int err = gmm_pool_check(m->pool);

	if (err)
		fprintf(stderr, "  pool_check: %s\n", gmm_last_error());
	CHECK_EQ(err, 0);
}

static int model_init(struct model *m)
{
	struct gmm_pool_config c;

	memset(m, 0, sizeof(*m));
	gmm_pool_config_init(&c, 32 * MIB);
	c.nr_nodes = NODES;
	c.block_bytes = 4 * MIB;
	c.nodes[0].movable_bytes = 16 * MIB;
	c.nodes[1].normal_bytes = 32 * MIB;
	c.nodes[1].movable_bytes = 16 * MIB;
	c.nodes[1].cma_bytes = 4 * MIB;
	c.distance[0][1] = c.distance[1][0] = 21;
	if (gmm_pool_create(&c, &m->pool)) {
		fprintf(stderr, "pool: %s\n", gmm_last_error());
		return -1;
	}
	m->nr_pfns = gmm_pool_nr_pages(m->pool);
	m->owner = calloc(m->nr_pfns, sizeof(*m->owner));
	m->live = calloc(m->nr_pfns, sizeof(*m->live));
	m->rng = opt_seed * 0x9e3779b97f4a7c15ull | 1;
	if (gmm_owner_register(m->pool, &model_ops, m, &m->owner_id))
		return -1;
	return m->owner && m->live ? 0 : -1;
}

static void test_random_ops(void)
{
	struct model m;

	REQUIRE(model_init(&m) == 0);
	for (uint64_t i = 1; i <= opt_ops && !harness_failed_checks; i++) {
		unsigned int r = rnd(&m) % 1000;
		/* alternate filling and draining phases to visit full and empty pools */
		unsigned int alloc_share = (i / 50000) % 2 ? 650 : 420;

		if (r < alloc_share || !m.nr_live)
			op_alloc(&m);
		else if (r < 970 - (alloc_share - 420) / 4)
			op_free(&m);
		else if (r < 985)
			op_bad_free(&m);
		else if (r < 993)
			op_migrate(&m);
		else if (r == 993 && rnd(&m) % 8 == 0)
			CHECK_EQ(gmm_pool_set_defrag_mode(m.pool, !gmm_pool_defrag_mode(m.pool)), 0);
		else if (r < 995)
			op_contig(&m);
		else if (r < 996)
			op_offline(&m);
		else
			op_isolate(&m);
		if (i % 128 == 0)
			check_counts(&m);
		if (i % opt_check_every == 0)
			full_check(&m);
	}
	full_check(&m);
	printf("  %" PRIu64 " ops (seed %" PRIu64 "): %" PRIu64 " allocations, %" PRIu64
	       " failed, %" PRIu64 " frees; %" PRIu64 " blocks migrated, %" PRIu64 " refused, %"
	       PRIu64 " compaction runs\n", opt_ops, opt_seed, m.allocs, m.alloc_fails, m.frees,
	       m.moves, m.refusals, m.compactions);
	CHECK(m.allocs > opt_ops / 4 && m.alloc_fails > 0);
	printf("  contiguous allocations %" PRIu64 " (%" PRIu64 " refused), blocks removed by "
	       "migration %" PRIu64 " (%" PRIu64 " refused)\n", m.contigs, m.contig_fails,
	       m.offlines, m.offline_fails);
	CHECK(m.moves > 0 && m.refusals > 0 && m.compactions > 0);
	printf("  defrag mode: %" PRIu64 " allocations, %" PRIu64 " with a (last resort) steal\n",
	       m.defrag_allocs, m.defrag_steals);
	CHECK(m.defrag_allocs > 0 && m.defrag_allocs < m.allocs + m.alloc_fails);
	CHECK(m.contigs > 0 && m.contig_fails > 0 && m.offlines > 0);
	/* give everything back: every zone must be whole again */
	if (m.iso_start != m.iso_end)
		CHECK_EQ(gmm_undo_isolate_range(m.pool, m.iso_start, m.iso_end), 0);
	m.iso_start = m.iso_end = 0;
	while (m.nr_live)
		op_free(&m);
	CHECK_EQ(gmm_pool_nr_free(m.pool), m.nr_pfns);
	full_check(&m);
	gmm_owner_unregister(m.pool, m.owner_id);
	gmm_pool_destroy(m.pool);
	free(m.owner);
	free(m.live);
}

static void parse_args(int *argc, char **argv)
{
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		if (i + 1 < *argc && !strcmp(argv[i], "--ops"))
			opt_ops = strtoull(argv[++i], NULL, 0);
		else if (i + 1 < *argc && !strcmp(argv[i], "--seed"))
			opt_seed = strtoull(argv[++i], NULL, 0);
		else if (i + 1 < *argc && !strcmp(argv[i], "--check-every"))
			opt_check_every = strtoull(argv[++i], NULL, 0);
		else
			argv[out++] = argv[i];
	}
	*argc = out;
	if (!opt_check_every)
		opt_check_every = 1;
}

static const struct harness_test tests[] = { T(test_random_ops) };

int main(int argc, char **argv)
{
	parse_args(&argc, argv);
	return harness_run(argc, argv, tests, 1);
}
