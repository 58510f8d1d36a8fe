/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-pcp.c - benchmarks of the per-thread page caches.
 *
 *   --pair     order-0 alloc+free through the cache versus the locked buddy
 *              path (an unattached thread), batch sweep: allocate N, free N
 *   --bulk     gmm_alloc_bulk()/gmm_free_bulk() ns per frame versus singles
 *              (allocations, frees, alloc+free), attached and unattached
 *   --insn N   the bulk section's calls at one N, untimed, for callgrind
 *              (tools/bench-pcp-insn.sh)
 *   --scale    throughput at each thread count of --threads (default 1,2),
 *              private frees and cross-thread frees, cached and locked
 *   --drain    remote drain latency against threads and frames cached,
 *              with the threads busy and with them offline
 *   --grid     threads (--threads, default 1,2,4 here) x order 0 (N = 1, 64,
 *              1024) and order 9 (N = 1, 64, 128) x private and cross-thread
 *              frees: aggregate Mpairs/s, per-thread ns, CPU ns, scaling over
 *              the first thread count, against unattached threads (the zone
 *              lock)
 *   --share    the false-sharing experiment: two threads cycle one frame each,
 *              the frames' metadata in the same cache lines or apart
 *   --thp      the zone-lock path: order 9 at N = 1, 64, 128 (private and
 *              cross frees) and order 0 unattached, per --threads, with the
 *              refills and trims (zone lock rounds) per 1000 pairs
 *   --thp9     the order-9 criterion alone: private order-9 pairs at N = 1,
 *              64, 128, one thread then two, repeated --reps times (default
 *              5) in alternation; per N the medians, the 2-thread/1-thread
 *              ratio and MEETS/MISSES against 1.5x (full windows even
 *              with --quick; about a second)
 * With no section named, all run.  Every figure is printed next to its
 * baseline from the same run, as a ratio.  At the end, one line per
 * acceptance criterion of issue 9 that the sections run can judge: the
 * figure, its baseline, the ratio, and whether it meets the target.  Built twice: bench-pcp (RCU
 * caches) and bench-pcp-spin (the spinlock-per-cache design of current
 * Linux); tools/bench-pcp-compare.sh runs both and sets them side by side.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gmm/gmm.h>

#ifdef GMM_PCP_SPINLOCK
#define VARIANT "spin"
#else
#define VARIANT "rcu"
#endif

#define MIB (1ull << 20)
#define MAX_THREADS 64

static struct gmm_pool *pool;
static double scale = 1.0; /* --quick: less work */

/* What the summary judges (NAN: not measured). */
#define GRID_NS 3
#define GRID_THREADS 16
struct grid_res {
	double mp;     /* median aggregate Mpairs/s (wall clock) of the clean windows */
	double cpu_ns; /* median of the slowest thread's CPU ns per pair */
	int clean;     /* clean windows; fewer than GRID_MIN_CLEAN: all windows used */
};
static struct {
	int threads[GRID_THREADS], nthreads;
	size_t ns[2][GRID_NS];
	/* [order 0 / 9][private / cross][N][thread count]: cached, locked */
	struct grid_res c[2][2][GRID_NS][GRID_THREADS], l[2][2][GRID_NS][GRID_THREADS];
	bool done;
} gres;
/* --thp9: medians per N of the 1- and 2-thread ns per pair (0: not run) */
static struct {
	size_t n[GRID_NS];
	double one[GRID_NS], two[GRID_NS];
	double quiet[GRID_NS]; /* median 2/1 of the runs the machine ran at one speed */
	int nq[GRID_NS], reps;
} thp9;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The calling thread's CPU time: leaves out the time it waits for a CPU on a
 * shared machine (other processes), keeps stalls on contended cache lines. */
static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-pcp: %s: %s\n", what, gmm_last_error());
	exit(1);
}

static uint64_t alloc0(void)
{
	uint64_t pfn = gmm_alloc(pool, 0, GMM_MOVABLE, 0);

	if (pfn == GMM_PFN_NONE)
		die("gmm_alloc");
	return pfn;
}

/* ns per alloc+free pair, allocating @n then freeing @n, about @pairs pairs. */
static double pair_ns(uint64_t *v, size_t n, size_t pairs)
{
	size_t rounds = pairs / n ? pairs / n : 1;
	double t0;

	for (size_t i = 0; i < n; i++) /* warm up */
		v[i] = alloc0();
	for (size_t i = 0; i < n; i++)
		gmm_free(pool, v[i], 0);
	t0 = now();
	for (size_t r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n; i++)
			v[i] = alloc0();
		for (size_t i = 0; i < n; i++)
			gmm_free(pool, v[i], 0);
	}
	return (now() - t0) * 1e9 / (double)(rounds * n);
}

static void bench_pair(void)
{
	static const size_t ns[] = { 1, 4, 16, 64, 256, 1024, 4096, 16384 };
	uint64_t *v = malloc(16384 * sizeof(*v));
	size_t pairs = (size_t)(2000000 * scale);

	printf("# pair [%s]: order-0 alloc+free, allocate N then free N, ns per pair\n", VARIANT);
	printf("%-8s %12s %12s %14s\n", "N", "cached_ns", "locked_ns", "locked/cached");
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		double c, l;

		if (gmm_thread_attach(pool))
			die("attach");
		c = pair_ns(v, ns[i], pairs);
		gmm_thread_detach(pool);
		l = pair_ns(v, ns[i], pairs);
		printf("%-8zu %12.1f %12.1f %13.2fx\n", ns[i], c, l, l / c);
	}
	free(v);
}

static int cmp_double(const void *a, const void *b);

/* The bulk section's figures of one N, ns per frame, medians over the rounds. */
struct bulk_res {
	double ba, sa; /* gmm_alloc_bulk(N) / N x gmm_alloc */
	double bf, sf; /* gmm_free_bulk(N) / N x gmm_free */
	double bp, sp; /* the alloc + free of one round, bulk / singles */
};

/* The lowest single/bulk ratio over N: [attached][allocation, alloc+free pair]. */
static struct {
	double ratio, bulk, single;
	size_t n;
} bulk_worst[2][2];
static bool bulk_done;

/*
 * Frames per timed interval at least: small N run N / BULK_SPAN_FRAMES
 * calls back to back, so that the clock's own cost (tens of ns in a VM)
 * weighs the same on bulk and single figures at every N.
 */
#define BULK_SPAN_FRAMES 256

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One round of @calls bulk calls of @n frames each (@r[0..1]: alloc, free ns per frame). */
static void bulk_round(uint64_t *v, size_t n, size_t calls, double *r)
{
	double t = now();

	for (size_t c = 0; c < calls; c++)
		if (gmm_alloc_bulk(pool, GMM_MOVABLE, 0, n, v + c * n) != n)
			die("gmm_alloc_bulk");
	r[0] = (now() - t) * 1e9 / (double)(calls * n);
	t = now();
	for (size_t c = 0; c < calls; c++)
		if (gmm_free_bulk(pool, n, v + c * n))
			die("gmm_free_bulk");
	r[1] = (now() - t) * 1e9 / (double)(calls * n);
}

