/* SPDX-License-Identifier: MIT */
/*
 * vmm/main.c - gmm-vmm's entry: options, checks of what the host can give,
 * running the VM, and the closing summary (boot time, pages faulted in,
 * host RSS, gmm's buddyinfo before and after, reported free memory, guest
 * RAM on 2 MiB blocks, the guest's verdict) as text and as one JSON line.
 */
#include "evloop.h"
#include "monitor.h"
#include "vmm.h"
#include <gmm/report.h>
#include <gmm/stats.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct vm the_vm;

void vmm_out(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&vm->out_lock);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fflush(stdout);
	pthread_mutex_unlock(&vm->out_lock);
}

/* A "Key:   123 kB" line of a /proc file, in KiB; 0 if absent. */
uint64_t proc_kib(const char *path, const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	uint64_t v = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtoull(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static uint64_t read_u64_file(const char *path)
{
	unsigned long long v = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

static int check_hugepages(const struct vmm_opts *o)
{
	char path[128];
	uint64_t kib = o->mem.page_size >> 10, free_pages;

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages",
		 (unsigned long long)kib);
	free_pages = read_u64_file(path);
	if (free_pages * o->mem.page_size >= o->memory)
		return 0;
	fprintf(stderr, "gmm-vmm: --hugepages %s: %llu MiB needed but only %llu free %s pages are reserved (see /proc/sys/vm/nr_hugepages)\n",
		kib == 2048 ? "2M" : "1G", (unsigned long long)(o->memory >> 20),
		(unsigned long long)free_pages, kib == 2048 ? "2 MiB" : "1 GiB");
	return -VMM_EXIT_HOST;
}

static int check_node(int node)
{
	char path[64];
	FILE *f;

	if (node < 0)
		return 0;
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", node);
	f = fopen(path, "r");
	if (f) {
		fclose(f);
		return 0;
	}
	fprintf(stderr, "gmm-vmm: --numa host-node=%d: the host has no such NUMA node\n", node);
	return -VMM_EXIT_HOST;
}

static int check_host(const struct vmm_opts *o)
{
	uint64_t avail = proc_kib("/proc/meminfo", "MemAvailable") << 10;

	avail += proc_kib("/proc/meminfo", "SwapFree") << 10;
	for (unsigned int i = 0; i < o->mem.nr_nodes; i++) {
		if (check_node(o->mem.nodes[i].host_node))
			return -VMM_EXIT_HOST;
	}
	if (o->mem.page_size > 4096)
		return check_hugepages(o);
	if (avail && o->memory > avail) {
		fprintf(stderr, "gmm-vmm: --memory %llu MiB is more than the host can give (%llu MiB available)\n",
			(unsigned long long)(o->memory >> 20), (unsigned long long)(avail >> 20));
		return -VMM_EXIT_HOST;
	}
	return 0;
}

static double ms_since(uint64_t t0, uint64_t t)
{
	return t ? (double)(t - t0) / 1e6 : -1.0;
}

static const char *verdict(const struct vm *vm, int code)
{
	if (vm->linux_boot)
		return code == VMM_EXIT_OK ? "powered off" : "stopped";
	if (code == VMM_EXIT_OK && vm->guest_status == 0)
		return "pass";
	return "fail";
}

/* What the summary reports about gmm's pool; zero/NULL in other modes. */
struct gmm_figures {
	char *buddy_text[2];		/* before the guest ran, after */
	char *buddy_json[2];
	struct gmm_report_stats report;
};

/* gmm_stat_buddyinfo() without its trailing newlines; NULL if not gmm. */
static char *buddyinfo(struct vm *vm, enum gmm_stat_format fmt)
{
	struct gmm_pool *pool = guestmem_gmm_pool(vm->gm);
	char *out = NULL;
	size_t n;

	if (!pool || gmm_stat_buddyinfo(pool, fmt, &out))
		return NULL;
	n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = 0;
	return out;
}

static void take_buddyinfo(struct vm *vm, struct gmm_figures *g, int when)
{
	g->buddy_text[when] = buddyinfo(vm, GMM_STAT_TEXT);
	g->buddy_json[when] = buddyinfo(vm, GMM_STAT_JSON);
}

static void free_figures(struct gmm_figures *g)
{
	for (int i = 0; i < 2; i++) {
		free(g->buddy_text[i]);
		free(g->buddy_json[i]);
	}
}

static unsigned int permille(uint64_t part, uint64_t whole)
{
	return whole ? (unsigned int)(part * 1000 / whole) : 0;
}

static void summary_gmm_text(const struct guestmem_stats *st, const struct gmm_figures *g)
{
	uint64_t backed = st->backed * st->page_size;

	printf("gmm-vmm: guest RAM on aligned 2 MiB blocks: %llu of %llu MiB backed (%.1f%%), %llu faults took a 2 MiB block\n",
	       (unsigned long long)(st->huge_bytes >> 20), (unsigned long long)(backed >> 20),
	       permille(st->huge_bytes, backed) / 10.0, (unsigned long long)st->huge_faults);
	printf("gmm-vmm: host mappings of guest RAM: %llu (%llu per GiB backed; at most %llu below vm.max_map_count)\n",
	       (unsigned long long)st->mappings, (unsigned long long)st->mappings_per_gib,
	       (unsigned long long)st->mappings_max);
	printf("gmm-vmm: free pool memory: %llu MiB reported to the host, %llu MiB unreported (%llu MiB reported in %llu passes%s)\n",
	       (unsigned long long)(g->report.free_reported >> 20),
	       (unsigned long long)(g->report.free_unreported >> 20),
	       (unsigned long long)(g->report.reported_bytes >> 20),
	       (unsigned long long)g->report.passes, g->report.running ? "" : ", reporting off");
	printf("gmm-vmm: buddyinfo before the guest ran:\n%s\n", g->buddy_text[0] ? g->buddy_text[0] : "");
	printf("gmm-vmm: buddyinfo after:\n%s\n", g->buddy_text[1] ? g->buddy_text[1] : "");
}

static void summary_text(struct vm *vm, int code, uint64_t t_end,
			 const struct guestmem_stats *st, const struct gmm_figures *g)
{
	uint64_t rss = proc_kib("/proc/self/status", "VmRSS");
	uint64_t hwm = proc_kib("/proc/self/status", "VmHWM");

	printf("gmm-vmm: %s (exit %d)\n", vm->reason, code);
	printf("gmm-vmm: boot time: first instruction %.3f ms, user mode %.3f ms, first result %.3f ms, total %.3f ms\n",
	       ms_since(vm->t_start, vm->t_first_insn), ms_since(vm->t_start, vm->t_user),
	       ms_since(vm->t_start, vm->t_first_result), ms_since(vm->t_start, t_end));
	printf("gmm-vmm: memory: %s, %llu MiB, pages faulted in %llu, backed %llu MiB, discarded %llu pages of %llu KiB\n",
	       guestmem_mode_name(vm->opts->mem.mode), (unsigned long long)(vm->opts->memory >> 20),
	       (unsigned long long)st->faults,
	       (unsigned long long)(st->backed * st->page_size >> 20),
	       (unsigned long long)st->discards, (unsigned long long)(st->page_size >> 10));
	printf("gmm-vmm: guest page faults: %s, %llu through userfaultfd\n", vm->fault_path,
	       (unsigned long long)st->uffd_faults);
	printf("gmm-vmm: host RSS %llu MiB (peak %llu MiB)\n",
	       (unsigned long long)(rss >> 10), (unsigned long long)(hwm >> 10));
	if (guestmem_gmm_pool(vm->gm))
		summary_gmm_text(st, g);
	devices_summary(vm, false);
	printf("gmm-vmm: guest verdict: %s\n", verdict(vm, code));
}

static void summary_json_gmm(const struct guestmem_stats *st, const struct gmm_figures *g)
{
	printf(",\"mappings\":%llu,\"mappings_per_gib\":%llu,\"mappings_max\":%llu",
	       (unsigned long long)st->mappings, (unsigned long long)st->mappings_per_gib,
	       (unsigned long long)st->mappings_max);
	printf(",\"huge_faults\":%llu,\"huge_bytes\":%llu,\"huge_permille\":%u,"
	       "\"free_reported\":%llu,\"free_unreported\":%llu,\"reported_bytes\":%llu,"
	       "\"report_passes\":%llu,\"buddyinfo_before\":%s,\"buddyinfo_after\":%s",
	       (unsigned long long)st->huge_faults, (unsigned long long)st->huge_bytes,
	       permille(st->huge_bytes, st->backed * st->page_size),
	       (unsigned long long)g->report.free_reported,
	       (unsigned long long)g->report.free_unreported,
	       (unsigned long long)g->report.reported_bytes,
	       (unsigned long long)g->report.passes,
	       g->buddy_json[0] ? g->buddy_json[0] : "null",
	       g->buddy_json[1] ? g->buddy_json[1] : "null");
}

static void summary_json(struct vm *vm, int code, uint64_t t_end,
			 const struct guestmem_stats *st, const struct gmm_figures *g)
{
	uint64_t rss = proc_kib("/proc/self/status", "VmRSS");
	uint64_t hwm = proc_kib("/proc/self/status", "VmHWM");

	printf("{\"vmm\":\"summary\",\"exit\":%d,\"verdict\":\"%s\",\"mode\":\"%s\",\"memory_mib\":%llu,"
	       "\"vcpus\":%u,\"page_size\":%llu,\"faults\":%llu,\"backed\":%llu,\"discards\":%llu,"
	       "\"rss_kib\":%llu,\"hwm_kib\":%llu,\"results\":%u,\"t_start_mono_ns\":%llu,"
	       "\"first_insn_ns\":%llu,\"user_ns\":%llu,\"first_result_ns\":%llu,\"total_ns\":%llu",
	       code, verdict(vm, code), guestmem_mode_name(vm->opts->mem.mode),
	       (unsigned long long)(vm->opts->memory >> 20),
	       vm->nr_vcpus, (unsigned long long)st->page_size, (unsigned long long)st->faults,
	       (unsigned long long)st->backed, (unsigned long long)st->discards,
	       (unsigned long long)rss, (unsigned long long)hwm, atomic_load(&vm->results),
	       (unsigned long long)vm->t_start,
	       (unsigned long long)(vm->t_first_insn ? vm->t_first_insn - vm->t_start : 0),
	       (unsigned long long)(vm->t_user ? vm->t_user - vm->t_start : 0),
	       (unsigned long long)(vm->t_first_result ? vm->t_first_result - vm->t_start : 0),
	       (unsigned long long)(t_end - vm->t_start));
	printf(",\"fault_path\":\"%s\",\"uffd_faults\":%llu",
	       guestmem_faults_name(vm->mem.faults), (unsigned long long)st->uffd_faults);
	if (guestmem_gmm_pool(vm->gm))
		summary_json_gmm(st, g);
	devices_summary(vm, true);
	printf("}\n");
}

static void summary(struct vm *vm, int code, uint64_t t_end, struct gmm_figures *g)
{
	struct gmm_pool *pool = guestmem_gmm_pool(vm->gm);
	struct guestmem_stats st;

	guestmem_get_stats(vm->gm, &st);
	if (pool) {
		take_buddyinfo(vm, g, 1);
		gmm_report_stats(pool, &g->report);
	}
	if (!vm->opts->quiet)
		summary_text(vm, code, t_end, &st, g);
	summary_json(vm, code, t_end, &st, g);
	fflush(stdout);
}

/*
 * Devices only test builds have (tests/vmm/fake_balloon.c defines it in
 * gmm-vmm-test); called once the VM exists, before the monitor starts.
 */
extern void vmm_test_devices(struct vm *vm) __attribute__((weak));

/* The event loop thread (vm_create made it), and the monitor on it with --qmp. */
static int start_loop(struct vm *vm, const struct vmm_opts *o)
{
	char err[256];
	int ret = vm->loop ? 0 : -EINVAL;

	if (!ret && o->qmp_path) {
		vm->mon = monitor_create(vm, vm->loop, o->qmp_path, err, sizeof(err));
		if (!vm->mon) {
			fprintf(stderr, "gmm-vmm: %s\n", err);
			return -VMM_EXIT_HOST;
		}
	}
	if (!ret)
		ret = evloop_start(vm->loop);
	if (ret) {
		fprintf(stderr, "gmm-vmm: cannot start the event loop: %s\n", strerror(-ret));
		return -VMM_EXIT_HOST;
	}
	return 0;
}

/* The loop itself is vm_destroy()'s to free. */
static void stop_loop(struct vm *vm)
{
	evloop_stop(vm->loop);
	monitor_destroy(vm->mon);
	vm->mon = NULL;
}

int main(int argc, char **argv)
{
	struct vmm_opts opts;
	struct vm *vm = &the_vm;
	struct gmm_figures figures = { 0 };
	int ret;

	vm->t_start = now_ns();
	ret = opts_parse(&opts, argc, argv);
	if (ret)
		return ret > 0 ? 0 : -ret;
	ret = check_host(&opts);
	if (!ret)
		ret = vm_create(vm, &opts);
	if (!ret && vmm_test_devices)
		vmm_test_devices(vm);
	if (!ret)
		ret = start_loop(vm, &opts);
	if (ret) {
		stop_loop(vm);
		vm_destroy(vm);
		return -ret;
	}
	if (opts.qtest) {
		ret = qtest_run(vm);
		monitor_vm_stopped(vm->mon, ret);
		stop_loop(vm);
		vm_destroy(vm);
		return ret;
	}
	take_buddyinfo(vm, &figures, 0);
	ret = vm_run(vm);
	monitor_vm_stopped(vm->mon, ret);
	summary(vm, ret, now_ns(), &figures);
	free_figures(&figures);
	stop_loop(vm);
	vm_destroy(vm);
	return ret;
}
