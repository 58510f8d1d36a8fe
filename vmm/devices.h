/* SPDX-License-Identifier: MIT */
/*
 * vmm/devices.h - a VM's devices: the port I/O and MMIO buses, the
 * interrupt helper, the PCI host, and the list of devices with the part of
 * the guest's description each contributes (its device tree node for the
 * benchmark guest; PCI devices describe themselves through configuration
 * space).
 *
 * Calling contract: devices_create() from vm_create() after guest memory
 * exists, before any vCPU or the test driver runs; devices_destroy() after
 * they stopped; devices_fdt() while building the device tree; the buses,
 * irqchip and PCI host are then used from any thread (their own contracts).
 */
#ifndef GMM_VMM_DEVICES_H
#define GMM_VMM_DEVICES_H

#include "bus.h"
#include "irq.h"
#include "pci.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Devices that contribute a description (serial, host ports, PCI host). */
#define DEVICES_MAX	8
/* virtio-mem devices (VMEM_MAX_DEVICES in virtio/vmem.h). */
#define VMEM_SLOTS_MAX	4

struct vm;
struct balloon;
struct vmem;

/* A device's description for the benchmark guest's device tree. */
struct vmdev {
	const char *name;
	int (*fdt_node)(void *opaque, void *fdt);	/* NULL: none */
	void *opaque;
};

struct devices {
	struct bus pio;
	struct bus mmio;
	struct irqchip irq;
	struct pci_host pci;
	struct balloon *balloon;	/* NULL without --balloon */
	struct vmem *vmem[VMEM_SLOTS_MAX];	/* --virtio-mem, in order */
	unsigned int nr_vmem;
	struct vmdev dev[DEVICES_MAX];
	unsigned int nr;
};

/* Create every device of vm, interrupts recorded only until irq_set_vm();
 * 0, or -1 with err set. */
int devices_create(struct vm *vm, char *err, size_t errlen);
/* Destroy every device and the buses (after vCPUs and the loop stopped). */
void devices_destroy(struct vm *vm);

/* Add a description; 0 or -ENOSPC. */
int devices_add(struct devices *d, const char *name,
		int (*fdt_node)(void *opaque, void *fdt), void *opaque);

/* Device memory regions (virtio-mem), each in its own KVM memslot after
 * guest RAM's: how many, and the i-th (gpa, size, host mapping). */
unsigned int devices_nr_regions(const struct vm *vm);
void devices_region(const struct vm *vm, unsigned int i, uint64_t *gpa, uint64_t *size,
		    void **hva);

/* Each device's FDT node, in the order added; 0 or a libfdt error. */
int devices_fdt(struct vm *vm, void *fdt);

/* The devices' lines of gmm-vmm's closing summary (text), or their
 * fields of the JSON summary line (json: ",\"key\":value..."). */
void devices_summary(struct vm *vm, bool json);

#endif