/* The same frames with single calls (@r[0..1]: alloc, free ns per frame). */
static void single_round(uint64_t *v, size_t n, size_t calls, double *r)
{
	double t = now();

	for (size_t i = 0; i < calls * n; i++)
		v[i] = alloc0();
	r[0] = (now() - t) * 1e9 / (double)(calls * n);
	t = now();
	for (size_t i = 0; i < calls * n; i++)
		if (gmm_free(pool, v[i], 0))
			die("gmm_free");
	r[1] = (now() - t) * 1e9 / (double)(calls * n);
}

/*
 * Medians over rounds: on a shared machine a round now and then loses its
 * CPU, which a sum would charge to one side.  Bulk and singles take turns
 * going first, so that neither inherits the other's cache state more often.
 */
static void bulk_one(uint64_t *v, size_t n, size_t frames, struct bulk_res *res)
{
	size_t calls = n < BULK_SPAN_FRAMES ? BULK_SPAN_FRAMES / n : 1;
	size_t rounds = frames / n / calls > 16 ? frames / n / calls : 16;
	double *m = malloc(6 * rounds * sizeof(double));
	double *ba = m, *bf = m + rounds, *sa = m + 2 * rounds, *sf = m + 3 * rounds;
	double *bp = m + 4 * rounds, *sp = m + 5 * rounds;

	if (!m)
		die("malloc");
	/* untimed: the first touch of the frames' metadata (page faults) and the
	 * cache's first refills would be charged to whichever runs first */
	for (size_t r = 0; r < 2; r++) {
		double x[2];

		bulk_round(v, n, calls, x);
		single_round(v, n, calls, x);
	}
	for (size_t r = 0; r < rounds; r++) {
		double b[2], s[2];

		if (r & 1) {
			single_round(v, n, calls, s);
			bulk_round(v, n, calls, b);
		} else {
			bulk_round(v, n, calls, b);
			single_round(v, n, calls, s);
		}
		ba[r] = b[0];
		bf[r] = b[1];
		bp[r] = b[0] + b[1];
		sa[r] = s[0];
		sf[r] = s[1];
		sp[r] = s[0] + s[1];
	}
	res->ba = median(ba, rounds);
	res->bf = median(bf, rounds);
	res->bp = median(bp, rounds);
	res->sa = median(sa, rounds);
	res->sf = median(sf, rounds);
	res->sp = median(sp, rounds);
	free(m);
}

static void bulk_note_worst(int attached, int what, double bulk, double single, size_t n)
{
	if (bulk_worst[attached][what].n && single / bulk >= bulk_worst[attached][what].ratio)
		return;
	bulk_worst[attached][what].ratio = single / bulk;
	bulk_worst[attached][what].bulk = bulk;
	bulk_worst[attached][what].single = single;
	bulk_worst[attached][what].n = n;
}

static void bench_bulk(void)
{
	static const size_t ns[] = { 16, 64, 256, 1024, 8192 };
	uint64_t *v = malloc(8192 * sizeof(*v));
	size_t frames = (size_t)(2000000 * scale);

	printf("# bulk [%s]: ns per frame, gmm_alloc_bulk(N) / gmm_free_bulk(N) versus N x "
	       "gmm_alloc / gmm_free\n# (x: single/bulk), medians of the rounds; below N = %d "
	       "a timed interval spans %d / N calls\n", VARIANT, BULK_SPAN_FRAMES,
	       BULK_SPAN_FRAMES);
	printf("%-6s %-10s | %7s %7s %6s | %7s %7s %6s | %7s %7s %6s\n", "N", "thread",
	       "alloc_b", "alloc_s", "x", "free_b", "free_s", "x", "pair_b", "pair_s", "x");
	for (int attached = 1; attached >= 0; attached--) {
		if (attached && gmm_thread_attach(pool))
			die("attach");
		for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
			struct bulk_res r;

			bulk_one(v, ns[i], frames, &r);
			bulk_note_worst(attached, 0, r.ba, r.sa, ns[i]);
			bulk_note_worst(attached, 1, r.bp, r.sp, ns[i]);
			printf("%-6zu %-10s | %7.1f %7.1f %5.2fx | %7.1f %7.1f %5.2fx | "
			       "%7.1f %7.1f %5.2fx\n", ns[i], attached ? "attached" : "unattached",
			       r.ba, r.sa, r.sa / r.ba, r.bf, r.sf, r.sf / r.bf, r.bp, r.sp,
			       r.sp / r.bp);
			fflush(stdout);
		}
		if (attached)
			gmm_thread_detach(pool);
	}
	bulk_done = true;
	free(v);
}

/*
 * --insn N: the bulk section's phases, untimed and deterministic, one
 * function each, for Valgrind callgrind (tools/bench-pcp-insn.sh reads their
 * inclusive instruction counts): INSN_FRAMES frames per phase in rounds of
 * N, bulk and single allocations and frees, attached and unattached.
 */
#define INSN_FRAMES 65536

#define INSN_PHASES(X)                                                              \
	X(insn_bulk_alloc, if (gmm_alloc_bulk(pool, GMM_MOVABLE, 0, n, v) != n) die("bulk")) \
	X(insn_bulk_free, if (gmm_free_bulk(pool, n, v)) die("free_bulk"))             \
	X(insn_single_alloc, for (size_t i = 0; i < n; i++) v[i] = alloc0())            \
	X(insn_single_free, for (size_t i = 0; i < n; i++) if (gmm_free(pool, v[i], 0)) die("free"))

#define INSN_FN(name, body)                                                      \
	static void __attribute__((noipa)) name(uint64_t *v, size_t n) { body; } \
	static void __attribute__((noipa)) name##_unattached(uint64_t *v, size_t n) { body; }
INSN_PHASES(INSN_FN)

static void insn_rounds(uint64_t *v, size_t n, bool attached)
{
	/* the first touch of the metadata and the first refills, outside the phases */
	for (int r = 0; r < 2; r++) {
		if (gmm_alloc_bulk(pool, GMM_MOVABLE, 0, n, v) != n)
			die("gmm_alloc_bulk");
		gmm_free_bulk(pool, n, v);
	}
	for (size_t r = 0; r < INSN_FRAMES / n; r++) {
		if (attached) {
			insn_bulk_alloc(v, n);
			insn_bulk_free(v, n);
			insn_single_alloc(v, n);
			insn_single_free(v, n);
		} else {
			insn_bulk_alloc_unattached(v, n);
			insn_bulk_free_unattached(v, n);
			insn_single_alloc_unattached(v, n);
			insn_single_free_unattached(v, n);
		}
	}
}

static void bench_insn(size_t n)
{
	uint64_t *v = malloc(n * sizeof(*v));

	if (!v || !n || INSN_FRAMES % n)
		die("--insn: N must divide 65536");
	if (gmm_thread_attach(pool))
		die("attach");
	insn_rounds(v, n, true);
	gmm_thread_detach(pool);
	insn_rounds(v, n, false);
	printf("insn N %zu frames per phase %u\n", n, INSN_FRAMES);
	free(v);
}

/* --- scaling ------------------------------------------------------------- */

#define XBATCH 64

struct mailbox {
	pthread_mutex_t lock;
	uint64_t v[8][XBATCH];
	int n;
} __attribute__((aligned(64)));

struct scale_arg {
	int id, nr;
	bool cached, cross;
	size_t pairs;
	pthread_barrier_t *bar;
	double secs;
};

static struct mailbox boxes[MAX_THREADS];

static bool box_put(struct mailbox *b, const uint64_t *v)
{
	bool ok;

	pthread_mutex_lock(&b->lock);
	ok = b->n < 8;
	if (ok)
		memcpy(b->v[b->n++], v, sizeof(b->v[0]));
	pthread_mutex_unlock(&b->lock);
	return ok;
}

