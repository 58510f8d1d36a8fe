/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-balloon.c - virtio-balloon benchmarks through gmm-vmm's
 * device-level test driver (--qtest: no vCPU; the benchmark plays the
 * guest's driver), each with its baseline from the same run:
 *
 *  inflate  inflate 1 GiB of touched guest RAM in elements of 256 PFNs (as
 *           Linux's driver sends them): the device's time and the memory
 *           syscalls (strace -c attached for the inflate phase only) with
 *           PFNs sorted and coalesced into ranges, against one discard per
 *           4 KiB page (what QEMU and kvmtool do; x-per-page=on).
 *  report   the guest frees 512 MiB it had touched: time until 95% of it is
 *           back with the host (blocks of gmm's memfds), reporting it through the
 *           free page reporting queue (2 MiB ranges, 32 per request, as
 *           Linux's page_reporting does) against the balloon alone (the
 *           host sets a target, the driver inflates 256 PFNs per element).
 *  hugetlb  on a 2 MiB hugetlbfs pool: the share of 128 MiB of inflated
 *           pages actually returned to the host, counting 4 KiB pieces per
 *           2 MiB page across elements (gmm, x-track=unit) against QEMU's
 *           per-element tracking (x-track=element); PFNs in order and
 *           shuffled, and QEMU's best case (whole host pages per element). Reserves hugepages and restores the old count.
 *
 * Usage: bench-balloon GMM_VMM [inflate|report|hugetlb]...  (default: all)
 * Prints text and one JSON line per benchmark.
 */
#include "qtest_lib.h"
#include "../tests/sysfs_long.h"
#include "balloon.h"
#include "bench_clock.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB		(1ULL << 20)
#define PAGE		4096ULL
#define DRV_MEM		(1 * MIB)
#define DRV_END		(32 * MIB)
#define DATA		(64 * MIB)	/* where the benchmarked pages start */
#define LINUX_PFNS	256		/* VIRTIO_BALLOON_ARRAY_PFNS_MAX */
#define REPORT_CHUNK	(2 * MIB)	/* Linux reports pageblocks */
#define REPORT_BATCH	32		/* PAGE_REPORTING_CAPACITY */
#define TOUCH_STEP	(64 * MIB)	/* the test driver's largest memset */

static const char *vmm;

static const uint64_t features = 1ULL << VIRTIO_F_VERSION_1 |
	1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST | 1ULL << VIRTIO_BALLOON_F_STATS_VQ |
	1ULL << VIRTIO_BALLOON_F_REPORTING | 1ULL << VIRTIO_F_EVENT_IDX;

static void driver_up(struct qts *q, struct vdev *d)
{
	vd_probe(q, d, VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_BALLOON, DRV_MEM, DRV_END);
	if (!vd_negotiate(d, features)) {
		fprintf(stderr, "bench-balloon: feature negotiation failed\n");
		exit(1);
	}
	for (unsigned int i = 0; i < BALLOON_NR_QUEUES; i++)
		vd_queue(d, i, 256);
	vd_driver_ok(d);
}

static void touch(struct qts *q, uint64_t gpa, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += TOUCH_STEP)
		qts_ok(q, "memset 0x%llx %llu 0x5a", (unsigned long long)(gpa + off),
		       (unsigned long long)(len - off < TOUCH_STEP ? len - off : TOUCH_STEP));
}

/* Host memory behind guest RAM: the blocks of gmm's memfds. */
static uint64_t host_kib(struct qts *q)
{
	qts_cmd(q, "mem");
	return qts_kv(q, "memfd_kib");
}

static uint64_t counter(struct qts *q, const char *key)
{
	qts_cmd(q, "balloon-counters");
	return qts_kv(q, key);
}

/* Send pfns in elements of per_elem, each kicked and waited for;
 * poll(q) after each element if given. */
static void send_elements(struct vdev *d, unsigned int qi, const uint32_t *pfns, size_t n,
			  unsigned int per_elem, void (*poll)(struct qts *q))
{
	uint64_t buf = vd_alloc(d, 4ULL * per_elem, 8);

	for (size_t i = 0; i < n; i += per_elem) {
		unsigned int k = (unsigned int)(n - i < per_elem ? n - i : per_elem);
		struct vd_buf b = { buf, 4 * k, false };
		int head;

		qts_memwrite(d->q, buf, pfns + i, 4ULL * k);
		head = vd_add(d, qi, &b, 1);
		if (vd_used(d, qi, NULL) != head) {
			fprintf(stderr, "bench-balloon: the device did not use element %zu\n", i);
			exit(1);
		}
		if (poll)
			poll(d->q);
	}
}

static uint32_t *pfn_range(uint64_t gpa, size_t n, bool shuffle)
{
	uint32_t *p = malloc(n * sizeof(*p));

	for (size_t i = 0; i < n; i++)
		p[i] = (uint32_t)(gpa / PAGE + i);
	srand(1);
	for (size_t i = n - 1; shuffle && i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1);
		uint32_t t = p[i];

		p[i] = p[j];
		p[j] = t;
	}
	return p;
}

/* strace -c of every thread of pid for memory syscalls, until stopped. */
static pid_t strace_start(pid_t pid, const char *out)
{
	char pidbuf[16];
	pid_t s = fork();

	snprintf(pidbuf, sizeof(pidbuf), "%d", pid);
	if (s == 0) {
		if (!freopen("/dev/null", "w", stderr))
			_exit(127);
		execlp("strace", "strace", "-f", "-c", "-e", "trace=%memory,fallocate",
		       "-o", out, "-p", pidbuf, (char *)NULL);
		_exit(127);
	}
	sleep(1);	/* let it attach to every thread */
	if (waitpid(s, NULL, WNOHANG) == s) {
		fprintf(stderr, "bench-balloon: strace did not start (installed? allowed to attach?)\n");
		exit(1);
	}
	return s;
}

static uint64_t strace_stop(pid_t s, const char *out)
{
	char line[256];
	unsigned long long calls = 0;
	FILE *f;

	kill(s, SIGINT);
	waitpid(s, NULL, 0);
	f = fopen(out, "r");
	while (f && fgets(line, sizeof(line), f)) {
		double pct, secs;
		unsigned long long usecs, n;

		if (strstr(line, " total") && sscanf(line, "%lf %lf %llu %llu", &pct, &secs, &usecs, &n) == 4)
			calls = n;
	}
	if (f)
		fclose(f);
	unlink(out);
	return calls;
}

struct inflate_run {
	double dev_ms, wall_ms;
	uint64_t calls, syscalls;
};

static void inflate_once(const char *opts, bool count, struct inflate_run *r)
{
	char args[256], out[64];
	size_t n = (1024 * MIB) / PAGE;
	uint32_t *pfns = pfn_range(DATA, n, false);
	struct qts *q;
	struct vdev d;
	pid_t s = 0;
	double t0;

	snprintf(args, sizeof(args), "--memory 1152M --balloon%s", opts);
	q = qts_start(vmm, args);
	driver_up(q, &d);
	touch(q, DATA, 1024 * MIB);
	/* Linux gives the PFNs of one element in descending order */
	for (size_t i = 0; i < n; i += LINUX_PFNS)
		for (size_t a = i, b = i + LINUX_PFNS - 1; a < b; a++, b--) {
			uint32_t t = pfns[a];

			pfns[a] = pfns[b];
			pfns[b] = t;
		}
	snprintf(out, sizeof(out), "/tmp/bench-balloon-strace.%d", getpid());
	if (count)
		s = strace_start(q->pid, out);
	t0 = (1e3 * now_s());
	send_elements(&d, BALLOON_Q_INFLATE, pfns, n, LINUX_PFNS, NULL);
	r->wall_ms = (1e3 * now_s()) - t0;
	if (count)
		r->syscalls = strace_stop(s, out);
	r->dev_ms = counter(q, "inflate_ns") / 1e6;
	r->calls = qts_kv(q, "discard_calls");
	qts_quit(q);
	free(pfns);
}

static void bench_inflate(void)
{
	struct inflate_run ranges, pages, tmp;

	inflate_once("", false, &ranges);
	inflate_once("", true, &tmp);
	ranges.syscalls = tmp.syscalls;
	inflate_once("=x-per-page=on", false, &pages);
	inflate_once("=x-per-page=on", true, &tmp);
	pages.syscalls = tmp.syscalls;
	printf("inflate 1 GiB (gmm mode, 4 KiB shmem pool, 256 PFNs per element):\n");
	printf("  ranges (gmm):        device %8.1f ms, wall %8.1f ms, %7llu discard calls, %7llu memory syscalls\n",
	       ranges.dev_ms, ranges.wall_ms, (unsigned long long)ranges.calls,
	       (unsigned long long)ranges.syscalls);
	printf("  per 4 KiB (baseline): device %8.1f ms, wall %8.1f ms, %7llu discard calls, %7llu memory syscalls\n",
	       pages.dev_ms, pages.wall_ms, (unsigned long long)pages.calls,
	       (unsigned long long)pages.syscalls);
	printf("  baseline/gmm: device time %.1fx, syscalls %.1fx\n",
	       pages.dev_ms / ranges.dev_ms, (double)pages.syscalls / (double)(ranges.syscalls ? ranges.syscalls : 1));
	printf("{\"bench\":\"balloon-inflate\",\"bytes\":%llu,\"ranges_dev_ms\":%.2f,\"ranges_wall_ms\":%.1f,\"ranges_calls\":%llu,\"ranges_syscalls\":%llu,"
	       "\"pages_dev_ms\":%.2f,\"pages_wall_ms\":%.1f,\"pages_calls\":%llu,\"pages_syscalls\":%llu}\n",
	       1024 * MIB, ranges.dev_ms, ranges.wall_ms, (unsigned long long)ranges.calls,
	       (unsigned long long)ranges.syscalls, pages.dev_ms, pages.wall_ms,
	       (unsigned long long)pages.calls, (unsigned long long)pages.syscalls);
}

/* --- time to 95% returned --- */

static uint64_t target_kib;
static double t_reached, t_start, t_sent;

static void poll_host(struct qts *q)
{
	if (t_reached < 0 && host_kib(q) <= target_kib)
		t_reached = (1e3 * now_s()) - t_start;
}

static void wait_returned(struct qts *q, double timeout_ms)
{
	while (t_reached < 0 && (1e3 * now_s()) - t_start < timeout_ms) {
		poll_host(q);
		usleep(5000);
	}
}

static void report_ranges(struct vdev *d, uint64_t gpa, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += REPORT_CHUNK * REPORT_BATCH) {
		struct vd_buf b[REPORT_BATCH];
		unsigned int k = 0;
		int head;

		for (; k < REPORT_BATCH && off + k * REPORT_CHUNK < len; k++)
			b[k] = (struct vd_buf){ gpa + off + k * REPORT_CHUNK, REPORT_CHUNK, true };
		head = vd_add(d, BALLOON_Q_REPORTING, b, k);
		if (vd_used(d, BALLOON_Q_REPORTING, NULL) != head)
			exit(1);
		poll_host(d->q);
	}
}

