/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/test_contig.c - contiguous allocation by migration.
 *
 *  - alloc_contig_range: free blocks reaching beyond either end of the
 *    range (another isolated range next to it), unaligned ranges, frames
 *    discarded by free page reporting (the backing repopulates them);
 *  - alloc_contig_pages on a 90% full pool of owned movable frames with
 *    unmovable frames in some pageblocks: it finds a range and moves what
 *    is there, contents intact;
 *  - CMA: the area filled with borrowed movable frames, then taken whole;
 *  - hot-remove of a ZONE_MOVABLE block by migration (to the other node
 *    when its own is full), and its clean refusal (-EBUSY) when a pinned
 *    frame stays;
 *  - all of these beside a thread that frees and allocates owned frames.
 * After each step the invariant checker runs and every owned frame's
 * content is checked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmm/gmm.h>

#include "../check.h"

#define MIB (1ull << 20)

/* --- an owner of order-0 movable frames, each stamped with its key ------------ */

struct owner {
	struct gmm_pool *pool;
	unsigned int id;
	uint64_t *pfn; /* by key; GMM_PFN_NONE when given back */
	uint8_t *pin;  /* by key: refuse to move (-EBUSY) */
	uint64_t n, cap, moves;
	pthread_mutex_t lock; /* the table against the callback (threaded test) */
};

static void stamp(struct gmm_pool *p, uint64_t pfn, uint64_t key)
{
	uint64_t *w = gmm_pfn_to_host(p, pfn);

	w[0] = key ^ 0x5bd1e9955bd1e995ull;
	w[511] = ~key;
}

static int stamped(struct gmm_pool *p, uint64_t pfn, uint64_t key)
{
	const uint64_t *w = gmm_pfn_to_host(p, pfn);

	return w[0] == (key ^ 0x5bd1e9955bd1e995ull) && w[511] == ~key;
}

static int owner_migrate(void *ctx, uint64_t key, uint64_t old, uint64_t new, unsigned int order,
			 enum gmm_migrate_mode mode)
{
	struct owner *o = ctx;
	int err = -EAGAIN;

	if (mode == GMM_MIGRATE_ASYNC ? pthread_mutex_trylock(&o->lock) :
					pthread_mutex_lock(&o->lock))
		return -EAGAIN;
	if (key < o->n && o->pfn[key] == old && !order) {
		err = -EBUSY;
		if (!o->pin[key]) {
			memcpy(gmm_pfn_to_host(o->pool, new), gmm_pfn_to_host(o->pool, old),
			       GMM_PAGE_SIZE);
			o->pfn[key] = new;
			o->moves++;
			err = gmm_rmap_set(o->pool, new, 0, o->id, key);
		}
	}
	pthread_mutex_unlock(&o->lock);
	return err;
}

static const struct gmm_migrate_ops owner_ops = {
	.name = "test_contig",
	.migrate = owner_migrate,
};

static void owner_init(struct owner *o, struct gmm_pool *p)
{
	memset(o, 0, sizeof(*o));
	o->pool = p;
	o->cap = gmm_pool_nr_pages(p);
	o->pfn = malloc(o->cap * sizeof(*o->pfn));
	o->pin = calloc(o->cap, 1);
	CHECK(o->pfn && o->pin);
	pthread_mutex_init(&o->lock, NULL);
	CHECK(gmm_owner_register(p, &owner_ops, o, &o->id) == 0);
}

/* Take up to @nr movable frames; how many were had. */
static uint64_t owner_fill(struct owner *o, uint64_t nr)
{
	uint64_t got = 0;

	while (got < nr && o->n < o->cap) {
		uint64_t pfn = gmm_alloc(o->pool, 0, GMM_MOVABLE, GMM_NO_NODE);

		if (pfn == GMM_PFN_NONE)
			break;
		stamp(o->pool, pfn, o->n);
		CHECK(gmm_rmap_set(o->pool, pfn, 0, o->id, o->n) == 0);
		o->pfn[o->n++] = pfn;
		got++;
	}
	return got;
}

static void owner_give(struct owner *o, uint64_t key)
{
	gmm_rmap_clear(o->pool, o->pfn[key], 0);
	CHECK(gmm_free(o->pool, o->pfn[key], 0) == 0);
	o->pfn[key] = GMM_PFN_NONE;
}

