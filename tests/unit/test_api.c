/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/test_api.c - the error contract of include/gmm (stated in
 * gmm/pool.h): every public function called with each documented bad
 * input, NULL included, returns its error, sets gmm_errno() and a message,
 * and changes nothing, also from a thread whose calls take its cache
 * inline.  Plus the smaller allocator contracts: destroy with a thread
 * attached, bulk counters, watermark messages, statistics formats,
 * reporting options, and gmm_pool_check() during a reporting pass.
 * Written from the public headers only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <gmm/gmm.h>

#include "../harness.h"

#define MIB (1ull << 20)

/* @call failed with @err: result, gmm_errno() and a message agree. */
#define CHECK_ERR(call, err)                                                         \
	do {                                                                         \
		gmm_set_error(0, "stale");                                           \
		CHECK_EQ((call), (err));                                             \
		CHECK_EQ(gmm_errno(), (err));                                        \
		CHECK(strcmp(gmm_last_error(), "stale") != 0);                       \
	} while (0)

/* @call returned the failure value @fail of a pfn/count/pointer function. */
#define CHECK_FAIL(call, fail, err)                                                  \
	do {                                                                         \
		gmm_set_error(0, "stale");                                           \
		CHECK((call) == (fail));                                             \
		CHECK_EQ(gmm_errno(), (err));                                        \
		CHECK(strcmp(gmm_last_error(), "stale") != 0);                       \
	} while (0)

/* A function without a result: it did nothing and set gmm_errno(). */
#define CHECK_VOID(call, err)                                                        \
	do {                                                                         \
		gmm_set_error(0, "stale");                                           \
		call;                                                                \
		CHECK_EQ(gmm_errno(), (err));                                        \
	} while (0)

static struct gmm_pool *pool_of(uint64_t bytes)
{
	struct gmm_pool_config c;
	struct gmm_pool *p = NULL;

	gmm_pool_config_init(&c, bytes);
	c.block_bytes = 4 * MIB;
	if (gmm_pool_create(&c, &p))
		return NULL;
	return p;
}