static double returned_once(bool reporting, uint64_t len)
{
	struct qts *q = qts_start(vmm, "--memory 640M --balloon");
	struct vdev d;
	uint64_t before;

	driver_up(q, &d);
	touch(q, DATA, len);
	usleep(1200 * 1000);	/* let gmm report what was never touched */
	before = host_kib(q);
	target_kib = before - len / 1024 * 95 / 100;
	t_reached = -1;
	t_start = (1e3 * now_s());
	if (reporting) {
		report_ranges(&d, DATA, len);
	} else {
		uint32_t *pfns = pfn_range(DATA, len / PAGE, false);

		qts_ok(q, "balloon-target %llu", 640 * MIB - len);
		send_elements(&d, BALLOON_Q_INFLATE, pfns, len / PAGE, LINUX_PFNS, poll_host);
		free(pfns);
	}
	t_sent = (1e3 * now_s()) - t_start;
	wait_returned(q, 10000);
	qts_quit(q);
	return t_reached;
}

static void bench_report(void)
{
	uint64_t len = 512 * MIB;
	double rep = returned_once(true, len), rep_sent = t_sent;
	double bal = returned_once(false, len), bal_sent = t_sent;

	printf("memory back with the host after the guest frees 512 MiB:\n");
	printf("  free page reporting:      95%% in %8.1f ms (the driver's requests done at %.1f ms)\n",
	       rep, rep_sent);
	printf("  balloon alone (baseline): 95%% in %8.1f ms (the driver's requests done at %.1f ms)\n",
	       bal, bal_sent);
	if (rep > 0 && bal > 0)
		printf("  baseline/reporting: %.2fx\n", bal / rep);
	printf("{\"bench\":\"balloon-report\",\"bytes\":%llu,\"reporting_ms\":%.1f,\"reporting_sent_ms\":%.1f,"
	       "\"balloon_ms\":%.1f,\"balloon_sent_ms\":%.1f}\n",
	       (unsigned long long)len, rep, rep_sent, bal, bal_sent);
}

