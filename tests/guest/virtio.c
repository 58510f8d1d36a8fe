/* SPDX-License-Identifier: MIT */
/*
 * tests/guest/virtio.c - the benchmark guest's virtio-balloon driver on the
 * modern virtio-pci transport (VIRTIO 1.2 sections 4.1 and 5.5), all of it
 * in user mode: PCI configuration space through conf1 port I/O (trapped and
 * performed by head.S's #GP handler where the host wants that), the BAR's
 * registers by MMIO (each access an exit to the VMM), split virtqueues in
 * the guest's own memory. No interrupts: the driver polls the used rings
 * and the device configuration. One caller at a time (CPU 0).
 */
#include "guest.h"

#define PCI_VENDOR_VIRTIO	0x1af4
#define PCI_DEVICE_BALLOON	0x1045	/* 0x1040 + device 5 */
#define PCI_COMMAND		0x04
#define PCI_COMMAND_MEMORY	0x2
#define PCI_COMMAND_MASTER	0x4
#define PCI_STATUS_CAP_LIST	0x10
#define PCI_BAR0		0x10
#define PCI_CAP_PTR		0x34
#define PCI_CAP_VENDOR		0x09
#define PCI_SLOTS		32
#define PCI_CAPS_MAX		48	/* a bound on a looping list */

#define VIRTIO_CAP_COMMON	1
#define VIRTIO_CAP_NOTIFY	2
#define VIRTIO_CAP_DEVICE	4

#define ST_ACKNOWLEDGE		1
#define ST_DRIVER		2
#define ST_DRIVER_OK		4
#define ST_FEATURES_OK		8
#define ST_NEEDS_RESET		64

/* Common configuration (VIRTIO 1.2 4.1.4.3). */
#define CC_DFSELECT		0x00
#define CC_DF			0x04
#define CC_GFSELECT		0x08
#define CC_GF			0x0c
#define CC_STATUS		0x14
#define CC_Q_SELECT		0x16
#define CC_Q_SIZE		0x18
#define CC_Q_ENABLE		0x1c
#define CC_Q_NOTIFY_OFF		0x1e
#define CC_Q_DESC		0x20
#define CC_Q_DRIVER		0x28
#define CC_Q_DEVICE		0x30

/* Balloon configuration (5.5.4). */
#define BC_NUM_PAGES		0x00
#define BC_ACTUAL		0x04

#define DESC_F_NEXT		1
#define DESC_F_WRITE		2
#define QUEUE_SIZE		64
#define NR_QUEUES		4	/* inflate, deflate, stats, reporting */
#define WAIT_CYCLES_MAX		(50ULL * 1000 * 1000 * 1000)	/* ~10-20 s */

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct ring {
	struct desc desc[QUEUE_SIZE];
	struct {
		uint16_t flags, idx, ring[QUEUE_SIZE], used_event;
	} avail __attribute__((aligned(64)));
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QUEUE_SIZE];
		uint16_t avail_event;
	} used __attribute__((aligned(64)));
} __attribute__((aligned(4096)));

struct vq {
	struct ring *r;
	volatile uint16_t *notify;
	uint16_t avail, used;	/* next avail slot, next used entry to read */
	bool on;
};

struct vdev {
	volatile uint8_t *common, *device, *notify_base;
	uint32_t notify_mult;
	uint64_t features;
	struct vq vq[NR_QUEUES];
	uint16_t conf1;
};

static struct ring rings[NR_QUEUES];
static struct vdev dev;

/* ---- PCI configuration mechanism 1 ---- */

static uint32_t conf_read(uint32_t slot, uint32_t reg)
{
	outl(dev.conf1, 0x80000000u | slot << 11 | (reg & 0xfc));
	return inl((uint16_t)(dev.conf1 + 4));
}

static void conf_write(uint32_t slot, uint32_t reg, uint32_t v)
{
	outl(dev.conf1, 0x80000000u | slot << 11 | (reg & 0xfc));
	outl((uint16_t)(dev.conf1 + 4), v);
}

