/* SPDX-License-Identifier: MIT */
/*
 * virtio/virtio_pci.h - a virtio device's common state (status, features,
 * virtqueues, interrupt status) on the modern virtio-pci transport
 * (VIRTIO 1.2 section 4.1): vendor capabilities for the common, notify,
 * ISR and device configuration structures, all in a 32-bit memory BAR 0;
 * interrupts by MSI-X (one vector per queue plus one for configuration
 * changes) or INTx (the ISR is read-to-clear); and the PCI configuration
 * access capability, a window onto BAR 0 through configuration space.
 *
 * Layout of BAR 0: common configuration at 0x0000, ISR at 0x1000, device
 * configuration at 0x2000, notifications at 0x3000 + 4 * queue, the MSI-X
 * table at 0x3800 and its pending bits at 0x3c00.
 *
 * Calling contract:
 * - virtio_pci_init() once before the VM runs, then pci_host_add() is done
 *   by it; the device's ops are then called with vd->lock held: from a vCPU
 *   thread or the test driver (register accesses, notifications). A
 *   notify op may drop vd->lock for long work (the balloon's discards) if
 *   it takes it again before returning, lets one thread at a time work a
 *   queue, and copes with a reset meanwhile.
 * - Other threads (timers, the monitor) that touch the device take vd->lock
 *   and may then call virtio_notify(), virtio_config_changed() and
 *   virtio_set_broken().
 */
#ifndef GMM_VIRTIO_VIRTIO_PCI_H
#define GMM_VIRTIO_VIRTIO_PCI_H

#include "pci.h"
#include "virtqueue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_MAX_VQS			8
#define VIRTIO_PCI_VENDOR		0x1af4
#define VIRTIO_PCI_DEVICE_BASE		0x1040	/* + virtio device ID */
#define VIRTIO_PCI_BAR_SIZE		0x4000
#define VIRTIO_PCI_COMMON		0x0000
#define VIRTIO_PCI_ISR			0x1000
#define VIRTIO_PCI_DEVICE_CFG		0x2000
#define VIRTIO_PCI_NOTIFY		0x3000
#define VIRTIO_PCI_NOTIFY_MULT		4
#define VIRTIO_PCI_MSIX_TABLE		0x3800
#define VIRTIO_PCI_MSIX_PBA		0x3c00

/* Capability types (struct virtio_pci_cap's cfg_type). */
#define VIRTIO_PCI_CAP_COMMON_CFG	1
#define VIRTIO_PCI_CAP_NOTIFY_CFG	2
#define VIRTIO_PCI_CAP_ISR_CFG		3
#define VIRTIO_PCI_CAP_DEVICE_CFG	4
#define VIRTIO_PCI_CAP_PCI_CFG		5
/* struct virtio_pci_cfg_cap: the cap's bar, offset, length; data at 16 */
#define VIRTIO_PCI_CAP_BAR		4
#define VIRTIO_PCI_CAP_OFFSET		8
#define VIRTIO_PCI_CAP_LENGTH		12
#define VIRTIO_PCI_CFG_DATA		16

/* Common configuration registers. */
#define VIRTIO_PCI_COMMON_DFSELECT	0x00
#define VIRTIO_PCI_COMMON_DF		0x04
#define VIRTIO_PCI_COMMON_GFSELECT	0x08
#define VIRTIO_PCI_COMMON_GF		0x0c
#define VIRTIO_PCI_COMMON_MSIX		0x10
#define VIRTIO_PCI_COMMON_NUMQ		0x12
#define VIRTIO_PCI_COMMON_STATUS	0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION	0x15
#define VIRTIO_PCI_COMMON_Q_SELECT	0x16
#define VIRTIO_PCI_COMMON_Q_SIZE	0x18
#define VIRTIO_PCI_COMMON_Q_MSIX	0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE	0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF	0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO	0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI	0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO	0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI	0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO	0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI	0x34
#define VIRTIO_PCI_COMMON_SIZE		0x40

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE	1
#define VIRTIO_STATUS_DRIVER		2
#define VIRTIO_STATUS_DRIVER_OK		4
#define VIRTIO_STATUS_FEATURES_OK	8
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80