/* --- hugetlbfs --- */

struct huge_run {
	double share;
	uint64_t discarded;
};

static void huge_once(const char *track, bool shuffle, unsigned int per_elem,
		      struct huge_run *r)
{
	char args[128];
	uint64_t len = 128 * MIB, before, after = 0;
	uint32_t *pfns = pfn_range(DATA, len / PAGE, shuffle);
	struct qts *q;
	struct vdev d;

	snprintf(args, sizeof(args), "--memory 256M --hugepages 2M --report-delay-ms 100 --balloon=x-track=%s", track);
	q = qts_start(vmm, args);
	driver_up(q, &d);
	touch(q, DATA, len);
	usleep(500 * 1000);
	before = host_kib(q);
	send_elements(&d, BALLOON_Q_INFLATE, pfns, len / PAGE, per_elem, NULL);
	for (int i = 0; i < 30; i++) {
		usleep(100 * 1000);
		after = host_kib(q);
	}
	r->discarded = counter(q, "discarded_bytes");
	r->share = before > after ? (double)(before - after) * 1024 / (double)len : 0;
	qts_quit(q);
	free(pfns);
}

static void bench_hugetlb(void)
{
	const char *nr_path = "/proc/sys/vm/nr_hugepages";
	long old = read_long(nr_path), want = 200;
	struct huge_run unit_seq, elem_seq, unit_rnd, elem_rnd, unit_big, elem_big;

	if (old < 0 || write_long(nr_path, old + want) ||
	    read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") < want) {
		fprintf(stderr, "bench-balloon: hugetlb: cannot reserve %ld 2 MiB pages\n", want);
		if (old >= 0)
			write_long(nr_path, old);
		exit(1);
	}
	huge_once("unit", false, LINUX_PFNS, &unit_seq);
	huge_once("element", false, LINUX_PFNS, &elem_seq);
	huge_once("unit", true, LINUX_PFNS, &unit_rnd);
	huge_once("element", true, LINUX_PFNS, &elem_rnd);
	/* QEMU's best case: whole host pages, in order, in one element */
	huge_once("unit", false, 2 * LINUX_PFNS, &unit_big);
	huge_once("element", false, 2 * LINUX_PFNS, &elem_big);
	write_long(nr_path, old);
	printf("inflating 128 MiB on a 2 MiB hugetlbfs pool (256 PFNs per element): share returned to the host\n");
	printf("  in order:  gmm (across elements) %5.1f%%, QEMU per-element tracking (baseline) %5.1f%%\n",
	       unit_seq.share * 100, elem_seq.share * 100);
	printf("  shuffled:  gmm (across elements) %5.1f%%, QEMU per-element tracking (baseline) %5.1f%%\n",
	       unit_rnd.share * 100, elem_rnd.share * 100);
	printf("  in order, 512 PFNs (one host page) per element: gmm %5.1f%%, QEMU tracking %5.1f%%\n",
	       unit_big.share * 100, elem_big.share * 100);
	printf("{\"bench\":\"balloon-hugetlb\",\"bytes\":%llu,\"unit_in_order\":%.4f,\"element_in_order\":%.4f,"
	       "\"unit_shuffled\":%.4f,\"element_shuffled\":%.4f,\"unit_512\":%.4f,\"element_512\":%.4f,"
	       "\"unit_discarded\":%llu,\"element_discarded\":%llu}\n",
	       128 * MIB, unit_seq.share, elem_seq.share, unit_rnd.share, elem_rnd.share,
	       unit_big.share, elem_big.share,
	       (unsigned long long)unit_rnd.discarded, (unsigned long long)elem_rnd.discarded);
}

int main(int argc, char **argv)
{
	bool all = argc < 3;

	if (argc < 2) {
		fprintf(stderr, "usage: bench-balloon GMM_VMM [inflate|report|hugetlb]...\n");
		return 2;
	}
	vmm = argv[1];
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "inflate") && strcmp(argv[i], "report") && strcmp(argv[i], "hugetlb")) {
			fprintf(stderr, "bench-balloon: unknown benchmark '%s'\n", argv[i]);
			return 2;
		}
	}
	for (int i = 1; i < argc || all; i++) {
		const char *b = all ? NULL : argv[i];

		if (!all && i == 1)
			continue;
		if (all || !strcmp(b, "inflate"))
			bench_inflate();
		if (all || !strcmp(b, "report"))
			bench_report();
		if (all || !strcmp(b, "hugetlb"))
			bench_hugetlb();
		if (all)
			break;
	}
	return 0;
}