/* Every frame held still holds its stamp and its rmap; none lies in [lo, hi). */
static void owner_check(struct owner *o, uint64_t lo, uint64_t hi)
{
	for (uint64_t k = 0; k < o->n; k++) {
		unsigned int id;
		uint64_t key;

		if (o->pfn[k] == GMM_PFN_NONE)
			continue;
		CHECK(stamped(o->pool, o->pfn[k], k));
		CHECK(gmm_frame_owner(o->pool, o->pfn[k], &id, &key) == 0);
		CHECK(id == o->id && key == k);
		CHECK(o->pfn[k] < lo || o->pfn[k] >= hi);
	}
	CHECK_EQ(gmm_pool_check(o->pool), 0);
}

static void owner_fini(struct owner *o)
{
	for (uint64_t k = 0; k < o->n; k++)
		if (o->pfn[k] != GMM_PFN_NONE)
			owner_give(o, k);
	gmm_owner_unregister(o->pool, o->id);
	pthread_mutex_destroy(&o->lock);
	free(o->pfn);
	free(o->pin);
}

static struct gmm_pool *pool_with(uint64_t normal, uint64_t cma, uint64_t movable,
				  const struct gmm_backing_ops *backing)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;

	gmm_pool_config_init(&c, normal);
	c.nodes[0].cma_bytes = cma;
	c.nodes[0].movable_bytes = movable;
	c.block_bytes = 16 * MIB;
	if (backing)
		c.backing = backing;
	CHECK(gmm_pool_create(&c, &p) == 0);
	return p;
}

/* Is every frame of [s, e) an allocated single frame (gmm_free_contig_range's test)? */
static int range_taken(struct gmm_pool *p, uint64_t s, uint64_t e)
{
	for (uint64_t pfn = s; pfn < e; pfn++) {
		unsigned int id;
		uint64_t key;

		if (gmm_frame_owner(p, pfn, &id, &key) != -ENOENT)
			return 0;
	}
	return 1;
}

/* --- take_range: blocks beyond the range's ends, unaligned ranges ----------------- */

static void test_straddle(void)
{
	struct gmm_pool *p = pool_with(64 * MIB, 0, 0, NULL);
	uint64_t n = gmm_pool_nr_pages(p);

	/* pageblock 1 isolated by someone else: its free frames merge with ours */
	CHECK(gmm_isolate_range(p, 512, 1024) == 0);
	CHECK(gmm_alloc_contig_range(p, 0, 512) == 0);
	CHECK(gmm_undo_isolate_range(p, 512, 1024) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), n - 512);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK(range_taken(p, 0, 512));
	CHECK(gmm_free_contig_range(p, 0, 512) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), n);

	/* the other side: the merged block starts before the range */
	CHECK(gmm_isolate_range(p, 2048, 2560) == 0);
	CHECK(gmm_alloc_contig_range(p, 2560, 3072) == 0);
	CHECK(gmm_undo_isolate_range(p, 2048, 2560) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), n - 512);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK(gmm_free_contig_range(p, 2560, 3072) == 0);

	/* unaligned: a free 4 MiB block split around [100, 700) */
	CHECK(gmm_alloc_contig_range(p, 100, 700) == 0);
	CHECK_EQ(gmm_pool_nr_free(p), n - 600);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK(gmm_alloc(p, 0, 0, GMM_NO_NODE) != GMM_PFN_NONE); /* the rest is usable */
	CHECK(gmm_free_contig_range(p, 100, 701) == -EINVAL);    /* 700 was not taken */
	CHECK_EQ(gmm_pool_nr_free(p), n - 601);
	CHECK(gmm_free_contig_range(p, 100, 700) == 0);
	CHECK(gmm_alloc_contig_range(p, 5, 5) == -EINVAL);
	CHECK(gmm_alloc_contig_range(p, 0, n + 1) == -EINVAL);
	gmm_pool_destroy(p);
	printf("ranges beyond free blocks, unaligned ranges: ok\n");
}

/* --- frames discarded by free page reporting ------------------------------------ */

static uint64_t repopulated; /* frames the backing was asked to repopulate */
static uint64_t repop_lo = UINT64_MAX, repop_hi;

