/* SPDX-License-Identifier: MIT */
/*
 * tests/pcp/test_pcp_trim.c - the order-0 free's precomputed threshold
 * (trim_at, memmgr/pcp.h) trims exactly when the kernel's per-free rules
 * say.  White box: before every free the test runs the kernel's logic of
 * free_frozen_page_commit() (free_high(), nr_pcp_high(), nr_pcp_free(), as
 * pcp.h writes them) on a copy of the cache's zone, then frees through
 * gmm_free() and compares: whether the cache was trimmed, by how much, and
 * high, free_count, alloc_factor and flags afterwards.  The run crosses
 * every event that changes the threshold: refills (alloc_factor), THP
 * refills (high grows by the frames they bring) and THP trims, frees of
 * orders 1 and 3 (free_high), the zone going below its high watermark and
 * back, another thread attaching and detaching (the sizes change), and a
 * remote drain (the cache is swapped for its reset spare).
 *
 * The fast path reads only its own cache: whoever changes the zone word
 * (the sizes, ZONE_BELOW_HIGH) resets every cache's threshold.  The test
 * settles this thread's threshold, lets another thread change the word
 * (attach, detach, a refill that finds the zone below its high watermark)
 * and checks that the threshold is 0 before the next free is compared
 * with the kernel's rules.
 */
#include <pthread.h>
#include <string.h>

#include "../../memmgr/pcp.h"
#include "pcp_test.h"

#define POOL_BYTES (128 * MIB)
#define MAX_HELD 32768

struct held {
	uint64_t pfn;
	unsigned int order;
};

static struct held held[MAX_HELD];
static unsigned int nr_held;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct gmm_thread *self_thread(struct gmm_pool *p)
{
	struct gmm_thread *t = pcp_self(p);

	CHECK(t != NULL);
	return t;
}

static struct {
	unsigned long frees, trims, below, fast, thp, resets;
} seen;

/* Whether @pz holds THP blocks (a trim then may free up to a THP less one frame more). */
static bool holds_thp(const struct pcp_zone *pz)
{
	for (unsigned int pi = NR_LOWORDER_PCP_LISTS; pi < NR_PCP_LISTS; pi++)
		if (pz->lists[pi].head != PFN_NIL)
			return true;
	return false;
}

/* Free @h through gmm_free(), checking the cache against the kernel's rules. */
static void checked_free(struct gmm_pool *p, struct held h)
{
	struct gmm_zone *z = pfn_zone(p, h.pfn);
	struct gmm_thread *t = self_thread(p);
	struct pcp_zone *pz = cache_zone(t->cache, z);
	unsigned int zi = zone_idx(z), mt = (unsigned int)pb_mt(p, h.pfn);
	uint32_t batch = p->pcp->batch[zi], hmin = p->pcp->high_min[zi];
	uint32_t hmax = p->pcp->high_max[zi];
	bool below = zone_below_high(z), fh, trim;
	uint64_t drains = t->ctr.drain;
	struct pcp_zone ref = *pz;
	uint32_t high, slack;
	int64_t n = 0;

	CHECK(mt < MT_PCPTYPES); /* nothing isolated here: the free goes to the cache */
	if (!h.order && ref.count + 1 < pz_trim_at(pz))
		seen.fast++;
	/* free_frozen_page_commit() */
	ref.alloc_factor >>= 1;
	ref.count += 1u << h.order;
	fh = free_high(&ref, h.order, batch, hmin);
	high = nr_pcp_high(&ref, below, batch, hmin, hmax, fh);
	trim = ref.count >= high;
	if (trim) {
		n = nr_pcp_free(&ref, batch, high, fh);
		if (n > (int64_t)ref.count)
			n = ref.count;
	}
	slack = h.order == GMM_PAGEBLOCK_ORDER || holds_thp(pz) ? GMM_PAGEBLOCK_PAGES : 8;
	CHECK_EQ(gmm_free(p, h.pfn, h.order), 0);
	seen.frees++;
	seen.thp += h.order == GMM_PAGEBLOCK_ORDER;
	seen.below += below;
	seen.trims += trim;
	CHECK_EQ(t->ctr.drain - drains, (uint64_t)trim);
	/* a trim frees whole blocks, round-robin over the lists: up to 7 frames
	 * more (order 3), or 511 with THP blocks cached */
	CHECK(pz->count <= ref.count - n && pz->count + slack > ref.count - n);
	CHECK_EQ(pz->high, ref.high);
	CHECK_EQ(pz->free_count, ref.free_count);
	CHECK_EQ(pz->alloc_factor, ref.alloc_factor);
	CHECK_EQ(pz->flags, ref.flags);
}