static bool box_get(struct mailbox *b, uint64_t *v)
{
	bool ok;

	pthread_mutex_lock(&b->lock);
	ok = b->n > 0;
	if (ok)
		memcpy(v, b->v[--b->n], sizeof(b->v[0]));
	pthread_mutex_unlock(&b->lock);
	return ok;
}

static void *scale_worker(void *arg)
{
	struct scale_arg *a = arg;
	uint64_t v[XBATCH];
	double t0;

	if (a->cached && gmm_thread_attach(pool))
		die("attach");
	pthread_barrier_wait(a->bar);
	t0 = now();
	for (size_t done = 0; done < a->pairs; done += XBATCH) {
		for (int i = 0; i < XBATCH; i++)
			v[i] = alloc0();
		/* cross: free what a neighbour allocated, hand ours to the other side */
		if (a->cross && a->nr > 1 && box_put(&boxes[(a->id + 1) % a->nr], v) &&
		    !box_get(&boxes[a->id], v))
			continue;
		for (int i = 0; i < XBATCH; i++)
			gmm_free(pool, v[i], 0);
		if (a->cached)
			gmm_thread_quiescent();
	}
	a->secs = now() - t0;
	pthread_barrier_wait(a->bar); /* nobody frees into a detached thread's boxes */
	while (box_get(&boxes[a->id], v))
		gmm_free_bulk(pool, XBATCH, v);
	if (a->cached)
		gmm_thread_detach(pool);
	return NULL;
}

/* Million pairs per second with @nr threads. */
static double scale_run(int nr, bool cached, bool cross)
{
	struct scale_arg a[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	pthread_barrier_t bar;
	double secs = 0;

	pthread_barrier_init(&bar, NULL, (unsigned int)nr);
	for (int i = 0; i < nr; i++) {
		a[i] = (struct scale_arg){ .id = i, .nr = nr, .cached = cached, .cross = cross,
					   .pairs = (size_t)(2000000 * scale), .bar = &bar };
		pthread_mutex_init(&boxes[i].lock, NULL);
		boxes[i].n = 0;
		pthread_create(&th[i], NULL, scale_worker, &a[i]);
	}
	for (int i = 0; i < nr; i++) {
		pthread_join(th[i], NULL);
		secs = a[i].secs > secs ? a[i].secs : secs;
	}
	pthread_barrier_destroy(&bar);
	return (double)nr * (double)a[0].pairs / secs / 1e6;
}

static void bench_scale(const int *threads, int nthreads)
{
	printf("# scale [%s]: Mpairs/s (all threads), private and cross-thread frees\n",
	       VARIANT);
	printf("%-8s %-8s %10s %10s %15s %13s\n", "threads", "frees", "cached", "locked",
	       "cached/locked", "vs_1_thread");
	for (int cross = 0; cross < 2; cross++) {
		double base = 0;

		for (int i = 0; i < nthreads; i++) {
			double c = scale_run(threads[i], true, cross);
			double l = scale_run(threads[i], false, cross);

			if (!base)
				base = c / threads[i];
			printf("%-8d %-8s %10.2f %10.2f %14.2fx %12.2fx\n", threads[i],
			       cross ? "cross" : "private", c, l, c / l, c / base);
		}
	}
}

static int cmp_double(const void *a, const void *b);

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

/* --- the machine's own two-CPU factor ----------------------------------------- */

/*
 * A loop of register arithmetic, no memory, on one CPU and then on both at
 * once.  Two threads share nothing in it, so they run it as fast as one
 * unless the host slows a CPU while both run (its sibling hyperthread or
 * another guest on the same core, a lower clock): its 2thr/1thr, sampled
 * next to the allocator's runs, says how much of a two-thread cost is the
 * machine's.  Not a criterion: printed beside them.
 */
#define HOST_ITERS	20000000L
#define HOST_SAMPLES	128
/* a run pair whose sample is at most this ran on a machine that scales */
#define HOST_QUIET	1.15

static struct {
	double ratio[HOST_SAMPLES];
	int n;
} host;

struct host_arg {
	pthread_barrier_t *bar;
	int cpu;
	double ns;
} __attribute__((aligned(64)));

static void *host_loop(void *arg)
{
	struct host_arg *a = arg;
	uint64_t r0 = 1, r1 = 2, r2 = 3, r3 = 4;
	double t0;

	pin(a->cpu);
	pthread_barrier_wait(a->bar);
	t0 = cpu_now();
	for (long i = 0; i < HOST_ITERS; i++) {
		r0 += (uint64_t)i;
		r1 ^= (uint64_t)i;
		r2 += r0 >> 3;
		r3 ^= r1 << 1;
		__asm__("" : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3));
	}
	a->ns = (cpu_now() - t0) * 1e9 / HOST_ITERS;
	__asm__("" : : "r"(r0 + r1 + r2 + r3));
	return NULL;
}

/* CPU ns per iteration of the slower of @nr (1 or 2) threads. */
static double host_run(int nr)
{
	struct host_arg a[2];
	pthread_barrier_t bar;
	pthread_t th[2];
	double worst = 0;

	pthread_barrier_init(&bar, NULL, (unsigned int)nr);
	for (int i = 0; i < nr; i++) {
		a[i] = (struct host_arg){ .bar = &bar, .cpu = i };
		if (pthread_create(&th[i], NULL, host_loop, &a[i]))
			die("pthread_create");
	}
	for (int i = 0; i < nr; i++) {
		pthread_join(th[i], NULL);
		worst = a[i].ns > worst ? a[i].ns : worst;
	}
	pthread_barrier_destroy(&bar);
	return worst;
}

/* One sample of the machine's factor (about 0.05 s): its 2thr/1thr. */
static double host_sample(void)
{
	double one = host_run(1), r = host_run(2) / one;

	if (host.n < HOST_SAMPLES)
		host.ratio[host.n++] = r;
	return r;
}

/* --- grid: threads x order x N x private/cross frees ------------------------ */

/*
 * Each thread, pinned to CPU (id mod CPUs), runs GRID_WINDOWS timed windows
 * that start together (a barrier each).  In a window it repeats: allocate N
 * blocks, free N.  With cross-thread frees it hands its N blocks to the next
 * thread through a single-producer single-consumer ring and frees what the
 * previous thread handed it (its own blocks when the ring is full or empty).
 * A window's aggregate throughput is all threads' pairs over the slowest
 * thread's time; the figure is the median window.
 */
#define GRID_WINDOWS 201
#define THP9_REPS_MAX 31
#define RING_SLOTS 1024

struct ring {
	uint64_t head __attribute__((aligned(64))); /* consumer */
	uint64_t tail __attribute__((aligned(64))); /* producer */
	uint64_t v[RING_SLOTS] __attribute__((aligned(64)));
};

/* A spinning barrier: threads leave it within a few hundred ns (a futex wake takes far longer). */
struct spin_barrier {
	unsigned int count __attribute__((aligned(64)));
	unsigned int gen;
	unsigned int nr;
};

static void spin_wait(struct spin_barrier *b)
{
	unsigned int gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);

	if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->nr) {
		__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&b->gen, gen + 1, __ATOMIC_RELEASE);
		return;
	}
	for (unsigned int spins = 0; __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen; spins++)
		if (spins > 1000)
			sched_yield(); /* another thread of this CPU must run first */
}