static void test_pool_bad_input(void)
{
	struct gmm_pool *p = pool_of(64 * MIB), *none = NULL;
	struct gmm_pool_config c;
	struct gmm_policy pol = { GMM_POLICY_PREFERRED, 1, 0 };
	uint64_t a, free0, pfns[4];

	REQUIRE(p);
	a = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	REQUIRE(a != GMM_PFN_NONE);
	free0 = gmm_pool_nr_free(p);

	CHECK_VOID(gmm_pool_config_init(NULL, 64 * MIB), -EINVAL);
	gmm_pool_config_init(&c, 64 * MIB);
	CHECK_ERR(gmm_pool_create(NULL, &none), -EINVAL);
	CHECK_ERR(gmm_pool_create(&c, NULL), -EINVAL);
	CHECK(none == NULL);
	CHECK_EQ(gmm_pool_destroy(NULL), 0);

	CHECK_FAIL(gmm_alloc(NULL, 0, 0, GMM_NO_NODE), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_alloc(p, 11, 0, GMM_NO_NODE), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_alloc(p, 0, 1u << 30, GMM_NO_NODE), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_alloc(p, 0, 0, 3), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_alloc(p, 0, 0, -7), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_alloc(p, 0, GMM_MOVABLE | GMM_RECLAIMABLE, 0), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_alloc_policy(NULL, 0, 0, &pol), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_alloc_policy(p, 0, 0, NULL), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_alloc_policy(p, 0, GMM_THISNODE, &pol), GMM_PFN_NONE, -EINVAL);
	pol.nodes = 0;
	CHECK_FAIL(gmm_alloc_policy(p, 0, 0, &pol), GMM_PFN_NONE, -EINVAL);
	pol.nodes = 1;
	pol.mode = 9;
	CHECK_FAIL(gmm_alloc_policy(p, 0, 0, &pol), GMM_PFN_NONE, -EINVAL);

	CHECK_ERR(gmm_free(NULL, a, 0), -EINVAL);
	CHECK_ERR(gmm_free(p, a, 1), -EINVAL);
	CHECK_ERR(gmm_free(p, 1ull << 40, 0), -EINVAL);
	CHECK_ERR(gmm_free(p, a, 99), -EINVAL);
	CHECK_ERR(gmm_split(NULL, a, 0), -EINVAL);
	CHECK_ERR(gmm_split(p, a, 3), -EINVAL);
	CHECK_ERR(gmm_pool_set_policy(NULL, GMM_POLICY_BIND, 1), -EINVAL);
	CHECK_ERR(gmm_pool_set_policy(p, 7, 1), -EINVAL);
	CHECK_ERR(gmm_pool_set_policy(p, GMM_POLICY_BIND, 2), -EINVAL);
	CHECK_FAIL(gmm_pfn_to_host(NULL, a), NULL, -EINVAL);
	CHECK_FAIL(gmm_pfn_to_host(p, 1ull << 40), NULL, -EINVAL);
	CHECK_FAIL(gmm_pool_nr_pages(NULL), 0, -EINVAL);
	CHECK_FAIL(gmm_pool_nr_free(NULL), 0, -EINVAL);
	CHECK_ERR(gmm_pfn_node(NULL, a), -EINVAL);
	CHECK_ERR(gmm_pfn_node(p, 1ull << 40), -EINVAL);
	CHECK_ERR(gmm_pfn_zone(NULL, a), -EINVAL);
	CHECK_ERR(gmm_pfn_zone(p, 1ull << 40), -EINVAL);
	CHECK_ERR(gmm_pageblock_migratetype(NULL, a), -EINVAL);
	CHECK_ERR(gmm_pageblock_migratetype(p, 1ull << 40), -EINVAL);
	CHECK_ERR(gmm_isolate_range(NULL, 0, 512), -EINVAL);
	CHECK_ERR(gmm_isolate_range(p, 1, 512), -EINVAL);
	CHECK_ERR(gmm_isolate_range(p, 512, 512), -EINVAL);
	CHECK_ERR(gmm_isolate_range(p, 0, 1ull << 40), -EINVAL);
	CHECK_ERR(gmm_undo_isolate_range(NULL, 0, 512), -EINVAL);
	CHECK_ERR(gmm_undo_isolate_range(p, 0, 512), -EINVAL);
	CHECK_ERR(gmm_pool_add_block(NULL, 0, GMM_ZONE_NORMAL, NULL), -EINVAL);
	CHECK_ERR(gmm_pool_add_block(p, 1, GMM_ZONE_NORMAL, NULL), -EINVAL);
	CHECK_ERR(gmm_pool_add_block(p, 0, 5, NULL), -EINVAL);
	CHECK_ERR(gmm_pool_add_block(p, 0, GMM_ZONE_NORMAL, NULL), -ENOSPC);
	CHECK_ERR(gmm_pool_remove_block(NULL, 0), -EINVAL);
	CHECK_ERR(gmm_pool_remove_block(p, 5), -EINVAL);
	CHECK_ERR(gmm_pool_remove_block(p, 0), -EBUSY);
	CHECK_ERR(gmm_pool_populate(NULL, 0, 1, 1, NULL, NULL), -EINVAL);
	CHECK_ERR(gmm_pool_populate(p, 0, 1, 1, NULL, NULL), -EOPNOTSUPP);
	CHECK_ERR(gmm_pool_check(NULL), -EINVAL);

	/* nothing changed */
	CHECK_EQ(gmm_pool_nr_free(p), free0);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK_EQ(gmm_free(p, a, 0), 0);

	/* bulk */
	CHECK_FAIL(gmm_alloc_bulk(NULL, 0, GMM_NO_NODE, 4, pfns), 0, -EINVAL);
	CHECK_FAIL(gmm_alloc_bulk(p, 0, GMM_NO_NODE, 4, NULL), 0, -EINVAL);
	CHECK_FAIL(gmm_alloc_bulk(p, 1u << 30, GMM_NO_NODE, 4, pfns), 0, -EINVAL);
	CHECK_FAIL(gmm_alloc_bulk(p, 0, 9, 4, pfns), 0, -EINVAL);
	CHECK_ERR(gmm_free_bulk(NULL, 1, pfns), -EINVAL);
	CHECK_ERR(gmm_free_bulk(p, 1, NULL), -EINVAL);
	pfns[0] = 1ull << 40;
	CHECK_ERR(gmm_free_bulk(p, 1, pfns), -EINVAL);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK_EQ(gmm_pool_destroy(p), 0);
}