static unsigned int extra_flags; /* GMM_ATOMIC: dig below the high watermark */

static void alloc_one(struct gmm_pool *p, unsigned int order)
{
	uint64_t pfn;

	if (nr_held == MAX_HELD)
		return;
	pfn = gmm_alloc(p, order, ((rnd() & 1) ? GMM_MOVABLE : 0) | extra_flags, GMM_NO_NODE);
	if (pfn == GMM_PFN_NONE)
		return;
	held[nr_held++] = (struct held){ pfn, order };
}

static void free_random(struct gmm_pool *p)
{
	unsigned int i = (unsigned int)(rnd() % nr_held);
	struct held h = held[i];

	held[i] = held[--nr_held];
	checked_free(p, h);
}

/* Mostly order 0; orders 1 and 3 (free_high); now and then a THP (1 in 512). */
static unsigned int random_order(void)
{
	unsigned int r = (unsigned int)(rnd() % 512);

	if (!r)
		return GMM_PAGEBLOCK_ORDER;
	r %= 64;
	return r == 0 ? 3 : r < 4 ? 1 : 0;
}

/* Allocate up to @target blocks held, or free down to it: a quarter of the steps
 * go against the trend. */
static void walk_to(struct gmm_pool *p, unsigned int target)
{
	for (unsigned int i = 0; i < 8 * MAX_HELD && nr_held != target; i++) {
		bool up = nr_held < target, against = rnd() % 4 == 0;

		if (up != against)
			alloc_one(p, random_order());
		else if (nr_held)
			free_random(p);
	}
}

static pthread_barrier_t attached, detach;

static void *second_thread(void *arg)
{
	struct gmm_pool *p = arg;

	CHECK_EQ(gmm_thread_attach(p), 0);
	pthread_barrier_wait(&attached);
	pthread_barrier_wait(&detach);
	CHECK_EQ(gmm_thread_detach(p), 0);
	return NULL;
}

/* This thread's order-0 threshold of @z. */
static uint32_t my_trim_at(struct gmm_pool *p, const struct gmm_zone *z)
{
	return pz_trim_at(cache_zone(self_thread(p)->cache, z));
}

/*
 * Checked order-0 frees (after order-0 allocations if need be) until this
 * thread's threshold of @z is set, as the fast path needs it.
 */
static void settle(struct gmm_pool *p, const struct gmm_zone *z)
{
	for (unsigned int i = 0; i < 4096 && !my_trim_at(p, z); i++) {
		unsigned int k = nr_held;
		struct held h;

		while (k && (held[k - 1].order || pfn_zone(p, held[k - 1].pfn) != z))
			k--;
		if (!k) {
			for (int a = 0; a < 64; a++)
				alloc_one(p, 0);
			continue;
		}
		h = held[k - 1];
		held[k - 1] = held[--nr_held];
		checked_free(p, h);
	}
	CHECK(my_trim_at(p, z) != 0);
}

/* Another thread that takes the zone below its high watermark. */
static pthread_barrier_t dig_ready, dig_go, dug, undig;
static struct gmm_zone *dig_zone;

static void *digger(void *arg)
{
	struct gmm_pool *p = arg;
	static uint64_t mine[MAX_HELD];
	unsigned int n = 0;

	CHECK_EQ(gmm_thread_attach(p), 0); /* changes the sizes: before the settle */
	pthread_barrier_wait(&dig_ready);
	pthread_barrier_wait(&dig_go);
	/* offline, past the cache (the locked path, a frame at a time) to just below
	 * the high watermark; then the first refill of the (empty) cache sees it
	 * and sets ZONE_BELOW_HIGH */
	gmm_thread_offline();
	for (;;) {
		struct gmm_zone_stats st;

		CHECK_EQ(gmm_zone_stats(p, dig_zone->node, dig_zone->type, &st), 0);
		if (st.free < st.wmark_high || n == MAX_HELD - 1)
			break;
		mine[n] = gmm_alloc(p, 0, GMM_ATOMIC, GMM_NO_NODE); /* past boosts */
		CHECK(mine[n++] != GMM_PFN_NONE);
	}
	gmm_thread_online();
	CHECK(!zone_below_high(dig_zone));
	mine[n] = gmm_alloc(p, 0, GMM_ATOMIC, GMM_NO_NODE); /* through the cache: a refill */
	CHECK(mine[n++] != GMM_PFN_NONE);
	pthread_barrier_wait(&dug);
	pthread_barrier_wait(&undig);
	CHECK_EQ(gmm_free_bulk(p, n, mine), 0);
	CHECK_EQ(gmm_thread_detach(p), 0);
	return NULL;
}

