/* SPDX-License-Identifier: MIT */
/*
 * vmm/options.c - gmm-vmm's command line: parsing, checking against what the
 * host can give, and --help.
 */
#include "vmm.h"
#include <gmm/guest.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define DEFAULT_MEMORY	(256ULL << 20)
#define MIN_MEMORY	(16ULL << 20)

static const char usage[] =
"Usage: gmm-vmm [OPTIONS]\n"
"Boot a guest on /dev/kvm whose RAM is managed by gmm. Without --kernel it\n"
"boots the built-in benchmark guest, which runs --guest-workload and reports\n"
"JSON result lines; with --kernel it boots Linux through its 64-bit entry.\n"
"\n"
"Memory:\n"
"  -m, --memory SIZE        guest RAM (default 256M). SIZE takes K, M, G or T;\n"
"                           a bare number means MiB. With --numa, the sum of\n"
"                           the nodes (and --memory, if given, must match).\n"
"      --numa mem=SIZE[,host-node=N]\n"
"                           add a guest NUMA node of SIZE, optionally bound to\n"
"                           host node N. Repeat for each node (up to 8).\n"
"      --hugepages none|2M|1G  back RAM with hugetlbfs pages of this size;\n"
"                           they must be reserved (/proc/sys/vm/nr_hugepages).\n"
"      --prealloc           back all RAM before the guest starts (with progress)\n"
"      --memory-mode gmm|lazy|plain\n"
"                           gmm (default): RAM from a gmm pool over a memfd,\n"
"                           one pool node per guest node, backed on first touch\n"
"                           (2 MiB blocks where it can), per-vCPU page caches,\n"
"                           free page reporting; node sizes in 2 MiB units.\n"
"                           lazy: anonymous pages mapped on first touch, no\n"
"                           gmm (the control); plain: anonymous memory, all\n"
"                           accessible (the benchmark baseline).\n"
"      --fault-path auto|exits|uffd\n"
"                           gmm, lazy: how an unbacked page reaches the VMM:\n"
"                           uffd (userfaultfd; auto, the default: works on\n"
"                           every KVM) or exits (KVM_EXIT_MMIO, which kvm_pvm\n"
"                           gives for guest kernel mode only, or\n"
"                           KVM_EXIT_MEMORY_FAULT)\n"
"      --write-stop default|pause|uffd-wp|mprotect\n"
"                           gmm: how migrating a guest page (compaction, QMP\n"
"                           x-gmm-compact) stops its writers: pausing the\n"
"                           vCPUs for each batch (default), userfaultfd\n"
"                           write-protect, or mprotect (crashes guests on\n"
"                           kvm_pvm); docs/compaction.md\n"
"      --khugepaged         gmm: start khugepaged, which collapses guest RAM\n"
"                           on scattered 4 KiB frames onto 2 MiB blocks\n"
"                           (defaults; QMP x-gmm-khugepaged changes them)\n"
"      --report-delay-ms N  gmm: report free pool memory to the host N ms after\n"
"                           it appears (default 500; 0 = no reporting)\n"
"      --device-memory SIZE gmm: extra pool memory on node 0 for device memory\n"
"                           (default 0; nothing uses it yet)\n"
"CPUs:\n"
"  -c, --vcpus N            number of vCPUs (default 1, at most 64)\n"
"Linux:\n"
"  -k, --kernel FILE        vmlinux (ELF) or bzImage to boot\n"
"  -i, --initrd FILE        initrd, placed at the top of low RAM\n"
"  -a, --cmdline STR        kernel command line\n"
"Benchmark guest:\n"
"  -w, --guest-workload STR workload, e.g. \"touch=64 verify churn=16 verify\"\n"
"                           (touch=MiB, churn=MiB, rounds=N, verify, iotest, quiet;\n"
"                           with --balloon: balloon=PCT, follow=S, free=MiB, stats)\n"
"      --guest FILE         benchmark guest ELF instead of the built-in one\n"
"      --dump-dtb FILE      write the device tree given to the guest to FILE\n"
"      --x-lose-page        test hook: drop one page the guest touched, behind\n"
"                           its back (its verify must then fail)\n"
"Devices:\n"
"      --virtio-mem OPTS    a virtio-mem device (PCI 1af4:1058, memory from the\n"
"                           gmm pool); OPTS, comma-separated: id=ID, size=MAX\n"
"                           (multiple of 128 MiB), node=N (default 0),\n"
"                           block-size=SZ (power of two >= 2M, default 2M),\n"
"                           requested-size=SZ (default 0), prealloc=on|off\n"
"                           (populate plugged blocks at once, default off),\n"
"                           x-pool-size=SZ (pool memory set aside for it,\n"
"                           default size); repeatable up to 4 times\n"
"      --balloon[=OPTS]     a virtio-balloon (PCI 1af4:1045); OPTS, comma-\n"
"                           separated: deflate-on-oom=on|off (default off),\n"
"                           free-page-reporting=on|off (default on),\n"
"                           stats-period=SECONDS (default 0: no polling),\n"
"                           target=SIZE (the guest's logical size asked for\n"
"                           at boot, as QMP's balloon; default: all its RAM),\n"
"                           x-track=unit|element (hugepages: count inflated\n"
"                           pieces across requests (default) or per request\n"
"                           as QEMU does), x-per-page=on|off (one discard per\n"
"                           4 KiB page instead of per range; for benchmarks)\n"
"      --qtest SOCKET       device-level test mode: no vCPUs and no /dev/kvm;\n"
"                           connect to the unix socket SOCKET and serve the\n"
"                           test driver's line protocol (vmm/qtest.c)\n"
"Monitor:\n"
"      --qmp PATH           serve QMP (QEMU's monitor protocol) on a unix socket\n"
"                           at PATH (mode 0600; a stale socket there is\n"
"                           replaced, any other file is refused). QEMU's\n"
"                           -qmp unix:PATH,server,nowait is accepted too.\n"
"  -S, --paused             create the vCPUs but run them only after the\n"
"                           monitor's cont (needs --qmp)\n"
"  -q, --quiet              no summary lines, only guest output and results\n"
"  -h, --help               this text\n"
"\n"
"Output: the guest console and its JSON result lines on stdout, then a summary\n"
"(boot time, pages faulted in, host RSS, verdict) and one JSON summary line.\n"
"\n"
"Exit status: 0 guest passed and powered off; 1 guest reported a failure;\n"
"2 bad options; 3 the host cannot provide it (no /dev/kvm, memory, hugepages,\n"
"files); 4 guest crashed; 5 guest reset (also the monitor's system_reset);\n"
"6 KVM failed; 128+N stopped by signal N. The monitor's quit exits 0.\n";

