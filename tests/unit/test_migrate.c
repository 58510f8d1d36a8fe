/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/test_migrate.c - migration and compaction without KVM.
 *
 *  - an embedder's own frame owner: migrate by hand, refusals, bad input;
 *  - compaction of a pool fragmented by owned frames: on request, direct
 *    (in the allocator's slow path, with capture) and by kcompactd, with
 *    every live frame's content checked after each step;
 *  - guest pages migrated under writer threads that write checksummed
 *    patterns through the guest mapping and check each page's previous
 *    pattern before writing the next (a lost write shows as a mismatch),
 *    by hand and by compaction, on shmem and on hugetlbfs (2 MiB units);
 *  - no stale link word of an isolated compaction target reads as an rmap;
 *  - the pin contract: pinned pages and pages reached through
 *    gmm_guest_ptr() are not moved;
 *  - the three write stops (mprotect, userfaultfd write-protect, a pause
 *    of the writers standing in for vCPUs) under the same writers, with
 *    gmm_guest_migrate() in batches, on shmem and hugetlbfs; their
 *    fallbacks and reasons.
 *
 * Usage: test_migrate [--pages N] (guest page migrations under writers).
 * The hugetlbfs part reserves hugepages through /proc/sys/vm/nr_hugepages
 * (root) and restores the old value at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>
#include <gmm/migrate.h>

#include "../check.h"
#include "guest_fixtures.h"
#include "../sysfs_long.h"

#define MIB (1ull << 20)
#define WORDS (GMM_PAGE_SIZE / 8)
#define NR_WRITERS 2

/* --- an embedder's owner: a table of blocks keyed by index ------------------ */

struct table {
	struct gmm_pool *pool;
	unsigned int id;
	uint64_t *pfn;     /* by key; GMM_PFN_NONE when not held */
	uint8_t *refuse;   /* by key: the owner says -EBUSY */
	uint64_t n;
	uint64_t moves;
};

static void pattern(struct gmm_pool *p, uint64_t pfn, uint64_t key)
{
	uint64_t *w = gmm_pfn_to_host(p, pfn);

	for (unsigned int i = 0; i < WORDS; i++)
		w[i] = key * 0x9e3779b97f4a7c15ull + i;
}

static int pattern_ok(struct gmm_pool *p, uint64_t pfn, uint64_t key)
{
	const uint64_t *w = gmm_pfn_to_host(p, pfn);

	for (unsigned int i = 0; i < WORDS; i++)
		if (w[i] != key * 0x9e3779b97f4a7c15ull + i)
			return 0;
	return 1;
}

static struct table *stale_table; /* its moves check that no stale word reads as an rmap */
static uint64_t stale_checks;

/*
 * Every frame gmm_frame_owner() calls owned (all of this pool's owned
 * frames are @t's) is one @t holds under that key: no free frame, no
 * isolated compaction target, no other frame reads as owned through a link
 * word a free list or an earlier owner left behind.
 */
static void check_no_stale_rmap(const struct table *t)
{
	uint64_t n = gmm_pool_nr_pages(t->pool);

	for (uint64_t pfn = 0; pfn < n; pfn++) {
		unsigned int id;
		uint64_t key;

		if (gmm_frame_owner(t->pool, pfn, &id, &key))
			continue;
		CHECK_EQ(id, t->id);
		CHECK(key < t->n && t->pfn[key] == pfn);
	}
	stale_checks++;
}

static int table_migrate(void *ctx, uint64_t key, uint64_t old, uint64_t new, unsigned int order,
			 enum gmm_migrate_mode mode)
{
	struct table *t = ctx;

	(void)mode;
	if (t == stale_table && t->moves % 32 == 0)
		check_no_stale_rmap(t);
	if (key >= t->n || t->pfn[key] != old || order)
		return -EAGAIN;
	if (t->refuse[key])
		return -EBUSY;
	memcpy(gmm_pfn_to_host(t->pool, new), gmm_pfn_to_host(t->pool, old), GMM_PAGE_SIZE);
	t->pfn[key] = new;
	CHECK(gmm_rmap_set(t->pool, new, 0, t->id, key) == 0);
	t->moves++;
	return 0;
}

static const struct gmm_migrate_ops table_ops = {
	.name = "table",
	.migrate = table_migrate,
};

static struct gmm_pool *plain_pool(uint64_t bytes)
{
	struct gmm_pool_config cfg;
	struct gmm_pool *p = NULL;

	gmm_pool_config_init(&cfg, bytes);
	cfg.block_bytes = 8 * MIB;
	CHECK(gmm_pool_create(&cfg, &p) == 0);
	return p;
}

static void table_init(struct table *t, struct gmm_pool *p, uint64_t n)
{
	memset(t, 0, sizeof(*t));
	t->pool = p;
	t->n = n;
	t->pfn = malloc(n * sizeof(*t->pfn));
	t->refuse = calloc(n, 1);
	CHECK(t->pfn && t->refuse);
	CHECK(gmm_owner_register(p, &table_ops, t, &t->id) == 0);
	for (uint64_t k = 0; k < n; k++) {
		t->pfn[k] = gmm_alloc(p, 0, GMM_MOVABLE, GMM_NO_NODE);
		if (t->pfn[k] == GMM_PFN_NONE)
			continue;
		pattern(p, t->pfn[k], k);
		CHECK(gmm_rmap_set(p, t->pfn[k], 0, t->id, k) == 0);
	}
}

static void table_check(const struct table *t)
{
	for (uint64_t k = 0; k < t->n; k++) {
		unsigned int id;
		uint64_t key;

		if (t->pfn[k] == GMM_PFN_NONE)
			continue;
		CHECK(pattern_ok(t->pool, t->pfn[k], k));
		CHECK(gmm_frame_owner(t->pool, t->pfn[k], &id, &key) == 0);
		CHECK_EQ(id, t->id);
		CHECK_EQ(key, k);
	}
	CHECK(gmm_pool_check(t->pool) == 0);
}

static void table_drop(struct table *t, uint64_t k)
{
	gmm_rmap_clear(t->pool, t->pfn[k], 0);
	CHECK(gmm_free(t->pool, t->pfn[k], 0) == 0);
	t->pfn[k] = GMM_PFN_NONE;
}

static void table_fini(struct table *t)
{
	for (uint64_t k = 0; k < t->n; k++)
		if (t->pfn[k] != GMM_PFN_NONE)
			table_drop(t, k);
	gmm_owner_unregister(t->pool, t->id);
	free(t->pfn);
	free(t->refuse);
}

static void test_owner_api(void)
{
	struct gmm_pool *p = plain_pool(16 * MIB);
	struct table t;
	uint64_t old, new, unowned;
	unsigned int id;

	table_init(&t, p, 64);
	old = t.pfn[5];
	CHECK(gmm_migrate_block(p, old, GMM_MIGRATE_SYNC, &new) == 0);
	CHECK(new != old && t.pfn[5] == new);
	CHECK(gmm_frame_owner(p, old, &id, &new) == -ENOENT); /* freed, rmap cleared */
	t.refuse[6] = 1;
	old = t.pfn[6];
	CHECK(gmm_migrate_block(p, old, GMM_MIGRATE_SYNC, NULL) == -EBUSY);
	CHECK(t.pfn[6] == old);
	table_check(&t);
	/* bad input: clear errors, nothing lost */
	unowned = gmm_alloc(p, 0, GMM_MOVABLE, GMM_NO_NODE);
	CHECK(gmm_migrate_block(p, unowned, GMM_MIGRATE_SYNC, NULL) == -ENOENT);
	CHECK(gmm_free(p, unowned, 0) == 0);
	CHECK(gmm_migrate_block(p, unowned, GMM_MIGRATE_SYNC, NULL) == -EINVAL);
	CHECK(gmm_migrate_block(NULL, 0, GMM_MIGRATE_SYNC, NULL) == -EINVAL);
	CHECK(gmm_rmap_set(p, gmm_pool_nr_pages(p) + 7, 0, t.id, 1) == -EINVAL);
	CHECK(gmm_rmap_set(p, t.pfn[1], 0, 0, 1) == -EINVAL);
	CHECK(gmm_rmap_set(p, t.pfn[1], 0, t.id, 1ull << 50) == -EINVAL);
	CHECK(gmm_owner_register(p, NULL, NULL, &id) == -EINVAL);
	CHECK(gmm_compact_zone(p, 9, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, NULL) == -EINVAL);
	CHECK(gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, 99, GMM_MIGRATE_SYNC, NULL) == -EINVAL);
	CHECK(gmm_kcompactd_start(p, 101) == -EINVAL);
	table_check(&t);
	table_fini(&t);
	gmm_pool_destroy(p);
	printf("owner api: ok\n");
}