struct grid_arg {
	int id, nr;
	unsigned int order;
	size_t n, rounds;
	bool cached, cross;
	struct spin_barrier *bar;
	struct ring *in, *out;
	double t0[GRID_WINDOWS], t1[GRID_WINDOWS], cpu[GRID_WINDOWS];
	uint64_t *v;
} __attribute__((aligned(64)));

static bool ring_put(struct ring *r, uint64_t pfn)
{
	uint64_t t = r->tail;

	if (t - __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == RING_SLOTS)
		return false;
	r->v[t % RING_SLOTS] = pfn;
	__atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
	return true;
}

static bool ring_get(struct ring *r, uint64_t *pfn)
{
	uint64_t h = r->head;

	if (h == __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE))
		return false;
	*pfn = r->v[h % RING_SLOTS];
	__atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
	return true;
}

static uint64_t alloc_order(unsigned int order)
{
	uint64_t pfn = gmm_alloc(pool, order, GMM_MOVABLE, 0);

	if (pfn == GMM_PFN_NONE)
		die("gmm_alloc");
	return pfn;
}

/* Cross-thread frees: hand each frame to the next thread through a ring. */
static void grid_round_cross(struct grid_arg *a)
{
	uint64_t *v = a->v;
	unsigned int o = a->order;

	for (size_t i = 0; i < a->n; i++)
		v[i] = alloc_order(o);
	for (size_t i = 0; i < a->n; i++) {
		uint64_t pfn;

		if (!ring_put(a->out, v[i]))
			gmm_free(pool, v[i], o);
		if (ring_get(a->in, &pfn))
			gmm_free(pool, pfn, o);
	}
}

/*
 * @rounds rounds of @a's work.  The private case is the loop a caller
 * would write: pool, N, order and array in registers, nothing in it but
 * the two calls, the failure test and the loop (what is timed is the
 * library's pair plus that loop).
 */
static void grid_rounds(struct grid_arg *a, size_t rounds)
{
	struct gmm_pool *pl = pool;
	uint64_t *v = a->v;
	size_t n = a->n;
	unsigned int o = a->order;

	if (a->cross) {
		for (size_t r = 0; r < rounds; r++)
			grid_round_cross(a);
		return;
	}
	for (size_t r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n; i++) {
			v[i] = gmm_alloc(pl, o, GMM_MOVABLE, 0);
			if (__builtin_expect(v[i] == GMM_PFN_NONE, 0))
				die("gmm_alloc");
		}
		for (size_t i = 0; i < n; i++)
			gmm_free(pl, v[i], o);
	}
}

static void *grid_worker(void *arg)
{
	struct grid_arg *a = arg;
	uint64_t pfn;

	pin(a->id);
	if (a->cached && gmm_thread_attach(pool))
		die("attach");
	grid_rounds(a, 1); /* warm up */
	for (int w = 0; w < GRID_WINDOWS; w++) {
		double c0;

		if (a->cached)
			gmm_thread_offline();
		spin_wait(a->bar);
		if (a->cached)
			gmm_thread_online();
		a->t0[w] = now();
		c0 = cpu_now();
		grid_rounds(a, a->rounds);
		a->cpu[w] = cpu_now() - c0;
		a->t1[w] = now();
		if (a->cached)
			gmm_thread_quiescent();
	}
	if (a->cached)
		gmm_thread_offline();
	spin_wait(a->bar); /* nobody puts into our ring any more */
	if (a->cached)
		gmm_thread_online();
	while (ring_get(a->in, &pfn))
		gmm_free(pool, pfn, a->order);
	if (a->cached)
		gmm_thread_detach(pool);
	return NULL;
}

/*
 * A window is clean when every thread ran on its CPU for at least
 * CLEAN_PERMILLE of its wall time (on a shared machine the others are
 * descheduled now and then; then the threads did not really run together).
 */
#define CLEAN_PERMILLE 900

#define GRID_MIN_CLEAN 5

static struct grid_res grid_stats(const struct grid_arg *a, int nr, size_t n)
{
	double mp[GRID_WINDOWS], cn[GRID_WINDOWS];
	struct grid_res r = { 0 };
	double pairs = (double)(a[0].rounds * n);

	for (int w = 0; w < GRID_WINDOWS; w++) {
		double start = a[0].t0[w], end = 0, cpu = 0;
		bool clean = true;

		for (int i = 0; i < nr; i++) {
			start = a[i].t0[w] < start ? a[i].t0[w] : start;
			end = a[i].t1[w] > end ? a[i].t1[w] : end;
			cpu = a[i].cpu[w] > cpu ? a[i].cpu[w] : cpu;
		}
		/* threads sharing a CPU run one after the other: never clean */
		for (int i = 0; i < nr; i++)
			clean &= a[i].cpu[w] * 1000 >= (end - start) * CLEAN_PERMILLE;
		if (clean)
			mp[r.clean++] = (double)nr * pairs / (end - start) / 1e6;
		cn[w] = cpu * 1e9 / pairs;
	}
	qsort(cn, GRID_WINDOWS, sizeof(cn[0]), cmp_double);
	r.cpu_ns = cn[GRID_WINDOWS / 2];
	if (r.clean < GRID_MIN_CLEAN) {
		/* threads share CPUs (or never ran together): what the CPUs deliver,
		 * each running one of the threads at a time at its CPU-time rate */
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		r.mp = (double)(nr < cpus ? nr : cpus) * 1e3 / r.cpu_ns;
		return r;
	}
	qsort(mp, (size_t)r.clean, sizeof(mp[0]), cmp_double);
	r.mp = mp[r.clean / 2];
	return r;
}

static struct grid_res grid_run(int nr, unsigned int order, size_t n, bool cached, bool cross)
{
	static struct ring rings[MAX_THREADS];
	struct grid_arg *a = aligned_alloc(64, sizeof(*a) * (size_t)nr);
	pthread_t th[MAX_THREADS];
	struct spin_barrier bar = { .nr = (unsigned int)nr };
	size_t pairs = (size_t)((order ? 400000 : 4000000) * scale) / GRID_WINDOWS;
	struct grid_res r;

	for (int i = 0; i < nr; i++) {
		rings[i].head = rings[i].tail = 0;
		a[i] = (struct grid_arg){ .id = i, .nr = nr, .order = order, .n = n,
					  .rounds = pairs / n ? pairs / n : 1, .cached = cached,
					  .cross = cross && nr > 1, .bar = &bar, .in = &rings[i],
					  .out = &rings[(i + 1) % nr] };
		/* a line of its own: small arrays of two threads would share one */
		a[i].v = aligned_alloc(64, (n * sizeof(uint64_t) + 63) & ~(size_t)63);
	}
	for (int i = 0; i < nr; i++)
		pthread_create(&th[i], NULL, grid_worker, &a[i]);
	for (int i = 0; i < nr; i++)
		pthread_join(th[i], NULL);
	r = grid_stats(a, nr, n);
	for (int i = 0; i < nr; i++)
		free(a[i].v);
	free(a);
	return r;
}