static int fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "gmm-vmm: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return -VMM_EXIT_USAGE;
}

/* Parse "256M", "1G", "512MiB", "64" (MiB). Returns 0 on error. */
static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;
	int shift = 20;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case 0: break;
	default: return 0;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > (~0ULL >> shift))
		return 0;
	return (uint64_t)v << shift;
}

static int parse_numa(struct vmm_opts *o, const char *arg)
{
	struct guestmem_node_cfg *n;
	char buf[128], *tok, *save;

	if (o->mem.nr_nodes == GUESTMEM_MAX_NODES)
		return fail("--numa: at most 8 guest nodes%s", "");
	n = &o->mem.nodes[o->mem.nr_nodes++];
	n->host_node = -1;
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strncmp(tok, "mem=", 4)) {
			n->size = parse_size(tok + 4);
			if (!n->size)
				return fail("--numa: bad size in '%s'", arg);
		} else if (!strncmp(tok, "host-node=", 10)) {
			char *end;

			n->host_node = (int)strtol(tok + 10, &end, 10);
			if (*end || end == tok + 10 || n->host_node < 0 || n->host_node > 255)
				return fail("--numa: bad host-node in '%s'", arg);
		} else {
			return fail("--numa: expected mem=SIZE[,host-node=N], got '%s'", arg);
		}
	}
	if (!n->size)
		return fail("--numa: mem=SIZE is required in '%s'", arg);
	return 0;
}

static int parse_hugepages(struct vmm_opts *o, const char *arg)
{
	if (!strcmp(arg, "none"))
		o->mem.page_size = 4096;
	else if (!strcasecmp(arg, "2M"))
		o->mem.page_size = 2ULL << 20;
	else if (!strcasecmp(arg, "1G"))
		o->mem.page_size = 1ULL << 30;
	else
		return fail("--hugepages: expected none, 2M or 1G, got '%s'", arg);
	return 0;
}

static int parse_fault_path(struct vmm_opts *o, const char *arg)
{
	o->fault_path_auto = !strcmp(arg, "auto");
	if (o->fault_path_auto || !strcmp(arg, "uffd"))
		o->mem.faults = GUESTMEM_FAULTS_UFFD;
	else if (!strcmp(arg, "exits"))
		o->mem.faults = GUESTMEM_FAULTS_EXIT;
	else
		return fail("--fault-path: expected auto, exits or uffd, got '%s'", arg);
	return 0;
}

