/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-collapse.c - guest RAM on aligned 2 MiB blocks after a churn,
 * with khugepaged on vs off in the same run.
 *
 * A guest address space in libgmm (no KVM): RAM first backed by 2 MiB
 * blocks (2 MiB faults on), then a churn that discards random 4 KiB pages
 * (balloon inflate, free page reporting) and backs them again in another
 * random order through gmm_guest_write() (the guest touching them again),
 * so that almost every 2 MiB range ends up on scattered 4 KiB frames.  The
 * pool holds 25% more than the guest's RAM, so after the first collapses
 * the order-9 blocks come from direct compaction.  Then writer threads
 * write checked patterns through the guest mapping while khugepaged works,
 * and the share of guest RAM on aligned 2 MiB blocks is sampled until it
 * reaches 100% (or stops moving).  The baseline is the same churn with
 * khugepaged off, in the same run.  Goal: >= 99% with collapse; no lost
 * write (mismatched pages: must be 0).
 *
 * Measured on a shmem (memfd) pool and on a hugetlbfs one (reserves 2 MiB
 * hugepages through /proc/sys/vm/nr_hugepages as root, gives back what it
 * reserved); on hugetlbfs every unit is a host huge page, so the share is
 * 100% either way and khugepaged has nothing to do.
 *
 * The guest's write stop (--write-stop) is the one collapse and compaction
 * use: mprotect (default), uffd-wp (a userfaultfd with
 * UFFD_FEATURE_WP_HUGETLBFS_SHMEM), or pause, with the writer threads
 * standing in for vCPUs (a paused writer parks before its next page).
 *
 * Usage: bench-collapse [--quick] [--ram MIB] [--rounds N] [--seed N] [--extra PCT]
 *        [--write-stop mprotect|uffd-wp|pause] [--no-hugetlb]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>

#include "guest_writer.h"

#define MIB (1ull << 20)
#define CHUNK (2 * MIB)
#define NR_WRITERS 2
#define POOL_EXTRA_PCT 25    /* pool = guest RAM + this share (default of --extra) */
/* 4 KiB pages discarded and re-backed per round, per mille of RAM: enough
 * for ~2.5 pages per 2 MiB chunk and round, few enough that the scattered
 * pages' host mappings stay well below vm.max_map_count (65530) at 1 GiB */
#define CHURN_PERMILLE 5
#define POOL_BLOCK (8 * MIB) /* memory block: the pool's size is a multiple */
#define SAMPLE_MS 10
#define STALL_MS 5000        /* no progress for this long: stop waiting */
#define GOAL_PCT 99.0
#define HUGEPAGES_PATH "/proc/sys/vm/nr_hugepages"

struct opts {
	uint64_t ram_mib;
	unsigned int rounds;
	uint64_t seed;
	bool hugetlb;
	int write_stop; /* enum gmm_write_stop */
};

struct result {
	double share_churn;   /* after the churn */
	double share_end;     /* at the end */
	double secs_goal;     /* from the churn's end to GOAL_PCT; < 0: not reached */
	double secs_end;      /* to the end */
	double churn_secs;
	uint64_t bad, waits, passes;
	uint64_t maps_churn;  /* host mappings after the churn */
	double cpu_secs;      /* the khugepaged thread's CPU time (user + system) */
	struct gmm_guest_stats st;
	struct gmm_collapse_stats ks;
	struct gmm_compact_events ce;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* CPU seconds of the thread named gmm-khugepaged (its /proc stat), or 0. */
static double khugepaged_cpu(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	double secs = 0;

	while (d && (e = readdir(d))) {
		char path[300], buf[512], *p;
		unsigned long ut, st;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		f = e->d_name[0] != '.' ? fopen(path, "re") : NULL;
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		/* after "(comm)": state and fields 4..13, then utime and stime */
		if (p && strstr(buf, "(gmm-khugepaged)") &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			   &st) == 2)
			secs += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	}
	if (d)
		closedir(d);
	return secs;
}

static double share(struct gmm_guest *g)
{
	struct gmm_guest_stats st;

	if (gmm_guest_stats(g, &st) || !st.ram_bytes)
		return 0;
	return 100.0 * (double)st.huge_bytes / (double)st.ram_bytes;
}

static int fail(const char *what)
{
	fprintf(stderr, "bench-collapse: %s: %s\n", what, gmm_last_error());
	return -1;
}

static unsigned int pool_extra_pct = POOL_EXTRA_PCT;

/* Guest RAM + pool_extra_pct, in whole memory blocks. */
static uint64_t pool_bytes(uint64_t ram)
{
	uint64_t b = ram + ram * pool_extra_pct / 100;

	return (b + POOL_BLOCK - 1) / POOL_BLOCK * POOL_BLOCK;
}