static void bench_grid(const int *threads, int nthreads)
{
	static const unsigned int orders[] = { 0, GMM_PAGEBLOCK_ORDER };
	/* the grid: N = 128 is the last order-9 column */
	static const size_t ns[2][GRID_NS] = { { 1, 64, 1024 }, { 1, 64, 128 } };

	printf("# grid [%s]: alloc N + free N per thread, threads pinned to CPU (id mod %ld), "
	       "%d windows\n# Mp: aggregate Mpairs/s (all pairs over first start to last end), "
	       "median of the clean windows (every thread on its CPU >= %d%% of the window);\n"
	       "#   'cl' counts them; below %d (e.g. more threads than CPUs): min(threads, CPUs) x "
	       "1e3 / cpu_ns;\n#   ns = threads / Mp; scal: Mp / Mp of the first thread count;\n"
	       "#   cpu_ns: the slowest thread's CPU time per pair, median; locked: unattached "
	       "threads (zone lock)\n", VARIANT, sysconf(_SC_NPROCESSORS_ONLN), GRID_WINDOWS,
	       CLEAN_PERMILLE / 10, GRID_MIN_CLEAN);
	printf("%-5s %-7s %-4s %-3s | %8s %6s %6s %6s %3s | %8s %6s %6s %3s | %9s\n", "order",
	       "frees", "N", "thr", "cach_Mp", "ns", "cpu_ns", "scal", "cl", "lock_Mp", "ns",
	       "cpu_ns", "cl", "lock/cach");
	for (size_t o = 0; o < 2; o++)
		for (int cross = 0; cross < 2; cross++)
			for (size_t k = 0; k < 3; k++) {
				double base = 0;

				if (!cross)
					(void)host_sample();
				for (int i = 0; i < nthreads; i++) {
					int t = threads[i];
					size_t n = ns[o][k];
					struct grid_res c = grid_run(t, orders[o], n, true, cross);
					struct grid_res l = grid_run(t, orders[o], n, false, cross);

					gres.c[o][cross][k][i] = c;
					gres.l[o][cross][k][i] = l;
					gres.ns[o][k] = n;
					if (!base)
						base = c.mp;
					printf("%-5u %-7s %-4zu %-3d | %8.2f %6.1f %6.1f %5.2fx %3d | "
					       "%8.2f %6.1f %6.1f %3d | %8.2fx\n", orders[o],
					       cross ? "cross" : "private", n, t, c.mp,
					       1e3 * t / c.mp, c.cpu_ns, c.mp / base, c.clean,
					       l.mp, 1e3 * t / l.mp, l.cpu_ns, l.clean, c.mp / l.mp);
					fflush(stdout);
				}
			}
	gres.nthreads = nthreads;
	memcpy(gres.threads, threads, sizeof(int) * (size_t)nthreads);
	gres.done = true;
}

/* --- summary: issue 9's acceptance criteria -------------------------------- */

static int grid_index(int threads)
{
	for (int i = 0; i < gres.nthreads; i++)
		if (gres.threads[i] == threads)
			return i;
	return -1;
}

static const char *verdict(bool ok)
{
	return ok ? "MEETS" : "MISSES";
}

/* Order-0 private cached pair, per-thread ns, worst N, against the locked pair. */
static void summary_pair(int threads)
{
	int i = grid_index(threads);
	double worst = 0, lock = 0;
	size_t wn = 0;

	if (i < 0)
		return;
	for (int k = 0; k < GRID_NS; k++) {
		double ns = 1e3 * threads / gres.c[0][0][k][i].mp;

		if (ns > worst) {
			worst = ns;
			wn = gres.ns[0][k];
			lock = 1e3 * threads / gres.l[0][0][k][i].mp;
		}
	}
	printf("criterion: cached order-0 pair, %d thread%s, worst N (%zu): %.1f ns per pair; "
	       "baseline locked pair %.1f ns (%.2fx); target <= 10 ns: %s\n", threads,
	       threads > 1 ? "s" : "", wn, worst, lock, lock / worst, verdict(worst <= 10));
}

/* The bulk criterion (allocations, attached) and the same ratio for the pair and unattached. */
static void summary_bulk(void)
{
	static const char *const what[2] = { "allocations", "alloc+free pair" };

	for (int attached = 1; attached >= 0; attached--)
		for (int w = 0; w < 2; w++) {
			const char *tag = attached && !w ? "criterion" : "also";

			printf("%s: bulk %s %s, worst N (%zu): %.1f ns per frame; baseline singles "
			       "%.1f ns (%.2fx); target >= 1.5x: %s\n", tag,
			       attached ? "attached" : "unattached", what[w],
			       bulk_worst[attached][w].n, bulk_worst[attached][w].bulk,
			       bulk_worst[attached][w].single, bulk_worst[attached][w].ratio,
			       verdict(bulk_worst[attached][w].ratio >= 1.5));
		}
}

/* The machine's factor beside the two-thread criteria (median and range). */
static void summary_host(void)
{
	double lo, hi;

	if (!host.n)
		return;
	qsort(host.ratio, (size_t)host.n, sizeof(host.ratio[0]), cmp_double);
	lo = host.ratio[0];
	hi = host.ratio[host.n - 1];
	printf("machine: a register loop sharing nothing, 2 threads / 1 thread CPU time, %d samples "
	       "among the runs: median %.2fx (%.2fx-%.2fx); above 1.0 the host slows a CPU when "
	       "both run, and two-thread figures carry that factor\n", host.n,
	       median(host.ratio, (size_t)host.n), lo, hi);
}

static void summary(void)
{
	int one = grid_index(1), two = grid_index(2);

	printf("# summary: issue 9's acceptance criteria (private frees; ns per pair per thread)\n");
	if (gres.done) {
		summary_pair(1);
		summary_pair(2);
	}
	if (gres.done && one >= 0 && two >= 0) {
		double worst = 0, b = 0, f = 0;
		size_t wn = 0;

		for (int k = 0; k < GRID_NS; k++) {
			double n1 = 1e3 / gres.c[1][0][k][one].mp;
			double n2 = 2e3 / gres.c[1][0][k][two].mp;

			if (n2 / n1 > worst) {
				worst = n2 / n1;
				b = n1;
				f = n2;
				wn = gres.ns[1][k];
			}
		}
		printf("criterion: order-9 pair, 2 threads, worst N (%zu): %.1f ns; baseline 1 thread "
		       "%.1f ns (%.2fx); target <= 1.5x: %s\n", wn, f, b, worst,
		       verdict(worst <= 1.5));
		worst = 0;
		for (int k = 0; k < GRID_NS; k++) {
			double sc = gres.c[0][0][k][two].mp / gres.c[0][0][k][one].mp;

			if (!worst || sc < worst) {
				worst = sc;
				b = gres.c[0][0][k][one].mp;
				f = gres.c[0][0][k][two].mp;
				wn = gres.ns[0][k];
			}
		}
		printf("criterion: order-0 cached scaling 1 -> 2 threads, worst N (%zu): %.1f Mpairs/s; "
		       "baseline 1 thread %.1f Mpairs/s (%.2fx); target >= 1.9x: %s\n", wn, f, b,
		       worst, verdict(worst >= 1.9));
	}
	for (int k = 0; thp9.reps && k < GRID_NS; k++)
		printf("criterion: order-9 pair, 2 threads, N = %zu (--thp9, median of %d): %.1f ns; "
		       "baseline 1 thread %.1f ns (%.2fx); target <= 1.5x: %s\n", thp9.n[k],
		       thp9.reps, thp9.two[k], thp9.one[k], thp9.two[k] / thp9.one[k],
		       verdict(thp9.two[k] <= 1.5 * thp9.one[k]));
	for (int k = 0; thp9.reps && k < GRID_NS; k++)
		if (thp9.nq[k])
			printf("also: order-9 pair, 2 threads, N = %zu, the %d run pairs of %d whose "
			       "machine sample was <= %.2fx: median 2thr/1thr %.2fx; target <= 1.5x: "
			       "%s\n", thp9.n[k], thp9.nq[k], thp9.reps, HOST_QUIET, thp9.quiet[k],
			       verdict(thp9.quiet[k] <= 1.5));
		else
			printf("also: order-9 pair, 2 threads, N = %zu: no run pair of %d had a machine "
			       "sample <= %.2fx\n", thp9.n[k], thp9.reps, HOST_QUIET);
	if (bulk_done)
		summary_bulk();
	summary_host();
}