static int parse_write_stop(struct vmm_opts *o, const char *arg)
{
	int m = gmm_write_stop_parse(arg);

	if (m < 0)
		return fail("--write-stop: expected default, mprotect, uffd-wp or pause, got '%s'",
			    arg);
	/* gmm-vmm can pause its vCPUs: its default is the pause (measured:
	 * docs/compaction.md); libgmm's own default is for embedders that cannot */
	o->mem.write_stop = m == GMM_WSTOP_DEFAULT ? GMM_WSTOP_PAUSE : m;
	o->write_stop_given = true;
	return 0;
}

static int parse_mode(struct vmm_opts *o, const char *arg)
{
	if (!strcmp(arg, "gmm"))
		o->mem.mode = GUESTMEM_GMM;
	else if (!strcmp(arg, "plain"))
		o->mem.mode = GUESTMEM_PLAIN;
	else if (!strcmp(arg, "lazy"))
		o->mem.mode = GUESTMEM_LAZY;
	else
		return fail("--memory-mode: expected gmm, lazy or plain, got '%s'", arg);
	return 0;
}

/* A decimal number in [lo, hi]; -1 when it is not one. */
static long parse_num(const char *arg, long lo, long hi)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *end || end == arg || n < lo || n > hi)
		return -1;
	return n;
}

static int parse_vcpus(struct vmm_opts *o, const char *arg)
{
	long n = parse_num(arg, 1, VMM_MAX_VCPUS);

	if (n < 0)
		return fail("--vcpus: expected a number from 1 to 64, got '%s'", arg);
	o->vcpus = (unsigned int)n;
	return 0;
}

static int parse_report_delay(struct vmm_opts *o, const char *arg)
{
	long n = parse_num(arg, 0, 3600000);

	if (n < 0)
		return fail("--report-delay-ms: expected milliseconds from 0 to 3600000, got '%s'", arg);
	o->mem.report_delay_ms = (unsigned int)n;
	return 0;
}

static int parse_device_memory(struct vmm_opts *o, const char *arg)
{
	uint64_t v = parse_size(arg);

	if (!v && strcmp(arg, "0"))
		return fail("--device-memory: bad size '%s' (try 16M)", arg);
	if (v % (2ULL << 20))
		return fail("--device-memory: '%s' is not a multiple of 2 MiB", arg);
	o->mem.device_bytes = v;
	return 0;
}

/* --balloon's on|off values; -1 when neither. */
static int on_off(const char *v)
{
	return !strcmp(v, "on") ? 1 : !strcmp(v, "off") ? 0 : -1;
}

static int balloon_opt(struct balloon_cfg *c, const char *key, const char *val)
{
	long n;

	if (!strcmp(key, "stats-period")) {
		n = parse_num(val, 0, 86400);
		if (n < 0)
			return fail("--balloon: stats-period takes seconds from 0 to 86400, got '%s'", val);
		c->stats_period = n;
		return 0;
	}
	if (!strcmp(key, "x-track")) {
		if (strcmp(val, "unit") && strcmp(val, "element"))
			return fail("--balloon: x-track takes unit or element, got '%s'", val);
		c->track = !strcmp(val, "unit") ? BALLOON_TRACK_UNIT : BALLOON_TRACK_ELEMENT;
		return 0;
	}
	if (strcmp(key, "deflate-on-oom") && strcmp(key, "free-page-reporting") &&
	    strcmp(key, "x-per-page"))
		return fail("--balloon: unknown option '%s' (try --help)", key);
	n = on_off(val);
	if (n < 0)
		return fail("--balloon: %s takes on or off", key);
	if (!strcmp(key, "deflate-on-oom"))
		c->deflate_on_oom = n;
	else if (!strcmp(key, "free-page-reporting"))
		c->free_page_reporting = n;
	else
		c->per_page = n;
	return 0;
}

static int parse_balloon(struct vmm_opts *o, const char *arg)
{
	char buf[256], *save = NULL;

	o->balloon = true;
	if (!arg)
		return 0;
	if (strlen(arg) >= sizeof(buf))
		return fail("--balloon: option string too long%s", "");
	strcpy(buf, arg);
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');

		if (!eq)
			return fail("--balloon: expected KEY=VALUE, got '%s'", kv);
		*eq = 0;
		if (!strcmp(kv, "target")) {
			o->balloon_target = parse_size(eq + 1);
			if (!o->balloon_target)
				return fail("--balloon: target takes a size such as 512M, got '%s'", eq + 1);
			continue;
		}
		if (balloon_opt(&o->balloon_cfg, kv, eq + 1))
			return -VMM_EXIT_USAGE;
	}
	return 0;
}