/* Fill the pool with owned frames, then free 3 of 4: no order-9 block left. */
static void fragment(struct table *t)
{
	for (uint64_t k = 0; k < t->n; k++)
		if (t->pfn[k] != GMM_PFN_NONE && (t->pfn[k] & 3))
			table_drop(t, k);
}

static uint64_t huge_nowait(struct gmm_pool *p)
{
	return gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE | GMM_NOWAIT, GMM_NO_NODE);
}

static void test_compact_table(void)
{
	struct gmm_pool *p = plain_pool(64 * MIB);
	struct gmm_compact_events ev;
	struct gmm_compact_result res;
	uint64_t n = gmm_pool_nr_pages(p), pfn;
	struct table t;

	table_init(&t, p, n);
	fragment(&t);
	CHECK(huge_nowait(p) == GMM_PFN_NONE);
	printf("fragmented (lower case: more than half free):\n");
	gmm_pageblock_map(p, stdout, 32);
	/* on request: the whole zone */
	CHECK(gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, &res) == 0);
	CHECK(res.migrated > 0 && res.complete);
	printf("compacted: %llu frames migrated, %llu + %llu scanned\n",
	       (unsigned long long)res.migrated, (unsigned long long)res.migrate_scanned,
	       (unsigned long long)res.free_scanned);
	gmm_pageblock_map(p, stdout, 32);
	table_check(&t);
	pfn = huge_nowait(p);
	CHECK(pfn != GMM_PFN_NONE);
	CHECK(gmm_free(p, pfn, GMM_PAGEBLOCK_ORDER) == 0);
	/* the free memory is in order-9 blocks now: at least 70% of it */
	CHECK(gmm_fragmentation_score(p, 0) <= 30);

	/* direct: fill again, fragment, and ask for order-9 blocks (no NOWAIT) */
	table_fini(&t);
	table_init(&t, p, n);
	fragment(&t);
	CHECK(huge_nowait(p) == GMM_PFN_NONE);
	/* GMM_LIGHT (a guest's opportunistic 2 MiB fault) fails without compacting */
	CHECK(gmm_compact_stats(p, &ev) == 0);
	{
		uint64_t stalls = ev.compact_stall, migrated = ev.pgmigrate_success;

		CHECK(gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE | GMM_LIGHT, GMM_NO_NODE) ==
		      GMM_PFN_NONE);
		CHECK(gmm_errno() == -ENOMEM);
		CHECK(gmm_compact_stats(p, &ev) == 0);
		CHECK_EQ(ev.compact_stall, stalls);
		CHECK_EQ(ev.pgmigrate_success, migrated);
	}
	pfn = gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, GMM_NO_NODE);
	CHECK(pfn != GMM_PFN_NONE);
	CHECK(gmm_compact_stats(p, &ev) == 0);
	CHECK(ev.compact_stall >= 1 && ev.compact_success >= 1 && ev.compact_capture >= 1);
	CHECK(ev.pgmigrate_success >= res.migrated && ev.compact_migrate_scanned > 0);
	table_check(&t);
	CHECK(gmm_free(p, pfn, GMM_PAGEBLOCK_ORDER) == 0);

	/* kcompactd: a failed NOWAIT high-order allocation wakes it (without
	 * defrag mode, which would have it make free pageblocks on its own) */
	table_fini(&t);
	table_init(&t, p, n);
	fragment(&t);
	CHECK(gmm_pool_set_defrag_mode(p, false) == 0);
	CHECK(gmm_kcompactd_start(p, 0) == 0);
	CHECK(gmm_kcompactd_start(p, 0) == -EBUSY);
	CHECK(huge_nowait(p) == GMM_PFN_NONE);
	pfn = GMM_PFN_NONE;
	for (int i = 0; i < 2000 && pfn == GMM_PFN_NONE; i++) {
		usleep(5000);
		pfn = huge_nowait(p);
	}
	CHECK(pfn != GMM_PFN_NONE);
	gmm_kcompactd_stop(p);
	CHECK(gmm_compact_stats(p, &ev) == 0);
	CHECK(ev.compact_daemon_wake >= 1 && ev.compact_daemon_migrate_scanned > 0);
	gmm_compact_print_stats(p, stdout);
	table_check(&t);
	CHECK(gmm_free(p, pfn, GMM_PAGEBLOCK_ORDER) == 0);
	table_fini(&t);
	gmm_pool_destroy(p);
	printf("compaction of owned frames: ok\n");
}

