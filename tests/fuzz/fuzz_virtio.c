/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/fuzz_virtio.c - libFuzzer target for the virtqueue walker and
 * virtio-balloon's request parsing, driven the way the device-level test
 * driver drives them: the input is a program of guest actions (write guest
 * RAM where the rings and buffers are, notify a queue, write the common or
 * device configuration, PCI configuration writes, a new balloon target, a
 * device reset), run against the real bus, PCI host, virtio-pci transport
 * and balloon on a 4 MiB guest. Each input starts from a freshly set-up
 * device; its first byte / 9 picks one of three balloons (4 KiB units, 2 MiB
 * units counted across elements, 2 MiB units tracked per element). Crashes,
 * sanitizer reports and a device left inconsistent (a balloon counting more
 * pages than guest RAM, or discarding more than it was given) are findings.
 */
#include "balloon.h"
#include "bus.h"
#include "guestmem.h"
#include "irq.h"
#include "pci.h"
#include "vmm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAM		(4ULL << 20)
#define AREA		0x100000ULL	/* rings and buffers: what the input writes */
#define AREA_SIZE	0x10000ULL
#define QSIZE		16
/* Balloons at 00:01.0, 00:02.0, 00:03.0: 4 KiB units; 2 MiB units counted
 * across elements; 2 MiB units with QEMU's per-element tracking. */
#define NR_BALLOONS	3
#define HUGE_UNIT	(2ULL << 20)

static struct vm vms[NR_BALLOONS];
static struct bus pio, mmio;
static struct irqchip irq;
static struct pci_host host;
static struct guestmem *gm;
static struct balloon *balloons[NR_BALLOONS];
static unsigned int devfn;		/* the balloon this input drives */

static void fatal(const char *what)
{
	fprintf(stderr, "fuzz_virtio: %s\n", what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct guestmem_cfg cfg = { .mode = GUESTMEM_PLAIN, .page_size = 4096, .nr_nodes = 1 };
	struct balloon_cfg bc[NR_BALLOONS] = {
		{ .free_page_reporting = true, .deflate_on_oom = true, .unit_bytes = 4096 },
		{ .free_page_reporting = true, .unit_bytes = HUGE_UNIT },
		{ .free_page_reporting = true, .unit_bytes = HUGE_UNIT,
		  .track = BALLOON_TRACK_ELEMENT },
	};
	char err[256];

	(void)argc;
	(void)argv;
	cfg.nodes[0] = (struct guestmem_node_cfg){ RAM, -1 };
	gm = guestmem_create(&cfg, err, sizeof(err));
	if (!gm)
		fatal(err);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	irq_init(&irq, -1);
	if (pci_host_init(&host, &pio, &mmio, &irq))
		fatal("pci host");
	for (unsigned int i = 0; i < NR_BALLOONS; i++) {
		balloons[i] = balloon_create(&vms[i], &host, gm, NULL, RAM, &bc[i], err, sizeof(err));
		if (!balloons[i])
			fatal(err);
	}
	return 0;
}

static uint64_t bar(void)
{
	return pci_cfg_read(&host, devfn, PCI_BASE_ADDRESS_0, 4) & ~0xfULL;
}

static void common_w(unsigned int off, unsigned int len, uint32_t v)
{
	bus_access(&mmio, bar() + VIRTIO_PCI_COMMON + off, &v, len, true);
}

static void setup(void)
{
	uint64_t ring = AREA;

	pci_cfg_write(&host, devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	pci_cfg_write(&host, devfn, PCI_BASE_ADDRESS_0, 4,
		      (uint32_t)(PCI_MMIO_BASE + 0x100000 * (devfn / 8)));
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	for (unsigned int sel = 0; sel < 2; sel++) {
		common_w(VIRTIO_PCI_COMMON_GFSELECT, 4, sel);
		common_w(VIRTIO_PCI_COMMON_GF, 4, 0xffffffffu);
	}
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, 0xb);
	for (unsigned int q = 0; q < BALLOON_NR_QUEUES; q++) {
		common_w(VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		common_w(VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
		common_w(VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)ring);
		common_w(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)(ring + 16 * QSIZE));
		common_w(VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)(ring + 0x200));
		common_w(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
		ring += 0x400;
	}
	common_w(VIRTIO_PCI_COMMON_STATUS, 1, 0xf);
}

struct input {
	const uint8_t *p;
	size_t left;
};

static uint32_t take(struct input *in, unsigned int bytes)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < bytes && in->left; i++, in->left--)
		v |= (uint32_t)*in->p++ << (8 * i);
	return v;
}

static void ram_write(struct input *in)
{
	uint64_t off = take(in, 2) % AREA_SIZE;
	size_t len = take(in, 1);

	if (len > in->left)
		len = in->left;
	if (off + len > AREA_SIZE)
		len = AREA_SIZE - off;
	guestmem_write(gm, AREA + off, in->p, len);
	in->p += len;
	in->left -= len;
}

static void step(struct input *in)
{
	unsigned int op = take(in, 1) % 9, len = 1u << (take(in, 1) % 3);
	uint32_t a, v;

	switch (op) {
	case 0: case 1:
		ram_write(in);
		return;
	case 2:
		v = take(in, 1) % (BALLOON_NR_QUEUES + 1);
		bus_access(&mmio, bar() + VIRTIO_PCI_NOTIFY + 4 * v, &v, 2, true);
		return;
	case 3:
		a = take(in, 1) % VIRTIO_PCI_COMMON_SIZE;
		common_w(a, len, take(in, 4));
		return;
	case 4:
		a = take(in, 2) % VIRTIO_PCI_BAR_SIZE;
		bus_access(&mmio, bar() + a, &v, len, false);
		return;
	case 5:
		a = take(in, 1) % BALLOON_CFG_SIZE;
		v = take(in, 4);
		bus_access(&mmio, bar() + VIRTIO_PCI_DEVICE_CFG + a, &v, len, true);
		return;
	case 6:
		balloon_ctl_set_target(&vms[devfn / 8 - 1], (uint64_t)take(in, 3) << 12);
		return;
	case 7:
		a = take(in, 1);
		pci_cfg_write(&host, devfn, a, len, take(in, 4));
		return;
	default:
		setup();
		return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct balloon_counters c;
	unsigned int which = size ? data[0] / 9 % NR_BALLOONS : 0;

	devfn = 8 * (which + 1);
	guestmem_write(gm, AREA, (uint8_t[0x1000]){ 0 }, 0x1000);
	setup();
	while (in.left)
		step(&in);
	balloon_counters(balloons[which], &c);
	if (c.inflated_pages > RAM / 4096)
		fatal("balloon counts more pages than guest RAM");
	if (c.discarded_bytes > (c.inflate_pfns + 1) * HUGE_UNIT + c.reported_bytes)
		fatal("balloon discarded more than it was given");
	return 0;
}