static int vmem_size(const char *key, const char *val, uint64_t *v)
{
	*v = parse_size(val);
	if (!*v && strcmp(val, "0"))
		return fail("--virtio-mem: %s: bad size (try 1G)", key);
	return 0;
}

static int vmem_opt(struct vmem_cfg *c, uint64_t *pool, const char *key, const char *val)
{
	long n;

	if (!strcmp(key, "id")) {
		if (!*val || strlen(val) >= sizeof(c->id) || strpbrk(val, "/\" \\"))
			return fail("--virtio-mem: id must be 1 to 31 characters without / or quotes, got '%s'", val);
		strcpy(c->id, val);
		return 0;
	}
	if (!strcmp(key, "node")) {
		n = parse_num(val, 0, GUESTMEM_MAX_NODES - 1);
		if (n < 0)
			return fail("--virtio-mem: node takes a guest node number, got '%s'", val);
		c->node = (unsigned int)n;
		return 0;
	}
	if (!strcmp(key, "prealloc")) {
		n = on_off(val);
		if (n < 0)
			return fail("--virtio-mem: prealloc takes on or off, got '%s'", val);
		c->prealloc = n;
		return 0;
	}
	if (!strcmp(key, "size"))
		return vmem_size(key, val, &c->size);
	if (!strcmp(key, "block-size"))
		return vmem_size(key, val, &c->block_size);
	if (!strcmp(key, "requested-size"))
		return vmem_size(key, val, &c->requested_size);
	if (!strcmp(key, "x-pool-size"))
		return vmem_size(key, val, pool);
	return fail("--virtio-mem: unknown option '%s' (try --help)", key);
}

static int parse_vmem(struct vmm_opts *o, const char *arg)
{
	char buf[256], *save = NULL;
	struct vmem_cfg *c = &o->vmem[o->nr_vmem];
	uint64_t *pool = &o->vmem_pool[o->nr_vmem];

	if (o->nr_vmem == VMEM_MAX_DEVICES)
		return fail("--virtio-mem: at most 4 devices%s", "");
	if (strlen(arg) >= sizeof(buf))
		return fail("--virtio-mem: option string too long%s", "");
	*c = (struct vmem_cfg){ .block_size = VMEM_DEFAULT_BLOCK };
	*pool = UINT64_MAX;
	snprintf(c->id, sizeof(c->id), "vmem%u", o->nr_vmem);
	strcpy(buf, arg);
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');

		if (!eq)
			return fail("--virtio-mem: expected KEY=VALUE, got '%s'", kv);
		*eq = 0;
		if (vmem_opt(c, pool, kv, eq + 1))
			return -VMM_EXIT_USAGE;
	}
	if (!c->size)
		return fail("--virtio-mem %s: size=MAX is required", c->id);
	if (*pool == UINT64_MAX)
		*pool = c->size;
	o->nr_vmem++;
	return 0;
}

/* --qmp PATH, or QEMU's unix:PATH[,server][,nowait] (-qmp). */
static int parse_qmp(struct vmm_opts *o, char *arg)
{
	char *tok, *save;

	if (strncmp(arg, "unix:", 5)) {
		if (strchr(arg, ':') && !strchr(arg, '/'))
			return fail("--qmp: only unix sockets: PATH or unix:PATH,server,nowait, got '%s'", arg);
		o->qmp_path = arg;
		return 0;
	}
	o->qmp_path = strtok_r(arg + 5, ",", &save);
	if (!o->qmp_path || !*o->qmp_path)
		return fail("--qmp: no path in '%s'", arg);
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (strcmp(tok, "server") && strcmp(tok, "server=on") &&
		    strcmp(tok, "nowait") && strcmp(tok, "wait=off"))
			return fail("--qmp: gmm-vmm always listens without waiting; '%s' is not supported", tok);
	}
	return 0;
}

enum {
	OPT_NUMA = 256, OPT_HUGE, OPT_PREALLOC, OPT_MODE, OPT_GUEST, OPT_DTB, OPT_LOSE,
	OPT_REPORT, OPT_DEVMEM, OPT_BALLOON, OPT_QTEST, OPT_FAULTS, OPT_QMP,
	OPT_VMEM, OPT_WSTOP, OPT_KHUGEPAGED,
};

