/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-vmem.c - virtio-mem plug and unplug of 1 GiB through
 * gmm-vmm's device-level test driver (--qtest: no vCPU; the benchmark plays
 * Linux's virtio_mem driver, one request per 128 MiB memory block as it
 * sends them), lazy (prealloc=off) and eager (prealloc=on) population, with
 * the host memory behind gmm's memfd before, after plugging and after
 * unplugging. Baselines from the same run, in this process: backing 1 GiB
 * of a fresh memfd (MADV_POPULATE_WRITE: what eager plugging cannot go
 * below) and punching it out again (what handing it back costs at least).
 *
 * Usage: bench-vmem GMM_VMM. Prints text and one JSON line.
 */
#include "qtest_lib.h"
#include "vmem.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define MIB		(1ULL << 20)
#define PLUG_BYTES	(1024 * MIB)
#define LINUX_BLOCK	(128 * MIB)	/* one request per memory block */
#define BLOCK		(2 * MIB)
#define RETURN_WAIT_MS	10000

struct result {
	double plug_ms, unplug_ms, back_ms;	/* wall, as the driver sees it */
	double dev_plug_ms, dev_unplug_ms;	/* inside the device */
	uint64_t kib_before, kib_plugged, kib_after;
};

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static uint64_t stat_of(struct qts *q, const char *cmd, const char *key)
{
	qts_cmd(q, "%s", cmd);
	return qts_kv(q, key);
}

/* Plug or unplug the whole region, 128 MiB per request; fatal on a NACK. */
static void all_blocks(struct vdev *d, uint64_t req, uint64_t resp, uint64_t addr,
		       uint16_t type)
{
	for (uint64_t off = 0; off < PLUG_BYTES; off += LINUX_BLOCK) {
		if (vd_vmem_request(d, req, resp, type, addr + off,
				    (uint16_t)(LINUX_BLOCK / BLOCK), NULL) != VIRTIO_MEM_RESP_ACK) {
			fprintf(stderr, "bench-vmem: request %u at +%llu MiB not acknowledged\n",
				type, (unsigned long long)(off / MIB));
			exit(1);
		}
	}
}

static void run(const char *vmm, bool eager, struct result *r)
{
	char args[160];
	struct timespec t0;
	struct vdev d;
	struct qts *q;
	uint64_t addr, req, resp;

	snprintf(args, sizeof(args), "--memory 64M --virtio-mem id=b,size=1G,requested-size=1G,prealloc=%s",
		 eager ? "on" : "off");
	q = qts_start(vmm, args);
	vd_vmem_up(q, &d);
	addr = vd_cfg64(&d, VMEM_CFG_ADDR);
	req = vd_alloc(&d, VMEM_REQ_SIZE, 8);
	resp = vd_alloc(&d, 16, 8);
	r->kib_before = stat_of(q, "mem", "memfd_kib");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	all_blocks(&d, req, resp, addr, VIRTIO_MEM_REQ_PLUG);
	r->plug_ms = ms_since(&t0);
	r->kib_plugged = stat_of(q, "mem", "memfd_kib");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	all_blocks(&d, req, resp, addr, VIRTIO_MEM_REQ_UNPLUG);
	r->unplug_ms = ms_since(&t0);
	while (stat_of(q, "mem", "memfd_kib") > r->kib_before + 4096 &&
	       ms_since(&t0) < RETURN_WAIT_MS)
		usleep(1000);
	r->back_ms = ms_since(&t0);
	r->kib_after = stat_of(q, "mem", "memfd_kib");
	r->dev_plug_ms = (double)stat_of(q, "vmem-info 0", "plug_ns") / 1e6;
	r->dev_unplug_ms = (double)stat_of(q, "vmem-info 0", "unplug_ns") / 1e6;
	qts_quit(q);
}

/* The baseline: back 1 GiB of a memfd, then punch it out. */
static void baseline(double *populate_ms, double *punch_ms)
{
	struct timespec t0;
	int fd = memfd_create("bench-vmem", MFD_CLOEXEC);
	void *p;

	if (fd < 0 || ftruncate(fd, (off_t)PLUG_BYTES)) {
		perror("bench-vmem: memfd");
		exit(1);
	}
	p = mmap(NULL, PLUG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("bench-vmem: mmap");
		exit(1);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (madvise(p, PLUG_BYTES, MADV_POPULATE_WRITE)) {
		perror("bench-vmem: MADV_POPULATE_WRITE");
		exit(1);
	}
	*populate_ms = ms_since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)PLUG_BYTES);
	*punch_ms = ms_since(&t0);
	munmap(p, PLUG_BYTES);
	close(fd);
}

static void show(const char *name, const struct result *r)
{
	printf("  %-5s plug %8.1f ms (device %8.1f), unplug %7.1f ms (device %7.1f), host memory back in %7.1f ms;"
	       " memfd %llu -> %llu -> %llu MiB\n", name, r->plug_ms, r->dev_plug_ms, r->unplug_ms,
	       r->dev_unplug_ms, r->back_ms, (unsigned long long)(r->kib_before >> 10),
	       (unsigned long long)(r->kib_plugged >> 10), (unsigned long long)(r->kib_after >> 10));
}

int main(int argc, char **argv)
{
	struct result lazy, eager;
	double pop_ms, punch_ms;

	if (argc != 2) {
		fprintf(stderr, "usage: bench-vmem GMM_VMM\n");
		return 2;
	}
	baseline(&pop_ms, &punch_ms);
	run(argv[1], false, &lazy);
	run(argv[1], true, &eager);
	printf("virtio-mem, 1 GiB in 8 requests of 128 MiB (2 MiB blocks, gmm mode, shmem pool):\n");
	show("lazy", &lazy);
	show("eager", &eager);
	printf("  baseline (this process, a fresh memfd): populate 1 GiB %.1f ms, punch it out %.1f ms\n",
	       pop_ms, punch_ms);
	printf("  eager plug / populate baseline: %.2fx; lazy plug / populate baseline: %.3fx; "
	       "eager back-to-host / punch baseline: %.2fx\n",
	       eager.plug_ms / pop_ms, lazy.plug_ms / pop_ms, eager.back_ms / punch_ms);
	printf("{\"bench\":\"vmem\",\"bytes\":%llu,\"lazy_plug_ms\":%.2f,\"lazy_unplug_ms\":%.2f,"
	       "\"lazy_back_ms\":%.1f,\"lazy_plugged_kib\":%llu,\"eager_plug_ms\":%.2f,"
	       "\"eager_unplug_ms\":%.2f,\"eager_back_ms\":%.1f,\"eager_plugged_kib\":%llu,"
	       "\"eager_after_kib\":%llu,\"baseline_populate_ms\":%.2f,\"baseline_punch_ms\":%.2f}\n",
	       PLUG_BYTES, lazy.plug_ms, lazy.unplug_ms, lazy.back_ms,
	       (unsigned long long)(lazy.kib_plugged - lazy.kib_before), eager.plug_ms,
	       eager.unplug_ms, eager.back_ms,
	       (unsigned long long)(eager.kib_plugged - eager.kib_before),
	       (unsigned long long)(eager.kib_after - eager.kib_before), pop_ms, punch_ms);
	return eager.kib_plugged - eager.kib_before >= PLUG_BYTES / 1024 ? 0 : 1;
}
