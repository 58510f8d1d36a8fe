/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-wstop.c - the write stops of guest page migration compared in
 * one run: mprotect(PROT_READ) per run of units, userfaultfd write-protect,
 * and a pause of the writers (the embedder's vCPU pause).  Two host writer
 * threads stand in for vCPUs (no KVM here: a paused writer parks at its
 * next write, as a vCPU kicked out of KVM_RUN by a signal would; the cost
 * of the kick itself is not in these figures).  Each writer stores one
 * word into each of its pages in turn, timing every store; the main thread
 * moves all guest RAM with gmm_guest_migrate() over and over for a fixed
 * time.  Per mode and batch size:
 *   - migrations per second (4 KiB pages moved), and the ratio to mprotect
 *     with the same batch (the baseline, measured in the same run); the
 *     migrating thread's CPU time per page (CLOCK_THREAD_CPUTIME_ID: on a
 *     loaded machine the steadiest figure);
 *   - the stop as the library measured it (longest, mean per batch);
 *   - the stop as a writer saw it: its longest store, and the share of its
 *     time spent in stores slower than STALL_NS;
 *   - writer throughput as a ratio to the writers alone (no migration).
 * After each run every page holds its writer's last value (no lost write).
 *
 * Usage: bench-wstop [--quick] [--ram MIB] [--seconds S]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <gmm/gmm.h>

#define MIB (1ull << 20)
#define NR_WRITERS 2
#define STALL_NS 5000 /* a store slower than this waited for a write stop */
#define WORDS_PER_PAGE (GMM_PAGE_SIZE / 8)

struct writer {
	pthread_t th;
	uint64_t *base;
	uint64_t nr_pages, w;
	uint64_t stores, max_ns, stall_ns, busy_ns, last;
};

static struct gmm_guest *cur_guest;
static int stop_writers, pause_req, parked; /* atomic */

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (gmm_guest_migration_wait(cur_guest, si->si_addr) < 0)
		signal(sig, SIG_DFL); /* not guest RAM: a real crash */
}

/* Parked as a paused vCPU thread is: asleep until the resume wakes it. */
static void park(void)
{
	__atomic_fetch_add(&parked, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &pause_req, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
	__atomic_fetch_sub(&parked, 1, __ATOMIC_ACQ_REL);
}

static int writers_pause(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&pause_req, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&parked, __ATOMIC_ACQUIRE) < NR_WRITERS)
		sched_yield();
	return 0;
}

static void writers_resume(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&pause_req, 0, __ATOMIC_RELEASE);
	syscall(SYS_futex, &pause_req, FUTEX_WAKE_PRIVATE, NR_WRITERS, NULL, NULL, 0);
}

static const struct gmm_pause_ops pause_ops = { writers_pause, writers_resume };

/* One store per page in turn, each timed; the value is the store's number. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t t0 = now_ns(), n = 0;

	while (!__atomic_load_n(&stop_writers, __ATOMIC_RELAXED)) {
		for (uint64_t pg = w->w; pg < w->nr_pages; pg += NR_WRITERS) {
			uint64_t t = now_ns(), d;

			if (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
				park();
			((volatile uint64_t *)w->base)[pg * WORDS_PER_PAGE] = ++n;
			d = now_ns() - t;
			if (d > w->max_ns)
				w->max_ns = d;
			if (d > STALL_NS)
				w->stall_ns += d;
		}
	}
	w->stores = n;
	w->last = n;
	w->busy_ns = now_ns() - t0;
	return NULL;
}

/* Every page holds the number of its writer's last store to it. */
static uint64_t lost_writes(const struct writer *w)
{
	uint64_t per_round = (w->nr_pages - w->w + NR_WRITERS - 1) / NR_WRITERS, lost = 0;
	uint64_t n = w->last, i = 0;

	for (uint64_t pg = w->w; pg < w->nr_pages; pg += NR_WRITERS, i++) {
		/* store k (1-based) went to page index (k - 1) % per_round */
		uint64_t want = n < per_round ? (i < n ? i + 1 : 0) :
				n - ((n - 1 - i) % per_round);

		lost += w->base[pg * WORDS_PER_PAGE] != want;
	}
	return lost;
}

static int uffd_open(uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api)) {
		fprintf(stderr, "bench-wstop: userfaultfd with write-protect: %s (root?)\n",
			strerror(errno));
		exit(3);
	}
	*features = api.features;
	return fd;
}