/*
 * The digger's refill sets ZONE_BELOW_HIGH: this cache's threshold must be
 * 0 before its next free (which the kernel runs with the below-high rules).
 */
static void below_high_by_another(struct gmm_pool *p, struct gmm_zone *z)
{
	pthread_t th;

	dig_zone = z;
	pthread_barrier_init(&dig_ready, NULL, 2);
	pthread_barrier_init(&dig_go, NULL, 2);
	pthread_barrier_init(&dug, NULL, 2);
	pthread_barrier_init(&undig, NULL, 2);
	CHECK_EQ(pthread_create(&th, NULL, digger, p), 0);
	pthread_barrier_wait(&dig_ready);
	CHECK(!zone_below_high(z));
	settle(p, z);
	gmm_thread_offline(); /* the digger may drain the caches */
	pthread_barrier_wait(&dig_go);
	pthread_barrier_wait(&dug);
	gmm_thread_online();
	CHECK(zone_below_high(z));
	CHECK_EQ(my_trim_at(p, z), 0);
	for (int i = 0; i < 64 && nr_held; i++)
		free_random(p);
	gmm_thread_offline();
	pthread_barrier_wait(&undig);
	CHECK_EQ(pthread_join(th, NULL), 0);
	gmm_thread_online();
	seen.resets++;
}

static void zigzag(struct gmm_pool *p, unsigned int rounds)
{
	for (unsigned int r = 0; r < rounds; r++) {
		walk_to(p, (unsigned int)(rnd() % 4096) + 64);
		walk_to(p, (unsigned int)(rnd() % 64));
		CHECK_EQ(gmm_pool_check(p), 0);
	}
}

int main(void)
{
	struct gmm_pool *p = test_pool(POOL_BYTES, 0);
	unsigned int hmin_one, hmin_two, zi;
	struct gmm_zone *z;
	pthread_t th;

	CHECK_EQ(gmm_thread_attach(p), 0);
	alloc_one(p, 0);
	z = pfn_zone(p, held[0].pfn);
	zi = zone_idx(z);
	hmin_one = p->pcp->high_min[zi];

	/* the caches' ordinary life: refills, trims, high growing, free_high */
	zigzag(p, 8);

	/* the sizes change under the cache: high_min and high_max halve, then come back */
	pthread_barrier_init(&attached, NULL, 2);
	pthread_barrier_init(&detach, NULL, 2);
	settle(p, z);
	CHECK_EQ(pthread_create(&th, NULL, second_thread, p), 0);
	pthread_barrier_wait(&attached);
	CHECK_EQ(my_trim_at(p, z), 0); /* reset by the attach */
	seen.resets++;
	hmin_two = p->pcp->high_min[zi];
	CHECK(hmin_two < hmin_one);
	zigzag(p, 4);
	settle(p, z);
	pthread_barrier_wait(&detach);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(my_trim_at(p, z), 0); /* reset by the detach */
	seen.resets++;
	zigzag(p, 4);

	/* another thread's refill takes the zone below its high watermark */
	walk_to(p, 64);
	below_high_by_another(p, z);
	zigzag(p, 2);

	/* below the high watermark: hold almost everything, then give it back */
	extra_flags = GMM_ATOMIC;
	walk_to(p, MAX_HELD - 64);
	extra_flags = 0;
	walk_to(p, 2048);
	walk_to(p, 0);

	/* a remote drain swaps the cache for its reset spare (gen 0, trim_at 0) */
	walk_to(p, 2048);
	gmm_drain_all_caches(p);
	zigzag(p, 4);
	walk_to(p, 0);

	printf("%lu frees checked: %lu trimmed, %lu with the zone below high, %lu order-0 "
	       "frees on the fast path, %lu THP frees, %lu thresholds reset by another "
	       "thread\n", seen.frees, seen.trims, seen.below, seen.fast, seen.thp, seen.resets);
	CHECK(seen.trims > 100 && seen.below > 100 && seen.fast > seen.frees / 2 &&
	      seen.thp > 50 && seen.resets == 3);
	CHECK_EQ(gmm_pool_check(p), 0);
	CHECK_EQ(gmm_thread_detach(p), 0);
	gmm_pool_destroy(p);
	return 0;
}
