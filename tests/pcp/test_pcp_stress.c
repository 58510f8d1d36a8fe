/* SPDX-License-Identifier: MIT */
/*
 * tests/pcp/test_pcp_stress.c - multithreaded stress of the per-thread
 * caches: allocating threads (some sleeping offline as a vCPU in KVM_RUN
 * would), frees across threads, bulk allocations and frees, remote drains
 * from another thread at random moments, and a thread that attaches and
 * detaches over and over (each time the caches' sizes change, and every
 * cache's order-0 threshold is reset under the workers' frees).  An
 * ownership map catches a frame handed
 * out twice; at a pause and at the end every frame is accounted for and
 * gmm_pool_check passes.  Built also against a TSan build of the library.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "pcp_test.h"

#define NR_THREADS 4
#define HOLD 256
#define XCHG 64

static struct gmm_pool *pool;
static uint8_t *owner;    /* per frame: 1 while allocated (atomic exchange) */
static long iters = 200000;
static int stop_drainer;  /* atomic */
static pthread_barrier_t bar;
static pthread_mutex_t drain_pause = PTHREAD_MUTEX_INITIALIZER; /* held by main to stop drains */

/* Frames handed between threads: freed by whoever takes them. */
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;
static struct { uint64_t pfn; unsigned int order; } xq[XCHG];
static int xn;

struct held {
	uint64_t pfn;
	unsigned int order;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void own(uint64_t pfn, unsigned int order)
{
	for (uint64_t i = 0; i < 1ull << order; i++)
		CHECK(__atomic_exchange_n(&owner[pfn + i], 1, __ATOMIC_RELAXED) == 0);
	*(uint64_t *)gmm_pfn_to_host(pool, pfn) = pfn; /* touch the memory */
}

static void disown(uint64_t pfn, unsigned int order)
{
	CHECK(*(uint64_t *)gmm_pfn_to_host(pool, pfn) == pfn);
	for (uint64_t i = 0; i < 1ull << order; i++)
		CHECK(__atomic_exchange_n(&owner[pfn + i], 0, __ATOMIC_RELAXED) == 1);
}

static void put(struct held *h, int *nh, uint64_t pfn, unsigned int order)
{
	own(pfn, order);
	h[*nh].pfn = pfn;
	h[*nh].order = order;
	(*nh)++;
}

static void drop(struct held *h, int *nh, int i)
{
	disown(h[i].pfn, h[i].order);
	CHECK(gmm_free(pool, h[i].pfn, h[i].order) == 0);
	h[i] = h[--(*nh)];
}

/* Hand a frame to another thread, or free one handed to us. */
static void exchange(struct held *h, int *nh, uint64_t *s)
{
	uint64_t pfn = GMM_PFN_NONE;
	unsigned int order = 0;

	pthread_mutex_lock(&xlock);
	if (*nh && xn < XCHG && (rnd(s) & 1)) {
		int i = (int)(rnd(s) % (uint64_t)*nh);

		xq[xn].pfn = h[i].pfn;
		xq[xn++].order = h[i].order;
		h[i] = h[--(*nh)];
	} else if (xn) {
		xn--;
		pfn = xq[xn].pfn;
		order = xq[xn].order;
	}
	pthread_mutex_unlock(&xlock);
	if (pfn != GMM_PFN_NONE) {
		disown(pfn, order);
		CHECK(gmm_free(pool, pfn, order) == 0);
	}
}

/* Free the order-0 frames among the last 16 held with one gmm_free_bulk(). */
static void drop_bulk(struct held *h, int *nh)
{
	uint64_t v[16];
	size_t n = 0;
	int lo = *nh > 16 ? *nh - 16 : 0;

	for (int i = *nh - 1; i >= lo; i--)
		if (!h[i].order) {
			v[n++] = h[i].pfn;
			disown(h[i].pfn, 0);
			h[i] = h[--(*nh)];
		}
	CHECK(gmm_free_bulk(pool, n, v) == 0);
}

static void step(struct held *h, int *nh, uint64_t *s, long i)
{
	static const unsigned int flags[] = { 0, GMM_MOVABLE, GMM_RECLAIMABLE, GMM_MOVABLE };
	uint64_t r = rnd(s), v[16];

	if (r % 8 < 4 && *nh < HOLD) {
		unsigned int order = (r >> 8) % 16 < 12 ? 0 : (unsigned int)(r >> 12) % 4;

		if ((r >> 20) % 64 == 0) /* now and then a THP: the pageblock-order lists */
			order = GMM_PAGEBLOCK_ORDER;
		uint64_t pfn = gmm_alloc(pool, order, flags[(r >> 16) % 4], GMM_NO_NODE);

		if (pfn != GMM_PFN_NONE)
			put(h, nh, pfn, order);
	} else if (r % 8 < 6 && *nh) {
		if ((r >> 8) % 8 == 0)
			drop_bulk(h, nh);
		else
			drop(h, nh, (int)((r >> 8) % (uint64_t)*nh));
	} else if (r % 8 == 6) {
		exchange(h, nh, s);
	} else if (*nh + 16 <= HOLD) {
		size_t got = gmm_alloc_bulk(pool, GMM_MOVABLE, GMM_NO_NODE, 16, v);

		for (size_t k = 0; k < got; k++)
			put(h, nh, v[k], 0);
	}
	if (i % 64 == 0)
		gmm_thread_quiescent();
}

static void *worker(void *arg)
{
	long id = (long)arg;
	uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
	struct held h[HOLD];
	int nh = 0;

	CHECK(gmm_thread_attach(pool) == 0);
	for (long i = 0; i < iters; i++) {
		step(h, &nh, &s, i);
		/* odd threads enter "KVM_RUN" now and then, for long */
		if ((id & 1) && rnd(&s) % 512 == 0) {
			gmm_thread_offline();
			usleep(2000 + rnd(&s) % 3000);
			gmm_thread_online();
		}
		if (i == iters / 2) {
			gmm_thread_offline();
			pthread_barrier_wait(&bar); /* pause: main checks */
			pthread_barrier_wait(&bar);
			gmm_thread_online();
		}
	}
	while (nh)
		drop(h, &nh, nh - 1);
	CHECK(gmm_thread_detach(pool) == 0);
	return NULL;
}

static void *drain_thread(void *arg)
{
	uint64_t s = 42;

	(void)arg;
	while (!__atomic_load_n(&stop_drainer, __ATOMIC_ACQUIRE)) {
		struct gmm_pcp_stats st;

		pthread_mutex_lock(&drain_pause);
		gmm_drain_all_caches(pool);
		pthread_mutex_unlock(&drain_pause);
		gmm_pcp_stats(pool, &st);
		usleep(rnd(&s) % 2000);
	}
	return NULL;
}

/* Attach, a few pairs, detach, over and over: the sizes change under the workers. */
static void *churn_thread(void *arg)
{
	uint64_t s = 7;
	unsigned long rounds = 0;

	(void)arg;
	while (!__atomic_load_n(&stop_drainer, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&drain_pause); /* not attached while it waits */
		CHECK(gmm_thread_attach(pool) == 0);
		for (int i = 0; i < 8; i++) {
			uint64_t pfn = gmm_alloc(pool, 0, GMM_MOVABLE, GMM_NO_NODE);

			if (pfn != GMM_PFN_NONE)
				CHECK(gmm_free(pool, pfn, 0) == 0);
		}
		CHECK(gmm_thread_detach(pool) == 0);
		pthread_mutex_unlock(&drain_pause);
		rounds++;
		usleep(rnd(&s) % 1000);
	}
	return (void *)rounds;
}

static uint64_t owned_frames(void)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < gmm_pool_nr_pages(pool); i++)
		n += __atomic_load_n(&owner[i], __ATOMIC_RELAXED);
	return n;
}