/* --- false-sharing experiment ------------------------------------------------ */

/*
 * Two pinned threads each cycle one frame through their cache (alloc+free,
 * N = 1).  The frames are chosen by pfn distance: in the same 8-frame group
 * (their link[] words share a cache line and so do their state bytes), in
 * the same 64-frame group (only the state bytes share a line), or 4096
 * frames apart (nothing shared).  Only the metadata layout differs.
 */
#define SHARE_WINDOWS 101

struct share_arg {
	uint64_t pfn;
	int cpu;
	size_t pairs; /* per window */
	pthread_barrier_t *bar;
	bool control; /* @pfn is a byte offset into probe_bytes */
	double ns[SHARE_WINDOWS];
	bool clean[SHARE_WINDOWS]; /* on its CPU >= CLEAN_PERMILLE of the window */
};

/*
 * The control: no allocator, each thread increments its own byte @dist
 * bytes from the other's.  On hardware where two CPUs pay for a line that
 * moves between them, distance 1 (one line) costs far more than 4096.
 */
static unsigned char probe_bytes[8192] __attribute__((aligned(64)));

static void probe(struct share_arg *a)
{
	unsigned char *b = &probe_bytes[a->pfn];

	for (size_t i = 0; i < a->pairs * 8; i++)
		__atomic_store_n(b, (unsigned char)(__atomic_load_n(b, __ATOMIC_RELAXED) + 1),
				 __ATOMIC_RELAXED);
}

/* Windows start together (a barrier each), so both threads run in each. */
static void *share_worker(void *arg)
{
	struct share_arg *a = arg;

	pin(a->cpu);
	if (a->control) {
		for (int w = 0; w < SHARE_WINDOWS; w++) {
			double t0, w0, cpu;

			pthread_barrier_wait(a->bar);
			t0 = cpu_now();
			w0 = now();
			probe(a);
			cpu = cpu_now() - t0;
			a->clean[w] = cpu * 1000 >= (now() - w0) * CLEAN_PERMILLE;
			a->ns[w] = cpu * 1e9 / (double)(a->pairs * 8);
		}
		return NULL;
	}
	if (gmm_thread_attach(pool))
		die("attach");
	if (gmm_free(pool, a->pfn, 0)) /* the only frame of this cache */
		die("gmm_free");
	for (int w = 0; w < SHARE_WINDOWS; w++) {
		double t0;

		double w0, cpu;

		pthread_barrier_wait(a->bar);
		t0 = cpu_now();
		w0 = now();
		for (size_t i = 0; i < a->pairs; i++)
			gmm_free(pool, alloc0(), 0);
		cpu = cpu_now() - t0;
		a->clean[w] = cpu * 1000 >= (now() - w0) * CLEAN_PERMILLE;
		a->ns[w] = cpu * 1e9 / (double)a->pairs;
	}
	if (alloc0() != a->pfn) /* keep it allocated for the next run */
		die("the cached frame changed");
	gmm_thread_detach(pool);
	return NULL;
}

/* Median over the clean windows of the slower thread's CPU ns per pair (@clean: how many). */
static double share_run(int nr, uint64_t base, uint64_t dist, bool control, int *clean)
{
	struct share_arg a[2];
	pthread_t th[2];
	pthread_barrier_t bar;
	double w[SHARE_WINDOWS];

	pthread_barrier_init(&bar, NULL, (unsigned int)nr);
	for (int i = 0; i < nr; i++) {
		a[i] = (struct share_arg){ .pfn = base + (uint64_t)i * dist, .cpu = i, .control = control,
					   .pairs = (size_t)(50000 * scale), .bar = &bar };
		pthread_create(&th[i], NULL, share_worker, &a[i]);
	}
	for (int i = 0; i < nr; i++)
		pthread_join(th[i], NULL);
	*clean = 0;
	for (int k = 0; k < SHARE_WINDOWS; k++)
		if (a[0].clean[k] && (nr == 1 || a[1].clean[k]))
			w[(*clean)++] = nr == 2 && a[1].ns[k] > a[0].ns[k] ? a[1].ns[k] : a[0].ns[k];
	pthread_barrier_destroy(&bar);
	if (!*clean)
		return 0;
	qsort(w, (size_t)*clean, sizeof(w[0]), cmp_double);
	return w[*clean / 2];
}

static void bench_share(void)
{
	static const struct { const char *what; uint64_t dist; bool control; } cases[] = {
		{ "link+state line shared (distance 1)", 1, false },
		{ "state line shared (distance 8)", 8, false },
		{ "nothing shared (distance 4096)", 4096, false },
		{ "control, byte stores: one line", 1, true },
		{ "control, byte stores: 4096 B apart", 4096, true },
	};
	enum { NV = 16384 };
	uint64_t *v = malloc(NV * sizeof(*v)), base = GMM_PFN_NONE;

	/* frames taken by an unattached thread; find one with all three partners */
	for (int i = 0; i < NV; i++)
		v[i] = alloc0();
	qsort(v, NV, sizeof(v[0]), cmp_u64);
	for (int i = 0; i + 4096 < NV && base == GMM_PFN_NONE; i++)
		if (!(v[i] & 63) && v[i + 8] == v[i] + 8 && v[i + 4096] == v[i] + 4096)
			base = v[i];
	if (base == GMM_PFN_NONE)
		die("no run of 4097 frames");
	printf("# share [%s]: two pinned threads, one frame each, N = 1; CPU ns per pair of the "
	       "slower thread,\n# median of the clean windows of %d (both threads on their CPU "
	       ">= %d%% of the window; 'cl' counts them)\n", VARIANT, SHARE_WINDOWS,
	       CLEAN_PERMILLE / 10);
	printf("%-38s %8s %4s %8s %4s %10s\n", "frames", "1thr_ns", "cl", "2thr_ns", "cl",
	       "2thr/1thr");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int c1, c2;
		uint64_t b = cases[c].control ? 0 : base;
		double one = share_run(1, b, cases[c].dist, cases[c].control, &c1);
		double two = share_run(2, b, cases[c].dist, cases[c].control, &c2);

		printf("%-38s %8.1f %4d %8.1f %4d %9.2fx\n", cases[c].what, one, c1, two, c2,
		       two / one);
	}
	gmm_free_bulk(pool, NV, v);
	free(v);
}

/* --- drain latency ------------------------------------------------------------ */

struct drain_arg {
	size_t pages;
	bool busy;
	pthread_barrier_t *bar;
	int *stop;
};

static void fill(uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = alloc0();
	for (size_t i = 0; i < n; i++)
		gmm_free(pool, v[i], 0);
}

