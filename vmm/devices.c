/* SPDX-License-Identifier: MIT */
/*
 * vmm/devices.c - creates a VM's devices on the buses and collects their
 * descriptions (contract in devices.h).
 */
#include "devices.h"
#include "balloon.h"
#include "balloon_ctl.h"
#include "vmem.h"
#include "vmm.h"

#include <cpuid.h>
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>

int devices_add(struct devices *d, const char *name,
		int (*fdt_node)(void *opaque, void *fdt), void *opaque)
{
	if (d->nr == DEVICES_MAX)
		return -ENOSPC;
	d->dev[d->nr++] = (struct vmdev){ name, fdt_node, opaque };
	return 0;
}

/* The PCI host for the benchmark guest: where its conf1 ports are. */
static int pci_fdt(void *opaque, void *fdt)
{
	int ret;

	(void)opaque;
	ret = fdt_begin_node(fdt, "pci@cf8");
	if (!ret)
		ret = fdt_property_string(fdt, "compatible", "gmm,pci-conf1");
	if (!ret)
		ret = fdt_property_u32(fdt, "ioport", PCI_CONF1_PORT);
	if (!ret)
		ret = fdt_property_u32(fdt, "interrupt-base", PCI_INTX_GSI_BASE);
	return ret ? ret : fdt_end_node(fdt);
}

static int create_balloon(struct vm *vm, char *err, size_t errlen)
{
	struct devices *d = vm->dev;
	const struct vmm_opts *o = vm->opts;
	struct balloon_cfg cfg = o->balloon_cfg;

	cfg.unit_bytes = o->mem.page_size;
	d->balloon = balloon_create(vm, &d->pci, vm->gm, vm->loop, o->memory, &cfg,
				    err, errlen);
	if (!d->balloon)
		return -1;
	if (o->balloon_target && balloon_ctl_set_target(vm, o->balloon_target)) {
		snprintf(err, errlen, "--balloon: target %llu bytes is not within the guest's RAM",
			 (unsigned long long)o->balloon_target);
		return -1;
	}
	return 0;
}

/* Device memory starts on a 1 GiB boundary above RAM and the 4 GiB hole:
 * aligned for Linux's memory blocks (128 MiB, more on big machines). */
#define VMEM_REGION_ALIGN	(1ULL << 30)
#define PHYS_BITS_DEFAULT	36

/* The guest's physical address width: the host CPU's, which it sees. */
static unsigned int phys_bits(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(0x80000000, &a, &b, &c, &d) || a < 0x80000008 ||
	    !__get_cpuid(0x80000008, &a, &b, &c, &d))
		return PHYS_BITS_DEFAULT;
	return a & 0xff;
}

static int create_vmem(struct vm *vm, char *err, size_t errlen)
{
	struct devices *d = vm->dev;
	const struct vmm_opts *o = vm->opts;
	uint64_t addr = guestmem_end(vm->gm);

	static_assert(VMEM_SLOTS_MAX == VMEM_MAX_DEVICES, "one slot per device");
	static_assert(GUESTMEM_MAX_DEVRAM >= VMEM_MAX_DEVICES, "device RAM for each");
	if (addr < GUESTMEM_HOLE_END)
		addr = GUESTMEM_HOLE_END;
	for (unsigned int i = 0; i < o->nr_vmem; i++) {
		addr = align_up(addr, VMEM_REGION_ALIGN);
		if (addr + o->vmem[i].size > 1ULL << phys_bits()) {
			snprintf(err, errlen, "--virtio-mem %s: the region would end past the %u-bit physical address width",
				 o->vmem[i].id, phys_bits());
			return -1;
		}
		d->vmem[i] = vmem_create(&d->pci, vm->gm, vm->loop, addr, &o->vmem[i], err, errlen);
		if (!d->vmem[i])
			return -1;
		d->nr_vmem++;
		addr += o->vmem[i].size;
	}
	return 0;
}

unsigned int devices_nr_regions(const struct vm *vm)
{
	return vm->dev ? vm->dev->nr_vmem : 0;
}

void devices_region(const struct vm *vm, unsigned int i, uint64_t *gpa, uint64_t *size,
		    void **hva)
{
	vmem_region(vm->dev->vmem[i], gpa, size, hva);
}