static struct gmm_zone_events zone_events(struct gmm_pool *p)
{
	struct gmm_zone_stats st;

	CHECK(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st) == 0);
	return st.events;
}

/*
 * Defrag mode: an unmovable order-0 request in a pool whose pageblocks are
 * all movable and three quarters free (each could be claimed, polluted)
 * compacts until a pageblock is free and takes it whole; when the owner
 * refuses every move, it falls back as the last resort (defrag_fallback).
 */
static void test_defrag_mode(void)
{
	struct gmm_pool *p = plain_pool(64 * MIB);
	uint64_t n = gmm_pool_nr_pages(p), pfn, pfn2, stalls;
	struct gmm_zone_events e0, e1;
	struct gmm_compact_events ev;
	struct table t;

	CHECK(gmm_pool_defrag_mode(p));
	table_init(&t, p, n);
	fragment(&t);
	e0 = zone_events(p);
	CHECK(gmm_compact_stats(p, &ev) == 0);
	stalls = ev.compact_stall;
	pfn = gmm_alloc(p, 0, 0, GMM_NO_NODE);
	CHECK(pfn != GMM_PFN_NONE);
	e1 = zone_events(p);
	CHECK(gmm_compact_stats(p, &ev) == 0);
	CHECK(ev.compact_stall > stalls && ev.pgmigrate_success > 0);
	CHECK_EQ(e1.steal, e0.steal);
	CHECK_EQ(e1.defrag_fallback, 0);
	CHECK_EQ(e1.claim, e0.claim + 1);
	table_check(&t);

	/* the owner refuses: compaction frees nothing, the last resort falls back */
	table_fini(&t);
	table_init(&t, p, n);
	fragment(&t);
	for (uint64_t k = 0; k < t.n; k++)
		t.refuse[k] = 1;
	e0 = zone_events(p);
	pfn2 = gmm_alloc(p, 0, GMM_RECLAIMABLE, GMM_NO_NODE);
	CHECK(pfn2 != GMM_PFN_NONE);
	e1 = zone_events(p);
	CHECK_EQ(e1.defrag_fallback, e0.defrag_fallback + 1);
	CHECK_EQ(e1.fallback, e0.fallback + 1);
	CHECK(gmm_free(p, pfn2, 0) == 0);
	CHECK(gmm_free(p, pfn, 0) == 0);
	table_check(&t);
	table_fini(&t);
	gmm_pool_destroy(p);
	printf("defrag mode: ok\n");
}

/*
 * A pageblock holding a non-movable frame cannot be produced.  In defrag
 * mode a whole-zone sync pass leaves it at that frame, moving none of its
 * movable frames (no frame is stolen in defrag mode: such a pageblock is
 * its type's own); without defrag mode the pass empties it of its movable
 * frames, as the kernel's sync compaction does (the frame was stolen:
 * emptied, the pageblock can be claimed whole by its type later).
 */
static void test_unmovable_pageblock(void)
{
	for (int defrag = 1; defrag >= 0; defrag--) {
		struct gmm_pool *p = plain_pool(16 * MIB);
		uint64_t n = gmm_pool_nr_pages(p), held = 0, stayed = 0;
		struct gmm_compact_result res;
		uint64_t *was = malloc(n * sizeof(*was));
		struct table t;

		CHECK(was != NULL);
		CHECK(gmm_pool_set_defrag_mode(p, defrag) == 0);
		table_init(&t, p, n);
		fragment(&t); /* frames 0, 4, 8 ... held, the rest free */
		CHECK(gmm_alloc_contig_range(p, 1, 2) == 0); /* pageblock 0: non-movable frame 1 */
		for (uint64_t k = 0; k < n; k++)
			was[k] = t.pfn[k];
		CHECK(gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, &res) == 0);
		CHECK(res.migrated > 0);
		for (uint64_t k = 0; k < n; k++) {
			if (was[k] == GMM_PFN_NONE || was[k] >= GMM_PAGEBLOCK_PAGES)
				continue;
			held++;
			stayed += t.pfn[k] == was[k];
		}
		CHECK(held >= GMM_PAGEBLOCK_PAGES / 4 - 1);
		CHECK_EQ(stayed, defrag ? held : 0);
		table_check(&t);
		CHECK(gmm_free_contig_range(p, 1, 2) == 0);
		table_fini(&t);
		free(was);
		gmm_pool_destroy(p);
	}
	printf("pageblock with a non-movable frame: ok\n");
}

