/* SPDX-License-Identifier: MIT */
/*
 * virtio/virtio_pci.c - the modern virtio-pci transport and the device
 * status machine (contract in virtio_pci.h): feature negotiation, queue
 * setup, notifications, the read-to-clear ISR over INTx, reset, and
 * DEVICE_NEEDS_RESET when the driver breaks a ring.
 */
#include "virtio_pci.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PCI_CLASS_OTHER		0xff0000
#define VIRTIO_PCI_REVISION	1
/* Broken rings logged per device (a guest may break and reset forever). */
#define VIRTIO_BROKEN_LOG_MAX	20

struct virtio_pci_cap {
	uint8_t cap_vndr;
	uint8_t cap_next;
	uint8_t cap_len;
	uint8_t cfg_type;
	uint8_t bar;
	uint8_t id;
	uint8_t padding[2];
	uint32_t offset;
	uint32_t length;
};

struct virtio_pci_notify_cap {
	struct virtio_pci_cap cap;
	uint32_t notify_off_multiplier;
};

bool virtio_has_feature(const struct virtio_dev *vd, unsigned int bit)
{
	return vd->guest_features & (1ULL << bit);
}

bool virtio_running(const struct virtio_dev *vd)
{
	return (vd->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(vd->status & VIRTIO_STATUS_NEEDS_RESET);
}

static unsigned int nr_vectors(const struct virtio_dev *vd)
{
	return vd->nr_vqs + 1;
}

static void msix_fire(struct virtio_dev *vd, unsigned int v)
{
	const struct virtio_msix_entry *e = &vd->msix[v];

	irq_msi(vd->pci.host->irq, (uint64_t)e->addr_hi << 32 | e->addr_lo, e->data);
}

/* Signal vector v by MSI-X (or leave it pending while masked); false
 * when MSI-X is off and INTx is the way. */
static bool msix_signal(struct virtio_dev *vd, uint16_t v)
{
	bool fmask;

	if (!pci_msix_state(&vd->pci, &fmask))
		return false;
	if (v >= nr_vectors(vd))
		return true;		/* the driver asked for no interrupt */
	if (fmask || (vd->msix[v].ctrl & 1))
		vd->msix_pba |= 1ULL << v;
	else
		msix_fire(vd, v);
	return true;
}

/* Send what became unmasked. Lock held. */
static void msix_deliver_pending(struct virtio_dev *vd)
{
	bool fmask;

	if (!vd->msix_pba || !pci_msix_state(&vd->pci, &fmask) || fmask)
		return;
	for (unsigned int v = 0; v < nr_vectors(vd); v++) {
		if (!(vd->msix_pba & (1ULL << v)) || (vd->msix[v].ctrl & 1))
			continue;
		vd->msix_pba &= ~(1ULL << v);
		msix_fire(vd, v);
	}
}

static void msix_written(void *opaque)
{
	struct virtio_dev *vd = opaque;

	pthread_mutex_lock(&vd->lock);
	msix_deliver_pending(vd);
	pthread_mutex_unlock(&vd->lock);
}

void virtio_notify(struct virtio_dev *vd, unsigned int q)
{
	if (q >= vd->nr_vqs || !vq_should_notify(&vd->vq[q]))
		return;
	if (msix_signal(vd, vd->queue_vector[q]))
		return;
	vd->isr |= VIRTIO_ISR_QUEUE;
	pci_set_intx(&vd->pci, true);
}

void virtio_config_changed(struct virtio_dev *vd)
{
	vd->config_gen++;
	if (!(vd->status & VIRTIO_STATUS_DRIVER_OK))
		return;
	vd->isr |= VIRTIO_ISR_CONFIG;
	if (!msix_signal(vd, vd->config_vector))
		pci_set_intx(&vd->pci, true);
}

void virtio_set_broken(struct virtio_dev *vd, const char *why)
{
	vd->nr_broken++;
	vd->error = why;
	if (vd->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	if (vd->nr_broken <= VIRTIO_BROKEN_LOG_MAX)
		fprintf(stderr, "gmm-vmm: %s: the driver broke a virtqueue (%s); device needs reset%s\n",
			vd->pci.name, why,
			vd->nr_broken == VIRTIO_BROKEN_LOG_MAX ? " (further ones not logged)" : "");
	vd->status |= VIRTIO_STATUS_NEEDS_RESET;
	virtio_config_changed(vd);
}

/* Queues as after reset: disabled, queue_size reading the maximum, no
 * MSI-X vectors. */
static void reset_queues(struct virtio_dev *vd)
{
	for (unsigned int i = 0; i < vd->nr_vqs; i++) {
		vq_reset(&vd->vq[i], vd->gm);
		vd->vq[i].size = vd->queue_max;
	}
	vd->config_vector = VIRTIO_MSI_NO_VECTOR;
	for (unsigned int i = 0; i < VIRTIO_MAX_VQS; i++)
		vd->queue_vector[i] = VIRTIO_MSI_NO_VECTOR;
}

static void reset(struct virtio_dev *vd)
{
	if (vd->ops->reset)
		vd->ops->reset(vd);
	reset_queues(vd);
	vd->status = 0;
	vd->guest_features = 0;
	vd->dfsel = vd->gfsel = 0;
	vd->qsel = 0;
	vd->isr = 0;
	vd->error = NULL;
	pci_set_intx(&vd->pci, false);
}

static struct vq *selected(struct virtio_dev *vd)
{
	return vd->qsel < vd->nr_vqs ? &vd->vq[vd->qsel] : NULL;
}

static uint64_t feature_word(uint64_t f, uint32_t sel)
{
	return sel == 0 ? (uint32_t)f : sel == 1 ? (uint32_t)(f >> 32) : 0;
}

static uint64_t queue_reg(struct virtio_dev *vd, struct vq *q, unsigned int off)
{
	if (!q)
		return 0;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE: return q->size;
	case VIRTIO_PCI_COMMON_Q_MSIX: return vd->queue_vector[q - vd->vq];
	case VIRTIO_PCI_COMMON_Q_ENABLE: return q->ready;
	case VIRTIO_PCI_COMMON_Q_DESCLO: return (uint32_t)q->desc;
	case VIRTIO_PCI_COMMON_Q_DESCHI: return q->desc >> 32;
	case VIRTIO_PCI_COMMON_Q_AVAILLO: return (uint32_t)q->avail;
	case VIRTIO_PCI_COMMON_Q_AVAILHI: return q->avail >> 32;
	case VIRTIO_PCI_COMMON_Q_USEDLO: return (uint32_t)q->used;
	case VIRTIO_PCI_COMMON_Q_USEDHI: return q->used >> 32;
	}
	return 0;
}

static uint64_t common_reg(struct virtio_dev *vd, unsigned int off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: return vd->dfsel;
	case VIRTIO_PCI_COMMON_DF: return feature_word(vd->host_features, vd->dfsel);
	case VIRTIO_PCI_COMMON_GFSELECT: return vd->gfsel;
	case VIRTIO_PCI_COMMON_GF: return feature_word(vd->guest_features, vd->gfsel);
	case VIRTIO_PCI_COMMON_MSIX: return vd->config_vector;
	case VIRTIO_PCI_COMMON_NUMQ: return vd->nr_vqs;
	case VIRTIO_PCI_COMMON_STATUS: return vd->status;
	case VIRTIO_PCI_COMMON_CFGGENERATION: return vd->config_gen;
	case VIRTIO_PCI_COMMON_Q_SELECT: return vd->qsel;
	case VIRTIO_PCI_COMMON_Q_NOFF: return selected(vd) ? vd->qsel : 0;
	}
	return queue_reg(vd, selected(vd), off);
}

