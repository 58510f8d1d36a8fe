/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/test_fdt.c - the device tree gmm-vmm builds, read back with the
 * benchmark guest's own FDT reader: memory nodes with numa-node-id on a
 * 2-node layout, CPUs, bootargs and the host-collection ports. Runs
 * gmm-vmm --dump-dtb, which writes the tree before it needs /dev/kvm.
 */
#include "guest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct seen {
	uint64_t mem_base[8], mem_size[8];
	uint32_t mem_node[8];
	int nr_mem, cpus;
	char bootargs[256];
	uint32_t result_port, serial_port;
};

static void prop(void *ctx, int node, int depth, const char *name, const char *parent,
		 const char *p, const void *val, uint32_t len)
{
	struct seen *s = ctx;

	(void)node;
	if (depth == 2 && !strncmp(name, "memory@", 7) && !strcmp(p, "reg") && len == 16) {
		s->mem_base[s->nr_mem] = fdt_be64(val);
		s->mem_size[s->nr_mem++] = fdt_be64((const char *)val + 8);
	} else if (depth == 2 && !strncmp(name, "memory@", 7) && !strcmp(p, "numa-node-id")) {
		s->mem_node[s->nr_mem - 1] = fdt_be32(val);
	} else if (depth == 3 && !strcmp(parent, "cpus") && !strcmp(p, "device_type")) {
		s->cpus++;
	} else if (!strcmp(name, "chosen") && !strcmp(p, "bootargs")) {
		snprintf(s->bootargs, sizeof(s->bootargs), "%.*s", (int)len, (const char *)val);
	} else if (!strncmp(name, "host@", 5) && !strcmp(p, "result-port")) {
		s->result_port = fdt_be32(val);
	} else if (!strncmp(name, "serial@", 7) && !strcmp(p, "ioport")) {
		s->serial_port = fdt_be32(val);
	}
}

static int run_vmm(const char *vmm, const char *dtb)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		execl(vmm, vmm, "--numa", "mem=48M", "--numa", "mem=80M", "--vcpus", "3",
		      "--guest-workload", "touch=8 verify", "--dump-dtb", dtb, "--quiet",
		      (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	/* On a host without /dev/kvm it exits 3 after writing the tree. */
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv)
{
	char dtb[] = "/tmp/gmm-fdt-XXXXXX";
	static char blob[65536];
	struct seen s = { 0 };
	size_t n;
	FILE *f;
	int fd, fails = 0;

	if (argc < 2)
		return 2;
	fd = mkstemp(dtb);
	close(fd);
	run_vmm(argv[1], dtb);
	f = fopen(dtb, "rb");
	n = f ? fread(blob, 1, sizeof(blob), f) : 0;
	if (f)
		fclose(f);
	unlink(dtb);
	if (!n || fdt_walk(blob, prop, &s)) {
		fprintf(stderr, "FAIL: no readable device tree (%zu bytes)\n", n);
		return 1;
	}
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL: %s\n", #c); fails++; } } while (0)
	CHECK(s.nr_mem == 2);
	CHECK(s.mem_base[0] == 0 && s.mem_size[0] == 48 << 20 && s.mem_node[0] == 0);
	CHECK(s.mem_base[1] == 48 << 20 && s.mem_size[1] == 80 << 20 && s.mem_node[1] == 1);
	CHECK(s.cpus == 3);
	CHECK(!strcmp(s.bootargs, "touch=8 verify"));
	CHECK(s.result_port == 0x500 && s.serial_port == 0x3f8);
	CHECK(fdt_ram_end(blob) == 128 << 20);
	if (!fails)
		printf("fdt: 2 memory nodes, 3 cpus, bootargs and ports as asked\n");
	return fails ? 1 : 0;
}