static void test_stats_bad_input(void)
{
	struct gmm_pool *p = pool_of(64 * MIB);
	struct gmm_zone_stats st;
	struct gmm_pcp_stats ps;
	unsigned int b, lo, hi;
	char *out = NULL;
	int (*render[])(struct gmm_pool *, enum gmm_stat_format, char **) = {
		gmm_stat_buddyinfo, gmm_stat_pagetypeinfo, gmm_stat_zoneinfo, gmm_stat_extfrag,
		gmm_stat_pcp,
	};

	REQUIRE(p);
	CHECK_ERR(gmm_zone_stats(NULL, 0, GMM_ZONE_NORMAL, &st), -EINVAL);
	CHECK_ERR(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, NULL), -EINVAL);
	CHECK_ERR(gmm_zone_stats(p, 3, GMM_ZONE_NORMAL, &st), -ENOENT);
	CHECK_ERR(gmm_zone_stats(p, 0, GMM_ZONE_MOVABLE, &st), -ENOENT);
	CHECK_ERR(gmm_zone_stats(p, 0, 9, &st), -ENOENT);
	CHECK_FAIL(gmm_fragmentation_index(NULL, 0), 0, -EINVAL);
	CHECK_FAIL(gmm_unusable_index(NULL, 0), 0, -EINVAL);
	for (size_t i = 0; i < sizeof(render) / sizeof(render[0]); i++) {
		CHECK_ERR(render[i](NULL, GMM_STAT_TEXT, &out), -EINVAL);
		CHECK_ERR(render[i](p, GMM_STAT_TEXT, NULL), -EINVAL);
		CHECK_ERR(render[i](p, 7, &out), -EINVAL);
		CHECK(out == NULL);
		CHECK_EQ(render[i](p, GMM_STAT_JSON, &out), 0);
		CHECK(out && out[0] == '{');
		free(out);
		out = NULL;
	}
	CHECK_FAIL(gmm_metadata_bytes(NULL), 0, -EINVAL);
	CHECK(gmm_metadata_bytes_per_frame() > 0);

	CHECK_ERR(gmm_thread_attach(NULL), -EINVAL);
	CHECK_ERR(gmm_thread_detach(NULL), -EINVAL);
	CHECK_ERR(gmm_thread_detach(p), -ENOENT);
	CHECK_FAIL(gmm_drain_all_caches(NULL), 0, -EINVAL);
	CHECK_ERR(gmm_pcp_stats(NULL, &ps), -EINVAL);
	CHECK_ERR(gmm_pcp_stats(p, NULL), -EINVAL);
	CHECK_ERR(gmm_pcp_thread_stats(NULL, &ps), -EINVAL);
	CHECK_ERR(gmm_pcp_thread_stats(p, NULL), -EINVAL);
	CHECK_ERR(gmm_pcp_thread_stats(p, &ps), -ENOENT);
	CHECK_ERR(gmm_pcp_zone_params(NULL, 0, GMM_ZONE_NORMAL, &b, &lo, &hi), -EINVAL);
	CHECK_ERR(gmm_pcp_zone_params(p, 0, GMM_ZONE_NORMAL, NULL, &lo, &hi), -EINVAL);
	CHECK_ERR(gmm_pcp_zone_params(p, 0, GMM_ZONE_NORMAL, &b, NULL, &hi), -EINVAL);
	CHECK_ERR(gmm_pcp_zone_params(p, 0, GMM_ZONE_NORMAL, &b, &lo, NULL), -EINVAL);
	CHECK_ERR(gmm_pcp_zone_params(p, 4, GMM_ZONE_NORMAL, &b, &lo, &hi), -ENOENT);
	/* without an attached thread these are no-ops, never a crash */
	gmm_thread_quiescent();
	gmm_thread_offline();
	gmm_thread_online();
	CHECK_EQ(gmm_pool_destroy(p), 0);
}