static void *drain_worker(void *arg)
{
	struct drain_arg *a = arg;
	uint64_t *v = malloc(a->pages * sizeof(*v));

	if (gmm_thread_attach(pool))
		die("attach");
	fill(v, a->pages);
	if (a->busy) {
		pthread_barrier_wait(a->bar);
		while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
			fill(v, a->pages);
			gmm_thread_quiescent();
		}
	} else {
		/* offline between rounds: refill, go offline, let the drainer measure */
		gmm_thread_offline();
		pthread_barrier_wait(a->bar);
		for (;;) {
			pthread_barrier_wait(a->bar); /* drained */
			if (__atomic_load_n(a->stop, __ATOMIC_ACQUIRE))
				break;
			gmm_thread_online();
			fill(v, a->pages);
			gmm_thread_offline();
			pthread_barrier_wait(a->bar); /* refilled */
		}
		gmm_thread_online();
	}
	gmm_thread_detach(pool);
	free(v);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median drain time in microseconds; @frames receives the median frames drained. */
static double drain_run(int nr, size_t pages, bool busy, uint64_t *frames)
{
	enum { ROUNDS = 41 };
	struct drain_arg a = { .pages = pages, .busy = busy };
	pthread_t th[MAX_THREADS];
	pthread_barrier_t bar;
	double us[ROUNDS];
	uint64_t fr[ROUNDS];
	int stop = 0;

	a.bar = &bar;
	a.stop = &stop;
	pthread_barrier_init(&bar, NULL, (unsigned int)nr + 1);
	for (int i = 0; i < nr; i++)
		pthread_create(&th[i], NULL, drain_worker, &a);
	pthread_barrier_wait(&bar);
	for (int r = 0; r < ROUNDS; r++) {
		double t0;

		if (busy)
			usleep(2000);
		t0 = now();
		fr[r] = gmm_drain_all_caches(pool);
		us[r] = (now() - t0) * 1e6;
		if (!busy) {
			if (r == ROUNDS - 1)
				__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
			pthread_barrier_wait(&bar);
			if (r < ROUNDS - 1)
				pthread_barrier_wait(&bar);
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < nr; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	qsort(us, ROUNDS, sizeof(us[0]), cmp_double);
	for (int i = 1; i < ROUNDS; i++) /* sort frames too, for a median */
		for (int j = i; j > 0 && fr[j - 1] > fr[j]; j--) {
			uint64_t x = fr[j];

			fr[j] = fr[j - 1];
			fr[j - 1] = x;
		}
	*frames = fr[ROUNDS / 2];
	return us[ROUNDS / 2];
}

static void bench_drain(void)
{
	static const int nrs[] = { 1, 2, 4, 8 };
	static const size_t pages[] = { 64, 512 };

	printf("# drain [%s]: gmm_drain_all_caches() median latency (41 drains), us\n", VARIANT);
	printf("%-5s %-8s %-6s %14s %12s %16s\n", "mode", "threads", "pages", "frames_drained",
	       "latency_us", "us_per_1k_frames");
	for (int busy = 0; busy < 2; busy++)
		for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++)
			for (size_t i = 0; i < sizeof(nrs) / sizeof(nrs[0]); i++) {
				uint64_t fr;
				double us = drain_run(nrs[i], pages[p], busy, &fr);

				printf("drain %-4s %-8d %-6zu %14llu %12.1f %16.1f\n",
				       busy ? "busy" : "off", nrs[i], pages[p],
				       (unsigned long long)fr, us,
				       fr ? us * 1000.0 / (double)fr : 0.0);
			}
}

static void bench_thp(const int *threads, int nthreads);
static void bench_thp9(int reps);

static int parse_threads(const char *s, int *out)
{
	int n = 0;

	while (*s && n < 16) {
		int v = atoi(s);

		if (v < 1 || v > MAX_THREADS) {
			fprintf(stderr, "bench-pcp: bad thread count in --threads\n");
			exit(2);
		}
		out[n++] = v;
		s = strchr(s, ',');
		if (!s)
			break;
		s++;
	}
	return n;
}

static int max_threads(const int *threads, int n)
{
	int m = 1;

	for (int i = 0; i < n; i++)
		m = threads[i] > m ? threads[i] : m;
	return m;
}

int main(int argc, char **argv)
{
	struct gmm_pool_config cfg;
	int threads[16] = { 1, 2 }, nthreads = 2;
	bool pair = false, bulk = false, scl = false, drain = false, share = false, grid = false;
	bool thp = false, thp9_run = false, threads_given = false;
	size_t insn = 0;
	int reps = 5;
	uint64_t pool_mib = 2048;
	bool pool_given = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pair"))
			pair = true;
		else if (!strcmp(argv[i], "--bulk"))
			bulk = true;
		else if (!strcmp(argv[i], "--scale"))
			scl = true;
		else if (!strcmp(argv[i], "--drain"))
			drain = true;
		else if (!strcmp(argv[i], "--share"))
			share = true;
		else if (!strcmp(argv[i], "--grid"))
			grid = true;
		else if (!strcmp(argv[i], "--thp"))
			thp = true;
		else if (!strcmp(argv[i], "--insn") && i + 1 < argc)
			insn = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--pool-mib") && i + 1 < argc) {
			pool_mib = strtoull(argv[++i], NULL, 10);
			pool_given = true;
			if (pool_mib < 64 || pool_mib > (1ull << 22)) {
				fprintf(stderr, "bench-pcp: --pool-mib takes 64..4194304\n");
				return 2;
			}
		}
		else if (!strcmp(argv[i], "--thp9"))
			thp9_run = true;
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			reps = atoi(argv[++i]);
			if (reps < 1 || reps > THP9_REPS_MAX) {
				fprintf(stderr, "bench-pcp: --reps takes 1..%d\n", THP9_REPS_MAX);
				return 2;
			}
		}
		else if (!strcmp(argv[i], "--quick"))
			scale = 0.1;
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			nthreads = parse_threads(argv[++i], threads);
			threads_given = true;
		}
		else {
			fprintf(stderr, "usage: %s [--pair] [--bulk] [--scale] [--drain] [--grid] "
				"[--share] [--thp] [--thp9] [--reps R] [--threads 1,2,...] [--quick] "
				"[--insn N] [--pool-mib M]\n", argv[0]);
			return 2;
		}
	}
	if (insn)
		pair = bulk = scl = drain = share = grid = thp = thp9_run = false;
	else if (!pair && !bulk && !scl && !drain && !share && !grid && !thp && !thp9_run)
		pair = bulk = scl = drain = share = grid = thp = thp9_run = true;
	if (grid && !threads_given) {
		threads[2] = 4;
		nthreads = 3;
	}
	/*
	 * The grid and --thp hold up to 2 x 128 THPs (512 MiB) per thread (own
	 * N and a ring), and a cache holds at most high_max = managed / 8 /
	 * threads: 8 x 512 MiB per thread keeps them all cached.
	 */
	if (!pool_given && (grid || thp || thp9_run))
		pool_mib = 8 * 2 * 128 * 2 * (uint64_t)max_threads(threads, nthreads) + 2048;
	gmm_pool_config_init(&cfg, pool_mib * MIB);
	if (gmm_pool_create(&cfg, &pool))
		die("gmm_pool_create");
	if (insn)
		bench_insn(insn);
	if (pair)
		bench_pair();
	if (bulk)
		bench_bulk();
	if (scl)
		bench_scale(threads, nthreads);
	if (drain)
		bench_drain();
	if (share)
		bench_share();
	if (grid)
		bench_grid(threads, nthreads);
	if (thp)
		bench_thp(threads, nthreads);
	if (thp9_run)
		bench_thp9(reps);
	summary();
	if (gmm_pool_check(pool) || gmm_pool_nr_free(pool) != gmm_pool_nr_pages(pool))
		die("pool not intact after the benchmark");
	gmm_pool_destroy(pool);
	return 0;
}