/* Feature bits every device here offers. */
#define VIRTIO_F_INDIRECT_DESC		28
#define VIRTIO_F_EVENT_IDX		29
#define VIRTIO_F_VERSION_1		32

#define VIRTIO_ISR_QUEUE		1
#define VIRTIO_ISR_CONFIG		2
#define VIRTIO_MSI_NO_VECTOR		0xffff

struct virtio_dev;

struct virtio_msix_entry {
	uint32_t addr_lo;
	uint32_t addr_hi;
	uint32_t data;
	uint32_t ctrl;			/* bit 0: masked */
};

struct virtio_dev_ops {
	/* The driver reset the device (status 0); queues are reset after. */
	void (*reset)(struct virtio_dev *vd);
	/* The driver notified queue q. */
	void (*notify)(struct virtio_dev *vd, unsigned int q);
	/* Device configuration space access, off + len <= cfg_size. */
	void (*cfg_read)(struct virtio_dev *vd, unsigned int off, void *data,
			 unsigned int len);
	void (*cfg_write)(struct virtio_dev *vd, unsigned int off,
			  const void *data, unsigned int len);
	/* DRIVER_OK was set (optional). */
	void (*driver_ok)(struct virtio_dev *vd);
};

struct virtio_dev {
	pthread_mutex_t lock;
	const struct virtio_dev_ops *ops;
	void *priv;			/* the device's own state */
	struct guestmem *gm;
	struct pci_dev pci;
	uint8_t cfg_cap;		/* offset of the PCI_CFG capability */
	uint16_t device_id;
	uint64_t host_features;
	uint64_t guest_features;
	uint32_t dfsel, gfsel;
	uint8_t status;
	uint8_t isr;
	uint8_t config_gen;
	uint16_t qsel;
	uint16_t queue_max;
	unsigned int nr_vqs;
	unsigned int cfg_size;
	struct vq vq[VIRTIO_MAX_VQS];
	uint16_t config_vector;		/* MSI-X vectors, VIRTIO_MSI_NO_VECTOR */
	uint16_t queue_vector[VIRTIO_MAX_VQS];
	struct virtio_msix_entry msix[VIRTIO_MAX_VQS + 1];
	uint64_t msix_pba;		/* pending bit per vector */
	const char *error;		/* why NEEDS_RESET was set last */
	unsigned long nr_broken;	/* times a guest broke a ring */
};

/*
 * Set up vd as virtio device device_id with nr_vqs queues of up to
 * queue_max entries, host_features (VERSION_1, EVENT_IDX and INDIRECT_DESC
 * are added) and cfg_size bytes of device configuration, and put it on the
 * PCI bus. 0 or -errno.
 */
int virtio_pci_init(struct virtio_dev *vd, struct pci_host *h,
		    struct guestmem *gm, const char *name, uint16_t device_id,
		    uint64_t host_features, unsigned int nr_vqs,
		    uint16_t queue_max, unsigned int cfg_size,
		    const struct virtio_dev_ops *ops, void *priv);

/* Free the transport's lock (the device is off every thread). */
void virtio_pci_destroy(struct virtio_dev *vd);

/* Whether feature bit was negotiated (lock held). */
bool virtio_has_feature(const struct virtio_dev *vd, unsigned int bit);

/* Whether the driver finished setting up (DRIVER_OK, not NEEDS_RESET). */
bool virtio_running(const struct virtio_dev *vd);

/* Interrupt the driver for queue q if it asked for it (lock held). */
void virtio_notify(struct virtio_dev *vd, unsigned int q);

/* The device configuration changed: new generation, interrupt. */
void virtio_config_changed(struct virtio_dev *vd);

/* A queue is broken beyond use: set DEVICE_NEEDS_RESET and tell the
 * driver (lock held); why is kept for the log. */
void virtio_set_broken(struct virtio_dev *vd, const char *why);

#endif
