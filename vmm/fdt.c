/* SPDX-License-Identifier: MIT */
/*
 * vmm/fdt.c - the flattened device tree given to the benchmark guest: memory
 * nodes with numa-node-id (one per guestmem slot), CPUs, /chosen bootargs,
 * and each device's own node (devices_fdt()).
 */
#include "vmm.h"

#include <libfdt.h>
#include <stdio.h>

#define CHECK(x) do { int _r = (x); if (_r < 0) return _r; } while (0)

static int prop_u64_pair(void *fdt, const char *name, uint64_t a, uint64_t b)
{
	fdt64_t v[2] = { cpu_to_fdt64(a), cpu_to_fdt64(b) };

	return fdt_property(fdt, name, v, sizeof(v));
}

static int add_memory(void *fdt, struct vm *vm)
{
	char name[64];

	for (unsigned int i = 0; i < guestmem_nr_slots(vm->gm); i++) {
		const struct guestmem_slot *s = guestmem_slot(vm->gm, i);

		snprintf(name, sizeof(name), "memory@%llx", (unsigned long long)s->gpa);
		CHECK(fdt_begin_node(fdt, name));
		CHECK(fdt_property_string(fdt, "device_type", "memory"));
		CHECK(prop_u64_pair(fdt, "reg", s->gpa, s->size));
		CHECK(fdt_property_u32(fdt, "numa-node-id", s->node));
		CHECK(fdt_end_node(fdt));
	}
	return 0;
}

static int add_cpus(void *fdt, struct vm *vm)
{
	unsigned int nodes = vm->opts->mem.nr_nodes;
	char name[32];

	CHECK(fdt_begin_node(fdt, "cpus"));
	CHECK(fdt_property_u32(fdt, "#address-cells", 1));
	CHECK(fdt_property_u32(fdt, "#size-cells", 0));
	CHECK(fdt_property_u64(fdt, "timebase-frequency", (uint64_t)vm->tsc_khz * 1000));
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		snprintf(name, sizeof(name), "cpu@%u", i);
		CHECK(fdt_begin_node(fdt, name));
		CHECK(fdt_property_string(fdt, "device_type", "cpu"));
		CHECK(fdt_property_u32(fdt, "reg", i));
		CHECK(fdt_property_u32(fdt, "numa-node-id", i % nodes));
		CHECK(fdt_end_node(fdt));
	}
	return fdt_end_node(fdt);
}

static int build(void *fdt, size_t size, struct vm *vm)
{
	const char *args = vm->opts->workload ? vm->opts->workload : "touch=64 verify";

	CHECK(fdt_create(fdt, (int)size));
	CHECK(fdt_finish_reservemap(fdt));
	CHECK(fdt_begin_node(fdt, ""));
	CHECK(fdt_property_string(fdt, "compatible", "gmm,benchmark-vm"));
	CHECK(fdt_property_u32(fdt, "#address-cells", 2));
	CHECK(fdt_property_u32(fdt, "#size-cells", 2));
	CHECK(fdt_begin_node(fdt, "chosen"));
	CHECK(fdt_property_string(fdt, "bootargs", args));
	CHECK(fdt_property_string(fdt, "stdout-path", "/serial@3f8"));
	CHECK(fdt_end_node(fdt));
	CHECK(add_memory(fdt, vm));
	CHECK(add_cpus(fdt, vm));
	CHECK(devices_fdt(vm, fdt));
	CHECK(fdt_end_node(fdt));
	return fdt_finish(fdt);
}

/* Build into buf; returns the blob's size or -1 with err set. */
int fdt_build(struct vm *vm, void *buf, size_t size, char *err, size_t errlen)
{
	int ret = build(buf, size, vm);

	if (ret < 0) {
		snprintf(err, errlen, "cannot build the device tree: %s", fdt_strerror(ret));
		return -1;
	}
	return (int)fdt_totalsize(buf);
}