/* Width of each register: accesses of any other width are ignored. */
static unsigned int common_width(unsigned int off)
{
	if (off >= VIRTIO_PCI_COMMON_Q_DESCLO && off < VIRTIO_PCI_COMMON_SIZE - 8)
		return 4;
	if (off <= VIRTIO_PCI_COMMON_GF)
		return 4;
	if (off == VIRTIO_PCI_COMMON_STATUS || off == VIRTIO_PCI_COMMON_CFGGENERATION)
		return 1;
	return 2;
}

static void set_features(struct virtio_dev *vd, uint32_t val)
{
	uint64_t mask = 0xffffffffULL << (32 * vd->gfsel);

	if (vd->gfsel > 1 || (vd->status & VIRTIO_STATUS_FEATURES_OK))
		return;
	vd->guest_features = (vd->guest_features & ~mask) |
			     (((uint64_t)val << (32 * vd->gfsel)) & vd->host_features);
}

static void set_status(struct virtio_dev *vd, uint8_t val)
{
	uint8_t old = vd->status;

	if (val == 0) {
		reset(vd);
		return;
	}
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    !virtio_has_feature(vd, VIRTIO_F_VERSION_1))
		val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;	/* legacy drivers: refused */
	vd->status = (uint8_t)(val | (old & VIRTIO_STATUS_NEEDS_RESET));
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    vd->ops->driver_ok)
		vd->ops->driver_ok(vd);
}