/* Frames free in whole pageblocks, and the zone's high watermark. */
static uint64_t free_in_blocks(struct gmm_pool *p, uint64_t *high)
{
	struct gmm_zone_stats st;
	uint64_t n = 0;

	CHECK(gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st) == 0);
	for (unsigned int o = GMM_PAGEBLOCK_ORDER; o <= st.max_order; o++)
		for (int mt = 0; mt < GMM_MT_NR; mt++)
			n += st.nr_free[o][mt] << o;
	*high = st.wmark_high;
	return n;
}

/*
 * kcompactd's pageblock watermark: with no allocation asking, defrag mode
 * makes it compact until the high watermark (at least a pageblock) is free
 * in whole pageblocks; without defrag mode (no boost, proactiveness 0) it
 * leaves the pool as it is.
 */
static void test_defrag_kcompactd(void)
{
	struct gmm_pool *p = plain_pool(64 * MIB);
	uint64_t high, target, got = 0;
	struct table t;

	table_init(&t, p, gmm_pool_nr_pages(p));
	fragment(&t);
	CHECK(gmm_pool_set_defrag_mode(p, false) == 0);
	CHECK(gmm_kcompactd_start(p, 0) == 0);
	usleep(350000);
	gmm_kcompactd_stop(p);
	CHECK_EQ(free_in_blocks(p, &high), 0);
	target = high > GMM_PAGEBLOCK_PAGES ? high : GMM_PAGEBLOCK_PAGES;
	CHECK(gmm_pool_set_defrag_mode(p, true) == 0);
	CHECK(gmm_kcompactd_start(p, 0) == 0);
	for (int i = 0; i < 2000 && got < target; i++) {
		usleep(5000);
		got = free_in_blocks(p, &high);
	}
	gmm_kcompactd_stop(p);
	CHECK(got >= target);
	table_check(&t);
	table_fini(&t);
	gmm_pool_destroy(p);
	printf("defrag mode kcompactd: %llu frames free in pageblocks (target %llu): ok\n",
	       (unsigned long long)got, (unsigned long long)target);
}

/*
 * Compaction targets are isolated free blocks: allocated movable blocks with
 * no owner yet.  Their link words held list links or, here, the rmaps of an
 * owner that freed its frames without clearing them; while compaction holds
 * them (and splits them), no reader may take those words for an rmap.
 */
static void test_stale_link(void)
{
	struct gmm_pool *p = plain_pool(16 * MIB);
	struct gmm_compact_result res;
	struct table t;

	unsigned int sloppy = 0;

	table_init(&t, p, gmm_pool_nr_pages(p));
	for (uint64_t k = 0; k < t.n; k++)
		if (t.pfn[k] != GMM_PFN_NONE && (t.pfn[k] & 7))
			table_drop(&t, k);
	/* an owner that frees order-2 blocks without gmm_rmap_clear(): the words
	 * of their tail frames stay (with keys the table does not hold) */
	for (; sloppy < 256; sloppy++) {
		uint64_t b = gmm_alloc(p, 2, GMM_MOVABLE | GMM_NOWAIT, GMM_NO_NODE);

		if (b == GMM_PFN_NONE)
			break;
		CHECK(gmm_rmap_set(p, b, 2, t.id, t.n + sloppy) == 0);
		CHECK(gmm_free(p, b, 2) == 0);
	}
	CHECK(sloppy > 16);
	gmm_drain_all_caches(p);
	check_no_stale_rmap(&t);
	stale_table = &t;
	CHECK(gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, &res) == 0);
	stale_table = NULL;
	CHECK(res.migrated > 0 && stale_checks > 4);
	check_no_stale_rmap(&t);
	table_check(&t);
	table_fini(&t);
	gmm_pool_destroy(p);
	printf("stale link words: %llu frames migrated, %llu checks of every frame: ok\n",
	       (unsigned long long)res.migrated, (unsigned long long)stale_checks);
}

/* alloc_contig_range by migration: 2 MiB and 16 MiB out of a full pool */
static void test_contig(void)
{
	struct gmm_pool *p = plain_pool(64 * MIB);
	uint64_t n = gmm_pool_nr_pages(p), mid = n / 2;
	struct table t;
	unsigned int id;
	uint64_t key;

	table_init(&t, p, n);
	CHECK(huge_nowait(p) == GMM_PFN_NONE);
	/* a refused (pinned) frame in the range: -EBUSY, nothing lost */
	for (uint64_t k = 0; k < n; k++)
		if (t.pfn[k] == mid + 8)
			t.refuse[k] = 1;
	fragment(&t); /* room for the moves */
	CHECK(gmm_alloc_contig_range(p, mid, mid + GMM_PAGEBLOCK_PAGES) == -EBUSY);
	table_check(&t);
	memset(t.refuse, 0, n);
	CHECK(gmm_alloc_contig_range(p, mid, mid + GMM_PAGEBLOCK_PAGES) == 0);
	for (uint64_t pfn = mid; pfn < mid + GMM_PAGEBLOCK_PAGES; pfn++)
		CHECK(gmm_frame_owner(p, pfn, &id, &key) == -ENOENT);
	table_check(&t);
	CHECK(gmm_alloc_contig_range(p, mid, mid + GMM_PAGEBLOCK_PAGES) == -EBUSY);
	CHECK(gmm_alloc_contig_range(p, 4096, 4096 + 8 * GMM_PAGEBLOCK_PAGES) == 0);
	table_check(&t);
	CHECK(gmm_free_contig_range(p, mid, mid + GMM_PAGEBLOCK_PAGES) == 0);
	CHECK(gmm_free_contig_range(p, 4096, 4096 + 8 * GMM_PAGEBLOCK_PAGES) == 0);
	CHECK(gmm_free_contig_range(p, mid, mid + 1) == -EINVAL);
	CHECK(gmm_alloc_contig_range(p, mid, mid) == -EINVAL);
	table_check(&t);
	table_fini(&t);
	CHECK_EQ(gmm_pool_nr_free(p), n);
	gmm_pool_destroy(p);
	printf("alloc_contig_range: ok\n");
}

