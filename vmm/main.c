/* SPDX-License-Identifier: MIT */
/*
 * vmm/main.c - gmm-vmm's entry: options, checks of what the host can give,
 * running the VM, and the closing summary (boot time, pages faulted in,
 * host RSS, the guest's verdict) as text and as one JSON line.
 */
#include "vmm.h"

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
static uint64_t proc_kib(const char *path, const char *key)
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

static void summary(struct vm *vm, int code, uint64_t t_end)
{
	struct guestmem_stats st;
	uint64_t rss = proc_kib("/proc/self/status", "VmRSS");
	uint64_t hwm = proc_kib("/proc/self/status", "VmHWM");
	const char *mode = guestmem_mode_name(vm->opts->mem.mode);

	guestmem_get_stats(vm->gm, &st);
	if (!vm->opts->quiet) {
		printf("gmm-vmm: %s (exit %d)\n", vm->reason, code);
		printf("gmm-vmm: boot time: first instruction %.3f ms, user mode %.3f ms, first result %.3f ms, total %.3f ms\n",
		       ms_since(vm->t_start, vm->t_first_insn), ms_since(vm->t_start, vm->t_user),
		       ms_since(vm->t_start, vm->t_first_result), ms_since(vm->t_start, t_end));
		printf("gmm-vmm: memory: %s, %llu MiB, pages faulted in %llu, backed %llu MiB, discarded %llu pages of %llu KiB\n",
		       mode, (unsigned long long)(vm->opts->memory >> 20),
		       (unsigned long long)st.faults,
		       (unsigned long long)(st.backed * st.page_size >> 20),
		       (unsigned long long)st.discards, (unsigned long long)(st.page_size >> 10));
		printf("gmm-vmm: host RSS %llu MiB (peak %llu MiB)\n",
		       (unsigned long long)(rss >> 10), (unsigned long long)(hwm >> 10));
		printf("gmm-vmm: guest verdict: %s\n", verdict(vm, code));
	}
	printf("{\"vmm\":\"summary\",\"exit\":%d,\"verdict\":\"%s\",\"mode\":\"%s\",\"memory_mib\":%llu,"
	       "\"vcpus\":%u,\"page_size\":%llu,\"faults\":%llu,\"backed\":%llu,\"discards\":%llu,"
	       "\"rss_kib\":%llu,\"hwm_kib\":%llu,\"results\":%u,\"t_start_mono_ns\":%llu,"
	       "\"first_insn_ns\":%llu,\"user_ns\":%llu,\"first_result_ns\":%llu,\"total_ns\":%llu}\n",
	       code, verdict(vm, code), mode, (unsigned long long)(vm->opts->memory >> 20),
	       vm->nr_vcpus, (unsigned long long)st.page_size, (unsigned long long)st.faults,
	       (unsigned long long)st.backed, (unsigned long long)st.discards,
	       (unsigned long long)rss, (unsigned long long)hwm, atomic_load(&vm->results),
	       (unsigned long long)vm->t_start,
	       (unsigned long long)(vm->t_first_insn ? vm->t_first_insn - vm->t_start : 0),
	       (unsigned long long)(vm->t_user ? vm->t_user - vm->t_start : 0),
	       (unsigned long long)(vm->t_first_result ? vm->t_first_result - vm->t_start : 0),
	       (unsigned long long)(t_end - vm->t_start));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct vmm_opts opts;
	struct vm *vm = &the_vm;
	int ret;

	vm->t_start = now_ns();
	ret = opts_parse(&opts, argc, argv);
	if (ret)
		return ret > 0 ? 0 : -ret;
	ret = check_host(&opts);
	if (!ret)
		ret = vm_create(vm, &opts);
	if (ret) {
		vm_destroy(vm);
		return -ret;
	}
	ret = vm_run(vm);
	summary(vm, ret, now_ns());
	vm_destroy(vm);
	return ret;
}