static int count_repopulate(void *ctx, uint64_t pfn, uint64_t nr, void *addr)
{
	(void)ctx;
	(void)addr;
	repopulated += nr;
	if (pfn < repop_lo)
		repop_lo = pfn;
	if (pfn + nr > repop_hi)
		repop_hi = pfn + nr;
	return 0;
}

static void test_reported(void)
{
	struct gmm_backing_ops ops = gmm_backing_anon;
	struct gmm_report_config rc = { .order = GMM_PAGEBLOCK_ORDER };
	struct gmm_report_stats st;
	struct gmm_pool *p;
	uint64_t blk[32];

	ops.repopulate = count_repopulate;
	p = pool_with(64 * MIB, 0, 0, &ops);
	/* write every frame (unreported once freed), then have it all discarded */
	for (int i = 0; i < 32; i++) {
		uint64_t b = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE | GMM_NO_WATERMARKS,
				       GMM_NO_NODE);

		CHECK(b != GMM_PFN_NONE);
		memset(gmm_pfn_to_host(p, b), 1, 2 * MIB);
		blk[i] = b;
	}
	for (int i = 0; i < 32; i++)
		CHECK(gmm_free(p, blk[i], GMM_PAGEBLOCK_ORDER) == 0);
	CHECK(gmm_report_now(p, &rc) > 0);
	CHECK(gmm_report_stats(p, &st) == 0);
	CHECK_EQ(st.free_unreported, 0);
	repopulated = 0; /* the allocations above repopulated too */
	CHECK(gmm_alloc_contig_range(p, 1024, 3072) == 0);
	CHECK_EQ(repopulated, 2048);
	CHECK(repop_lo <= 1024 && repop_hi >= 3072);
	for (uint64_t pfn = 1024; pfn < 3072; pfn += 97) /* discarded memory reads as zero */
		CHECK(*(uint8_t *)gmm_pfn_to_host(p, pfn) == 0);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK(gmm_free_contig_range(p, 1024, 3072) == 0);
	gmm_pool_destroy(p);
	printf("reported frames repopulated: ok (%llu frames)\n", (unsigned long long)repopulated);
}

/* --- alloc_contig_pages on a 90% full pool --------------------------------------- */

static void test_contig_pages(void)
{
	struct gmm_pool *p = pool_with(128 * MIB, 0, 0, NULL);
	uint64_t n = gmm_pool_nr_pages(p), s, unmov[8], moved;
	struct owner o;

	owner_init(&o, p);
	CHECK(owner_fill(&o, n * 9 / 10) == n * 9 / 10);
	/* an unmovable frame in each of the first pageblocks: unsuitable ranges */
	for (int i = 0; i < 8; i++) {
		owner_give(&o, (uint64_t)i * 512 + 7);
		unmov[i] = gmm_alloc(p, 0, 0, GMM_NO_NODE);
		CHECK(unmov[i] != GMM_PFN_NONE);
	}
	s = gmm_alloc_contig_pages(p, GMM_PAGEBLOCK_PAGES, GMM_NO_NODE);
	CHECK(s != GMM_PFN_NONE && s % GMM_PAGEBLOCK_PAGES == 0);
	for (int i = 0; i < 8; i++)
		CHECK(unmov[i] < s || unmov[i] >= s + GMM_PAGEBLOCK_PAGES);
	CHECK(range_taken(p, s, s + GMM_PAGEBLOCK_PAGES));
	owner_check(&o, s, s + GMM_PAGEBLOCK_PAGES);
	moved = o.moves;
	CHECK(moved > 0);
	CHECK(gmm_free_contig_range(p, s, s + GMM_PAGEBLOCK_PAGES) == 0);
	/* 8 MiB, aligned to 8 MiB */
	s = gmm_alloc_contig_pages(p, 2048, 0);
	CHECK(s != GMM_PFN_NONE && s % 2048 == 0);
	owner_check(&o, s, s + 2048);
	CHECK(gmm_free_contig_range(p, s, s + 2048) == 0);
	/* more than the pool has free: refused, nothing lost */
	CHECK(gmm_alloc_contig_pages(p, n / 2, 0) == GMM_PFN_NONE);
	CHECK(gmm_errno() == -ENOMEM);
	owner_check(&o, 0, 0);
	CHECK(gmm_alloc_contig_pages(p, 0, 0) == GMM_PFN_NONE && gmm_errno() == -EINVAL);
	CHECK(gmm_alloc_contig_pages(p, 1, 3) == GMM_PFN_NONE && gmm_errno() == -EINVAL);
	CHECK(gmm_alloc_contig_pages(NULL, 1, 0) == GMM_PFN_NONE && gmm_errno() == -EINVAL);
	for (int i = 0; i < 8; i++)
		CHECK(gmm_free(p, unmov[i], 0) == 0);
	owner_fini(&o);
	CHECK_EQ(gmm_pool_nr_free(p), n);
	gmm_pool_destroy(p);
	printf("alloc_contig_pages on a 90%% full pool: ok (%llu frames moved)\n",
	       (unsigned long long)moved);
}