static void test_report_bad_input(void)
{
	struct gmm_pool *p = pool_of(64 * MIB);
	struct gmm_report_config rc = { .batch = 100000 };
	struct gmm_report_stats rs;

	REQUIRE(p);
	CHECK_ERR(gmm_report_start(NULL, NULL), -EINVAL);
	CHECK_ERR(gmm_report_start(p, &rc), -EINVAL);
	CHECK_ERR(gmm_report_now(NULL, NULL), -EINVAL);
	CHECK_ERR(gmm_report_now(p, &rc), -EINVAL);
	CHECK_ERR(gmm_report_stats(NULL, &rs), -EINVAL);
	CHECK_ERR(gmm_report_stats(p, NULL), -EINVAL);
	CHECK_VOID(gmm_report_stop(NULL), -EINVAL);
	gmm_report_stop(p); /* not running: nothing to do */
	rc.batch = GMM_REPORT_BATCH_MAX;
	CHECK_EQ(gmm_report_start(p, &rc), 0);
	CHECK_ERR(gmm_report_start(p, &rc), -EBUSY);
	gmm_report_stop(p);
	/* order 0 can be asked for */
	rc.order = GMM_REPORT_ALL_ORDERS;
	CHECK(gmm_report_now(p, &rc) >= 0);
	CHECK_EQ(gmm_report_stats(p, &rs), 0);
	CHECK_EQ(rs.order, 0);
	CHECK_EQ(gmm_pool_destroy(p), 0);
}

static void test_backing_bad_input(void)
{
	struct gmm_memfd_config mc = { .page_size = 12345 };
	struct gmm_user_memory um = { NULL, 64 * MIB };
	struct gmm_memfd_stats ms;
	struct gmm_pool_config c;
	struct gmm_pool *p = NULL;
	void *ctx = NULL;

	CHECK_ERR(gmm_memfd_create(NULL, NULL), -EINVAL);
	CHECK_ERR(gmm_memfd_create(&mc, &ctx), -EINVAL);
	CHECK(ctx == NULL);
	CHECK_ERR(gmm_memfd_stats(NULL, &ms), -EINVAL);
	CHECK_ERR(gmm_hugepages_free(12345, -1), -EINVAL);
	CHECK(gmm_host_nodes() != 0);
	/* the caller-memory backing without its memory */
	gmm_pool_config_init(&c, 64 * MIB);
	c.backing = &gmm_backing_user;
	CHECK_ERR(gmm_pool_create(&c, &p), -EINVAL);
	c.backing_ctx = &um;
	CHECK_ERR(gmm_pool_create(&c, &p), -EINVAL);
	CHECK(p == NULL);
	/* a NULL format is not a crash either */
	CHECK_EQ(gmm_set_error(-EIO, NULL), -EIO);
	CHECK_EQ(gmm_errno(), -EIO);
}