/* --- guest pages under writers ------------------------------------------------ */

static struct gmm_guest *cur_guest;
static volatile int stop_writers;
static int pause_req, parked; /* the writers' stand-in for a vCPU pause, atomic */
static uint64_t waits; /* writes that found their page migrating, atomic */

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	int r = gmm_guest_migration_wait(cur_guest, si->si_addr);

	(void)uc;
	if (r < 0)
		signal(sig, SIG_DFL); /* not guest RAM: a real crash */
	else if (r)
		__atomic_fetch_add(&waits, 1, __ATOMIC_RELAXED);
}

struct writer {
	pthread_t th;
	uint64_t *base; /* the region's host mapping */
	uint64_t nr_pages, unit, w;
	uint64_t holes_below; /* even pages below this one were discarded: skip them */
	uint64_t rounds, bad;
};

static uint64_t word(uint64_t page, uint64_t gen, uint64_t i)
{
	return (gen << 40) ^ (page * WORDS + i) * 0x9e3779b97f4a7c15ull;
}

#ifdef __SANITIZE_THREAD__
/*
 * The writers' stores race with the migrating thread's mmap(MAP_FIXED) by
 * design: the host's page tables order them (write-protect, fault, wait),
 * which TSan cannot see, so it would report every remap.  The writers'
 * memory accesses are left out of TSan's view; their values are checked
 * below, and the library's own synchronization stays checked.
 */
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define writer_untracked() __tsan_ignore_thread_begin()
#define writer_tracked() __tsan_ignore_thread_end()
#else
#define writer_untracked() ((void)0)
#define writer_tracked() ((void)0)
#endif