static int find_slot(void)
{
	for (uint32_t s = 0; s < PCI_SLOTS; s++) {
		if (conf_read(s, 0) == (PCI_DEVICE_BALLOON << 16 | PCI_VENDOR_VIRTIO))
			return (int)s;
	}
	return -1;
}

/* Map the vendor capabilities onto BAR 0 (the only BAR the device has). */
static int read_caps(uint32_t slot, uint64_t bar)
{
	uint32_t ptr = conf_read(slot, PCI_CAP_PTR) & 0xfc;

	if (!(conf_read(slot, PCI_COMMAND) >> 16 & PCI_STATUS_CAP_LIST))
		return -1;
	for (int n = 0; ptr && n < PCI_CAPS_MAX; n++) {
		uint32_t head = conf_read(slot, ptr);
		uint8_t type = (uint8_t)(head >> 24), which = (uint8_t)conf_read(slot, ptr + 4);
		volatile uint8_t *at = (volatile uint8_t *)(uintptr_t)(bar + conf_read(slot, ptr + 8));

		if ((head & 0xff) == PCI_CAP_VENDOR && which == 0) {
			if (type == VIRTIO_CAP_COMMON)
				dev.common = at;
			else if (type == VIRTIO_CAP_DEVICE)
				dev.device = at;
			else if (type == VIRTIO_CAP_NOTIFY) {
				dev.notify_base = at;
				dev.notify_mult = conf_read(slot, ptr + 16);
			}
		}
		ptr = head >> 8 & 0xfc;
	}
	return dev.common && dev.device && dev.notify_base ? 0 : -1;
}

/* ---- MMIO ---- */

static uint8_t rd8(volatile uint8_t *b, uint32_t off)
{
	return *(volatile uint8_t *)(b + off);
}

static uint16_t rd16(volatile uint8_t *b, uint32_t off)
{
	return *(volatile uint16_t *)(b + off);
}

static uint32_t rd32(volatile uint8_t *b, uint32_t off)
{
	return *(volatile uint32_t *)(b + off);
}

static void wr8(volatile uint8_t *b, uint32_t off, uint8_t v)
{
	*(volatile uint8_t *)(b + off) = v;
}

static void wr16(volatile uint8_t *b, uint32_t off, uint16_t v)
{
	*(volatile uint16_t *)(b + off) = v;
}

static void wr32(volatile uint8_t *b, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(b + off) = v;
}

static void wr64(volatile uint8_t *b, uint32_t off, uint64_t v)
{
	wr32(b, off, (uint32_t)v);
	wr32(b, off + 4, (uint32_t)(v >> 32));
}

/* ---- virtqueues ---- */

static int queue_setup(uint16_t i)
{
	struct vq *q = &dev.vq[i];
	uint16_t max;

	wr16(dev.common, CC_Q_SELECT, i);
	max = rd16(dev.common, CC_Q_SIZE);
	if (max < QUEUE_SIZE)
		return -1;
	q->r = &rings[i];
	memset(q->r, 0, sizeof(*q->r));
	wr16(dev.common, CC_Q_SIZE, QUEUE_SIZE);
	wr64(dev.common, CC_Q_DESC, (uint64_t)(uintptr_t)q->r->desc);
	wr64(dev.common, CC_Q_DRIVER, (uint64_t)(uintptr_t)&q->r->avail);
	wr64(dev.common, CC_Q_DEVICE, (uint64_t)(uintptr_t)&q->r->used);
	q->notify = (volatile uint16_t *)(dev.notify_base +
			rd16(dev.common, CC_Q_NOTIFY_OFF) * dev.notify_mult);
	wr16(dev.common, CC_Q_ENABLE, 1);
	q->on = true;
	return 0;
}

/* Post a chain of n buffers (one request at a time per queue: slot 0..n-1). */
static void queue_post(uint16_t i, const uint64_t *addr, const uint32_t *len,
		       unsigned int n, uint16_t flags)
{
	struct vq *q = &dev.vq[i];

	for (unsigned int k = 0; k < n; k++) {
		q->r->desc[k].addr = addr[k];
		q->r->desc[k].len = len[k];
		q->r->desc[k].flags = (uint16_t)(flags | (k + 1 < n ? DESC_F_NEXT : 0));
		q->r->desc[k].next = (uint16_t)(k + 1);
	}
	q->r->avail.ring[q->avail % QUEUE_SIZE] = 0;
	__atomic_store_n(&q->r->avail.idx, (uint16_t)(q->avail + 1), __ATOMIC_SEQ_CST);
	q->avail++;
	*q->notify = i;
}