static void test_guest_bad_input(void)
{
	struct gmm_pool_config c;
	struct gmm_guest_stats gs;
	struct gmm_memslot slot;
	struct gmm_guest *g = NULL;
	struct gmm_pool *p = NULL;
	unsigned int id;
	uint64_t gfn, v = 0;
	char buf[8];
	void *ctx;

	REQUIRE(gmm_memfd_create(NULL, &ctx) == 0);
	gmm_pool_config_init(&c, 64 * MIB);
	c.block_bytes = 4 * MIB;
	c.backing = &gmm_backing_memfd;
	c.backing_ctx = ctx;
	REQUIRE(gmm_pool_create(&c, &p) == 0);
	CHECK_VOID(gmm_guest_config_init(NULL), -EINVAL);
	CHECK_ERR(gmm_guest_create(NULL, NULL, &g), -EINVAL);
	CHECK_ERR(gmm_guest_create(p, NULL, NULL), -EINVAL);
	REQUIRE(gmm_guest_create(p, NULL, &g) == 0);
	CHECK_ERR(gmm_guest_add_ram(NULL, 0, 2 * MIB, 0, NULL), -EINVAL);
	CHECK_ERR(gmm_guest_add_ram(g, 4096, 2 * MIB, 0, NULL), -EINVAL);
	CHECK_ERR(gmm_guest_add_ram(g, 0, 2 * MIB, 9, NULL), -EINVAL);
	REQUIRE(gmm_guest_add_ram(g, 0, 16 * MIB, 0, &slot) == 0);
	CHECK_FAIL(gmm_guest_id(NULL), 0, -EINVAL);
	CHECK(gmm_guest_id(g) >= 1);
	CHECK_FAIL(gmm_guest_memslots(NULL, &slot, 1), 0, -EINVAL);
	CHECK_FAIL(gmm_guest_memslots(g, NULL, 1), 0, -EINVAL);
	CHECK_EQ(gmm_guest_memslots(g, NULL, 0), 1);
	CHECK_ERR(gmm_guest_fault(NULL, 0, 4, true, &v), -EINVAL);
	CHECK_ERR(gmm_guest_fault(g, 0, 4, true, NULL), -EINVAL);
	CHECK_ERR(gmm_guest_fault(g, 0, 9, true, &v), -EINVAL);
	CHECK_ERR(gmm_guest_fault(g, 1ull << 40, 4, true, &v), -EFAULT);
	CHECK_ERR(gmm_guest_read(NULL, 0, buf, 8), -EINVAL);
	CHECK_ERR(gmm_guest_read(g, 0, NULL, 8), -EINVAL);
	CHECK_ERR(gmm_guest_read(g, 16 * MIB - 4, buf, 8), -EFAULT);
	CHECK_ERR(gmm_guest_write(NULL, 0, buf, 8), -EINVAL);
	CHECK_ERR(gmm_guest_write(g, 0, NULL, 8), -EINVAL);
	CHECK_ERR(gmm_guest_write(g, 1ull << 40, buf, 8), -EFAULT);
	CHECK_FAIL(gmm_guest_ptr(NULL, 0, 8), NULL, -EINVAL);
	CHECK_FAIL(gmm_guest_ptr(g, 1ull << 40, 8), NULL, -EFAULT);
	CHECK_ERR(gmm_guest_discard(NULL, 0, 4096), -EINVAL);
	CHECK_ERR(gmm_guest_discard(g, 1, 4096), -EINVAL);
	CHECK_ERR(gmm_guest_discard(g, 1ull << 40, 4096), -EFAULT);
	CHECK_ERR(gmm_guest_populate(NULL, 0, 4096), -EINVAL);
	CHECK_ERR(gmm_guest_populate(g, 1ull << 40, 4096), -EFAULT);
	CHECK_FAIL(gmm_guest_gpa_to_pfn(NULL, 0), GMM_PFN_NONE, -EINVAL);
	CHECK_FAIL(gmm_guest_gpa_to_pfn(g, 1ull << 40), GMM_PFN_NONE, -EFAULT);
	CHECK_FAIL(gmm_guest_gpa_to_pfn(g, 0), GMM_PFN_NONE, -ENOENT);
	CHECK_ERR(gmm_guest_stats(NULL, &gs), -EINVAL);
	CHECK_ERR(gmm_guest_stats(g, NULL), -EINVAL);
	CHECK_ERR(gmm_frame_owner(NULL, 0, &id, &gfn), -EINVAL);
	CHECK_ERR(gmm_frame_owner(p, 0, NULL, &gfn), -EINVAL);
	CHECK_ERR(gmm_frame_owner(p, 0, &id, NULL), -EINVAL);
	CHECK_ERR(gmm_frame_owner(p, 1ull << 40, &id, &gfn), -EINVAL);
	CHECK_ERR(gmm_frame_owner(p, 0, &id, &gfn), -ENOENT);
	/* a pool with a live guest is not destroyed */
	CHECK_ERR(gmm_pool_destroy(p), -EBUSY);
	CHECK_EQ(gmm_guest_write(g, 4096, "abcdefgh", 8), 0);
	CHECK(gmm_guest_gpa_to_pfn(g, 4096) != GMM_PFN_NONE);
	gmm_guest_destroy(g);
	gmm_guest_destroy(NULL);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK_EQ(gmm_pool_destroy(p), 0);
}