/* --- the zone-lock path: THP pairs and unattached order 0 ---------------------- */

/* Zone lock rounds (refills + trims) per 1000 pairs of the run between @a and @b. */
static double lock_rounds(const struct gmm_pcp_stats *a, const struct gmm_pcp_stats *b,
			  double pairs)
{
	return (double)(b->refill - a->refill + b->drain - a->drain) * 1e3 / pairs;
}

static void thp_row(const char *what, unsigned int order, size_t n, bool cached, bool cross,
		    const int *threads, int nthreads)
{
	size_t pairs = (size_t)((order ? 400000 : 4000000) * scale) / GRID_WINDOWS;
	double base = 0;

	for (int i = 0; i < nthreads; i++) {
		int t = threads[i];
		size_t rounds = pairs / n ? pairs / n : 1;
		double all = (double)t * (double)(rounds * n) * (GRID_WINDOWS + 1);
		struct gmm_pcp_stats s0, s1;
		struct grid_res r;

		gmm_pcp_stats(pool, &s0);
		r = grid_run(t, order, n, cached, cross);
		gmm_pcp_stats(pool, &s1);
		if (!base)
			base = 1e3 / r.mp;
		printf("%-18s %-5u %-4zu %-3d | %8.2f %7.1f %7.1f %3d | %6.2fx | %7.1f\n", what,
		       order, n, t, r.mp, 1e3 * t / r.mp, r.cpu_ns, r.clean,
		       1e3 * t / r.mp / base, cached ? lock_rounds(&s0, &s1, all) : 0.0);
		fflush(stdout);
	}
}

static void bench_thp(const int *threads, int nthreads)
{
	static const size_t ns[] = { 1, 64, 128 };

	printf("# thp [%s]: alloc N + free N per thread (as --grid), threads pinned, %d windows\n"
	       "# ns: per pair per thread (threads / Mp); x1thr: ns over the first thread count's;\n"
	       "# locks/1k: refills + trims (zone lock rounds) per 1000 pairs\n", VARIANT,
	       GRID_WINDOWS);
	printf("%-18s %-5s %-4s %-3s | %8s %7s %7s %3s | %7s | %7s\n", "path", "order", "N",
	       "thr", "Mp", "ns", "cpu_ns", "cl", "x1thr", "locks/1k");
	for (size_t k = 0; k < 3; k++)
		thp_row("cached private", GMM_PAGEBLOCK_ORDER, ns[k], true, false, threads,
			nthreads);
	for (size_t k = 0; k < 3; k++)
		thp_row("cached cross", GMM_PAGEBLOCK_ORDER, ns[k], true, true, threads, nthreads);
	for (size_t k = 0; k < 3; k++)
		thp_row("unattached", GMM_PAGEBLOCK_ORDER, ns[k], false, false, threads, nthreads);
	for (size_t k = 0; k < 3; k++)
		thp_row("unattached", 0, ns[k], false, false, threads, nthreads);
}

/* --- the order-9 criterion: two threads against one, repeated ------------------ */

/*
 * One thread, then two, @reps times in alternation, so that a noisy spell
 * of the machine hits both about equally; per N the medians of the per-run
 * figures (ns per pair per thread, as --grid: threads / aggregate Mp) and
 * their ratio.  The zone lock rounds (refills + trims) per 1000 pairs show
 * whether the batches still go through the zone lock.
 */
static void bench_thp9(int reps)
{
	static const size_t ns[GRID_NS] = { 1, 64, 128 };
	double quick = scale;

	/* full windows even with --quick: a quick window holds one round of
	 * N = 128 and its timer and barrier dominate (a second or so in all) */
	scale = 1.0;

	printf("# thp9 [%s]: order-9 private pairs, alloc N + free N per thread (as --grid), "
	       "1 thread then 2, %d times alternating;\n# ns per pair per thread per run, "
	       "median, 2thr/1thr = median 2 over median 1 (the criterion), med(2/1): median "
	       "of each run pair's ratio;\n# locks/1k: zone lock rounds per 1000 pairs.  On a "
	       "shared machine each CPU's speed changes over seconds:\n# compare the run pairs "
	       "(printed) before reading one ratio; (x): the machine sample just before the pair, "
	       "a register loop's 2thr/1thr\n", VARIANT, reps);
	printf("%-4s %-8s %-8s %-8s %-9s %-9s %-9s  %s\n", "N", "1thr_ns", "2thr_ns", "2thr/1thr",
	       "med(2/1)", "locks1/1k", "locks2/1k", "runs (1thr/2thr ns(machine sample))");
	for (int k = 0; k < GRID_NS; k++) {
		double one[THP9_REPS_MAX], two[THP9_REPS_MAX], ratio[THP9_REPS_MAX];
		double ctl[THP9_REPS_MAX], quiet[THP9_REPS_MAX];
		int nq = 0;
		double lk[2] = { 0, 0 }, pairs[2] = { 0, 0 };
		char runs[THP9_REPS_MAX * 24] = "";
		size_t len = 0;

		for (int r = 0; r < reps; r++)
			for (int t = 1; t <= 2; t++) {
				size_t per = (size_t)(400000 * scale) / GRID_WINDOWS;
				struct gmm_pcp_stats s0, s1;
				struct grid_res res;
				double all;

				if (t == 1)
					ctl[r] = host_sample();
				per = per / ns[k] ? per / ns[k] * ns[k] : ns[k];
				all = (double)t * (double)per * (GRID_WINDOWS + 1);
				gmm_pcp_stats(pool, &s0);
				res = grid_run(t, GMM_PAGEBLOCK_ORDER, ns[k], true, false);
				gmm_pcp_stats(pool, &s1);
				(t == 1 ? one : two)[r] = 1e3 * t / res.mp;
				lk[t - 1] += lock_rounds(&s0, &s1, all) * all;
				pairs[t - 1] += all;
			}
		for (int r = 0; r < reps; r++) {
			len += (size_t)snprintf(runs + len, sizeof(runs) - len, " %.0f/%.0f(%.2f)",
						one[r], two[r], ctl[r]);
			ratio[r] = two[r] / one[r];
			if (ctl[r] <= HOST_QUIET)
				quiet[nq++] = ratio[r];
		}
		thp9.quiet[k] = nq ? median(quiet, (size_t)nq) : 0;
		thp9.nq[k] = nq;
		thp9.n[k] = ns[k];
		thp9.one[k] = median(one, (size_t)reps);
		thp9.two[k] = median(two, (size_t)reps);
		printf("%-4zu %8.1f %8.1f %8.2fx %8.2fx %9.2f %9.2f %s\n", ns[k], thp9.one[k],
		       thp9.two[k], thp9.two[k] / thp9.one[k], median(ratio, (size_t)reps), lk[0] / pairs[0],
		       lk[1] / pairs[1], runs);
		fflush(stdout);
	}
	thp9.reps = reps;
	scale = quick;
}