/* --- CMA --------------------------------------------------------------------------- */

static void test_cma(void)
{
	struct gmm_pool *p = pool_with(64 * MIB, 16 * MIB, 0, NULL);
	uint64_t n = gmm_pool_nr_pages(p), area = n - 4096, borrowed = 0, s;
	struct owner o;

	owner_init(&o, p);
	/* fill the pool with movable frames, then keep only those in the CMA area */
	owner_fill(&o, n);
	for (uint64_t k = 0; k < o.n; k++) {
		if (o.pfn[k] >= area)
			borrowed++;
		else
			owner_give(&o, k);
	}
	CHECK(borrowed > 4096 * 9 / 10);
	CHECK(gmm_cma_alloc(p, 0, 1, GMM_MAX_ORDER_LIMIT + 1) == GMM_PFN_NONE);
	CHECK(gmm_errno() == -EINVAL);
	s = gmm_cma_alloc(p, 0, 4096, GMM_PAGEBLOCK_ORDER);
	CHECK_EQ(s, area);
	CHECK(range_taken(p, area, n));
	CHECK_EQ(o.moves, borrowed);
	owner_check(&o, area, n);
	/* the area is used up; contig_pages never takes CMA pageblocks */
	CHECK(gmm_cma_alloc(p, 0, 1, 0) == GMM_PFN_NONE && gmm_errno() == -ENOMEM);
	s = gmm_alloc_contig_pages(p, 512, 0);
	CHECK(s != GMM_PFN_NONE && s + 512 <= area);
	CHECK(gmm_cma_release(p, s, 512) == -EINVAL);
	CHECK(gmm_free_contig_range(p, s, s + 512) == 0);
	CHECK(gmm_cma_release(p, area, 4096) == 0);
	CHECK(gmm_cma_release(p, area, 1) == -EINVAL); /* freed already */
	/* a small aligned piece, then the rest */
	s = gmm_cma_alloc(p, GMM_NO_NODE, 3, 4);
	CHECK(s == area);
	CHECK(gmm_cma_release(p, s, 3) == 0);
	owner_check(&o, 0, 0);
	owner_fini(&o);
	CHECK_EQ(gmm_pool_nr_free(p), n);
	gmm_pool_destroy(p);
	printf("CMA area filled with borrowed frames, taken whole: ok (%llu moved)\n",
	       (unsigned long long)borrowed);
}

/* --- hot-remove by migration --------------------------------------------------------- */