/*
 * The same refusals from a thread attached to two pools, whose gmm_alloc and
 * gmm_free take the per-thread cache inline: a NULL pool, a pfn outside the
 * pool, a misaligned or wrong order, and a double free of a cached frame
 * (order 0 and the pageblock order, which have caches of their own).
 */
static void test_bad_input_attached(void)
{
	struct gmm_pool *p = pool_of(64 * MIB), *q = pool_of(64 * MIB);
	unsigned int orders[] = { 0, 9 };
	uint64_t pfns[4];

	REQUIRE(p && q);
	REQUIRE(gmm_thread_attach(q) == 0);
	REQUIRE(gmm_thread_attach(p) == 0); /* p in the second slot */
	for (unsigned int i = 0; i < 2; i++) {
		unsigned int o = orders[i];
		uint64_t a = gmm_alloc(p, o, GMM_MOVABLE, GMM_NO_NODE);

		REQUIRE(a != GMM_PFN_NONE);
		CHECK_FAIL(gmm_alloc(NULL, o, GMM_MOVABLE, GMM_NO_NODE), GMM_PFN_NONE, -EINVAL);
		CHECK_FAIL(gmm_alloc(NULL, o, GMM_MOVABLE, 0), GMM_PFN_NONE, -EINVAL);
		CHECK_ERR(gmm_free(NULL, a, o), -EINVAL);
		CHECK_ERR(gmm_free(p, 1ull << 40, o), -EINVAL);
		CHECK_ERR(gmm_free(p, a + 1, o), -EINVAL);
		CHECK_ERR(gmm_free(p, a, o + 1), -EINVAL);
		CHECK_EQ(gmm_free(p, a, o), 0);
		CHECK_ERR(gmm_free(p, a, o), -EINVAL);
	}
	CHECK_FAIL(gmm_alloc_bulk(NULL, 0, GMM_NO_NODE, 4, pfns), 0, -EINVAL);
	CHECK_ERR(gmm_free_bulk(NULL, 1, pfns), -EINVAL);
	CHECK_EQ(gmm_thread_detach(p), 0);
	CHECK_EQ(gmm_thread_detach(q), 0);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	CHECK_EQ(gmm_pool_destroy(p), 0);
	CHECK_EQ(gmm_pool_destroy(q), 0);
}

/* --- smaller contracts -------------------------------------------------------- */

static struct gmm_pool *other_pool;
static atomic_int other_state; /* 1: attached, 2: may detach, 3: detached */

static void *attach_and_wait(void *arg)
{
	(void)arg;
	if (gmm_thread_attach(other_pool))
		return NULL;
	atomic_store(&other_state, 1);
	gmm_thread_offline();
	while (atomic_load(&other_state) != 2)
		usleep(1000);
	gmm_thread_online();
	gmm_thread_detach(other_pool);
	atomic_store(&other_state, 3);
	return NULL;
}

/* A pool with an attached thread is refused, not freed under the thread. */
static void test_destroy_attached(void)
{
	pthread_t t;

	other_pool = pool_of(64 * MIB);
	REQUIRE(other_pool);
	pthread_create(&t, NULL, attach_and_wait, NULL);
	while (atomic_load(&other_state) != 1)
		usleep(1000);
	CHECK_ERR(gmm_pool_destroy(other_pool), -EBUSY);
	CHECK(strstr(gmm_last_error(), "attached") != NULL);
	CHECK_EQ(gmm_pool_check(other_pool), 0);
	atomic_store(&other_state, 2);
	pthread_join(t, NULL);
	CHECK_EQ(atomic_load(&other_state), 3);
	CHECK_EQ(gmm_thread_attach(other_pool), 0);
	CHECK_ERR(gmm_pool_destroy(other_pool), -EBUSY); /* the caller itself too */
	CHECK_EQ(gmm_thread_detach(other_pool), 0);
	CHECK_EQ(gmm_pool_destroy(other_pool), 0);
}