/* A pause asked for: park (as a vCPU leaves KVM_RUN) until it ends. */
static void writer_park(void)
{
	__atomic_fetch_add(&parked, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
		sched_yield();
	__atomic_fetch_sub(&parked, 1, __ATOMIC_ACQ_REL);
}

/* Every page of this writer: check the previous generation, write the next. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t gen = 0;

	writer_untracked();
	while (!__atomic_load_n(&stop_writers, __ATOMIC_RELAXED)) {
		for (uint64_t pg = w->w * w->unit; pg < w->nr_pages; pg += NR_WRITERS * w->unit) {
			volatile uint64_t *q = w->base + pg * WORDS;

			if (pg < w->holes_below && !(pg & 1))
				continue;
			if (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
				writer_park();
			for (uint64_t i = 0; i < WORDS; i++) {
				if (gen && q[i] != word(pg, gen, i))
					w->bad++;
				q[i] = word(pg, gen + 1, i);
			}
		}
		gen++;
		__atomic_store_n(&w->rounds, gen, __ATOMIC_RELAXED);
	}
	writer_tracked();
	return NULL;
}

static void writers_start(struct writer *ws, void *hva, uint64_t nr_pages, uint64_t unit,
			  uint64_t holes_below)
{
	stop_writers = 0;
	for (uint64_t i = 0; i < NR_WRITERS; i++) {
		ws[i] = (struct writer){ .base = hva, .nr_pages = nr_pages, .unit = unit, .w = i,
					 .holes_below = holes_below };
		CHECK(pthread_create(&ws[i].th, NULL, writer_main, &ws[i]) == 0);
	}
}

static void writers_stop(struct writer *ws)
{
	__atomic_store_n(&stop_writers, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < NR_WRITERS; i++) {
		CHECK(pthread_join(ws[i].th, NULL) == 0);
		CHECK_EQ(ws[i].bad, 0);
		CHECK(ws[i].rounds > 0);
	}
}

static bool writers_behind(struct writer *ws)
{
	for (int i = 0; i < NR_WRITERS; i++)
		if (__atomic_load_n(&ws[i].rounds, __ATOMIC_RELAXED) < 2)
			return true;
	return false;
}

/* Migrate guest units by hand under the writers until @target pages moved
 * and every writer went twice over its pages. */
static void migrate_by_hand(struct gmm_pool *p, struct gmm_guest *g, uint64_t ram,
			    uint64_t unit, uint64_t target, struct writer *ws)
{
	uint64_t moved = 0, gpa = 0;

	while (moved < target || writers_behind(ws)) {
		uint64_t pfn = gmm_guest_gpa_to_pfn(g, gpa), new;
		int err = gmm_migrate_block(p, pfn, GMM_MIGRATE_SYNC, &new);

		CHECK(err == 0 || err == -EAGAIN || (err == -EBUSY && gpa == 0x5000));
		if (!err) {
			CHECK_EQ(gmm_guest_gpa_to_pfn(g, gpa), new);
			moved += unit;
		}
		gpa = (gpa + unit * GMM_PAGE_SIZE) % ram;
	}
}

static void test_pins(struct gmm_pool *p, struct gmm_guest *g)
{
	uint64_t pfn = gmm_guest_gpa_to_pfn(g, 0x3000);

	CHECK(gmm_guest_pin(g, 0x3000, 10) == 0);
	CHECK(gmm_migrate_block(p, pfn, GMM_MIGRATE_SYNC, NULL) == -EBUSY);
	CHECK(gmm_guest_unpin(g, 0x3000, 10) == 0);
	CHECK(gmm_guest_unpin(g, 0x3000, 10) == -EINVAL);
	CHECK(gmm_migrate_block(p, pfn, GMM_MIGRATE_SYNC, NULL) == 0);
	CHECK(gmm_guest_ptr(g, 0x5000, 8) != NULL);
	pfn = gmm_guest_gpa_to_pfn(g, 0x5000);
	CHECK(gmm_migrate_block(p, pfn, GMM_MIGRATE_SYNC, NULL) == -EBUSY);
	CHECK(gmm_guest_migration_wait(g, (void *)1) == -EFAULT);
}

static void test_guest_shmem(uint64_t pages)
{
	const uint64_t ram = 16 * MIB;
	struct gmm_pool *p = memfd_pool(0, 64 * MIB);
	struct writer ws[NR_WRITERS];
	struct gmm_compact_result res;
	struct gmm_collapse_stats cs;
	struct gmm_guest_stats st;
	struct gmm_memslot s;
	struct gmm_guest *g = guest_4k(p, ram, &s);
	uint64_t before;

	cur_guest = g;
	test_pins(p, g);
	writers_start(ws, s.hva, ram / GMM_PAGE_SIZE, 1, 0);
	migrate_by_hand(p, g, ram, 1, pages, ws);
	writers_stop(ws);
	printf("shmem: %llu pages migrated by hand, writers made %llu + %llu rounds, "
	       "%llu writes waited for a migration\n", (unsigned long long)gmm_guest_migrated(g),
	       (unsigned long long)ws[0].rounds, (unsigned long long)ws[1].rounds,
	       (unsigned long long)waits);
	/* compaction: free every other page of the lower half, compact the zone */
	before = gmm_guest_migrated(g);
	for (uint64_t gpa = 0; gpa < ram / 2; gpa += 2 * GMM_PAGE_SIZE)
		CHECK(gmm_guest_discard(g, gpa, GMM_PAGE_SIZE) == 0);
	writers_start(ws, s.hva, ram / GMM_PAGE_SIZE, 1, ram / 2 / GMM_PAGE_SIZE);
	CHECK(gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, &res) == 0);
	while (writers_behind(ws))
		usleep(1000);
	writers_stop(ws);
	CHECK(gmm_guest_migrated(g) > before);
	/* collapse under the writers: the upper half is fully backed (4 chunks) */
	writers_start(ws, s.hva, ram / GMM_PAGE_SIZE, 1, ram / 2 / GMM_PAGE_SIZE);
	CHECK(gmm_guest_collapse(g, UINT64_MAX, &cs) == 0);
	while (writers_behind(ws))
		usleep(1000);
	writers_stop(ws);
	CHECK_EQ(cs.pages_collapsed, ram / 2 / (2 * MIB));
	CHECK_EQ(cs.thp_collapse_alloc, cs.pages_collapsed);
	CHECK_EQ(cs.pages_scanned, ram / GMM_PAGE_SIZE);
	CHECK(gmm_guest_stats(g, &st) == 0);
	CHECK_EQ(st.huge_bytes, ram / 2);
	for (uint64_t gpa = ram / 2; gpa < ram; gpa += 2 * MIB) {
		uint64_t pfn = gmm_guest_gpa_to_pfn(g, gpa);

		CHECK(pfn % GMM_PAGEBLOCK_PAGES == 0);
		CHECK_EQ(gmm_guest_gpa_to_pfn(g, gpa + 2 * MIB - 1), pfn + GMM_PAGEBLOCK_PAGES - 1);
	}
	printf("shmem: collapse moved %llu of %llu chunks onto 2 MiB blocks under the writers, "
	       "%llu mappings left\n", (unsigned long long)cs.pages_collapsed,
	       (unsigned long long)(cs.pages_scanned / GMM_PAGEBLOCK_PAGES), (unsigned long long)st.mappings);
	printf("shmem: compaction under the writers moved %llu pages (%llu + %llu rounds)\n",
	       (unsigned long long)res.migrated, (unsigned long long)ws[0].rounds,
	       (unsigned long long)ws[1].rounds);
	CHECK(res.migrated > 0);
	CHECK(gmm_pool_check(p) == 0);
	gmm_guest_destroy(g);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
	gmm_pool_destroy(p);
}

/* --- the write stops ------------------------------------------------------- */

static int writers_pause(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&pause_req, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&parked, __ATOMIC_ACQUIRE) < NR_WRITERS &&
	       !__atomic_load_n(&stop_writers, __ATOMIC_RELAXED))
		sched_yield();
	return 0;
}

static void writers_resume(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&pause_req, 0, __ATOMIC_RELEASE);
}

static const struct gmm_pause_ops writers_pause_ops = { writers_pause, writers_resume };

static int refuse_pause(void *ctx)
{
	(void)ctx;
	return -EDEADLK;
}

static void never_resume(void *ctx)
{
	(void)ctx;
	abort(); /* resume after a refused pause */
}

static const struct gmm_pause_ops refusing_ops = { refuse_pause, never_resume };

static struct gmm_guest *wstop_guest(struct gmm_pool *p, int mode, int uffd, uint64_t features,
				     uint64_t ram, bool small, struct gmm_memslot *s)
{
	struct gmm_guest_config gc;
	struct gmm_guest *g;

	gmm_guest_config_init(&gc);
	gc.huge_fault = !small;
	gc.write_stop = mode;
	gc.uffd = uffd;
	gc.uffd_features = features;
	CHECK(gmm_guest_create(p, &gc, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, ram, 0, s) == 0);
	CHECK(gmm_guest_populate(g, 0, ram) == 0);
	return g;
}

