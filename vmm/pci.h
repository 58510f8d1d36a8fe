/* SPDX-License-Identifier: MIT */
/*
 * vmm/pci.h - a PCI host bridge on configuration mechanism 1 (ports
 * 0xcf8/0xcfc) with one bus of devices: type 0 configuration spaces, 32-bit
 * memory BARs placed in the 32-bit hole and mapped on the MMIO bus while
 * memory decoding is on, a capability list, INTx, and MSI-X (the
 * capability here; the table lives in the device's BAR, served by it).
 *
 * Linux finds it without ACPI or a device tree (`pci=conf1`): its type 1
 * probe sees the address latch read back and a host bridge at 00:00.0.
 *
 * Calling contract:
 * - pci_dev_init(), pci_add_cap() and pci_set_bar() set a device up before
 *   pci_host_add(); after it, the configuration space belongs to the host
 *   (guest accesses under the host's lock).
 * - pci_set_intx() from any thread (the device's interrupt source).
 * - pci_cfg_read() / pci_cfg_write() are the guest's accesses, exported for
 *   the device-level test driver; any thread.
 */
#ifndef GMM_VMM_PCI_H
#define GMM_VMM_PCI_H

#include "bus.h"
#include "irq.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PCI_CONF1_PORT		0xcf8
#define PCI_CONF1_LEN		8
#define PCI_CFG_SIZE		256
#define PCI_NR_BARS		6
#define PCI_MAX_SLOTS		8	/* devices on bus 0, bridge included */
/* BARs go into [PCI_MMIO_BASE, PCI_MMIO_END), inside the 32-bit hole and
 * below the IOAPIC, the TSS and the identity map near 4 GiB. */
#define PCI_MMIO_BASE		0xe0000000ULL
#define PCI_MMIO_END		0xfec00000ULL
/* INTx of slot s is GSI PCI_INTX_GSI_BASE + s % PCI_INTX_GSIS. */
#define PCI_INTX_GSI_BASE	10
#define PCI_INTX_GSIS		2

/* Configuration space offsets and bits used here (PCI Local Bus 3.0). */
#define PCI_VENDOR_ID		0x00
#define PCI_DEVICE_ID		0x02
#define PCI_COMMAND		0x04
#define PCI_COMMAND_IO		0x0001
#define PCI_COMMAND_MEMORY	0x0002
#define PCI_COMMAND_MASTER	0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS		0x06
#define PCI_STATUS_INTERRUPT	0x0008
#define PCI_STATUS_CAP_LIST	0x0010
#define PCI_REVISION_ID		0x08
#define PCI_CLASS_PROG		0x09
#define PCI_HEADER_TYPE		0x0e
#define PCI_BASE_ADDRESS_0	0x10
#define PCI_SUBSYSTEM_VENDOR_ID	0x2c
#define PCI_SUBSYSTEM_ID	0x2e
#define PCI_CAPABILITY_LIST	0x34
#define PCI_INTERRUPT_LINE	0x3c
#define PCI_INTERRUPT_PIN	0x3d
#define PCI_CAP_ID_VNDR		0x09
#define PCI_CAP_ID_MSIX		0x11
#define PCI_MSIX_FLAGS		2
#define PCI_MSIX_FLAGS_MASKALL	0x4000
#define PCI_MSIX_FLAGS_ENABLE	0x8000
#define PCI_MSIX_TABLE		4
#define PCI_MSIX_PBA		8
#define PCI_MSIX_CAP_SIZE	12
#define PCI_MSIX_ENTRY_SIZE	16
#define PCI_CAP_START		0x40

struct pci_host;

struct pci_dev {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];	/* bits the guest may write */
	uint32_t bar_size[PCI_NR_BARS];	/* 0: no BAR */
	uint32_t bar_mapped[PCI_NR_BARS]; /* address on the MMIO bus, 0: none */
	const struct bus_ops *bar_ops[PCI_NR_BARS];
	void *bar_opaque[PCI_NR_BARS];
	uint8_t cap_last;		/* offset of the last capability */
	uint8_t cap_next;		/* where the next one goes */
	unsigned int slot;
	unsigned int gsi;
	bool intx;			/* the device's INTx level */
	bool intx_masked;		/* PCI_COMMAND_INTX_DISABLE */
	uint8_t msix_cap;		/* offset of the MSI-X capability, 0: none */
	bool msix_enabled;		/* copies of its control bits */
	bool msix_masked;
	/* the guest wrote the MSI-X capability (called without PCI locks) */
	void (*msix_written)(void *opaque);
	void *msix_opaque;
	/* A window of configuration space the device serves itself (virtio's
	 * PCI configuration access capability): accesses wholly inside
	 * [window, window + window_len) go here, without PCI locks held. */
	uint8_t window;
	uint8_t window_len;
	uint32_t (*window_read)(void *opaque, unsigned int off, unsigned int len);
	void (*window_write)(void *opaque, unsigned int off, unsigned int len,
			     uint32_t val);
	void *window_opaque;
	struct pci_host *host;
	const char *name;
};

struct pci_host {
	pthread_mutex_t lock;		/* configuration spaces, the latch */
	pthread_mutex_t intx_lock;	/* INTx levels (see pci.c) */
	uint32_t addr;			/* the 0xcf8 address latch */
	struct pci_dev bridge;
	struct pci_dev *dev[PCI_MAX_SLOTS];
	unsigned int nr;
	uint64_t mmio_next;
	struct bus *mmio;
	struct irqchip *irq;
};

/* The host bridge at 00:00.0 and the conf1 ports on pio; 0 or -errno. */
int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio,
		  struct irqchip *irq);
/* Take the conf1 ports off pio; the devices are their owners'. */
void pci_host_destroy(struct pci_host *h, struct bus *pio);

/* A type 0 header with these identifiers; INTx pin A. */
void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor,
		  uint16_t device, uint32_t class_code, uint8_t revision,
		  uint16_t subsys_vendor, uint16_t subsys);

/* Append a capability (cap[0] its ID, cap[1] filled in); its offset, or
 * -ENOSPC when the 256-byte space is full. */
int pci_add_cap(struct pci_dev *d, const void *cap, unsigned int len);

/* A 32-bit memory BAR of size (a power of two, at least 4 KiB). */
void pci_set_bar(struct pci_dev *d, unsigned int bar, uint32_t size,
		 const struct bus_ops *ops, void *opaque);

/* An MSI-X capability whose table and PBA the device serves in its BAR
 * bar at these offsets; 0 or -ENOSPC. */
int pci_add_msix(struct pci_dev *d, unsigned int bar, uint32_t table, uint32_t pba,
		 unsigned int nr_vectors);

/* Whether MSI-X is enabled; *masked: the function mask. Any thread. */
bool pci_msix_state(struct pci_dev *d, bool *masked);

/* Put the device on the bus: slot, BAR addresses, INTx line, decoding on.
 * 0, -ENOSPC (no slot or no room in the hole) or a bus error. */
int pci_host_add(struct pci_host *h, struct pci_dev *d);

/* Set the device's INTx level (masked by the command register). */
void pci_set_intx(struct pci_dev *d, bool level);

/* Configuration access to bus 0 (devfn, offset, len 1/2/4), as the guest. */
uint32_t pci_cfg_read(struct pci_host *h, unsigned int devfn, unsigned int off,
		      unsigned int len);
void pci_cfg_write(struct pci_host *h, unsigned int devfn, unsigned int off,
		   unsigned int len, uint32_t val);

#endif