/* Fill a zone down to between its min and low watermarks. */
static void fill_to_low(struct gmm_pool *p)
{
	struct gmm_zone_stats st;

	for (;;) {
		REQUIRE(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st) == 0);
		if (st.free <= st.wmark_low)
			return;
		REQUIRE(gmm_alloc(p, 0, 0, GMM_NO_NODE) != GMM_PFN_NONE);
	}
}

/* gmm_alloc_bulk's single-allocation fallback counts its frame. */
static void test_bulk_fallback_counted(void)
{
	struct gmm_pool *p = pool_of(64 * MIB);
	struct gmm_pcp_stats before, after;
	uint64_t pfns[16];
	size_t got;

	REQUIRE(p);
	REQUIRE(gmm_thread_attach(p) == 0);
	fill_to_low(p);
	REQUIRE(gmm_pcp_thread_stats(p, &before) == 0);
	got = gmm_alloc_bulk(p, GMM_HIGH, GMM_NO_NODE, 16, pfns);
	CHECK(got >= 1);
	REQUIRE(gmm_pcp_thread_stats(p, &after) == 0);
	CHECK_EQ(after.bulk_alloc - before.bulk_alloc, got);
	CHECK_EQ(gmm_thread_detach(p), 0);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK_EQ(gmm_pool_destroy(p), 0);
}

/* A request refused by the watermark does not claim there is no block. */
static void test_watermark_message(void)
{
	struct gmm_pool *p = pool_of(64 * MIB);

	REQUIRE(p);
	while (gmm_alloc(p, 0, 0, GMM_NO_NODE) != GMM_PFN_NONE)
		;
	CHECK_EQ(gmm_errno(), -ENOMEM);
	CHECK(strstr(gmm_last_error(), "watermark") != NULL);
	CHECK(strstr(gmm_last_error(), "no free block") == NULL);
	CHECK_FAIL(gmm_alloc(p, 10, 0, GMM_NO_NODE), GMM_PFN_NONE, -ENOMEM);
	while (gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE) != GMM_PFN_NONE)
		;
	CHECK_EQ(gmm_pool_nr_free(p), 0);
	CHECK(strstr(gmm_last_error(), "no free block") != NULL);
	CHECK_EQ(gmm_pool_destroy(p), 0);
}

/*
 * Issue 10's reproduction of a released HIGHATOMIC reserve that left free
 * 2 MiB halves unmerged, through the public API only.
 */
static void test_highatomic_release_public(void)
{
	struct gmm_pool *p = pool_of(256 * MIB);
	struct gmm_zone_stats st;
	uint64_t n = 0, *all, un, at, blocks = 0, order10 = 0;

	REQUIRE(p);
	all = calloc(gmm_pool_nr_pages(p) + 1, sizeof(*all)); /* + the failing call */
	REQUIRE(all);
	while ((all[n] = gmm_alloc(p, 0, GMM_MOVABLE | GMM_NO_WATERMARKS, GMM_NO_NODE)) !=
	       GMM_PFN_NONE)
		n++;
	/* free 400 frames of one pageblock: the unmovable request steals there */
	for (uint64_t i = 0, freed = 0; i < n && freed < 400; i++) {
		if (all[i] / 512 == 3) {
			CHECK_EQ(gmm_free(p, all[i], 0), 0);
			all[i] = GMM_PFN_NONE;
			freed++;
		}
	}
	un = gmm_alloc(p, 0, GMM_NO_WATERMARKS, GMM_NO_NODE);
	REQUIRE(un != GMM_PFN_NONE);
	REQUIRE(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st) == 0);
	for (uint64_t i = 0; i < n && gmm_pool_nr_free(p) < st.wmark_low + st.wmark_boost - 16; i++) {
		if (all[i] != GMM_PFN_NONE) {
			CHECK_EQ(gmm_free(p, all[i], 0), 0);
			all[i] = GMM_PFN_NONE;
		}
	}
	at = gmm_alloc(p, 1, GMM_ATOMIC, GMM_NO_NODE);
	REQUIRE(at != GMM_PFN_NONE);
	REQUIRE(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st) == 0);
	CHECK(st.reserved_highatomic > 0);
	for (uint64_t i = 0; i < n; i++)
		if (all[i] != GMM_PFN_NONE)
			CHECK_EQ(gmm_free(p, all[i], 0), 0);
	CHECK_EQ(gmm_free(p, un, 0), 0);
	CHECK_EQ(gmm_free(p, at, 1), 0);
	while ((all[blocks] = gmm_alloc(p, 10, GMM_NO_WATERMARKS, GMM_NO_NODE)) != GMM_PFN_NONE)
		blocks++;
	CHECK_EQ(blocks, 64);
	CHECK_EQ(gmm_pool_check(p), 0);
	for (uint64_t i = 0; i < blocks; i++)
		CHECK_EQ(gmm_free(p, all[i], 10), 0);
	REQUIRE(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st) == 0);
	for (int mt = 0; mt < GMM_MT_NR; mt++)
		order10 += st.nr_free[10][mt];
	CHECK_EQ(order10, 64);
	CHECK_EQ(gmm_pool_check(p), 0);
	free(all);
	CHECK_EQ(gmm_pool_destroy(p), 0);
}