struct run {
	const char *name;
	int mode; /* -1: writers alone */
	unsigned int batch;
	bool huge;
	double pages_per_s, writes_per_s, stall_share, cpu_ns_per_page;
	uint64_t lib_max_ns, lib_mean_ns, writer_max_ns, lost, batches;
	char why[160];
};

static struct gmm_pool *make_pool(uint64_t ram)
{
	struct gmm_memfd_config mc = { 0 };
	struct gmm_pool_config pc;
	struct gmm_pool *p;
	void *ctx;

	if (gmm_memfd_create(&mc, &ctx)) {
		fprintf(stderr, "bench-wstop: %s\n", gmm_last_error());
		exit(3);
	}
	gmm_pool_config_init(&pc, 3 * ram);
	pc.block_bytes = 8 * MIB;
	pc.backing = &gmm_backing_memfd;
	pc.backing_ctx = ctx;
	if (gmm_pool_create(&pc, &p)) {
		fprintf(stderr, "bench-wstop: %s\n", gmm_last_error());
		exit(3);
	}
	return p;
}

static struct gmm_guest *make_guest(struct gmm_pool *p, const struct run *r, uint64_t ram,
				    int uffd, uint64_t features, void **hva)
{
	struct gmm_guest_config gc;
	struct gmm_memslot s;
	struct gmm_guest *g;

	gmm_guest_config_init(&gc);
	gc.huge_fault = r->huge;
	gc.uffd = uffd;
	gc.uffd_features = features;
	gc.write_stop = r->mode < 0 ? GMM_WSTOP_MPROTECT : r->mode;
	if (gmm_guest_create(p, &gc, &g) || gmm_guest_add_ram(g, 0, ram, 0, &s) ||
	    gmm_guest_populate(g, 0, ram) ||
	    (r->mode == GMM_WSTOP_PAUSE && gmm_guest_set_pause(g, &pause_ops, NULL))) {
		fprintf(stderr, "bench-wstop: %s\n", gmm_last_error());
		exit(3);
	}
	*hva = s.hva;
	return g;
}