/* gmm_guest_migrate() under the writers until @target pages moved, twice over theirs. */
static void migrate_batches(struct gmm_guest *g, uint64_t ram, uint64_t unit, uint64_t target,
			    struct writer *ws)
{
	struct gmm_guest_migrate_result res;
	uint64_t moved = 0;

	while (moved < target || writers_behind(ws)) {
		CHECK(gmm_guest_migrate(g, 0, ram, 0, &res) == 0);
		CHECK_EQ(res.pages, res.units * unit);
		CHECK(res.units > 0);
		moved += res.pages;
	}
}

/* One write stop under the writers: nothing lost, the mode used as asked. */
static void wstop_run(struct gmm_pool *p, int mode, uint64_t unit, uint64_t target)
{
	const uint64_t ram = 16 * MIB;
	struct gmm_compact_events before, after;
	struct gmm_guest_migrate_result res;
	struct writer ws[NR_WRITERS];
	struct gmm_wstop_stats st;
	struct gmm_memslot s;
	uint64_t features = 0, pfn;
	int uffd = mode == GMM_WSTOP_UFFD_WP ? uffd_wp_open(&features) : -1;
	struct gmm_guest *g = wstop_guest(p, mode, uffd, features, ram, unit == 1, &s);

	if (mode == GMM_WSTOP_PAUSE)
		CHECK(gmm_guest_set_pause(g, &writers_pause_ops, NULL) == 0);
	cur_guest = g;
	CHECK(gmm_compact_stats(p, &before) == 0);
	writers_start(ws, s.hva, ram / GMM_PAGE_SIZE, unit, 0);
	migrate_batches(g, ram, unit, target, ws);
	writers_stop(ws);
	CHECK(gmm_compact_stats(p, &after) == 0);
	CHECK(gmm_guest_wstop_stats(g, &st) == 0);
	printf("%s write stop, %s: %llu pages in %llu batches under the writers (%llu + %llu "
	       "rounds), longest stop %llu us\n", gmm_write_stop_name(st.mode),
	       unit == 1 ? "4 KiB pages" : "2 MiB units", (unsigned long long)st.pages,
	       (unsigned long long)st.batches, (unsigned long long)ws[0].rounds,
	       (unsigned long long)ws[1].rounds, (unsigned long long)st.stop_ns_max / 1000);
	CHECK_EQ(st.mode, mode);
	CHECK_EQ(st.requested, mode);
	CHECK_EQ(st.why[0], 0);
	CHECK_EQ(st.fallbacks, 0);
	CHECK(st.batches > 0 && st.pages >= target && st.stop_ns_max > 0);
	CHECK(st.units * unit == st.pages);
	CHECK_EQ(after.pgmigrate_success - before.pgmigrate_success, st.pages);
	CHECK_EQ(gmm_guest_migrated(g), st.pages);
	/* a pinned unit stays */
	pfn = gmm_guest_gpa_to_pfn(g, 0);
	CHECK(gmm_guest_pin(g, 0, 1) == 0);
	CHECK(gmm_guest_migrate(g, 0, unit * GMM_PAGE_SIZE, 1, &res) == 0);
	CHECK(res.pinned == 1 && res.units == 0 && gmm_guest_gpa_to_pfn(g, 0) == pfn);
	CHECK(gmm_guest_unpin(g, 0, 1) == 0);
	CHECK(gmm_pool_check(p) == 0);
	gmm_guest_destroy(g);
	if (uffd >= 0)
		close(uffd);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
}

/* Modes a guest cannot use fall back to mprotect and say why. */
static void test_wstop_fallbacks(struct gmm_pool *p)
{
	struct gmm_guest_migrate_result res;
	struct gmm_guest_config gc;
	struct gmm_wstop_stats st;
	struct gmm_memslot s;
	struct gmm_guest *g;

	gmm_guest_config_init(&gc);
	gc.write_stop = 9;
	CHECK(gmm_guest_create(p, &gc, &g) == -EINVAL);
	CHECK(gmm_write_stop_parse("uffd-wp") == GMM_WSTOP_UFFD_WP);
	CHECK(gmm_write_stop_parse("stop") == -EINVAL);
	CHECK(!strcmp(gmm_write_stop_name(GMM_WSTOP_PAUSE), "pause"));
	g = wstop_guest(p, GMM_WSTOP_UFFD_WP, -1, 0, 4 * MIB, true, &s);
	CHECK(gmm_guest_wstop_stats(g, &st) == 0);
	CHECK(st.mode == GMM_WSTOP_MPROTECT && strstr(st.why, "no userfaultfd"));
	gmm_guest_destroy(g);
	/* the default without a userfaultfd: the pause when there is one */
	g = wstop_guest(p, GMM_WSTOP_DEFAULT, -1, 0, 4 * MIB, true, &s);
	CHECK(gmm_guest_wstop_stats(g, &st) == 0);
	CHECK(st.mode == GMM_WSTOP_MPROTECT && st.requested == GMM_WSTOP_DEFAULT && st.why[0]);
	CHECK(gmm_guest_set_pause(g, &writers_pause_ops, NULL) == 0);
	CHECK(gmm_guest_wstop_stats(g, &st) == 0);
	CHECK(st.mode == GMM_WSTOP_PAUSE && !st.why[0]);
	gmm_guest_destroy(g);
	/* pause without pause ops: every batch falls back */
	g = wstop_guest(p, GMM_WSTOP_PAUSE, -1, 0, 4 * MIB, true, &s);
	CHECK(gmm_guest_set_pause(g, NULL, NULL) == 0);
	CHECK(gmm_guest_migrate(g, 0, 4 * MIB, 0, NULL) == 0);
	CHECK(gmm_guest_wstop_stats(g, &st) == 0);
	CHECK(st.mode == GMM_WSTOP_MPROTECT && strstr(st.why, "gmm_guest_set_pause"));
	CHECK(st.fallbacks == st.batches && st.batches == 4 * MIB / GMM_PAGE_SIZE / 32);
	/* a refused pause moves nothing */
	CHECK(gmm_guest_set_pause(g, &refusing_ops, NULL) == 0);
	CHECK(gmm_guest_migrate(g, 0, 4 * MIB, 0, &res) == 0);
	CHECK(res.units == 0 && res.busy == 4 * MIB / GMM_PAGE_SIZE);
	CHECK(gmm_guest_wstop_stats(g, &st) == 0);
	CHECK(st.mode == GMM_WSTOP_PAUSE && st.refused == 4 * MIB / GMM_PAGE_SIZE / 32);
	CHECK(gmm_guest_migrate(NULL, 0, 1, 0, NULL) == -EINVAL);
	CHECK(gmm_guest_set_pause(NULL, NULL, NULL) == -EINVAL);
	gmm_guest_destroy(g);
	printf("write stop fallbacks: ok\n");
}