static struct gmm_pool *make_pool(uint64_t page_size, uint64_t bytes)
{
	struct gmm_memfd_config mc = { .page_size = page_size };
	struct gmm_pool_config cfg;
	struct gmm_pool *p = NULL;
	void *ctx;

	if (gmm_memfd_create(&mc, &ctx)) {
		fail("memfd backing");
		return NULL;
	}
	gmm_pool_config_init(&cfg, bytes);
	cfg.block_bytes = POOL_BLOCK;
	cfg.backing = &gmm_backing_memfd;
	cfg.backing_ctx = ctx;
	if (gmm_pool_create(&cfg, &p)) {
		fail("pool");
		return NULL;
	}
	return p;
}

/*
 * The churn: each round discards CHURN_PERMILLE of the guest's units at random
 * and writes them again in another random order.  @unit: pages per discard
 * (1, or a hugetlbfs page).
 */
static int churn(struct gmm_guest *g, uint64_t ram, uint64_t unit, unsigned int rounds,
		 uint64_t seed)
{
	uint64_t nr_units = ram / GMM_PAGE_SIZE / unit, n = nr_units * CHURN_PERMILLE / 1000 + 1;
	uint64_t *pick = malloc(n * sizeof(*pick)), ubytes = unit * GMM_PAGE_SIZE;
	static uint64_t page[GW_WORDS];

	if (!pick)
		return -1;
	for (unsigned int r = 0; r < rounds; r++) {
		for (uint64_t i = 0; i < n; i++) {
			pick[i] = rnd(&seed) % nr_units;
			if (gmm_guest_discard(g, pick[i] * ubytes, ubytes)) {
				free(pick);
				return fail("discard");
			}
		}
		for (uint64_t i = n; i > 1; i--) { /* shuffle */
			uint64_t j = rnd(&seed) % i, t = pick[i - 1];

			pick[i - 1] = pick[j];
			pick[j] = t;
		}
		for (uint64_t i = 0; i < n; i++) {
			page[0] = pick[i];
			if (gmm_guest_write(g, pick[i] * ubytes, page, sizeof(page))) {
				free(pick);
				return fail("re-back");
			}
		}
	}
	free(pick);
	/* every page backed again (a unit discarded twice in a round is backed
	 * by its first write; the others were never unbacked) */
	return gmm_guest_populate(g, 0, ram) ? fail("populate") : 0;
}

/* Sample the share until it reaches 100%, or has not moved for STALL_MS. */
static void wait_share(struct gmm_guest *g, double t0, bool on, struct result *res)
{
	double last = share(g), last_t = now();

	res->secs_goal = last >= GOAL_PCT ? 0 : -1;
	while (on && last < 100.0 && now() - last_t < STALL_MS / 1000.0) {
		double s;

		usleep(SAMPLE_MS * 1000);
		s = share(g);
		if (s > last) {
			last = s;
			last_t = now();
		}
		if (res->secs_goal < 0 && s >= GOAL_PCT)
			res->secs_goal = now() - t0;
	}
	res->share_end = last;
	res->secs_end = on ? last_t - t0 : 0;
}

static void khugepaged_cfg(struct gmm_khugepaged_config *c)
{
	gmm_khugepaged_config_init(c);
	c->pages_to_scan = 4096;
	c->scan_sleep_millisecs = 10;
	c->alloc_sleep_millisecs = 100;
}

/* A guest with the write stop asked for (*@uffd: its userfaultfd, or -1). */
static int make_guest(struct gmm_pool *p, const struct opts *o, int *uffd, struct gmm_guest **g)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
	struct gmm_guest_config gc;

	gmm_guest_config_init(&gc);
	gc.write_stop = o->write_stop;
	*uffd = -1;
	if (o->write_stop == GMM_WSTOP_UFFD_WP) {
		*uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (*uffd < 0 || ioctl(*uffd, UFFDIO_API, &api))
			return fail("userfaultfd with write-protect");
		gc.uffd = *uffd;
		gc.uffd_features = api.features;
	}
	if (gmm_guest_create(p, &gc, g))
		return -1;
	if (o->write_stop == GMM_WSTOP_PAUSE)
		return gmm_guest_set_pause(*g, gw_pause_ops(), NULL);
	return 0;
}

static int run(uint64_t page_size, uint64_t ram, bool on, const struct opts *o,
	       struct result *res)
{
	uint64_t unit = page_size ? page_size / GMM_PAGE_SIZE : 1;
	struct gmm_pool *p = make_pool(page_size, pool_bytes(ram));
	struct gmm_khugepaged_config kc;
	struct gw_writer ws[NR_WRITERS];
	struct gmm_compact_events ce0;
	struct gmm_memslot s;
	struct gmm_guest *g = NULL;
	int uffd = -1;
	double t0;
	int err = -1;