static void set_addr(uint64_t *a, unsigned int hi, uint32_t val)
{
	*a = hi ? (*a & 0xffffffffULL) | (uint64_t)val << 32 : (*a & ~0xffffffffULL) | val;
}

static void enable_queue(struct virtio_dev *vd, struct vq *q)
{
	q->event_idx = virtio_has_feature(vd, VIRTIO_F_EVENT_IDX);
	if (vq_check_rings(q)) {
		virtio_set_broken(vd, q->error);
		return;
	}
	q->ready = true;
}

/* A vector the device has, or NO_VECTOR (what the driver reads back when
 * it asked for one that does not exist). */
static uint16_t vector(const struct virtio_dev *vd, uint32_t val)
{
	return val < nr_vectors(vd) ? (uint16_t)val : VIRTIO_MSI_NO_VECTOR;
}

static void write_queue(struct virtio_dev *vd, struct vq *q, unsigned int off,
			uint32_t val)
{
	if (q && off == VIRTIO_PCI_COMMON_Q_MSIX) {
		vd->queue_vector[q - vd->vq] = vector(vd, val);
		return;
	}
	if (!q || q->ready)
		return;		/* the rings are fixed once enabled */
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (val && val <= vd->queue_max && !(val & (val - 1)))
			q->size = (uint16_t)val;
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (val == 1)
			enable_queue(vd, q);
		return;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		set_addr(&q->desc, off == VIRTIO_PCI_COMMON_Q_DESCHI, val);
		return;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		set_addr(&q->avail, off == VIRTIO_PCI_COMMON_Q_AVAILHI, val);
		return;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		set_addr(&q->used, off == VIRTIO_PCI_COMMON_Q_USEDHI, val);
		return;
	}
}

static void write_common(struct virtio_dev *vd, unsigned int off, uint32_t val)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: vd->dfsel = val; return;
	case VIRTIO_PCI_COMMON_GFSELECT: vd->gfsel = val; return;
	case VIRTIO_PCI_COMMON_GF: set_features(vd, val); return;
	case VIRTIO_PCI_COMMON_MSIX: vd->config_vector = vector(vd, val); return;
	case VIRTIO_PCI_COMMON_STATUS: set_status(vd, (uint8_t)val); return;
	case VIRTIO_PCI_COMMON_Q_SELECT: vd->qsel = (uint16_t)val; return;
	}
	write_queue(vd, selected(vd), off, val);
}

/*
 * Notifications count once the queue is enabled, also before DRIVER_OK:
 * Linux's balloon primes and kicks its stats queue before it sets
 * DRIVER_OK, and QEMU and kvmtool serve that too.
 */
static void notify(struct virtio_dev *vd, uint64_t off)
{
	unsigned int q = (unsigned int)(off / VIRTIO_PCI_NOTIFY_MULT);

	if (q >= vd->nr_vqs || !vd->vq[q].ready || (vd->status & VIRTIO_STATUS_NEEDS_RESET))
		return;
	vd->ops->notify(vd, q);
}

/* The MSI-X table: 32-bit accesses to its words. */
static bool msix_table_access(struct virtio_dev *vd, uint64_t off, uint64_t *v,
			      unsigned int len, bool write)
{
	uint64_t rel = off - VIRTIO_PCI_MSIX_TABLE;
	unsigned int entry = (unsigned int)(rel / PCI_MSIX_ENTRY_SIZE);
	uint32_t *word;

	if (off < VIRTIO_PCI_MSIX_TABLE || entry >= nr_vectors(vd))
		return false;
	if (len != 4 || (rel & 3))
		return true;
	word = (uint32_t *)&vd->msix[entry] + (rel % PCI_MSIX_ENTRY_SIZE) / 4;
	if (!write) {
		*v = *word;
		return true;
	}
	*word = (uint32_t)*v;
	if (word == &vd->msix[entry].ctrl)
		msix_deliver_pending(vd);
	return true;
}