/* --- gmm_pool_check() during a reporting pass ----------------------------- */

static atomic_int discards;

static int slow_block_add(void *ctx, uint64_t first_pfn, uint64_t nr_pages, int host_node,
			  void **addr)
{
	return gmm_backing_anon.block_add(ctx, first_pfn, nr_pages, host_node, addr);
}

static void slow_block_remove(void *ctx, uint64_t first_pfn, uint64_t nr_pages, void *addr)
{
	gmm_backing_anon.block_remove(ctx, first_pfn, nr_pages, addr);
}

/* A discard slow enough that the checker runs while blocks are in flight. */
static int slow_discard(void *ctx, uint64_t pfn, uint64_t nr_pages, void *addr)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };

	atomic_fetch_add(&discards, 1);
	nanosleep(&ts, NULL);
	return gmm_backing_anon.discard(ctx, pfn, nr_pages, addr);
}

static const struct gmm_backing_ops slow_backing = {
	.name = "slow",
	.block_add = slow_block_add,
	.block_remove = slow_block_remove,
	.discard = slow_discard,
};

static void *report_now(void *arg)
{
	struct gmm_report_config rc = { .order = GMM_PAGEBLOCK_ORDER };

	return (void *)(intptr_t)gmm_report_now(arg, &rc);
}

static void test_check_during_report(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p = NULL;
	uint64_t a;
	pthread_t t;
	void *ret;

	gmm_pool_config_init(&c, 128 * MIB);
	c.block_bytes = 4 * MIB;
	c.backing = &slow_backing;
	REQUIRE(gmm_pool_create(&c, &p) == 0);
	/* free memory that was never reported: allocate and free it all */
	while ((a = gmm_alloc(p, 10, GMM_NO_WATERMARKS, GMM_NO_NODE)) != GMM_PFN_NONE)
		;
	for (a = 0; a < gmm_pool_nr_pages(p); a += 1024)
		CHECK_EQ(gmm_free(p, a, 10), 0);
	pthread_create(&t, NULL, report_now, p);
	while (atomic_load(&discards) < 2)
		usleep(100);
	/* blocks are in flight now: no false corruption */
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	pthread_join(t, &ret);
	CHECK_EQ((intptr_t)ret, 128 * MIB);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK_EQ(gmm_pool_destroy(p), 0);
}

TEST_MAIN(T(test_pool_bad_input), T(test_bad_input_attached), T(test_stats_bad_input),
	  T(test_report_bad_input), T(test_backing_bad_input), T(test_guest_bad_input), T(test_destroy_attached),
	  T(test_bulk_fallback_counted), T(test_watermark_message),
	  T(test_highatomic_release_public),
	  T(test_check_during_report))