static bool queue_done(uint16_t i)
{
	struct vq *q = &dev.vq[i];

	if (__atomic_load_n(&q->r->used.idx, __ATOMIC_ACQUIRE) == q->used)
		return false;
	q->used++;
	return true;
}

static int queue_wait(uint16_t i)
{
	uint64_t t0 = rdtsc();

	while (!queue_done(i)) {
		if (rd8(dev.common, CC_STATUS) & ST_NEEDS_RESET || rdtsc() - t0 > WAIT_CYCLES_MAX)
			return -1;
		cpu_relax();
	}
	return 0;
}

/* ---- the balloon ---- */

int vb_probe(uint16_t conf1, uint64_t want)
{
	int slot;
	uint64_t bar, offered;

	dev.conf1 = conf1;
	slot = find_slot();
	if (slot < 0)
		return -1;
	bar = conf_read((uint32_t)slot, PCI_BAR0) & ~0xfULL;
	conf_write((uint32_t)slot, PCI_COMMAND, (conf_read((uint32_t)slot, PCI_COMMAND) & 0xffff) |
		   PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	if (!bar || read_caps((uint32_t)slot, bar))
		return -2;
	wr8(dev.common, CC_STATUS, 0);
	wr8(dev.common, CC_STATUS, ST_ACKNOWLEDGE);
	wr8(dev.common, CC_STATUS, ST_ACKNOWLEDGE | ST_DRIVER);
	wr32(dev.common, CC_DFSELECT, 0);
	offered = rd32(dev.common, CC_DF);
	wr32(dev.common, CC_DFSELECT, 1);
	offered |= (uint64_t)rd32(dev.common, CC_DF) << 32;
	dev.features = offered & want;
	wr32(dev.common, CC_GFSELECT, 0);
	wr32(dev.common, CC_GF, (uint32_t)dev.features);
	wr32(dev.common, CC_GFSELECT, 1);
	wr32(dev.common, CC_GF, (uint32_t)(dev.features >> 32));
	wr8(dev.common, CC_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK);
	if (!(rd8(dev.common, CC_STATUS) & ST_FEATURES_OK))
		return -3;
	for (uint16_t i = 0; i < NR_QUEUES; i++) {
		if ((i == VB_Q_STATS && !(dev.features & VB_F_STATS)) ||
		    (i == VB_Q_REPORT && !(dev.features & VB_F_REPORTING)))
			continue;
		if (queue_setup(i))
			return -4;
	}
	wr8(dev.common, CC_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	return 0;
}

uint64_t vb_features(void)
{
	return dev.features;
}

uint32_t vb_target(void)
{
	return rd32(dev.device, BC_NUM_PAGES);
}

void vb_set_actual(uint32_t pages)
{
	wr32(dev.device, BC_ACTUAL, pages);
}

int vb_send_pfns(uint16_t q, const uint32_t *pfns, unsigned int n)
{
	uint64_t addr = (uint64_t)(uintptr_t)pfns;
	uint32_t len = n * 4;

	queue_post(q, &addr, &len, 1, 0);
	return queue_wait(q);
}

int vb_report(const uint64_t *gpa, const uint32_t *len, unsigned int n)
{
	if (!dev.vq[VB_Q_REPORT].on || n > QUEUE_SIZE)
		return -1;
	queue_post(VB_Q_REPORT, gpa, len, n, DESC_F_WRITE);
	return queue_wait(VB_Q_REPORT);
}

void vb_stats_post(const void *buf, uint32_t len)
{
	uint64_t addr = (uint64_t)(uintptr_t)buf;

	if (dev.vq[VB_Q_STATS].on)
		queue_post(VB_Q_STATS, &addr, &len, 1, 0);
}

bool vb_stats_wanted(void)
{
	return dev.vq[VB_Q_STATS].on && queue_done(VB_Q_STATS);
}