static void bar_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct virtio_dev *vd = opaque;
	uint64_t v = 0;

	pthread_mutex_lock(&vd->lock);
	if (msix_table_access(vd, off, &v, len, false)) {
		/* done */
	} else if (off >= VIRTIO_PCI_MSIX_PBA && off + len <= VIRTIO_PCI_MSIX_PBA + 8) {
		v = vd->msix_pba >> (8 * (off - VIRTIO_PCI_MSIX_PBA));
	} else if (off < VIRTIO_PCI_COMMON_SIZE && len == common_width((unsigned int)off)) {
		v = common_reg(vd, (unsigned int)off);
	} else if (off == VIRTIO_PCI_ISR) {
		v = vd->isr;
		vd->isr = 0;
		pci_set_intx(&vd->pci, false);
	} else if (off >= VIRTIO_PCI_DEVICE_CFG && off + len <= VIRTIO_PCI_DEVICE_CFG + vd->cfg_size) {
		vd->ops->cfg_read(vd, (unsigned int)(off - VIRTIO_PCI_DEVICE_CFG), &v, len);
	}
	pthread_mutex_unlock(&vd->lock);
	memcpy(data, &v, len);
}

static void bar_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct virtio_dev *vd = opaque;
	uint64_t v = 0;

	memcpy(&v, data, len > 8 ? 8 : len);
	pthread_mutex_lock(&vd->lock);
	if (msix_table_access(vd, off, &v, len, true))
		;	/* done */
	else if (off < VIRTIO_PCI_COMMON_SIZE && len == common_width((unsigned int)off))
		write_common(vd, (unsigned int)off, (uint32_t)v);
	else if (off >= VIRTIO_PCI_DEVICE_CFG && off + len <= VIRTIO_PCI_DEVICE_CFG + vd->cfg_size)
		vd->ops->cfg_write(vd, (unsigned int)(off - VIRTIO_PCI_DEVICE_CFG), &v, len);
	else if (off >= VIRTIO_PCI_NOTIFY && off < VIRTIO_PCI_MSIX_TABLE)
		notify(vd, off - VIRTIO_PCI_NOTIFY);
	pthread_mutex_unlock(&vd->lock);
}

static const struct bus_ops bar_ops = {
	.read = bar_read,
	.write = bar_write,
};

/* The PCI configuration access window: BAR 0 at the capability's offset,
 * an access of the capability's length (1, 2 or 4, aligned). */
static bool window_target(struct virtio_dev *vd, unsigned int off, unsigned int len,
			  uint32_t *bar_off, unsigned int *n)
{
	struct pci_host *h = vd->pci.host;
	unsigned int devfn = vd->pci.slot << 3, cap = vd->cfg_cap;
	uint32_t bar = pci_cfg_read(h, devfn, cap + VIRTIO_PCI_CAP_BAR, 1);

	*bar_off = pci_cfg_read(h, devfn, cap + VIRTIO_PCI_CAP_OFFSET, 4);
	*n = pci_cfg_read(h, devfn, cap + VIRTIO_PCI_CAP_LENGTH, 4);
	return bar == 0 && off == 0 && (*n == 1 || *n == 2 || *n == 4) && *n <= len &&
	       !(*bar_off % *n) && *bar_off < VIRTIO_PCI_BAR_SIZE;
}

static uint32_t window_read(void *opaque, unsigned int off, unsigned int len)
{
	struct virtio_dev *vd = opaque;
	uint32_t bar_off;
	unsigned int n;
	uint64_t v = 0;

	if (window_target(vd, off, len, &bar_off, &n))
		bar_read(vd, bar_off, &v, n);
	return (uint32_t)v;
}

static void window_write(void *opaque, unsigned int off, unsigned int len, uint32_t val)
{
	struct virtio_dev *vd = opaque;
	uint32_t bar_off;
	unsigned int n;
	uint64_t v = val;

	if (window_target(vd, off, len, &bar_off, &n))
		bar_write(vd, bar_off, &v, n);
}