static void measure(struct gmm_pool *p, struct run *r, uint64_t ram, double seconds)
{
	struct writer ws[NR_WRITERS];
	struct gmm_wstop_stats st;
	uint64_t features = 0, pages = 0, t0, dt, stores = 0, stall = 0, busy = 0, cpu0;
	int uffd = uffd_open(&features);
	void *hva;
	struct gmm_guest *g = make_guest(p, r, ram, uffd, features, &hva);

	cur_guest = g;
	__atomic_store_n(&stop_writers, 0, __ATOMIC_RELAXED);
	for (uint64_t i = 0; i < NR_WRITERS; i++) {
		ws[i] = (struct writer){ .base = hva, .nr_pages = ram / GMM_PAGE_SIZE, .w = i };
		pthread_create(&ws[i].th, NULL, writer_main, &ws[i]);
	}
	t0 = now_ns();
	cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	do {
		struct gmm_guest_migrate_result res;

		if (r->mode < 0)
			usleep(10000);
		else if (!gmm_guest_migrate(g, 0, ram, r->batch, &res))
			pages += res.pages;
		dt = now_ns() - t0;
	} while (dt < (uint64_t)(seconds * 1e9));
	r->cpu_ns_per_page = pages ? (double)(clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / (double)pages : 0;
	__atomic_store_n(&stop_writers, 1, __ATOMIC_RELAXED);
	r->writer_max_ns = 0;
	for (int i = 0; i < NR_WRITERS; i++) {
		pthread_join(ws[i].th, NULL);
		stores += ws[i].stores;
		stall += ws[i].stall_ns;
		busy += ws[i].busy_ns;
		if (ws[i].max_ns > r->writer_max_ns)
			r->writer_max_ns = ws[i].max_ns;
		r->lost += lost_writes(&ws[i]);
	}
	gmm_guest_wstop_stats(g, &st);
	r->pages_per_s = (double)pages * 1e9 / (double)dt;
	r->writes_per_s = busy ? (double)stores * 1e9 / (double)busy : 0;
	r->stall_share = busy ? (double)stall / (double)busy : 0;
	r->lib_max_ns = st.stop_ns_max;
	r->lib_mean_ns = st.batches ? st.stop_ns / st.batches : 0;
	r->batches = st.batches;
	snprintf(r->why, sizeof(r->why), "%s", st.why);
	if (r->mode >= 0 && st.mode != r->mode)
		fprintf(stderr, "bench-wstop: %s ran as %s: %s\n", r->name,
			gmm_write_stop_name(st.mode), st.why);
	gmm_guest_destroy(g);
	close(uffd);
}

static void print_run(const struct run *r, const struct run *base, const struct run *alone)
{
	printf("%-9s %5s %5u %9.0f %6.2fx %7.2f %6.2fx %9.1f %9.1f %9.1f %7.2f%% %7.2fx %4llu\n",
	       r->name, r->huge ? "2M" : "4K", r->batch, r->pages_per_s,
	       base->pages_per_s > 0 ? r->pages_per_s / base->pages_per_s : 0,
	       r->cpu_ns_per_page / 1000,
	       r->cpu_ns_per_page > 0 ? base->cpu_ns_per_page / r->cpu_ns_per_page : 0,
	       (double)r->lib_mean_ns / 1000, (double)r->lib_max_ns / 1000,
	       (double)r->writer_max_ns / 1000, r->stall_share * 100,
	       alone->writes_per_s > 0 ? r->writes_per_s / alone->writes_per_s : 0,
	       (unsigned long long)r->lost);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; int mode; } modes[] = {
		{ "mprotect", GMM_WSTOP_MPROTECT },
		{ "uffd-wp", GMM_WSTOP_UFFD_WP },
		{ "pause", GMM_WSTOP_PAUSE },
	};
	static const unsigned int batches[] = { 1, GMM_GUEST_MIGRATE_BATCH };
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };
	uint64_t ram = 32 * MIB, lost = 0;
	double seconds = 1.0;
	struct gmm_pool *p;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			seconds = 0.3;
			ram = 16 * MIB;
		} else if (!strcmp(argv[i], "--ram") && i + 1 < argc) {
			ram = strtoull(argv[++i], NULL, 0) * MIB;
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = strtod(argv[++i], NULL);
		} else {
			fprintf(stderr, "usage: bench-wstop [--quick] [--ram MIB] [--seconds S]\n");
			return 2;
		}
	}
	if (!ram || ram % (2 * MIB) || seconds <= 0) {
		fprintf(stderr, "bench-wstop: --ram must be a multiple of 2, --seconds > 0\n");
		return 2;
	}
	sigaction(SIGSEGV, &sa, NULL);
	p = make_pool(ram);
	printf("bench-wstop: %llu MiB of guest RAM on shmem, %d host writer threads standing "
	       "in for vCPUs (no KVM), %.1f s per run\n", (unsigned long long)(ram / MIB),
	       NR_WRITERS, seconds);
	for (int huge = 0; huge <= 1; huge++) {
		struct run alone = { .name = "alone", .mode = -1, .huge = huge };

		measure(p, &alone, ram, seconds);
		printf("\n%s units; writers alone: %.0f stores/s each, longest %.1f us, "
		       "%.2f%% of their time in stores over %d us\n", huge ? "2 MiB" : "4 KiB",
		       alone.writes_per_s, (double)alone.writer_max_ns / 1000,
		       alone.stall_share * 100, STALL_NS / 1000);
		printf("%-9s %5s %5s %9s %7s %7s %7s %9s %9s %9s %8s %8s %4s\n", "stop", "unit",
		       "batch", "pages/s", "vs mpr", "cpu_us", "vs mpr", "stop_us", "stop_max",
		       "wr_max_us", "stalled", "writes", "lost");
		for (unsigned int b = 0; b < 2; b++) {
			struct run runs[3];

			if (huge && b)
				break; /* a 2 MiB unit is its own batch of 512 pages */
			for (int m = 0; m < 3; m++) {
				runs[m] = (struct run){ .name = modes[m].name, .mode = modes[m].mode,
							.batch = batches[b], .huge = huge };
				measure(p, &runs[m], ram, seconds);
				lost += runs[m].lost;
			}
			for (int m = 0; m < 3; m++)
				print_run(&runs[m], &runs[0], &alone);
		}
	}
	printf("\ncolumns: pages/s = 4 KiB pages migrated per second (vs mpr: ratio to "
	       "mprotect, same batch); cpu_us = the migrating thread's CPU time per page "
	       "(vs mpr: mprotect's over this one, >1 is cheaper; the figure least bent by "
	       "other load); stop_us, stop_max = writers stopped per batch, mean and "
	       "longest, as libgmm measured; wr_max_us = a writer's longest store; stalled = "
	       "share of writer time in stores over %d us; writes = writer throughput vs the "
	       "writers alone; lost = pages without their last store (must be 0)\n",
	       STALL_NS / 1000);
	gmm_pool_destroy(p);
	return lost ? 1 : 0;
}