	memset(res, 0, sizeof(*res));
	if (!p)
		return -1;
	if (make_guest(p, o, &uffd, &g) || gmm_guest_add_ram(g, 0, ram, 0, &s) ||
	    gmm_guest_populate(g, 0, ram)) {
		fail("guest");
		goto out;
	}
	khugepaged_cfg(&kc);
	if (on && gmm_khugepaged_start(p, &kc)) {
		fail("khugepaged");
		goto out;
	}
	t0 = now();
	if (churn(g, ram, unit, o->rounds, o->seed))
		goto out;
	res->churn_secs = now() - t0;
	res->share_churn = share(g);
	gmm_guest_stats(g, &res->st);
	res->maps_churn = res->st.host_mappings;
	gmm_compact_stats(p, &ce0);
	gw_install(g);
	if (gw_start(ws, NR_WRITERS, s.hva, ram / GMM_PAGE_SIZE, NULL)) {
		fprintf(stderr, "bench-collapse: cannot start the writers\n");
		goto out;
	}
	t0 = now();
	wait_share(g, t0, on, res);
	while (gw_min_passes(ws, NR_WRITERS) < 2)
		usleep(SAMPLE_MS * 1000);
	res->cpu_secs = khugepaged_cpu();
	gmm_khugepaged_stop(p);
	res->bad = gw_stop(ws, NR_WRITERS);
	res->bad += gw_verify(ws, NR_WRITERS, g, 0);
	res->passes = gw_min_passes(ws, NR_WRITERS);
	res->waits = __atomic_exchange_n(&gw_waits, 0, __ATOMIC_RELAXED);
	gmm_guest_stats(g, &res->st);
	gmm_khugepaged_stats(p, &res->ks, NULL);
	gmm_compact_stats(p, &res->ce);
	res->ce.compact_stall -= ce0.compact_stall;
	res->ce.compact_success -= ce0.compact_success;
	res->ce.pgmigrate_success -= ce0.pgmigrate_success;
	err = gmm_pool_check(p) ? fail("pool check") : 0;
out:
	gmm_khugepaged_stop(p);
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	if (uffd >= 0)
		close(uffd);
	return err;
}

static void print_run(const char *name, const struct result *r)
{
	printf("  %-14s on 2 MiB blocks: %6.2f%% after the churn, %6.2f%% at the end "
	       "(%.0f%%: %s%.3f s, khugepaged CPU %.3f s); host mappings %llu -> %llu\n", name,
	       r->share_churn, r->share_end, GOAL_PCT, r->secs_goal < 0 ? "never " : "",
	       r->secs_goal < 0 ? 0 : r->secs_goal, r->cpu_secs,
	       (unsigned long long)r->maps_churn, (unsigned long long)r->st.host_mappings);
	printf("  %-14s collapsed %llu chunks (thp_collapse_alloc %llu, failed %llu), full scans "
	       "%llu; compact stalls %llu, pages migrated %llu; writers: %llu passes, %llu "
	       "writes waited, %llu mismatched pages\n", "",
	       (unsigned long long)r->st.pages_collapsed,
	       (unsigned long long)r->st.thp_collapse_alloc,
	       (unsigned long long)r->st.thp_collapse_alloc_failed,
	       (unsigned long long)r->ks.full_scans, (unsigned long long)r->ce.compact_stall,
	       (unsigned long long)r->ce.pgmigrate_success, (unsigned long long)r->passes,
	       (unsigned long long)r->waits, (unsigned long long)r->bad);
}

/* One backing: off then on; 0 when the goal is met and nothing was lost. */
static int bench(const char *name, uint64_t page_size, const struct opts *o)
{
	uint64_t ram = o->ram_mib * MIB;
	struct result off, on;

	printf("%s: guest RAM %llu MiB in a %llu MiB pool, churn %u rounds of %.1f%% of RAM "
	       "(4 KiB discard + re-back%s), seed %llu\n", name,
	       (unsigned long long)o->ram_mib,
	       (unsigned long long)(pool_bytes(ram) / MIB), o->rounds,
	       CHURN_PERMILLE / 10.0, page_size ? "; hugetlbfs: whole 2 MiB pages" : "",
	       (unsigned long long)o->seed);
	if (run(page_size, ram, false, o, &off) || run(page_size, ram, true, o, &on))
		return 1;
	print_run("khugepaged off", &off);
	print_run("khugepaged on", &on);
	printf("  => share of guest RAM on aligned 2 MiB blocks: %.2f%% with collapse vs %.2f%% "
	       "without (baseline, same run); goal >= %.0f%%: %s; %.3f s to reach it after a "
	       "%.3f s churn; lost writes: %llu\n", on.share_end, off.share_end, GOAL_PCT,
	       on.share_end >= GOAL_PCT ? "met" : "NOT met", on.secs_goal < 0 ? 0 : on.secs_goal,
	       on.churn_secs, (unsigned long long)(on.bad + off.bad));
	return on.share_end < GOAL_PCT || on.bad || off.bad;
}

