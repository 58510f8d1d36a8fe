/* SPDX-License-Identifier: MIT */
/*
 * memmgr/khugepaged.c - the collapse thread of a pool (the kernel's
 * khugepaged, mm/khugepaged.c).
 *
 * One thread per pool.  Every scan_sleep_millisecs it looks at
 * pages_to_scan guest pages, from where it stopped: guests in rmap-id
 * order, in each guest its regions and their 2 MiB chunks in order
 * (guest.c's guest_collapse_scan() does the chunks).  Going past the last
 * guest is a full scan.  When no order-9 block can be had (even after
 * direct compaction), it sleeps alloc_sleep_millisecs and retries the same
 * chunk, as the kernel's khugepaged_alloc_sleep().
 *
 * The thread holds the guest it scans (guest_collapse_get/put, under the
 * pool's guests_lock); a guest being destroyed leaves the pool's table and
 * waits until it is put back.
 *
 * The control block lives until the pool is destroyed; start and stop only
 * start and join the thread.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gmm/guest.h>

#include "internal.h"

#define KHUGEPAGED_PAGES_TO_SCAN 4096 /* the kernel's default: 8 PMDs */
#define KHUGEPAGED_SCAN_SLEEP_MS 10000
#define KHUGEPAGED_ALLOC_SLEEP_MS 60000
#define KHUGEPAGED_THREAD_NAME "gmm-khugepaged" /* as ps and /proc/PID/task/TID/comm show it */
#define KHUGEPAGED_MAX_PTES_NONE_MAX ((unsigned int)GMM_PAGEBLOCK_PAGES - 1)

struct khugepaged {
	struct gmm_pool *pool;
	pthread_mutex_t lock;
	pthread_cond_t wake;	/* stop, new controls */
	pthread_t thread;
	bool running, stop, kicked;
	struct gmm_khugepaged_config cfg;
	/* the thread's own: where the scan stands */
	unsigned int next_id;
	uint64_t cursor;
	bool visited;		/* a guest was scanned since the last full scan */
	struct gmm_collapse_stats st; /* under lock */
};

void gmm_khugepaged_config_init(struct gmm_khugepaged_config *cfg)
{
	if (!cfg) {
		gmm_set_error(-EINVAL, "gmm_khugepaged_config_init: NULL configuration");
		return;
	}
	cfg->pages_to_scan = KHUGEPAGED_PAGES_TO_SCAN;
	cfg->scan_sleep_millisecs = KHUGEPAGED_SCAN_SLEEP_MS;
	cfg->alloc_sleep_millisecs = KHUGEPAGED_ALLOC_SLEEP_MS;
	cfg->max_ptes_none = 0;
}

static int check_config(const struct gmm_khugepaged_config *cfg)
{
	if (!cfg->pages_to_scan || cfg->max_ptes_none > KHUGEPAGED_MAX_PTES_NONE_MAX)
		return gmm_set_error(-EINVAL, "khugepaged: pages_to_scan %u (must be > 0) or "
				     "max_ptes_none %u (0..%u)", cfg->pages_to_scan,
				     cfg->max_ptes_none, KHUGEPAGED_MAX_PTES_NONE_MAX);
	return 0;
}

static void add_stats(struct gmm_collapse_stats *to, const struct gmm_collapse_stats *d)
{
	to->pages_scanned += d->pages_scanned;
	to->thp_collapse_alloc += d->thp_collapse_alloc;
	to->thp_collapse_alloc_failed += d->thp_collapse_alloc_failed;
	to->pages_collapsed += d->pages_collapsed;
	to->pages_added += d->pages_added;
	to->full_scans += d->full_scans;
}

static void add_round(struct khugepaged *kh, const struct gmm_collapse_stats *d)
{
	pthread_mutex_lock(&kh->lock);
	add_stats(&kh->st, d);
	pthread_mutex_unlock(&kh->lock);
}

