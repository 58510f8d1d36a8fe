/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/test_threads.c - the locked allocator under concurrency:
 * threads allocating and freeing on a 2-node pool (frees of frames that
 * other threads allocated included) while another thread reads statistics,
 * isolates ranges and changes the default node policy; afterwards every
 * frame is accounted for and the invariant check passes.  Also kcompactd's
 * threads: a wake for one node wakes that node's thread alone, and start,
 * stop and wakes racing from several threads.  Meant for the TSan setup as
 * much as the plain one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include <unistd.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>

#include "../../memmgr/internal.h"
#include "../harness.h"

#define MIB (1ull << 20)
#define WORKERS 4
#define SLOTS 512

/*
 * A slot holds one block: pfn and order in one atomic word, so a thread
 * that takes a slot another fills meanwhile gets a matching pair.
 */
#define SLOT_EMPTY UINT64_MAX
#define SLOT_ORDER_BITS 5

struct slot {
	_Atomic uint64_t block; /* pfn << SLOT_ORDER_BITS | order, or SLOT_EMPTY */
};

static struct gmm_pool *pool;
static struct slot slots[WORKERS][SLOTS];
static atomic_bool stop;
static atomic_int errors;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Take a slot's block (ours or another worker's) and free it. */
static void free_slot(struct slot *s)
{
	uint64_t b = atomic_exchange(&s->block, SLOT_EMPTY);

	if (b != SLOT_EMPTY &&
	    gmm_free(pool, b >> SLOT_ORDER_BITS, (unsigned int)(b & ((1u << SLOT_ORDER_BITS) - 1))))
		atomic_fetch_add(&errors, 1);
}

static void *worker(void *arg)
{
	int me = (int)(intptr_t)arg;
	uint64_t seed = 0x1234567ull * (uint64_t)(me + 1);

	for (int i = 0; i < 300000; i++) {
		int w = rnd(&seed) % 4 ? me : (int)(rnd(&seed) % WORKERS);
		struct slot *s = &slots[w][rnd(&seed) % SLOTS];
		unsigned int order = rnd(&seed) % 8 ? 0 : (unsigned int)(rnd(&seed) % 10);
		unsigned int flags = rnd(&seed) % 3 ? GMM_MOVABLE : 0;
		uint64_t pfn;

		if (w != me || atomic_load(&s->block) != SLOT_EMPTY) {
			free_slot(s);
			continue;
		}
		pfn = gmm_alloc(pool, order, flags, (int)(rnd(&seed) % 3) - 1);
		if (pfn == GMM_PFN_NONE)
			continue;
		atomic_store(&s->block, pfn << SLOT_ORDER_BITS | order);
	}
	return NULL;
}

static void *observer(void *arg)
{
	uint64_t seed = 99, iso = 0;
	bool isolated = false;

	(void)arg;
	while (!atomic_load(&stop)) {
		char *txt;

		if (gmm_stat_pagetypeinfo(pool, GMM_STAT_JSON, &txt) == 0)
			free(txt);
		if (gmm_pool_set_policy(pool, rnd(&seed) % 2 ? GMM_POLICY_INTERLEAVE :
							     GMM_POLICY_PREFERRED,
					1 + rnd(&seed) % 3))
			atomic_fetch_add(&errors, 1);
		if (isolated) {
			if (gmm_undo_isolate_range(pool, iso, iso + 1024))
				atomic_fetch_add(&errors, 1);
			isolated = false;
		} else {
			iso = (rnd(&seed) % 64) * 1024;
			if (gmm_isolate_range(pool, iso, iso + 1024))
				atomic_fetch_add(&errors, 1);
			isolated = true;
		}
	}
	if (isolated && gmm_undo_isolate_range(pool, iso, iso + 1024))
		atomic_fetch_add(&errors, 1);
	return NULL;
}