static void test_remove(void)
{
	struct gmm_pool *p = pool_with(64 * MIB, 0, 32 * MIB, NULL);
	uint64_t n = gmm_pool_nr_pages(p), mov = 16384, in_block = 0, pinned = GMM_PFN_NONE, unmov;
	struct owner o;

	owner_init(&o, p);
	/* movable allocations fill ZONE_MOVABLE first */
	CHECK(owner_fill(&o, 6000) == 6000);
	for (uint64_t k = 0; k < o.n; k++) {
		CHECK(gmm_pfn_zone(p, o.pfn[k]) == GMM_ZONE_MOVABLE);
		in_block += o.pfn[k] >= mov + 4096;
	}
	CHECK(in_block > 0);
	/* the second MOVABLE block: its frames move (to the first one) */
	CHECK(gmm_pool_remove_block(p, mov + 4096) == 0);
	CHECK_EQ(gmm_pool_nr_pages(p), n - 4096);
	owner_check(&o, mov + 4096, mov + 8192);
	CHECK_EQ(o.moves, in_block);
	/* a pinned frame in the first: -EBUSY, rolled back, nothing lost */
	for (uint64_t k = 0; k < o.n; k++)
		if (o.pfn[k] >= mov && o.pfn[k] < mov + 4096 && pinned == GMM_PFN_NONE) {
			o.pin[k] = 1;
			pinned = k;
		}
	CHECK(pinned != GMM_PFN_NONE);
	CHECK(gmm_pool_remove_block(p, mov) == -EBUSY);
	CHECK(strstr(gmm_last_error(), "pinned") != NULL);
	CHECK_EQ(gmm_pool_nr_pages(p), n - 4096);
	CHECK(gmm_pageblock_migratetype(p, mov) == GMM_MT_MOVABLE);
	owner_check(&o, 0, 0);
	/* unpinned: it goes, its frames into ZONE_NORMAL */
	o.pin[pinned] = 0;
	CHECK(gmm_pool_remove_block(p, mov) == 0);
	CHECK_EQ(gmm_pool_nr_pages(p), n - 8192);
	owner_check(&o, mov, mov + 8192);
	/* an unmovable frame in a ZONE_NORMAL block: -EBUSY */
	unmov = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	CHECK(unmov != GMM_PFN_NONE);
	CHECK(gmm_pool_remove_block(p, unmov & ~4095ull) == -EBUSY);
	CHECK(strstr(gmm_last_error(), "unmovable") != NULL);
	owner_check(&o, 0, 0);
	CHECK(gmm_free(p, unmov, 0) == 0);
	/* both come back */
	CHECK(gmm_pool_add_block(p, 0, GMM_ZONE_MOVABLE, NULL) == 0);
	CHECK(gmm_pool_add_block(p, 0, GMM_ZONE_MOVABLE, NULL) == 0);
	CHECK_EQ(gmm_pool_nr_pages(p), n);
	owner_fini(&o);
	CHECK_EQ(gmm_pool_nr_free(p), n);
	gmm_pool_destroy(p);
	printf("hot-remove of ZONE_MOVABLE blocks by migration, pinned refusal: ok\n");
}

/* A full node's ZONE_MOVABLE block goes: its frames move to the other node. */
static void test_remove_other_node(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;
	uint64_t n, first = 16384, on1 = 0;
	struct owner o;

	gmm_pool_config_init(&c, 64 * MIB);
	c.nr_nodes = 2;
	c.block_bytes = 16 * MIB;
	c.nodes[1].movable_bytes = 16 * MIB;
	CHECK(gmm_pool_create(&c, &p) == 0);
	n = gmm_pool_nr_pages(p);
	owner_init(&o, p);
	while (o.n < o.cap) { /* node 1 as full as its watermarks let it be */
		uint64_t pfn = gmm_alloc(p, 0, GMM_MOVABLE | GMM_THISNODE, 1);

		if (pfn == GMM_PFN_NONE)
			break;
		CHECK(gmm_pfn_node(p, pfn) == 1 && pfn >= first);
		stamp(p, pfn, o.n);
		CHECK(gmm_rmap_set(p, pfn, 0, o.id, o.n) == 0);
		o.pfn[o.n++] = pfn;
		on1++;
	}
	CHECK(on1 > 4096 * 9 / 10);
	CHECK(gmm_pool_remove_block(p, first) == 0);
	CHECK_EQ(o.moves, on1);
	for (uint64_t k = 0; k < o.n; k++)
		CHECK(gmm_pfn_node(p, o.pfn[k]) == 0);
	owner_check(&o, first, first + 4096);
	CHECK(gmm_pool_add_block(p, 1, GMM_ZONE_MOVABLE, NULL) == 0);
	owner_fini(&o);
	CHECK_EQ(gmm_pool_nr_free(p), n);
	gmm_pool_destroy(p);
	printf("hot-remove of a full node's block, frames moved to the other node: ok\n");
}

/* --- under a concurrent owner ------------------------------------------------------- */

struct churn {
	struct owner *o;
	uint64_t rng, steps;
	int stop; /* atomic */
};