/* One wake-up: pages_to_scan pages.  Returns true when a block could not be had. */
static bool scan_round(struct khugepaged *kh, const struct gmm_khugepaged_config *cfg)
{
	uint64_t budget = cfg->pages_to_scan;
	bool wrapped = false;

	while (budget) {
		struct gmm_collapse_stats d = { 0 };
		struct gmm_guest *g = guest_collapse_get(kh->pool, &kh->next_id);
		uint64_t failed;
		bool done;

		if (!g) {
			/* past the last guest: a full scan, if any guest was seen */
			d.full_scans = kh->visited;
			add_round(kh, &d);
			kh->next_id = 0;
			kh->cursor = 0;
			kh->visited = false;
			if (wrapped || !d.full_scans)
				return false; /* no guest, or all seen this round */
			wrapped = true;
			continue;
		}
		kh->visited = true;
		done = guest_collapse_scan(g, &kh->cursor, &budget, cfg->max_ptes_none, &d);
		failed = d.thp_collapse_alloc_failed;
		guest_collapse_put(g);
		add_round(kh, &d);
		if (failed)
			return true;
		if (done)
			kh->next_id++;
	}
	return false;
}

static void deadline_after(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *khugepaged_main(void *arg)
{
	struct khugepaged *kh = arg;
	unsigned int sleep_ms = 0;

	pthread_mutex_lock(&kh->lock);
	while (!kh->stop) {
		struct gmm_khugepaged_config cfg;
		struct timespec ts;
		bool failed;

		deadline_after(&ts, sleep_ms);
		while (!kh->stop && !kh->kicked &&
		       pthread_cond_timedwait(&kh->wake, &kh->lock, &ts) != ETIMEDOUT)
			;
		if (kh->stop)
			break;
		kh->kicked = false;
		cfg = kh->cfg;
		pthread_mutex_unlock(&kh->lock);
		failed = scan_round(kh, &cfg);
		sleep_ms = failed ? cfg.alloc_sleep_millisecs : cfg.scan_sleep_millisecs;
		pthread_mutex_lock(&kh->lock);
	}
	pthread_mutex_unlock(&kh->lock);
	return NULL;
}

static struct khugepaged *khugepaged_get(struct gmm_pool *p)
{
	struct khugepaged *kh = p->khugepaged;
	pthread_condattr_t a;

	if (kh)
		return kh;
	kh = calloc(1, sizeof(*kh));
	if (!kh)
		return NULL;
	kh->pool = p;
	gmm_khugepaged_config_init(&kh->cfg);
	pthread_mutex_init(&kh->lock, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&kh->wake, &a);
	pthread_condattr_destroy(&a);
	__atomic_store_n(&p->khugepaged, kh, __ATOMIC_RELEASE);
	return kh;
}

int gmm_khugepaged_start(struct gmm_pool *p, const struct gmm_khugepaged_config *cfg)
{
	struct gmm_khugepaged_config c;
	struct khugepaged *kh;
	int err;

	if (!p)
		return gmm_set_error(-EINVAL, "khugepaged: NULL pool");
	if (cfg)
		c = *cfg;
	else
		gmm_khugepaged_config_init(&c);
	err = check_config(&c);
	if (err)
		return err;
	pthread_mutex_lock(&p->report_lock);
	kh = khugepaged_get(p);
	pthread_mutex_unlock(&p->report_lock);
	if (!kh)
		return gmm_set_error(-ENOMEM, "khugepaged: out of memory");
	pthread_mutex_lock(&kh->lock);
	if (kh->running) {
		pthread_mutex_unlock(&kh->lock);
		return gmm_set_error(-EBUSY, "khugepaged is running already");
	}
	kh->cfg = c;
	kh->stop = false;
	kh->kicked = false;
	kh->running = !pthread_create(&kh->thread, NULL, khugepaged_main, kh);
	if (kh->running)
		pthread_setname_np(kh->thread, KHUGEPAGED_THREAD_NAME);
	err = kh->running ? 0 : gmm_set_error(-ENOMEM, "khugepaged: cannot start a thread");
	pthread_mutex_unlock(&kh->lock);
	return err;
}

void gmm_khugepaged_stop(struct gmm_pool *p)
{
	struct khugepaged *kh = p ? __atomic_load_n(&p->khugepaged, __ATOMIC_ACQUIRE) : NULL;
	pthread_t th;

	if (!kh)
		return;
	pthread_mutex_lock(&kh->lock);
	if (!kh->running || kh->stop) {
		pthread_mutex_unlock(&kh->lock);
		return;
	}
	kh->stop = true;
	th = kh->thread;
	pthread_cond_broadcast(&kh->wake);
	pthread_mutex_unlock(&kh->lock);
	pthread_join(th, NULL);
	pthread_mutex_lock(&kh->lock);
	kh->running = false;
	kh->stop = false;
	pthread_mutex_unlock(&kh->lock);
}

int gmm_khugepaged_configure(struct gmm_pool *p, const struct gmm_khugepaged_config *cfg)
{
	struct khugepaged *kh = p ? __atomic_load_n(&p->khugepaged, __ATOMIC_ACQUIRE) : NULL;
	int err;

	if (!p || !cfg)
		return gmm_set_error(-EINVAL, "gmm_khugepaged_configure: NULL argument");
	err = check_config(cfg);
	if (err)
		return err;
	if (!kh)
		return gmm_set_error(-ESRCH, "khugepaged was never started on this pool");
	pthread_mutex_lock(&kh->lock);
	kh->cfg = *cfg;
	kh->kicked = true;
	pthread_cond_broadcast(&kh->wake);
	pthread_mutex_unlock(&kh->lock);
	return 0;
}

int gmm_khugepaged_stats(struct gmm_pool *p, struct gmm_collapse_stats *st,
			 struct gmm_khugepaged_config *cfg)
{
	struct khugepaged *kh = p ? __atomic_load_n(&p->khugepaged, __ATOMIC_ACQUIRE) : NULL;

	if (!p || !st)
		return gmm_set_error(-EINVAL, "gmm_khugepaged_stats: NULL argument");
	memset(st, 0, sizeof(*st));
	if (cfg)
		gmm_khugepaged_config_init(cfg);
	if (!kh)
		return 0;
	pthread_mutex_lock(&kh->lock);
	*st = kh->st;
	if (cfg)
		*cfg = kh->cfg;
	pthread_mutex_unlock(&kh->lock);
	return 0;
}

int gmm_khugepaged_print_stats(struct gmm_pool *p, FILE *f)
{
	struct gmm_khugepaged_config c;
	struct gmm_collapse_stats s;
	int err;

	if (!f)
		return gmm_set_error(-EINVAL, "gmm_khugepaged_print_stats: NULL file");
	err = gmm_khugepaged_stats(p, &s, &c);
	if (err)
		return err;
	fprintf(f, "thp_collapse_alloc %llu\nthp_collapse_alloc_failed %llu\n"
		"khugepaged/pages_collapsed %llu\nkhugepaged/full_scans %llu\n"
		"khugepaged/pages_scanned %llu\nkhugepaged/pages_added %llu\n"
		"khugepaged/pages_to_scan %u\nkhugepaged/scan_sleep_millisecs %u\n"
		"khugepaged/alloc_sleep_millisecs %u\nkhugepaged/max_ptes_none %u\n",
		(unsigned long long)s.thp_collapse_alloc,
		(unsigned long long)s.thp_collapse_alloc_failed,
		(unsigned long long)s.pages_collapsed, (unsigned long long)s.full_scans,
		(unsigned long long)s.pages_scanned, (unsigned long long)s.pages_added,
		c.pages_to_scan, c.scan_sleep_millisecs, c.alloc_sleep_millisecs, c.max_ptes_none);
	return 0;
}

void khugepaged_fini(struct gmm_pool *p)
{
	struct khugepaged *kh = p->khugepaged;

	if (!kh)
		return;
	gmm_khugepaged_stop(p);
	pthread_mutex_destroy(&kh->lock);
	pthread_cond_destroy(&kh->wake);
	free(kh);
	p->khugepaged = NULL;
}
