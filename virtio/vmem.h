/* SPDX-License-Identifier: MIT */
/*
 * virtio/vmem.h - virtio-mem (device 24, PCI 1af4:1058) with VERSION_1 and
 * UNPLUGGED_INACCESSIBLE (VIRTIO 1.2 section 5.15). ACPI_PXM is not
 * offered: gmm-vmm gives its guests no ACPI, node_id is a plain guest node.
 *
 * The device owns a region of guest physical addresses outside guest RAM
 * and outside the e820 map / device tree memory nodes, in its own KVM
 * memslot: [addr, addr + region_size). Its host mapping starts PROT_NONE;
 * a plugged 2 MiB chunk is a second mapping of frames the device took from
 * the gmm pool on its node (one order-9 allocation per chunk), so:
 * - PLUG is acknowledged only once every frame of the request is held
 *   (NACK, guest running on, when the pool cannot); prealloc=on then
 *   populates the chunks (MADV_POPULATE_WRITE), else the host backs them on
 *   the guest's first touch.
 * - UNPLUG maps the chunks PROT_NONE again and frees the frames to the
 *   pool at once; a reporting pass queued on the event loop hands their
 *   host memory back.
 * - Unplugged memory is PROT_NONE: a guest access never gets host memory.
 *
 * Requests (queue 0): PLUG, UNPLUG, UNPLUG_ALL, STATE, answered ACK, NACK
 * (plug past requested_size, pool short), ERROR (malformed, unaligned,
 * outside [addr, addr + usable_region_size), blocks not in the state the
 * request needs). BUSY is never answered: nothing here is in flight.
 *
 * Calling contract: vmem_create() before the VM runs (gmm memory mode
 * only); the control functions from any thread (they take the device's
 * lock); vmem_destroy() after every thread stopped using it.
 */
#ifndef GMM_VIRTIO_VMEM_H
#define GMM_VIRTIO_VMEM_H

#include "virtio_pci.h"

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_ID_MEM				24
#define VIRTIO_MEM_F_ACPI_PXM			0
#define VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE	1

#define VIRTIO_MEM_REQ_PLUG		0
#define VIRTIO_MEM_REQ_UNPLUG		1
#define VIRTIO_MEM_REQ_UNPLUG_ALL	2
#define VIRTIO_MEM_REQ_STATE		3
#define VIRTIO_MEM_RESP_ACK		0
#define VIRTIO_MEM_RESP_NACK		1
#define VIRTIO_MEM_RESP_BUSY		2
#define VIRTIO_MEM_RESP_ERROR		3
#define VIRTIO_MEM_STATE_PLUGGED	0
#define VIRTIO_MEM_STATE_UNPLUGGED	1
#define VIRTIO_MEM_STATE_MIXED		2

/* struct virtio_mem_req: le16 type, 6 bytes padding, le64 addr, le16
 * nb_blocks, 6 bytes padding; struct virtio_mem_resp: le16 type, 6 bytes
 * padding, le16 state. */
#define VMEM_REQ_SIZE		24
#define VMEM_RESP_SIZE		10

/* Device configuration layout (little endian). */
#define VMEM_CFG_BLOCK_SIZE	0
#define VMEM_CFG_NODE_ID	8
#define VMEM_CFG_ADDR		16
#define VMEM_CFG_REGION_SIZE	24
#define VMEM_CFG_USABLE_SIZE	32
#define VMEM_CFG_PLUGGED_SIZE	40
#define VMEM_CFG_REQUESTED_SIZE	48
#define VMEM_CFG_SIZE		56

/* The unit the device takes from the pool: one pageblock (order 9). */
#define VMEM_CHUNK		(2ULL << 20)
#define VMEM_DEFAULT_BLOCK	VMEM_CHUNK
/* Linux's memory block on x86-64 (MIN_MEMORY_BLOCK_SIZE): regions start
 * and end on it, or its driver cannot add their memory. */
#define VMEM_LINUX_BLOCK	(128ULL << 20)
/* Usable region beyond requested_size (grows with it, like QEMU's). */
#define VMEM_USABLE_EXTRA	(2 * VMEM_LINUX_BLOCK)
#define VMEM_ID_MAX		32
#define VMEM_MAX_DEVICES	4

struct vmem_cfg {
	char id[VMEM_ID_MAX];
	unsigned int node;		/* guest (= pool) node */
	uint64_t size;			/* region_size */
	uint64_t block_size;
	uint64_t requested_size;	/* at start */
	bool prealloc;			/* populate chunks when plugged */
};

struct vmem_counters {
	uint64_t plugged_bytes;
	uint64_t requested_bytes;
	uint64_t usable_bytes;
	uint64_t plugs, unplugs, unplug_alls, states;	/* ACKed */
	uint64_t nacks, errors;
	uint64_t plug_ns, unplug_ns;	/* time spent in acked (un)plugs */
	unsigned long broken;
};

struct vmem;
struct vm;
struct evloop;
struct guestmem;

/* Whether cfg is a device vmem_create() can make on host pages of
 * host_page bytes (0: any): 0, or -1 with one line in err. Any thread. */
int vmem_check_cfg(const struct vmem_cfg *c, uint64_t host_page, char *err, size_t errlen);

/* Create the device at guest physical address addr on the PCI host; NULL
 * with one line in err on failure. */
struct vmem *vmem_create(struct pci_host *h, struct guestmem *gm, struct evloop *loop,
			 uint64_t addr, const struct vmem_cfg *cfg, char *err, size_t errlen);
/* Unplug everything (frames back to the pool), unmap, free; NULL is fine. */
void vmem_destroy(struct vmem *m);

/* The region for the VM's memslot: guest address, size, host mapping. */
void vmem_region(const struct vmem *m, uint64_t *gpa, uint64_t *size, void **hva);
const struct vmem_cfg *vmem_config(const struct vmem *m);

/* Ask the driver for a new plugged size: a multiple of block_size up to
 * region_size; 0 or -EINVAL. Grows usable_region_size as needed and
 * interrupts the driver. */
int vmem_set_requested(struct vmem *m, uint64_t bytes);
void vmem_counters(struct vmem *m, struct vmem_counters *c);

/* Called (device lock held) when plugged_size changed; one listener. */
void vmem_set_listener(struct vmem *m, void (*fn)(void *opaque, struct vmem *m,
						  uint64_t plugged), void *opaque);

/*
 * The guest's access to a byte of its device memory at region offset off
 * (the device-level test driver plays the guest with it): through the
 * region's own mapping, so a plugged byte reads what was written; -EFAULT
 * when the byte is not plugged (a vCPU's access would not get host memory
 * either) or off is outside the region.
 */
int vmem_access(struct vmem *m, uint64_t off, uint8_t *val, bool write);

struct virtio_dev *vmem_virtio(struct vmem *m);

#endif