static void test_concurrent_alloc_free(void)
{
	struct gmm_pool_config c;
	pthread_t t[WORKERS], obs;

	gmm_pool_config_init(&c, 128 * MIB);
	c.nr_nodes = 2;
	c.nodes[1].normal_bytes = 128 * MIB;
	c.block_bytes = 4 * MIB;
	REQUIRE(gmm_pool_create(&c, &pool) == 0);
	for (int w = 0; w < WORKERS; w++)
		for (int i = 0; i < SLOTS; i++)
			atomic_init(&slots[w][i].block, SLOT_EMPTY);
	pthread_create(&obs, NULL, observer, NULL);
	for (int w = 0; w < WORKERS; w++)
		pthread_create(&t[w], NULL, worker, (void *)(intptr_t)w);
	for (int w = 0; w < WORKERS; w++)
		pthread_join(t[w], NULL);
	atomic_store(&stop, true);
	pthread_join(obs, NULL);
	CHECK_EQ(atomic_load(&errors), 0);
	CHECK_EQ(gmm_pool_check(pool), 0);
	for (int w = 0; w < WORKERS; w++)
		for (int i = 0; i < SLOTS; i++)
			free_slot(&slots[w][i]);
	CHECK_EQ(atomic_load(&errors), 0);
	CHECK_EQ(gmm_pool_nr_free(pool), gmm_pool_nr_pages(pool));
	CHECK_EQ(gmm_pool_check(pool), 0);
	gmm_pool_destroy(pool);
}

static struct gmm_pool *two_nodes(void)
{
	struct gmm_pool_config c;
	struct gmm_pool *p = NULL;

	gmm_pool_config_init(&c, 8 * MIB);
	c.nr_nodes = 2;
	c.nodes[1].normal_bytes = 8 * MIB;
	c.block_bytes = 4 * MIB;
	CHECK_EQ(gmm_pool_create(&c, &p), 0);
	return p;
}

/* kcompactd_wake for node 0 only: node 1's thread must sleep on. */
static void test_kcompactd_wake_per_node(void)
{
	struct gmm_pool *p = two_nodes();

	REQUIRE(p);
	CHECK_EQ(gmm_kcompactd_start(p, 0), 0);
	for (int i = 0; i < 200; i++) {
		p->kcompactd_wake(p, 0, 1);
		usleep(200);
	}
	CHECK(kcompactd_signalled(p, 0) >= 1);
	CHECK_EQ(kcompactd_signalled(p, 1), 0);
	gmm_kcompactd_stop(p);
	gmm_pool_destroy(p);
}

static atomic_int starts;

static void *start_stop(void *arg)
{
	struct gmm_pool *p = arg;

	for (int i = 0; i < 100; i++) {
		int err = gmm_kcompactd_start(p, (unsigned int)i % 2 * 20);

		if (err && err != -EBUSY)
			atomic_fetch_add(&errors, 1);
		if (!err)
			atomic_fetch_add(&starts, 1);
		gmm_kcompactd_stop(p);
	}
	return NULL;
}

static void *waker(void *arg)
{
	struct gmm_pool *p = arg;

	while (!atomic_load(&stop)) {
		void (*wake)(struct gmm_pool *, int, unsigned int) =
			__atomic_load_n(&p->kcompactd_wake, __ATOMIC_ACQUIRE);

		if (wake) {
			wake(p, 0, GMM_PAGEBLOCK_ORDER);
			wake(p, 1, 1);
		}
		/* an allocation's own wake: order 9 fails on a full pool */
		gmm_alloc(p, GMM_PAGEBLOCK_ORDER, GMM_MOVABLE | GMM_NOWAIT, GMM_NO_NODE);
	}
	return NULL;
}

/* Start and stop from two threads at once while a third wakes the nodes. */
static void test_kcompactd_start_stop_race(void)
{
	struct gmm_pool *p = two_nodes();
	pthread_t t[3];
	uint64_t pfn;

	REQUIRE(p);
	while ((pfn = gmm_alloc(p, 0, GMM_MOVABLE | GMM_NO_WATERMARKS, GMM_NO_NODE)) != GMM_PFN_NONE)
		;
	atomic_store(&stop, false);
	atomic_store(&errors, 0);
	REQUIRE(pthread_create(&t[0], NULL, start_stop, p) == 0);
	REQUIRE(pthread_create(&t[1], NULL, start_stop, p) == 0);
	REQUIRE(pthread_create(&t[2], NULL, waker, p) == 0);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	atomic_store(&stop, true);
	pthread_join(t[2], NULL);
	CHECK_EQ(atomic_load(&errors), 0);
	CHECK(atomic_load(&starts) >= 1);
	gmm_kcompactd_stop(p);
	CHECK_EQ(gmm_pool_check(p), 0);
	gmm_pool_destroy(p);
}

TEST_MAIN(T(test_concurrent_alloc_free), T(test_kcompactd_wake_per_node),
	  T(test_kcompactd_start_stop_race))