/* Free a random held frame or take a new one for that key; the table under the owner's lock. */
static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	struct owner *o = c->o;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		uint64_t k, pfn;

		c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
		k = (c->rng >> 33) % o->n;
		pthread_mutex_lock(&o->lock);
		if (o->pfn[k] != GMM_PFN_NONE) {
			CHECK(stamped(o->pool, o->pfn[k], k));
			gmm_rmap_clear(o->pool, o->pfn[k], 0);
			CHECK(gmm_free(o->pool, o->pfn[k], 0) == 0);
			o->pfn[k] = GMM_PFN_NONE;
			pthread_mutex_unlock(&o->lock);
			continue;
		}
		pthread_mutex_unlock(&o->lock);
		/* allocated unlocked: it may compact, and compaction calls back */
		pfn = gmm_alloc(o->pool, 0, GMM_MOVABLE, GMM_NO_NODE);
		if (pfn == GMM_PFN_NONE)
			continue;
		stamp(o->pool, pfn, k);
		pthread_mutex_lock(&o->lock);
		CHECK(gmm_rmap_set(o->pool, pfn, 0, o->id, k) == 0);
		o->pfn[k] = pfn;
		pthread_mutex_unlock(&o->lock);
		c->steps++;
	}
	gmm_thread_detach(o->pool);
	return NULL;
}

/* No frame of [s, s + nr) is the owner's (checked under its lock). */
static void none_owned(struct owner *o, uint64_t s, uint64_t nr)
{
	pthread_mutex_lock(&o->lock);
	for (uint64_t k = 0; k < o->n; k++)
		CHECK(o->pfn[k] == GMM_PFN_NONE || o->pfn[k] < s || o->pfn[k] >= s + nr);
	pthread_mutex_unlock(&o->lock);
}

static void test_concurrent(void)
{
	struct gmm_pool *p = pool_with(64 * MIB, 8 * MIB, 32 * MIB, NULL);
	uint64_t n = gmm_pool_nr_pages(p), mov = 16384, done = 0, removed = 0;
	struct churn c = { .rng = 42 };
	struct owner o;
	pthread_t t;

	owner_init(&o, p);
	owner_fill(&o, n * 3 / 4);
	c.o = &o;
	CHECK(pthread_create(&t, NULL, churn_thread, &c) == 0);
	for (int i = 0; i < 40; i++) {
		uint64_t s, first;

		s = gmm_alloc_contig_pages(p, 1 + (uint64_t)i * 37, GMM_NO_NODE);
		if (s != GMM_PFN_NONE) {
			none_owned(&o, s, 1 + (uint64_t)i * 37);
			CHECK(gmm_free_contig_range(p, s, s + 1 + (uint64_t)i * 37) == 0);
			done++;
		}
		s = gmm_cma_alloc(p, 0, 512, GMM_PAGEBLOCK_ORDER);
		if (s != GMM_PFN_NONE) {
			none_owned(&o, s, 512);
			CHECK(gmm_cma_release(p, s, 512) == 0);
			done++;
		}
		if (gmm_pool_remove_block(p, mov + (i % 2) * 4096)) {
			/* ZONE_MOVABLE holds no unmovable frame (a block freed meanwhile is none) */
			CHECK(strstr(gmm_last_error(), "unmovable") == NULL);
		} else {
			removed++;
			CHECK(gmm_pool_add_block(p, 0, GMM_ZONE_MOVABLE, &first) == 0);
			CHECK(first == mov + (i % 2) * 4096);
		}
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(done > 0 && c.steps > 0);
	owner_check(&o, 0, 0);
	owner_fini(&o);
	gmm_thread_detach(p);
	CHECK_EQ(gmm_pool_nr_free(p), n);
	gmm_pool_destroy(p);
	printf("contig, CMA and hot-remove beside a churning owner: ok (%llu taken, %llu "
	       "blocks removed, %llu churn steps)\n", (unsigned long long)done,
	       (unsigned long long)removed, (unsigned long long)c.steps);
}

int main(void)
{
	test_straddle();
	test_reported();
	test_contig_pages();
	test_cma();
	test_remove();
	test_remove_other_node();
	test_concurrent();
	return 0;
}
