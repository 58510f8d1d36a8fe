/* SPDX-License-Identifier: MIT */
/*
 * memmgr/populate.c - eager preallocation of a pool's host memory: the
 * range is cut into chunks that worker threads populate through the
 * backing's populate callback, while the calling thread reports progress.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CHUNK_PAGES (8192ull) /* 32 MiB: a multiple of every host page but 1 GiB */
#define MAX_THREADS 16

struct populate_job {
	struct gmm_pool *p;
	uint64_t start, end, chunk;
	uint64_t next;  /* next chunk start (atomic) */
	uint64_t done;  /* frames populated (atomic) */
	int err;        /* first error (under lock) */
	char msg[256];
	unsigned int running;
	unsigned int nr_tids;
	pthread_t tids[MAX_THREADS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static int populate_chunk(struct populate_job *j, uint64_t pfn, uint64_t end)
{
	struct gmm_pool *p = j->p;
	uint64_t bpages = 1ull << p->block_shift;

	while (pfn < end) {
		uint64_t stop = (pfn | (bpages - 1)) + 1;
		void *addr = gmm_pfn_to_host(p, pfn);
		int err;

		if (stop > end)
			stop = end;
		if (addr) {
			err = p->cfg.backing->populate(p->cfg.backing_ctx, pfn, stop - pfn, addr);
			if (err)
				return err;
		}
		__atomic_fetch_add(&j->done, stop - pfn, __ATOMIC_RELAXED);
		pfn = stop;
	}
	return 0;
}

static void *populate_worker(void *arg)
{
	struct populate_job *j = arg;
	int err = 0;

	for (;;) {
		uint64_t pfn = __atomic_fetch_add(&j->next, j->chunk, __ATOMIC_RELAXED);
		uint64_t end = pfn + j->chunk;

		if (pfn >= j->end || __atomic_load_n(&j->err, __ATOMIC_RELAXED))
			break;
		err = populate_chunk(j, pfn, end < j->end ? end : j->end);
		if (err)
			break;
	}
	pthread_mutex_lock(&j->lock);
	if (err && !j->err) {
		j->err = err;
		snprintf(j->msg, sizeof(j->msg), "%s", gmm_last_error());
	}
	j->running--;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

static void wait_workers(struct populate_job *j,
			 void (*progress)(void *, uint64_t, uint64_t), void *arg)
{
	uint64_t total = (j->end - j->start) << GMM_PAGE_SHIFT;

	pthread_mutex_lock(&j->lock);
	while (j->running) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&j->cond, &j->lock, &ts);
		if (progress && j->running) {
			pthread_mutex_unlock(&j->lock);
			progress(arg, __atomic_load_n(&j->done, __ATOMIC_RELAXED) << GMM_PAGE_SHIFT,
				 total);
			pthread_mutex_lock(&j->lock);
		}
	}
	pthread_mutex_unlock(&j->lock);
	if (progress && !j->err)
		progress(arg, total, total);
}

static unsigned int nr_threads(unsigned int want, uint64_t chunks)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (!want)
		want = cpus > 0 ? (unsigned int)cpus : 1;
	if (want > MAX_THREADS)
		want = MAX_THREADS;
	if (want > chunks)
		want = (unsigned int)chunks;
	return want ? want : 1;
}

static int start_workers(struct populate_job *j, unsigned int n)
{
	unsigned int started = 0;

	j->running = n;
	for (; started < n; started++) {
		if (pthread_create(&j->tids[started], NULL, populate_worker, j))
			break;
	}
	j->nr_tids = started;
	if (started < n) {
		pthread_mutex_lock(&j->lock);
		j->running -= n - started;
		pthread_mutex_unlock(&j->lock);
		if (!started)
			return gmm_set_error(-EAGAIN, "populate: cannot start threads");
	}
	return 0;
}

int gmm_pool_populate(struct gmm_pool *p, uint64_t start_pfn, uint64_t nr_pages,
		      unsigned int threads,
		      void (*progress)(void *arg, uint64_t done_bytes, uint64_t total_bytes),
		      void *arg)
{
	struct populate_job j = { .p = p };
	uint64_t hp;
	int err;

	if (!p)
		return gmm_set_error(-EINVAL, "populate: NULL pool");
	if (!p->cfg.backing->populate)
		return gmm_set_error(-EOPNOTSUPP, "populate: backing '%s' cannot populate",
				     p->cfg.backing->name);
	if (start_pfn >= p->nr_pfns)
		return gmm_set_error(-EINVAL, "populate: pfn %llu is beyond the pool",
				     (unsigned long long)start_pfn);
	hp = 1ull << (p->cfg.backing->page_order ? p->cfg.backing->page_order(p->cfg.backing_ctx) : 0);
	j.start = start_pfn & ~(hp - 1);
	j.end = nr_pages > p->nr_pfns - start_pfn ? p->nr_pfns : start_pfn + nr_pages;
	j.end = (j.end + hp - 1) & ~(hp - 1);
	j.chunk = CHUNK_PAGES > hp ? CHUNK_PAGES : hp;
	j.next = j.start;
	pthread_mutex_init(&j.lock, NULL);
	pthread_cond_init(&j.cond, NULL);
	err = start_workers(&j, nr_threads(threads, (j.end - j.start + j.chunk - 1) / j.chunk));
	if (!err) {
		wait_workers(&j, progress, arg);
		for (unsigned int i = 0; i < j.nr_tids; i++)
			pthread_join(j.tids[i], NULL);
		err = j.err;
		if (err)
			gmm_set_error(err, "%s", j.msg);
	}
	pthread_mutex_destroy(&j.lock);
	pthread_cond_destroy(&j.cond);
	return err;
}