static int add_cfg_window(struct virtio_dev *vd)
{
	uint8_t c[VIRTIO_PCI_CFG_DATA + 4] = {
		PCI_CAP_ID_VNDR, 0, sizeof(c), VIRTIO_PCI_CAP_PCI_CFG,
	};
	int off = pci_add_cap(&vd->pci, c, sizeof(c));

	if (off < 0)
		return off;
	vd->cfg_cap = (uint8_t)off;
	vd->pci.wmask[off + VIRTIO_PCI_CAP_BAR] = 0xff;
	memset(vd->pci.wmask + off + VIRTIO_PCI_CAP_OFFSET, 0xff, 8);
	vd->pci.window = (uint8_t)(off + VIRTIO_PCI_CFG_DATA);
	vd->pci.window_len = 4;
	vd->pci.window_read = window_read;
	vd->pci.window_write = window_write;
	vd->pci.window_opaque = vd;
	return 0;
}

static int add_cap(struct virtio_dev *vd, uint8_t type, uint32_t off, uint32_t len)
{
	struct virtio_pci_notify_cap c = {
		.cap = {
			.cap_vndr = PCI_CAP_ID_VNDR,
			.cap_len = sizeof(struct virtio_pci_cap),
			.cfg_type = type,
			.bar = 0,
			.offset = off,
			.length = len,
		},
		.notify_off_multiplier = VIRTIO_PCI_NOTIFY_MULT,
	};

	if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
		c.cap.cap_len = sizeof(c);
	return pci_add_cap(&vd->pci, &c, c.cap.cap_len) < 0 ? -ENOSPC : 0;
}

int virtio_pci_init(struct virtio_dev *vd, struct pci_host *h,
		    struct guestmem *gm, const char *name, uint16_t device_id,
		    uint64_t host_features, unsigned int nr_vqs,
		    uint16_t queue_max, unsigned int cfg_size,
		    const struct virtio_dev_ops *ops, void *priv)
{
	uint16_t pci_id = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + device_id);

	if (nr_vqs > VIRTIO_MAX_VQS || queue_max > VQ_MAX_SIZE ||
	    cfg_size > VIRTIO_PCI_NOTIFY - VIRTIO_PCI_DEVICE_CFG)
		return -EINVAL;
	memset(vd, 0, sizeof(*vd));
	pthread_mutex_init(&vd->lock, NULL);
	vd->ops = ops;
	vd->priv = priv;
	vd->gm = gm;
	vd->device_id = device_id;
	vd->host_features = host_features | 1ULL << VIRTIO_F_VERSION_1 |
			    1ULL << VIRTIO_F_EVENT_IDX | 1ULL << VIRTIO_F_INDIRECT_DESC;
	vd->nr_vqs = nr_vqs;
	vd->queue_max = queue_max;
	vd->cfg_size = cfg_size;
	reset_queues(vd);
	pci_dev_init(&vd->pci, name, VIRTIO_PCI_VENDOR, pci_id, PCI_CLASS_OTHER,
		     VIRTIO_PCI_REVISION, VIRTIO_PCI_VENDOR, device_id);
	pci_set_bar(&vd->pci, 0, VIRTIO_PCI_BAR_SIZE, &bar_ops, vd);
	if (add_cap(vd, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON, VIRTIO_PCI_COMMON_SIZE) ||
	    add_cap(vd, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR, 4) ||
	    add_cap(vd, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_CFG, cfg_size) ||
	    add_cap(vd, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY,
		    VIRTIO_PCI_NOTIFY_MULT * nr_vqs) ||
	    pci_add_msix(&vd->pci, 0, VIRTIO_PCI_MSIX_TABLE, VIRTIO_PCI_MSIX_PBA, nr_vqs + 1) ||
	    add_cfg_window(vd))
		return -ENOSPC;
	for (unsigned int v = 0; v <= nr_vqs; v++)
		vd->msix[v].ctrl = 1;		/* masked until the driver sets it up */
	vd->pci.msix_written = msix_written;
	vd->pci.msix_opaque = vd;
	return pci_host_add(h, &vd->pci);
}

void virtio_pci_destroy(struct virtio_dev *vd)
{
	pthread_mutex_destroy(&vd->lock);
}
