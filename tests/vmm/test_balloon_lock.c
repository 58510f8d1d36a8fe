/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/test_balloon_lock.c - virtio-balloon's discards out of the
 * device lock, with two "vCPU" threads on the real bus, PCI host,
 * virtio-pci transport and balloon (no KVM, no gmm-vmm process): one
 * reports free pages (each element discards 16 MiB) and waits for each
 * element; the other, meanwhile, reads the device's ISR and configuration,
 * inflates and deflates pages on their own queues, and kicks the reporting
 * queue too (a second kick while the first thread's discards run); a
 * third reads the configuration amid a report's discards and must not wait
 * for them. No element may be lost or used twice, the counters must add
 * up, and the device must end as a fresh one after a reset. Built with TSan in the
 * tsan suite, which checks the locking.
 */
#include "balloon.h"
#include "bus.h"
#include "guestmem.h"
#include "irq.h"
#include "pci.h"
#include "vmm.h"
#include "../harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB		(1ULL << 20)
#define RAM		(64 * MIB)
#define RINGS		(1 * MIB)	/* the queues' rings, 4 KiB apart */
#define BUFS		(2 * MIB)	/* PFN arrays */
#define REPORT_MEM	(16 * MIB)	/* what each report discards */
#define REPORT_SEGS	16
#define QSIZE		64
#define REPORTS		64
#define REPORTS_MAX	2000	/* until the observer saw the lock free */
#define INFLATES	256
#define INFLATE_PFNS	32
#define INFLATE_BASE	(48 * MIB / 4096)	/* PFNs the inflater uses */

static struct vm vm;
static struct bus pio, mmio;
static struct irqchip irq;
static struct pci_host host;
static struct guestmem *gm;
static struct balloon *bal;
static uint64_t bar;
static atomic_bool reporting_done;
static atomic_ulong observed;		/* config reads done amid a report's discards */

/* Driver side of one queue: its next descriptor and used index seen. */
struct drv_q {
	uint16_t avail, used;
};

static struct drv_q dq[BALLOON_NR_QUEUES];

/*
 * The guest's own accesses to its RAM: they race with the device's by
 * design (ordered by the ring protocol and the device's barriers, as a
 * vCPU's are), so they go straight to the plain-mode mapping, byte by byte
 * and not instrumented by TSan, as a vCPU's accesses are not.
 */
__attribute__((no_sanitize("thread"), noinline))
static void guest_copy(volatile uint8_t *dst, const volatile uint8_t *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = src[i];
}

static uint8_t *guest_ram(uint64_t gpa, size_t len)
{
	const struct guestmem_slot *s = guestmem_slot(gm, 0);

	if (gpa + len > s->size)
		abort();
	return (uint8_t *)s->hva + gpa;
}

static void guest_ram_write(uint64_t gpa, const void *buf, size_t len)
{
	guest_copy(guest_ram(gpa, len), buf, len);
}

static void guest_ram_read(uint64_t gpa, void *buf, size_t len)
{
	guest_copy(buf, guest_ram(gpa, len), len);
}

static uint64_t ring(unsigned int q)
{
	return RINGS + 0x1000ULL * q;
}

static void common_w(unsigned int off, unsigned int len, uint32_t v)
{
	bus_access(&mmio, bar + VIRTIO_PCI_COMMON + off, &v, len, true);
}

static void kick(unsigned int q)
{
	uint32_t v = q;

	bus_access(&mmio, bar + VIRTIO_PCI_NOTIFY + 4 * q, &v, 2, true);
}

static void setup(void)
{
	struct guestmem_cfg cfg = { .mode = GUESTMEM_PLAIN, .page_size = 4096, .nr_nodes = 1 };
	struct balloon_cfg bc = { .free_page_reporting = true, .unit_bytes = 4096 };
	char err[256];

	cfg.nodes[0] = (struct guestmem_node_cfg){ RAM, -1 };
	gm = guestmem_create(&cfg, err, sizeof(err));
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	irq_init(&irq, -1);
	if (!gm || pci_host_init(&host, &pio, &mmio, &irq) ||
	    !(bal = balloon_create(&vm, &host, gm, NULL, RAM, &bc, err, sizeof(err)))) {
		fprintf(stderr, "setup: %s\n", err);
		exit(1);
	}
	pci_cfg_write(&host, 8, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	pci_cfg_write(&host, 8, PCI_BASE_ADDRESS_0, 4, (uint32_t)PCI_MMIO_BASE);
	bar = pci_cfg_read(&host, 8, PCI_BASE_ADDRESS_0, 4) & ~0xfULL;
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	common_w(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_w(VIRTIO_PCI_COMMON_GF, 4, 1);			/* VERSION_1 */
	common_w(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_w(VIRTIO_PCI_COMMON_GF, 4, 1u << VIRTIO_BALLOON_F_REPORTING);
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, 0xb);
	for (unsigned int q = 0; q < BALLOON_NR_QUEUES; q++) {
		common_w(VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		common_w(VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
		common_w(VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)ring(q));
		common_w(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)(ring(q) + 16 * QSIZE));
		common_w(VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)(ring(q) + 0x800));
		common_w(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	}
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, 0xf);
}

/* Put a chain of n segments on queue q (descriptors from 0) and kick. */
static void add(unsigned int q, const uint64_t *gpa, const uint32_t *len, unsigned int n)
{
	uint64_t r = ring(q);
	uint16_t idx;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t flags = i + 1 < n ? 1 : 0, next = (uint16_t)(i + 1);

		guest_ram_write(r + 16 * i, &gpa[i], 8);
		guest_ram_write(r + 16 * i + 8, &len[i], 4);
		guest_ram_write(r + 16 * i + 12, &flags, 2);
		guest_ram_write(r + 16 * i + 14, &next, 2);
	}
	idx = 0;
	guest_ram_write(r + 16 * QSIZE + 4 + 2 * (dq[q].avail % QSIZE), &idx, 2);
	dq[q].avail++;
	guest_ram_write(r + 16 * QSIZE + 2, &dq[q].avail, 2);
	kick(q);
}

static uint16_t used_idx(unsigned int q)
{
	uint16_t idx = 0;

	guest_ram_read(ring(q) + 0x800 + 2, &idx, 2);
	return idx;
}

/* The element on q is used (a device reset would lose it: none here). */
static bool wait_used(unsigned int q)
{
	for (unsigned long spins = 0; used_idx(q) != dq[q].avail; spins++) {
		if (spins > 100000000UL)
			return false;
		sched_yield();
	}
	return true;
}

static void *reporter(void *arg)
{
	uint64_t gpa[REPORT_SEGS];
	uint32_t len[REPORT_SEGS];
	long *bad = arg;

	for (unsigned int i = 0; i < REPORT_SEGS; i++) {
		gpa[i] = 16 * MIB + i * (REPORT_MEM / REPORT_SEGS);
		len[i] = (uint32_t)(REPORT_MEM / REPORT_SEGS);
	}
	for (unsigned int r = 0; r < REPORTS || (!atomic_load(&observed) && r < REPORTS_MAX); r++) {
		for (uint64_t off = 0; off < REPORT_MEM; off += 4 * 4096)	/* back pages again */
			guest_ram_write(16 * MIB + off, "x", 1);
		add(BALLOON_Q_REPORTING, gpa, len, REPORT_SEGS);
		*bad += !wait_used(BALLOON_Q_REPORTING);
	}
	atomic_store(&reporting_done, true);
	return NULL;
}

static uint8_t byte_at(uint64_t gpa)
{
	uint8_t b;

	guest_ram_read(gpa, &b, 1);
	return b;
}

/*
 * A third vCPU reading the configuration while a report is being
 * discarded: its first segment's page already zero, its last one's not yet,
 * the element not used. If the read completes and that is all still so,
 * it did not wait for the discards (it would, were they done under the
 * device lock, which the read takes).
 */
static void *observer(void *arg)
{
	uint64_t first = 16 * MIB, last = 16 * MIB + REPORT_MEM - 4 * 4096;

	(void)arg;
	while (!atomic_load(&reporting_done)) {
		uint16_t used = used_idx(BALLOON_Q_REPORTING), avail = 0;
		uint64_t v = 0;

		guest_ram_read(ring(BALLOON_Q_REPORTING) + 16 * QSIZE + 2, &avail, 2);
		if (used == avail || byte_at(first) || !byte_at(last))
			continue;
		bus_access(&mmio, bar + VIRTIO_PCI_DEVICE_CFG, &v, 4, false);
		if (used_idx(BALLOON_Q_REPORTING) == used && byte_at(last))
			atomic_fetch_add(&observed, 1);
	}
	return NULL;
}

static void *other_vcpu(void *arg)
{
	uint32_t pfns[INFLATE_PFNS], len = sizeof(pfns);
	uint64_t buf = BUFS;
	long *bad = arg;

	for (unsigned int i = 0; i < INFLATE_PFNS; i++)
		pfns[i] = INFLATE_BASE + i;
	guest_ram_write(buf, pfns, sizeof(pfns));
	for (unsigned int i = 0; i < INFLATES || !atomic_load(&reporting_done); i++) {
		unsigned int q = i % 2 ? BALLOON_Q_DEFLATE : BALLOON_Q_INFLATE;
		uint64_t v = 0;

		bus_access(&mmio, bar + VIRTIO_PCI_ISR, &v, 1, false);
		bus_access(&mmio, bar + VIRTIO_PCI_DEVICE_CFG, &v, 4, false);
		kick(BALLOON_Q_REPORTING);	/* a stray kick: nothing may go twice */
		if (i < INFLATES) {
			add(q, &buf, &len, 1);
			*bad += !wait_used(q);
		}
	}
	return NULL;
}

static void t_discards_out_of_lock(void)
{
	struct balloon_counters c;
	long bad[2] = { 0, 0 };
	pthread_t t[3];

	setup();
	pthread_create(&t[0], NULL, reporter, &bad[0]);
	pthread_create(&t[1], NULL, other_vcpu, &bad[1]);
	pthread_create(&t[2], NULL, observer, NULL);
	for (unsigned int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(bad[0], 0);
	CHECK_EQ(bad[1], 0);
	CHECK(atomic_load(&observed) > 0);
	balloon_counters(bal, &c);
	CHECK_EQ(used_idx(BALLOON_Q_REPORTING), dq[BALLOON_Q_REPORTING].avail);	/* each once */
	CHECK_EQ(c.reported_bytes, dq[BALLOON_Q_REPORTING].avail * REPORT_MEM);
	CHECK_EQ(c.inflate_pfns, INFLATES / 2 * INFLATE_PFNS);
	CHECK_EQ(c.deflate_pfns, INFLATES / 2 * INFLATE_PFNS);
	CHECK_EQ(c.inflated_pages, 0);
	CHECK_EQ(c.broken, 0);
	/* a reset between elements: the device starts over */
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	balloon_counters(bal, &c);
	CHECK_EQ(c.inflated_pages, 0);
	balloon_destroy(bal);
	pci_host_destroy(&host, &pio);
	bus_destroy(&pio);
	bus_destroy(&mmio);
	guestmem_destroy(gm);
}

TEST_MAIN(T(t_discards_out_of_lock))