static uint64_t pauses; /* counting_pause() calls, atomic */

static int counting_pause(void *ctx)
{
	(void)ctx;
	__atomic_fetch_add(&pauses, 1, __ATOMIC_RELAXED);
	return 0;
}

static void counting_resume(void *ctx)
{
	(void)ctx;
}

static const struct gmm_pause_ops counting_ops = { counting_pause, counting_resume };

/* Compaction hands a guest each cluster of its pages as one batch: one pause per cluster. */
static void test_wstop_compact(struct gmm_pool *p)
{
	const uint64_t ram = 16 * MIB;
	struct gmm_wstop_stats before, after;
	struct gmm_compact_result res;
	struct gmm_memslot s;
	struct gmm_guest *g = wstop_guest(p, GMM_WSTOP_PAUSE, -1, 0, ram, true, &s);
	uint64_t units;

	CHECK(gmm_guest_set_pause(g, &counting_ops, NULL) == 0);
	for (uint64_t gpa = 0; gpa < ram / 2; gpa += 2 * GMM_PAGE_SIZE)
		CHECK(gmm_guest_discard(g, gpa, GMM_PAGE_SIZE) == 0);
	CHECK(gmm_guest_wstop_stats(g, &before) == 0);
	__atomic_store_n(&pauses, 0, __ATOMIC_RELAXED);
	CHECK(gmm_compact_zone(p, 0, GMM_ZONE_NORMAL, -1, GMM_MIGRATE_SYNC, &res) == 0);
	CHECK(gmm_guest_wstop_stats(g, &after) == 0);
	units = after.units - before.units;
	printf("compaction in pause mode: %llu pages in %llu batches, %llu pauses\n",
	       (unsigned long long)units, (unsigned long long)(after.batches - before.batches),
	       (unsigned long long)pauses);
	CHECK(units > 0 && units == res.migrated);
	CHECK_EQ(pauses, after.batches - before.batches);
	CHECK(pauses * 4 < units);
	CHECK(gmm_pool_check(p) == 0);
	gmm_guest_destroy(g);
	CHECK_EQ(gmm_pool_nr_free(p), gmm_pool_nr_pages(p));
}

static void test_wstop_shmem(uint64_t pages)
{
	struct gmm_pool *p = memfd_pool(0, 64 * MIB);

	test_wstop_fallbacks(p);
	test_wstop_compact(p);
	for (int m = GMM_WSTOP_MPROTECT; m <= GMM_WSTOP_PAUSE; m++)
		wstop_run(p, m, 1, pages);
	wstop_run(p, GMM_WSTOP_UFFD_WP, GMM_PAGEBLOCK_PAGES, pages);
	gmm_pool_destroy(p);
}

static void test_guest_hugetlb(uint64_t pages)
{
	const uint64_t ram = 16 * MIB;
	const long want = 24;
	struct writer ws[NR_WRITERS];
	struct gmm_memslot s;
	struct gmm_guest *g;
	struct gmm_pool *p;

	g = hugetlb_guest(ram, 32 * MIB, want, &p, &s);
	cur_guest = g;
	writers_start(ws, s.hva, ram / GMM_PAGE_SIZE, GMM_PAGEBLOCK_PAGES, 0);
	migrate_by_hand(p, g, ram, GMM_PAGEBLOCK_PAGES, pages, ws);
	writers_stop(ws);
	printf("hugetlbfs: %llu pages migrated in 2 MiB units under %d writers (%llu + %llu "
	       "rounds)\n", (unsigned long long)gmm_guest_migrated(g), NR_WRITERS,
	       (unsigned long long)ws[0].rounds, (unsigned long long)ws[1].rounds);
	CHECK(gmm_pool_check(p) == 0);
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	hugepages_give_back();
}

int main(int argc, char **argv)
{
	struct sigaction sa = { 0 };
	uint64_t pages = 16384;

	if (argc == 3 && !strcmp(argv[1], "--pages"))
		pages = strtoull(argv[2], NULL, 0);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	test_owner_api();
	test_compact_table();
	test_defrag_mode();
	test_defrag_kcompactd();
	test_unmovable_pageblock();
	test_stale_link();
	test_contig();
	test_guest_shmem(pages);
	test_wstop_shmem(pages);
	test_guest_hugetlb(pages);
	printf("ok\n");
	return 0;
}