static const struct option longopts[] = {
	{ "memory", required_argument, NULL, 'm' },
	{ "numa", required_argument, NULL, OPT_NUMA },
	{ "hugepages", required_argument, NULL, OPT_HUGE },
	{ "prealloc", no_argument, NULL, OPT_PREALLOC },
	{ "memory-mode", required_argument, NULL, OPT_MODE },
	{ "report-delay-ms", required_argument, NULL, OPT_REPORT },
	{ "fault-path", required_argument, NULL, OPT_FAULTS },
	{ "write-stop", required_argument, NULL, OPT_WSTOP },
	{ "khugepaged", no_argument, NULL, OPT_KHUGEPAGED },
	{ "device-memory", required_argument, NULL, OPT_DEVMEM },
	{ "vcpus", required_argument, NULL, 'c' },
	{ "kernel", required_argument, NULL, 'k' },
	{ "initrd", required_argument, NULL, 'i' },
	{ "cmdline", required_argument, NULL, 'a' },
	{ "guest-workload", required_argument, NULL, 'w' },
	{ "guest", required_argument, NULL, OPT_GUEST },
	{ "dump-dtb", required_argument, NULL, OPT_DTB },
	{ "x-lose-page", no_argument, NULL, OPT_LOSE },
	{ "balloon", optional_argument, NULL, OPT_BALLOON },
	{ "virtio-mem", required_argument, NULL, OPT_VMEM },
	{ "qtest", required_argument, NULL, OPT_QTEST },
	{ "qmp", required_argument, NULL, OPT_QMP },
	{ "paused", no_argument, NULL, 'S' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_one(struct vmm_opts *o, int c, char *arg)
{
	switch (c) {
	case 'm':
		o->memory = parse_size(arg);
		return o->memory ? 0 : fail("--memory: bad size '%s' (try 256M or 2G)", arg);
	case OPT_NUMA:
		return parse_numa(o, arg);
	case OPT_HUGE:
		return parse_hugepages(o, arg);
	case OPT_PREALLOC:
		o->mem.prealloc = true;
		return 0;
	case OPT_MODE:
		return parse_mode(o, arg);
	case OPT_REPORT:
		return parse_report_delay(o, arg);
	case OPT_FAULTS:
		return parse_fault_path(o, arg);
	case OPT_WSTOP:
		return parse_write_stop(o, arg);
	case OPT_KHUGEPAGED:
		o->mem.khugepaged = true;
		return 0;
	case OPT_DEVMEM:
		return parse_device_memory(o, arg);
	case 'c':
		return parse_vcpus(o, arg);
	case 'k': o->kernel = arg; return 0;
	case 'i': o->initrd = arg; return 0;
	case 'a': o->cmdline = arg; return 0;
	case 'w': o->workload = arg; return 0;
	case OPT_GUEST: o->guest = arg; return 0;
	case OPT_DTB: o->dump_dtb = arg; return 0;
	case OPT_LOSE: o->x_lose_page = true; return 0;
	case OPT_BALLOON: return parse_balloon(o, arg);
	case OPT_VMEM: return parse_vmem(o, arg);
	case OPT_QTEST: o->qtest = arg; return 0;
	case OPT_QMP: return parse_qmp(o, arg);
	case 'S': o->paused = true; return 0;
	case 'q': o->quiet = true; return 0;
	case 'h':
		fputs(usage, stdout);
		return 1;
	case ':':
		return fail("option %s needs an argument (try --help)", arg);
	default:
		return fail("unknown option %s (try --help)", arg);
	}
}

static int check_memory(struct vmm_opts *o)
{
	uint64_t sum = 0;

	if (!o->mem.nr_nodes) {
		o->mem.nr_nodes = 1;
		o->mem.nodes[0].size = o->memory ? o->memory : DEFAULT_MEMORY;
		o->mem.nodes[0].host_node = -1;
	}
	for (unsigned int i = 0; i < o->mem.nr_nodes; i++)
		sum += o->mem.nodes[i].size;
	if (o->memory && o->memory != sum) {
		fprintf(stderr, "gmm-vmm: --memory %llu MiB does not match the --numa nodes' sum of %llu MiB\n",
			(unsigned long long)(o->memory >> 20),
			(unsigned long long)(sum >> 20));
		return -VMM_EXIT_USAGE;
	}
	o->memory = sum;
	if (o->memory < MIN_MEMORY)
		return fail("--memory: at least 16 MiB%s", "");
	return 0;
}

/* What the host could ever back: its RAM. */
static uint64_t host_ram(void)
{
	struct sysinfo si;

	return sysinfo(&si) ? UINT64_MAX : (uint64_t)si.totalram * si.mem_unit;
}

/* virtio-mem devices: one line for the first impossible one; their pool
 * memory added to their nodes. */
static int check_vmem(struct vmm_opts *o)
{
	uint64_t total = 0;
	char err[256];

	for (unsigned int i = 0; i < o->nr_vmem; i++) {
		const struct vmem_cfg *c = &o->vmem[i];

		for (unsigned int j = 0; j < i; j++)
			if (!strcmp(o->vmem[j].id, c->id))
				return fail("--virtio-mem: id '%s' given twice", c->id);
		if (o->mem.mode != GUESTMEM_GMM)
			return fail("--virtio-mem %s: needs --memory-mode gmm (its memory comes from the pool)", c->id);
		if (c->node >= o->mem.nr_nodes)
			return fail("--virtio-mem %s: node does not exist (see --numa)", c->id);
		if (vmem_check_cfg(c, o->mem.page_size, err, sizeof(err)))
			return fail("%s", err);
		if (o->vmem_pool[i] % (2ULL << 20))
			return fail("--virtio-mem %s: x-pool-size must be a multiple of 2 MiB", c->id);
		total += o->vmem_pool[i];
		if (total > host_ram())
			return fail("--virtio-mem %s: the devices' pool memory is more than the host's RAM", c->id);
		o->mem.node_device_bytes[c->node] += o->vmem_pool[i];
	}
	return 0;
}

static int check_combination(struct vmm_opts *o)
{
	if ((o->initrd || o->cmdline) && !o->kernel)
		return fail("--initrd and --cmdline need --kernel%s", "");
	if (o->paused && !o->qmp_path)
		return fail("-S/--paused needs --qmp: only the monitor's cont starts the vCPUs%s", "");
	if (o->kernel && (o->workload || o->guest))
		return fail("--guest-workload and --guest are for the benchmark guest, not --kernel%s", "");
	if (o->balloon_target > o->memory)
		return fail("--balloon: target %s is more than the guest's RAM", "SIZE");
	if (check_vmem(o))
		return -VMM_EXIT_USAGE;
	if (o->write_stop_given && o->mem.mode != GUESTMEM_GMM)
		return fail("--write-stop is for --memory-mode gmm (nothing migrates guest pages in the others)%s", "");
	if (o->mem.khugepaged && o->mem.mode != GUESTMEM_GMM)
		return fail("--khugepaged is for --memory-mode gmm (guest RAM is not on the pool in the others)%s", "");
	if (o->mem.mode != GUESTMEM_GMM)
		return 0;
	if (o->mem.page_size > (2ULL << 20))
		return fail("--hugepages 1G: --memory-mode gmm maps guest RAM in pages of at most 2 MiB (use 2M, or --memory-mode lazy)%s", "");
	for (unsigned int i = 0; i < o->mem.nr_nodes; i++) {
		if (o->mem.nodes[i].size % (2ULL << 20))
			return fail("--memory/--numa: --memory-mode gmm needs sizes in whole 2 MiB units%s", "");
	}
	return 0;
}

/* 0: run; 1: done (help printed); negative: -exit code. */
int opts_parse(struct vmm_opts *o, int argc, char **argv)
{
	int c, ret;

	memset(o, 0, sizeof(*o));
	o->vcpus = 1;
	o->mem.page_size = 4096;
	o->mem.mode = GUESTMEM_GMM;
	o->mem.report_delay_ms = GUESTMEM_REPORT_DELAY_MS;
	o->balloon_cfg.free_page_reporting = true;
	o->fault_path_auto = true;
	o->mem.write_stop = GMM_WSTOP_PAUSE;
	opterr = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-qmp"))	/* QEMU's spelling */
			argv[i] = (char *)"--qmp";
	}
	while ((c = getopt_long(argc, argv, ":m:c:k:i:a:w:qhS", longopts, NULL)) != -1) {
		ret = parse_one(o, c, c == ':' || c == '?' ? argv[optind - 1] : optarg);
		if (ret)
			return ret;
	}
	if (optind < argc)
		return fail("unexpected argument '%s' (try --help)", argv[optind]);
	ret = check_memory(o);
	return ret ? ret : check_combination(o);
}
