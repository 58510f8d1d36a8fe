/* SPDX-License-Identifier: MIT */
/*
 * tests/pcp/test_pcp_thp_links.c - cached pageblock-order blocks link
 * through a tail frame's word (pcp_elem(), memmgr/pcp.h), spread so that
 * the links of consecutive cached THPs fall on distinct L1 sets (the heads'
 * words are 4 KiB apart: one set).  White box: the cache's THP list is
 * walked and every element checked against its block; the pool check
 * accepts the lists; a hit, an owner trim, a detach and a remote drain
 * leave no stale link word in a tail frame; no frame is lost.
 */
#include <pthread.h>

#include "../../memmgr/pcp.h"
#include "pcp_test.h"

#define POOL_BYTES (1024 * MIB) /* high_max: an eighth, 64 THPs */
#define NR_THP 48
#define THP GMM_PAGEBLOCK_PAGES

static struct gmm_pool *pool;
static uint32_t elems[NR_THP];
static pthread_barrier_t bar;

/* The L1 set (of 64) of a frame's link word. */
static unsigned int link_set(uint32_t pfn)
{
	return (unsigned int)((uintptr_t)&pool->link[pfn] >> 6) & 63;
}

static void alloc_thps(uint64_t *v)
{
	for (int i = 0; i < NR_THP; i++) {
		v[i] = gmm_alloc(pool, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, 0);
		CHECK(v[i] != GMM_PFN_NONE && !(v[i] & (THP - 1)));
	}
}

/* Walk the calling thread's movable THP list: elements where pcp_elem() puts them. */
static unsigned int check_thp_list(void)
{
	struct gmm_zone *z = &pool->nodes[0].zones[GMM_ZONE_NORMAL];
	struct pcp_cache *c = rcu_dereference(pcp_self(pool)->cache);
	struct pfn_list *l = &cache_zone(c, z)->lists[pindex(GMM_MT_MOVABLE, GMM_PAGEBLOCK_ORDER)];
	uint64_t sets = 0;
	unsigned int n = 0;

	for (uint32_t e = l->head; e != PFN_NIL; e = pl_next(pool, e)) {
		uint32_t head = e & ~(uint32_t)(THP - 1);

		CHECK(n < NR_THP);
		CHECK_EQ(e, head + 8 * ((head / THP) % 64));
		CHECK_EQ(e, pcp_elem(head, GMM_PAGEBLOCK_ORDER));
		CHECK_EQ(pcp_elem_head(e, GMM_PAGEBLOCK_ORDER), head);
		CHECK_EQ(fr_kind(pool, head), FR_PCP);
		CHECK_EQ(fr_order(pool, head), GMM_PAGEBLOCK_ORDER);
		if (e != head)
			CHECK_EQ(fr_state(pool, e), 0); /* a tail frame */
		sets |= 1ull << link_set(e);
		elems[n++] = e;
	}
	/* the heads' link words would all be on one set */
	CHECK(__builtin_popcountll(sets) >= NR_THP / 2);
	return n;
}

/* No stale link word left in the tail frames that carried the links. */
static void check_links_clear(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (elems[i] & (THP - 1))
			CHECK_EQ(pool->link[elems[i]], 0);
}

static void *owner(void *arg)
{
	uint64_t v[NR_THP];
	struct gmm_pcp_stats s;

	(void)arg;
	CHECK(gmm_thread_attach(pool) == 0);
	alloc_thps(v);
	for (int i = 0; i < NR_THP; i++)
		CHECK(gmm_free(pool, v[i], GMM_PAGEBLOCK_ORDER) == 0);
	CHECK(gmm_pcp_thread_stats(pool, &s) == 0);
	CHECK_EQ(s.cached, (uint64_t)NR_THP * THP);
	CHECK_EQ(check_thp_list(), NR_THP);
	/* hits take the blocks back: their link words are cleared */
	alloc_thps(v);
	check_links_clear(NR_THP);
	for (int i = 0; i < NR_THP; i++)
		CHECK(gmm_free(pool, v[i], GMM_PAGEBLOCK_ORDER) == 0);
	CHECK_EQ(check_thp_list(), NR_THP);
	gmm_thread_offline();
	pthread_barrier_wait(&bar); /* cached: check and drain */
	pthread_barrier_wait(&bar); /* drained */
	gmm_thread_online();
	gmm_thread_detach(pool);
	return NULL;
}

/* An owner's THPs through a remote drain. */
static void test_remote_drain(void)
{
	pthread_t th;

	pthread_barrier_init(&bar, NULL, 2);
	pthread_create(&th, NULL, owner, NULL);
	pthread_barrier_wait(&bar);
	CHECK(gmm_pool_check(pool) == 0);
	CHECK_EQ(gmm_drain_all_caches(pool), (uint64_t)NR_THP * THP);
	check_links_clear(NR_THP);
	CHECK(gmm_pool_check(pool) == 0);
	pthread_barrier_wait(&bar);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&bar);
	CHECK_EQ(gmm_pool_nr_free(pool), gmm_pool_nr_pages(pool));
}

/* Owner trims (more THPs than high_max holds) and a detach. */
static void test_trim_and_detach(void)
{
	enum { MANY = 96 };
	uint64_t v[MANY];
	struct gmm_pcp_stats s;
	unsigned int n;

	CHECK(gmm_thread_attach(pool) == 0);
	for (int i = 0; i < MANY; i++) {
		v[i] = gmm_alloc(pool, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE, 0);
		CHECK(v[i] != GMM_PFN_NONE);
	}
	for (int i = 0; i < MANY; i++)
		CHECK(gmm_free(pool, v[i], GMM_PAGEBLOCK_ORDER) == 0);
	CHECK(gmm_pcp_thread_stats(pool, &s) == 0);
	CHECK(s.drain > 0); /* trimmed: high_max is 64 THPs */
	CHECK(gmm_pool_check(pool) == 0);
	/* what the trims popped carries no link any more */
	for (int i = 0; i < MANY; i++)
		if (fr_kind(pool, v[i]) != FR_PCP && pcp_elem(v[i], GMM_PAGEBLOCK_ORDER) != v[i])
			CHECK_EQ(pool->link[pcp_elem(v[i], GMM_PAGEBLOCK_ORDER)], 0);
	n = 0;
	for (int i = 0; i < MANY; i++)
		n += fr_kind(pool, v[i]) == FR_PCP;
	CHECK_EQ((uint64_t)n * THP, s.cached);
	gmm_thread_detach(pool);
	for (int i = 0; i < MANY; i++) /* free and merged: the elements are tail frames */
		if (pcp_elem(v[i], GMM_PAGEBLOCK_ORDER) != v[i])
			CHECK_EQ(pool->link[pcp_elem(v[i], GMM_PAGEBLOCK_ORDER)], 0);
	CHECK(gmm_pool_check(pool) == 0);
	CHECK_EQ(gmm_pool_nr_free(pool), gmm_pool_nr_pages(pool));
}

int main(void)
{
	pool = test_pool(POOL_BYTES, 0);
	test_remote_drain();
	test_trim_and_detach();
	gmm_pool_destroy(pool);
	printf("pcp THP link tests passed\n");
	return 0;
}