int devices_create(struct vm *vm, char *err, size_t errlen)
{
	struct devices *d = calloc(1, sizeof(*d));

	vm->dev = d;
	if (!d) {
		snprintf(err, errlen, "cannot allocate the device model");
		return -1;
	}
	bus_init(&d->pio, "pio");
	bus_init(&d->mmio, "mmio");
	irq_init(&d->irq, -1);
	if (serial_attach(&vm->serial, &d->pio, SERIAL_BASE) ||
	    devices_add(d, "serial", serial_fdt_node, &vm->serial) ||
	    ports_attach(vm) ||
	    pci_host_init(&d->pci, &d->pio, &d->mmio, &d->irq) ||
	    devices_add(d, "pci", pci_fdt, &d->pci)) {
		snprintf(err, errlen, "cannot register the devices on their buses");
		return -1;
	}
	/* virtio-mem first: the balloon takes pages of its plugged memory too */
	if (create_vmem(vm, err, errlen))
		return -1;
	return vm->opts->balloon ? create_balloon(vm, err, errlen) : 0;
}

void devices_destroy(struct vm *vm)
{
	struct devices *d = vm->dev;

	if (!d)
		return;
	balloon_destroy(d->balloon);
	for (unsigned int i = 0; i < d->nr_vmem; i++)
		vmem_destroy(d->vmem[i]);
	pci_host_destroy(&d->pci, &d->pio);
	bus_destroy(&d->pio);
	bus_destroy(&d->mmio);
	free(d);
	vm->dev = NULL;
}

int devices_fdt(struct vm *vm, void *fdt)
{
	struct devices *d = vm->dev;

	for (unsigned int i = 0; d && i < d->nr; i++) {
		int ret = d->dev[i].fdt_node ? d->dev[i].fdt_node(d->dev[i].opaque, fdt) : 0;

		if (ret)
			return ret;
	}
	return 0;
}

/* One line (or JSON fields) per virtio-mem device. */
static void vmem_summary(struct vm *vm, bool json)
{
	for (unsigned int i = 0; vm->dev && i < vm->dev->nr_vmem; i++) {
		struct vmem_counters k;
		const char *id = vmem_config(vm->dev->vmem[i])->id;

		vmem_counters(vm->dev->vmem[i], &k);
		if (json) {
			printf(",\"vmem_%u_plugged\":%llu,\"vmem_%u_nacks\":%llu", i,
			       (unsigned long long)k.plugged_bytes, i, (unsigned long long)k.nacks);
			continue;
		}
		printf("gmm-vmm: virtio-mem %s: %llu MiB plugged (requested %llu MiB), %llu plugs, %llu unplugs, %llu unplug-alls, %llu NACKs, %llu errors, %lu broken rings\n",
		       id, (unsigned long long)(k.plugged_bytes >> 20),
		       (unsigned long long)(k.requested_bytes >> 20), (unsigned long long)k.plugs,
		       (unsigned long long)k.unplugs, (unsigned long long)k.unplug_alls,
		       (unsigned long long)k.nacks, (unsigned long long)k.errors, k.broken);
	}
}

void devices_summary(struct vm *vm, bool json)
{
	struct balloon_counters c;

	vmem_summary(vm, json);
	if (!vm->dev || !vm->dev->balloon)
		return;
	balloon_counters(vm->dev->balloon, &c);
	if (json) {
		printf(",\"balloon_pages\":%llu,\"balloon_discard_calls\":%llu,"
		       "\"balloon_reported_bytes\":%llu,\"balloon_stats_updates\":%llu,"
		       "\"balloon_broken\":%lu",
		       (unsigned long long)c.inflated_pages, (unsigned long long)c.discard_calls,
		       (unsigned long long)c.reported_bytes, (unsigned long long)c.stats_updates,
		       c.broken);
		return;
	}
	printf("gmm-vmm: balloon: %llu pages inflated now (%llu PFNs inflated, %llu deflated, %llu ignored), %llu discard calls, %llu MiB reported free, %llu stats updates, %lu broken rings\n",
	       (unsigned long long)c.inflated_pages, (unsigned long long)c.inflate_pfns,
	       (unsigned long long)c.deflate_pfns, (unsigned long long)c.bad_pfns,
	       (unsigned long long)c.discard_calls, (unsigned long long)(c.reported_bytes >> 20),
	       (unsigned long long)c.stats_updates, c.broken);
}