int main(int argc, char **argv)
{
	pthread_t th[NR_THREADS], d, c;
	struct gmm_pcp_stats st;
	uint64_t total;
	void *churns;

	if (argc == 3 && !strcmp(argv[1], "--iters"))
		iters = atol(argv[2]);
	pool = test_pool(256 * MIB, 128 * MIB);
	total = gmm_pool_nr_pages(pool);
	owner = calloc(total, 1);
	pthread_barrier_init(&bar, NULL, NR_THREADS + 1);
	pthread_create(&d, NULL, drain_thread, NULL);
	pthread_create(&c, NULL, churn_thread, NULL);
	for (long i = 0; i < NR_THREADS; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);

	pthread_barrier_wait(&bar);
	/* all workers are between calls, no drain runs: free + cached + allocated = total */
	pthread_mutex_lock(&drain_pause);
	CHECK(gmm_pcp_stats(pool, &st) == 0);
	CHECK(gmm_pool_check(pool) == 0);
	CHECK_EQ(gmm_pool_nr_free(pool) + st.cached + owned_frames(), total);
	printf("pause: %llu free, %llu cached, %llu allocated\n",
	       (unsigned long long)gmm_pool_nr_free(pool), (unsigned long long)st.cached,
	       (unsigned long long)owned_frames());
	pthread_mutex_unlock(&drain_pause);
	pthread_barrier_wait(&bar);

	for (int i = 0; i < NR_THREADS; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&stop_drainer, 1, __ATOMIC_RELEASE);
	pthread_join(d, NULL);
	pthread_join(c, &churns);
	for (int i = 0; i < xn; i++) {
		disown(xq[i].pfn, xq[i].order);
		CHECK(gmm_free(pool, xq[i].pfn, xq[i].order) == 0);
	}
	CHECK_EQ(owned_frames(), 0);
	CHECK(gmm_pool_check(pool) == 0);
	CHECK_EQ(gmm_pool_nr_free(pool), total);
	CHECK(gmm_pcp_stats(pool, &st) == 0);
	printf("threads %d x %ld steps: hits %llu misses %llu (hit rate %.1f%%), refills %llu, "
	       "trims %llu, remote drains %llu (%llu frames) in %llu drain-alls, %lu attach/detach "
	       "rounds\n",
	       NR_THREADS, iters, (unsigned long long)st.alloc_hit,
	       (unsigned long long)st.alloc_miss, st.hit_permille / 10.0,
	       (unsigned long long)st.refill, (unsigned long long)st.drain,
	       (unsigned long long)st.remote_drain, (unsigned long long)st.remote_frames,
	       (unsigned long long)st.drain_all, (unsigned long)(uintptr_t)churns);
	CHECK(st.remote_drain > 0 && st.alloc_hit > 0 && st.threads == 0 && churns);
	gmm_pool_destroy(pool);
	free(owner);
	pthread_barrier_destroy(&bar);
	return 0;
}