/* Reserve @n more 2 MiB hugepages; *@added: how many were. */
static int reserve_hugepages(long n, long *added)
{
	FILE *f = fopen(HUGEPAGES_PATH, "r+");
	long cur = -1, got = -1;

	*added = 0;
	if (!f)
		return -errno;
	if (fscanf(f, "%ld", &cur) != 1 || fseek(f, 0, SEEK_SET) ||
	    fprintf(f, "%ld\n", cur + n) < 0 || fflush(f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	f = fopen(HUGEPAGES_PATH, "r");
	if (f && fscanf(f, "%ld", &got) == 1)
		*added = got - cur;
	if (f)
		fclose(f);
	return *added >= n ? 0 : -ENOMEM;
}

static void release_hugepages(long n)
{
	FILE *f = fopen(HUGEPAGES_PATH, "r");
	long cur = -1;

	if (!f)
		return;
	if (fscanf(f, "%ld", &cur) != 1)
		cur = -1;
	fclose(f);
	f = cur >= n ? fopen(HUGEPAGES_PATH, "w") : NULL;
	if (f) {
		fprintf(f, "%ld\n", cur - n);
		fclose(f);
	}
}

static int bench_hugetlb(struct opts o)
{
	long want, added;
	int err;

	/* a quarter of the RAM: the reservation is host-wide */
	o.ram_mib = o.ram_mib / 4 < 16 ? 16 : o.ram_mib / 4 / 2 * 2;
	want = (long)(pool_bytes(o.ram_mib * MIB) / CHUNK + 2);
	err = reserve_hugepages(want, &added);
	if (err) {
		release_hugepages(added);
		printf("hugetlbfs: cannot reserve %ld hugepages through %s (%s): not measured\n",
		       want, HUGEPAGES_PATH, strerror(-err));
		return 1;
	}
	err = bench("hugetlbfs", GMM_HUGEPAGE_2M, &o);
	release_hugepages(added);
	return err;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-collapse [--quick] [--ram MIB] [--rounds N] [--seed N] "
		"[--no-hugetlb]\n"
		"  --quick       64 MiB of guest RAM (default 1024)\n"
		"  --ram MIB     guest RAM, a multiple of 2 (the hugetlbfs run takes a quarter)\n"
		"  --rounds N    churn rounds (default 5)\n"
		"  --seed N      churn seed (default 1)\n"
		"  --extra PCT   pool size beyond the guest's RAM, %% of it (default 25; 110:\n"
		"                every collapse finds a free block, no compaction)\n"
		"  --write-stop mprotect|uffd-wp|pause\n"
		"                the guest's write stop (default mprotect)\n"
		"  --no-hugetlb  shmem only\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "quick", 0, 0, 'q' }, { "ram", 1, 0, 'r' }, { "rounds", 1, 0, 'n' },
		{ "seed", 1, 0, 's' }, { "no-hugetlb", 0, 0, 'H' }, { "help", 0, 0, 'h' },
		{ "extra", 1, 0, 'e' }, { "write-stop", 1, 0, 'w' },
		{ 0, 0, 0, 0 } };
	char *end;
	int c;

	*o = (struct opts){ .ram_mib = 1024, .rounds = 5, .seed = 1, .hugetlb = true,
			    .write_stop = GMM_WSTOP_MPROTECT };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o->ram_mib = 64; break;
		case 'r': o->ram_mib = strtoull(optarg, &end, 0); if (*end) return -1; break;
		case 'n': o->rounds = (unsigned int)strtoul(optarg, &end, 0); if (*end) return -1; break;
		case 's': o->seed = strtoull(optarg, &end, 0); if (*end) return -1; break;
		case 'H': o->hugetlb = false; break;
		case 'e':
			pool_extra_pct = (unsigned int)strtoul(optarg, &end, 0);
			if (*end || pool_extra_pct > 1000)
				return -1;
			break;
		case 'w':
			o->write_stop = gmm_write_stop_parse(optarg);
			if (o->write_stop <= GMM_WSTOP_DEFAULT)
				return -1;
			break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind != argc || !o->ram_mib || o->ram_mib % 2 || o->ram_mib > (1u << 20) ||
	    !o->seed)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int err;

	if (parse(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	printf("khugepaged on: pages_to_scan 4096, scan_sleep_millisecs 10, "
	       "alloc_sleep_millisecs 100, max_ptes_none 0; %d writer threads through the "
	       "mapping; write stop %s\n", NR_WRITERS, gmm_write_stop_name(o.write_stop));
	err = bench("shmem", 0, &o);
	if (o.hugetlb)
		err |= bench_hugetlb(o);
	return err ? 1 : 0;
}
