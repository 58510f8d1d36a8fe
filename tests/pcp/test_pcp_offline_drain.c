/* SPDX-License-Identifier: MIT */
/*
 * tests/pcp/test_pcp_offline_drain.c - a remote drain does not wait for
 * offline threads (vCPUs in KVM_RUN), does wait for an online thread until
 * its next quiescent state, and works when the drainer is attached itself.
 * A watchdog fails the test instead of letting it hang.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pcp_test.h"

#define NR_VCPUS 4

static struct gmm_pool *pool;
static pthread_barrier_t bar;
static int vcpu_stop;      /* atomic */
static int drain_done;     /* atomic */

static void watchdog(int sig)
{
	static const char msg[] = "watchdog: drain did not complete in time\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fill_cache(void)
{
	uint64_t v[100];

	for (int i = 0; i < 100; i++)
		CHECK((v[i] = gmm_alloc(pool, 0, GMM_MOVABLE, GMM_NO_NODE)) != GMM_PFN_NONE);
	for (int i = 0; i < 100; i++)
		CHECK(gmm_free(pool, v[i], 0) == 0);
}

/* A vCPU that sits in "KVM_RUN" (offline) until told to stop. */
static void *vcpu_offline(void *arg)
{
	(void)arg;
	CHECK(gmm_thread_attach(pool) == 0);
	fill_cache();
	gmm_thread_offline();
	pthread_barrier_wait(&bar);
	while (!__atomic_load_n(&vcpu_stop, __ATOMIC_ACQUIRE))
		usleep(1000);
	gmm_thread_online();
	fill_cache();
	CHECK(gmm_thread_detach(pool) == 0);
	return NULL;
}

static void scenario_all_offline(bool drainer_attached)
{
	pthread_t th[NR_VCPUS];
	struct gmm_pcp_stats s;
	uint64_t n;
	double t0;

	__atomic_store_n(&vcpu_stop, 0, __ATOMIC_RELEASE);
	pthread_barrier_init(&bar, NULL, NR_VCPUS + 1);
	for (int i = 0; i < NR_VCPUS; i++)
		pthread_create(&th[i], NULL, vcpu_offline, NULL);
	if (drainer_attached) {
		CHECK(gmm_thread_attach(pool) == 0);
		fill_cache();
		gmm_thread_offline();
	}
	pthread_barrier_wait(&bar);
	gmm_thread_online();
	CHECK(gmm_pcp_stats(pool, &s) == 0);
	CHECK(s.cached >= NR_VCPUS);
	alarm(10);
	t0 = now();
	n = gmm_drain_all_caches(pool);
	alarm(0);
	printf("drain with %d offline threads%s: %llu frames in %.1f us\n", NR_VCPUS,
	       drainer_attached ? " (drainer attached, online)" : "", (unsigned long long)n,
	       (now() - t0) * 1e6);
	CHECK_EQ(n, s.cached);
	CHECK(gmm_pcp_stats(pool, &s) == 0);
	CHECK_EQ(s.cached, 0);
	CHECK(gmm_pool_check(pool) == 0);
	__atomic_store_n(&vcpu_stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NR_VCPUS; i++)
		pthread_join(th[i], NULL);
	if (drainer_attached)
		CHECK(gmm_thread_detach(pool) == 0);
	pthread_barrier_destroy(&bar);
}

static int go_quiescent; /* atomic */

/* A vCPU that is online and announces a quiescent state only when told. */
static void *vcpu_online(void *arg)
{
	(void)arg;
	CHECK(gmm_thread_attach(pool) == 0);
	fill_cache();
	pthread_barrier_wait(&bar);
	while (!__atomic_load_n(&go_quiescent, __ATOMIC_ACQUIRE))
		usleep(1000);
	gmm_thread_quiescent();
	while (!__atomic_load_n(&drain_done, __ATOMIC_ACQUIRE)) {
		usleep(1000);
		gmm_thread_quiescent();
	}
	CHECK(gmm_thread_detach(pool) == 0);
	return NULL;
}

static void *drainer(void *arg)
{
	(void)arg;
	gmm_drain_all_caches(pool);
	__atomic_store_n(&drain_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void scenario_online_waits(void)
{
	pthread_t v, d;

	pthread_barrier_init(&bar, NULL, 2);
	pthread_create(&v, NULL, vcpu_online, NULL);
	pthread_barrier_wait(&bar);
	pthread_create(&d, NULL, drainer, NULL);
	usleep(200 * 1000);
	/* the grace period cannot end while the reader is online and not quiescent */
	CHECK(!__atomic_load_n(&drain_done, __ATOMIC_ACQUIRE));
	__atomic_store_n(&go_quiescent, 1, __ATOMIC_RELEASE);
	alarm(10);
	pthread_join(d, NULL);
	alarm(0);
	CHECK(__atomic_load_n(&drain_done, __ATOMIC_ACQUIRE));
	pthread_join(v, NULL);
	pthread_barrier_destroy(&bar);
	printf("drain waited for the online thread's quiescent state\n");
}

int main(void)
{
	signal(SIGALRM, watchdog);
	pool = test_pool(256 * MIB, 0);
	scenario_all_offline(false);
	scenario_all_offline(true);
	scenario_online_waits();
	CHECK(gmm_pool_check(pool) == 0);
	CHECK_EQ(gmm_pool_nr_free(pool), gmm_pool_nr_pages(pool));
	gmm_pool_destroy(pool);
	printf("offline drain tests passed\n");
	return 0;
}
