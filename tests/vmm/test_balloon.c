/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/test_balloon.c - device-level tests of the PCI host, the
 * virtio-pci transport and virtio-balloon, through gmm-vmm --qtest (no
 * vCPU, no /dev/kvm): the test plays the guest's PCI and virtio drivers.
 * Host memory is checked through the pool's statistics and the process's
 * RSS; hostile rings must set DEVICE_NEEDS_RESET and leave gmm-vmm alive.
 * gmm-vmm's path comes in GMM_VMM.
 */
#include "../harness.h"
#include "../sysfs_long.h"
#include "balloon.h"
#include "qtest_lib.h"

#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define MIB		(1ULL << 20)
#define RAM		(64 * MIB)
#define DRV_MEM		(1 * MIB)	/* the driver's rings and buffers */
#define DRV_END		(8 * MIB)
#define TEST_MEM	(16 * MIB)	/* pages the tests inflate */
#define PAGE		4096ULL
#define QSIZE		256

static const char *vmm_path(void)
{
	const char *p = getenv("GMM_VMM");

	return p ? p : "vmm/gmm-vmm";
}

static struct qts *start(const char *args)
{
	return qts_start(vmm_path(), args);
}

static const uint64_t base_features = 1ULL << VIRTIO_F_VERSION_1 |
	1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST | 1ULL << VIRTIO_BALLOON_F_STATS_VQ |
	1ULL << VIRTIO_BALLOON_F_REPORTING | 1ULL << VIRTIO_F_EVENT_IDX;

/* Probe, negotiate features, set up the four queues, DRIVER_OK. */
static void balloon_up(struct qts *q, struct vdev *d, uint64_t features)
{
	vd_probe(q, d, VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_BALLOON, DRV_MEM, DRV_END);
	if (!vd_negotiate(d, features)) {
		fprintf(stderr, "  feature negotiation refused\n");
		exit(1);
	}
	for (unsigned int i = 0; i < BALLOON_NR_QUEUES; i++)
		vd_queue(d, i, QSIZE);
	vd_driver_ok(d);
}

/* Send pfns on queue qi in one element; whether the device used it. */
static bool send_pfns(struct vdev *d, unsigned int qi, const uint32_t *pfns, unsigned int n)
{
	return vd_send(d, qi, vd_alloc(d, 4ULL * n, 8), pfns, 4 * n);
}

static uint64_t mem_stat(struct qts *q, const char *key)
{
	qts_cmd(q, "mem");
	return qts_kv(q, key);
}

static uint64_t counter(struct qts *q, const char *key)
{
	qts_cmd(q, "balloon-counters");
	return qts_kv(q, key);
}

/* The pool's free frames reach want; a reporting pass holds free blocks
 * off the free lists for a moment, so look a few times. */
static bool pool_free_reaches(struct qts *q, uint64_t want)
{
	for (int i = 0; i < 100; i++) {
		if (mem_stat(q, "pool_free") >= want)
			return true;
		usleep(10000);
	}
	return false;
}

static bool page_is(struct qts *q, uint64_t gpa, uint8_t byte)
{
	uint8_t buf[64];

	qts_memread(q, gpa, buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++) {
		if (buf[i] != byte)
			return false;
	}
	return true;
}

/* The PCI configuration access capability: a window onto BAR 0. */
static void check_cfg_window(struct qts *q, struct vdev *d)
{
	unsigned int c = qts_pci_read(q, 8, PCI_CAPABILITY_LIST, 1);

	while (c && !(qts_pci_read(q, 8, c, 1) == PCI_CAP_ID_VNDR &&
		      qts_pci_read(q, 8, c + 3, 1) == VIRTIO_PCI_CAP_PCI_CFG))
		c = qts_pci_read(q, 8, c + 1, 1);
	REQUIRE(c);
	qts_pci_write(q, 8, c + VIRTIO_PCI_CAP_BAR, 1, 0);
	qts_pci_write(q, 8, c + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_NUMQ);
	qts_pci_write(q, 8, c + VIRTIO_PCI_CAP_LENGTH, 4, 2);
	CHECK_EQ(qts_pci_read(q, 8, c + VIRTIO_PCI_CFG_DATA, 2), BALLOON_NR_QUEUES);
	qts_pci_write(q, 8, c + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_STATUS);
	qts_pci_write(q, 8, c + VIRTIO_PCI_CAP_LENGTH, 4, 1);
	qts_pci_write(q, 8, c + VIRTIO_PCI_CFG_DATA, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	CHECK_EQ(vd_status(d), VIRTIO_STATUS_ACKNOWLEDGE);
	qts_pci_write(q, 8, c + VIRTIO_PCI_CAP_BAR, 1, 3);	/* no such BAR */
	CHECK_EQ(qts_pci_read(q, 8, c + VIRTIO_PCI_CFG_DATA, 1), 0);
	vd_set_status(d, 0);
}

static void t_pci(void)
{
	struct qts *q = start("--memory 64M --balloon");
	struct vdev d;
	uint32_t bar;

	qts_out(q, 4, 0xcf8, 0x80000000u);
	CHECK_EQ(qts_in(q, 4, 0xcf8), 0x80000000u);
	CHECK_EQ(qts_pci_read(q, 0, 0x0a, 2), 0x0600);		/* host bridge */
	CHECK_EQ(qts_pci_read(q, 8, 0, 4), 0x10451af4u);	/* 00:01.0 */
	CHECK_EQ(qts_pci_read(q, 8, PCI_REVISION_ID, 1), 1);
	CHECK(qts_pci_read(q, 8, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	CHECK_EQ(qts_pci_read(q, 8, PCI_SUBSYSTEM_ID, 2), VIRTIO_ID_BALLOON);
	CHECK_EQ(qts_pci_read(q, 8, PCI_INTERRUPT_PIN, 1), 1);
	CHECK_EQ(qts_pci_read(q, 16, 0, 4), 0xffffffffu);	/* empty slot */
	bar = qts_pci_read(q, 8, PCI_BASE_ADDRESS_0, 4);
	CHECK(bar >= PCI_MMIO_BASE && bar < PCI_MMIO_END);
	/* BAR sizing as Linux does it, then restore */
	qts_pci_write(q, 8, PCI_BASE_ADDRESS_0, 4, 0xffffffffu);
	CHECK_EQ(qts_pci_read(q, 8, PCI_BASE_ADDRESS_0, 4), ~(VIRTIO_PCI_BAR_SIZE - 1u));
	qts_pci_write(q, 8, PCI_BASE_ADDRESS_0, 4, bar);
	vd_probe(q, &d, 0x1045, DRV_MEM, DRV_END);
	CHECK_EQ(qts_readm(q, 2, d.common + VIRTIO_PCI_COMMON_NUMQ), BALLOON_NR_QUEUES);
	CHECK_EQ(qts_readm(q, 2, d.common + VIRTIO_PCI_COMMON_Q_SIZE), QSIZE);
	check_cfg_window(q, &d);
	/* memory decoding off: the BAR is gone */
	qts_pci_write(q, 8, PCI_COMMAND, 2, 0);
	CHECK_EQ(qts_readm(q, 2, d.common + VIRTIO_PCI_COMMON_NUMQ), 0xffff);
	qts_pci_write(q, 8, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	/* move the BAR: it answers at the new address only */
	qts_pci_write(q, 8, PCI_BASE_ADDRESS_0, 4, bar + 0x100000);
	CHECK_EQ(qts_readm(q, 2, bar + 0x100000 + VIRTIO_PCI_COMMON_NUMQ), BALLOON_NR_QUEUES);
	CHECK_EQ(qts_readm(q, 2, d.common + VIRTIO_PCI_COMMON_NUMQ), 0xffff);
	CHECK_EQ(qts_quit(q), 0);
}

static void t_negotiate(void)
{
	struct qts *q = start("--memory 64M --balloon");
	struct vdev d;
	uint64_t f;

	vd_probe(q, &d, 0x1045, DRV_MEM, DRV_END);
	f = vd_device_features(&d);
	CHECK(f & 1ULL << VIRTIO_F_VERSION_1);
	CHECK(f & 1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST);
	CHECK(f & 1ULL << VIRTIO_BALLOON_F_STATS_VQ);
	CHECK(f & 1ULL << VIRTIO_BALLOON_F_PAGE_POISON);
	CHECK(f & 1ULL << VIRTIO_BALLOON_F_REPORTING);
	CHECK(!(f & 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	CHECK(!(f & 1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT));
	/* a legacy driver (no VERSION_1) is refused FEATURES_OK */
	CHECK(!vd_negotiate(&d, 1ULL << VIRTIO_BALLOON_F_STATS_VQ));
	/* bits the device did not offer are dropped */
	CHECK(vd_negotiate(&d, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 40 |
			   1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	qts_writem(q, 4, d.common + VIRTIO_PCI_COMMON_GFSELECT, 1);
	CHECK_EQ(qts_readm(q, 4, d.common + VIRTIO_PCI_COMMON_GF), 1);
	qts_writem(q, 4, d.common + VIRTIO_PCI_COMMON_GFSELECT, 0);
	CHECK_EQ(qts_readm(q, 4, d.common + VIRTIO_PCI_COMMON_GF), 0);
	/* after FEATURES_OK, features are frozen */
	qts_writem(q, 4, d.common + VIRTIO_PCI_COMMON_GF, 1u << VIRTIO_BALLOON_F_STATS_VQ);
	CHECK_EQ(qts_readm(q, 4, d.common + VIRTIO_PCI_COMMON_GF), 0);
	CHECK_EQ(qts_quit(q), 0);

	q = start("--memory 64M --balloon=deflate-on-oom=on,free-page-reporting=off");
	vd_probe(q, &d, 0x1045, DRV_MEM, DRV_END);
	f = vd_device_features(&d);
	CHECK(f & 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	CHECK(!(f & 1ULL << VIRTIO_BALLOON_F_REPORTING));
	CHECK_EQ(qts_quit(q), 0);
}

static void t_target(void)
{
	struct qts *q = start("--memory 64M --balloon");
	struct vdev d;

	balloon_up(q, &d, base_features);
	CHECK(strncmp(qts_cmd(q, "balloon-target 0"), "ERR", 3) == 0);
	CHECK(strncmp(qts_cmd(q, "balloon-target %llu", RAM + PAGE), "ERR", 3) == 0);
	qts_ok(q, "balloon-target %llu", 48 * MIB);
	CHECK_EQ(vd_cfg_read(&d, BALLOON_CFG_NUM_PAGES, 4), 16 * MIB / PAGE);
	CHECK_EQ(qts_val(q, "irq %u", d.gsi), 1);		/* INTx up */
	CHECK_EQ(vd_isr(&d), VIRTIO_ISR_CONFIG);
	CHECK_EQ(qts_val(q, "irq %u", d.gsi), 0);		/* read cleared it */
	CHECK_EQ(vd_isr(&d), 0);
	CHECK_EQ(qts_val(q, "balloon-actual"), RAM);
	vd_cfg_write(&d, BALLOON_CFG_ACTUAL, 4, 16 * MIB / PAGE);
	CHECK_EQ(qts_val(q, "balloon-actual"), 48 * MIB);
	CHECK_EQ(qts_quit(q), 0);
}

/* rss_kib + hugetlb, the host memory behind the process */
static uint64_t host_kib(struct qts *q)
{
	qts_cmd(q, "mem");
	return qts_kv(q, "rss_kib") + qts_kv(q, "hugetlb_kib");
}

static void t_inflate_deflate(void)
{
	struct qts *q = start("--memory 64M --balloon --report-delay-ms 50");
	unsigned int n = (unsigned int)(TEST_MEM / PAGE);
	uint32_t *pfns = malloc((n + 3) * sizeof(*pfns));
	uint64_t free0, rss0, rss;
	struct vdev d;

	balloon_up(q, &d, base_features);
	qts_ok(q, "memset 0x%llx %llu 0x5a", TEST_MEM - PAGE, TEST_MEM + 2 * PAGE);
	free0 = mem_stat(q, "pool_free");
	rss0 = host_kib(q);
	/* PFNs in descending order, with strays outside RAM */
	for (unsigned int i = 0; i < n; i++)
		pfns[i] = (uint32_t)(2 * TEST_MEM / PAGE - 1 - i);
	pfns[n] = 0xd0000;		/* in the 32-bit hole */
	pfns[n + 1] = 0xfffffff;	/* far beyond RAM */
	pfns[n + 2] = pfns[0];		/* twice */
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, pfns, n + 3));
	CHECK_EQ(counter(q, "inflated_pages"), n);
	CHECK_EQ(qts_kv(q, "inflate_pfns"), n + 3);
	CHECK_EQ(qts_kv(q, "bad_pfns"), 2);
	CHECK_EQ(qts_kv(q, "discard_calls"), 1);	/* one sorted range */
	CHECK_EQ(qts_kv(q, "discarded_bytes"), TEST_MEM);
	CHECK(pool_free_reaches(q, free0 + n));		/* back in the pool */
	CHECK(page_is(q, TEST_MEM, 0) && page_is(q, 2 * TEST_MEM - PAGE, 0));
	CHECK(page_is(q, TEST_MEM - PAGE, 0x5a));	/* the pages around stay */
	CHECK(page_is(q, 2 * TEST_MEM, 0x5a));
	for (int i = 0; i < 100 && (rss = host_kib(q)) + TEST_MEM / 1024 * 3 / 4 > rss0; i++)
		usleep(50000);
	if (rss + TEST_MEM / 1024 * 3 / 4 > rss0)
		fprintf(stderr, "  host memory %llu KiB before inflating, %llu after\n",
			(unsigned long long)rss0, (unsigned long long)rss);
	CHECK(rss + TEST_MEM / 1024 * 3 / 4 <= rss0);	/* and back to the host */
	/* deflate half: bookkeeping, then the pages are usable again */
	CHECK(send_pfns(&d, BALLOON_Q_DEFLATE, pfns, n / 2));
	CHECK_EQ(counter(q, "inflated_pages"), n - n / 2);
	CHECK_EQ(qts_kv(q, "deflate_pfns"), n / 2);
	qts_ok(q, "memset 0x%llx 4096 0x33", (unsigned long long)pfns[0] * PAGE);
	CHECK(page_is(q, (uint64_t)pfns[0] * PAGE, 0x33));
	/* re-inflating counts each page once */
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, pfns, n));
	CHECK_EQ(counter(q, "inflated_pages"), n);
	CHECK_EQ(qts_kv(q, "broken"), 0);
	free(pfns);
	CHECK_EQ(qts_quit(q), 0);
}

static void t_per_page(void)
{
	struct qts *q = start("--memory 64M --balloon=x-per-page=on");
	uint32_t pfns[64];
	struct vdev d;

	balloon_up(q, &d, base_features);
	for (unsigned int i = 0; i < 64; i++)
		pfns[i] = (uint32_t)(TEST_MEM / PAGE + i);
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, pfns, 64));
	CHECK_EQ(counter(q, "discard_calls"), 64);
	CHECK_EQ(qts_quit(q), 0);
}

struct stat_entry {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

static void t_stats(void)
{
	struct qts *q = start("--memory 64M --balloon");
	struct stat_entry st[3] = {
		{ 4, 12345 }, { 5, RAM }, { 99, 7 },	/* 99: unknown, ignored */
	};
	uint64_t buf;
	struct vd_buf b;
	struct vdev d;
	int head, got = -1;

	/* as Linux does: prime the stats queue and kick it before DRIVER_OK */
	vd_probe(q, &d, VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_BALLOON, DRV_MEM, DRV_END);
	REQUIRE(vd_negotiate(&d, base_features));
	for (unsigned int i = 0; i < BALLOON_NR_QUEUES; i++)
		vd_queue(&d, i, QSIZE);
	buf = vd_alloc(&d, sizeof(st), 8);
	qts_memwrite(q, buf, st, sizeof(st));
	b = (struct vd_buf){ buf, sizeof(st), false };
	head = vd_add(&d, BALLOON_Q_STATS, &b, 1);
	vd_driver_ok(&d);
	CHECK_EQ(vd_used(&d, BALLOON_Q_STATS, NULL), -1);	/* held */
	qts_cmd(q, "balloon-stats");
	CHECK_EQ(qts_kv(q, "stat-free-memory"), 12345);
	CHECK_EQ(qts_kv(q, "stat-total-memory"), RAM);
	CHECK(qts_kv(q, "last-update") > 0);
	CHECK(!strstr(qts_cmd(q, "balloon-stats"), "stat-swap-in"));
	qts_ok(q, "balloon-interval 1");
	CHECK_EQ(qts_val(q, "balloon-get-interval"), 1);
	for (int i = 0; i < 60 && got < 0; i++) {
		usleep(50000);
		got = vd_used(&d, BALLOON_Q_STATS, NULL);
	}
	CHECK_EQ(got, head);					/* asked again */
	CHECK_EQ(vd_isr(&d) & VIRTIO_ISR_QUEUE, VIRTIO_ISR_QUEUE);
	st[0].val = 999;
	qts_memwrite(q, buf, st, sizeof(st));
	vd_add(&d, BALLOON_Q_STATS, &b, 1);
	qts_cmd(q, "balloon-stats");
	CHECK_EQ(qts_kv(q, "stat-free-memory"), 999);
	CHECK_EQ(counter(q, "stats_updates"), 2);
	CHECK_EQ(qts_quit(q), 0);
}

/* Report two 4 MiB ranges at 32 MiB; whether the device used them. */
static bool report(struct vdev *d)
{
	struct vd_buf b[2] = {
		{ 2 * TEST_MEM, 4 * MIB, true }, { 2 * TEST_MEM + 4 * MIB, 4 * MIB, true },
	};
	int head = vd_add(d, BALLOON_Q_REPORTING, b, 2);

	return vd_used(d, BALLOON_Q_REPORTING, NULL) == head;
}

static void t_reporting(void)
{
	struct qts *q = start("--memory 64M --balloon");
	uint64_t free0;
	struct vdev d;

	balloon_up(q, &d, base_features);
	qts_ok(q, "memset 0x%llx %llu 0x77", 2 * TEST_MEM, 8 * MIB);
	free0 = mem_stat(q, "pool_free");
	CHECK(report(&d));
	CHECK_EQ(counter(q, "reported_bytes"), 8 * MIB);
	CHECK(pool_free_reaches(q, free0 + 8 * MIB / PAGE));
	CHECK(page_is(q, 2 * TEST_MEM, 0) && page_is(q, 2 * TEST_MEM + 8 * MIB - PAGE, 0));
	CHECK_EQ(qts_quit(q), 0);
}

static void t_poison(void)
{
	struct qts *q = start("--memory 64M --balloon");
	struct vdev d;

	balloon_up(q, &d, base_features | 1ULL << VIRTIO_BALLOON_F_PAGE_POISON);
	vd_cfg_write(&d, BALLOON_CFG_POISON, 4, 0xaaaaaaaa);
	CHECK_EQ(vd_cfg_read(&d, BALLOON_CFG_POISON, 4), 0xaaaaaaaa);
	qts_ok(q, "memset 0x%llx %llu 0xaa", 2 * TEST_MEM, 8 * MIB);
	CHECK(report(&d));
	CHECK_EQ(counter(q, "reported_bytes"), 0);
	CHECK_EQ(qts_kv(q, "report_skipped"), 8 * MIB);
	CHECK(page_is(q, 2 * TEST_MEM, 0xaa));		/* the poison stays */
	/* poison 0: reported pages may go (zero pages read as poison 0) */
	vd_cfg_write(&d, BALLOON_CFG_POISON, 4, 0);
	CHECK(report(&d));
	CHECK_EQ(counter(q, "reported_bytes"), 8 * MIB);
	CHECK_EQ(qts_quit(q), 0);
}

/* --- hostile rings --- */

enum hostile {
	H_HEAD, H_NEXT, H_LOOP, H_HOLE, H_END, H_WRAP, H_ORDER, H_IND_LEN,
	H_IND_NEXT, H_IND_NESTED, H_IND_OUT, H_IND_LOOP, H_IND_NOT_HEAD,
	H_AVAIL_JUMP, H_CHAIN_LONG, NR_HOSTILE,
};

static const char *const hostile_name[NR_HOSTILE] = {
	"head beyond the queue", "next beyond the table", "loop", "buffer in the hole",
	"buffer across the end of RAM", "buffer wrapping the address space",
	"readable after writable", "indirect length", "indirect with next",
	"nested indirect", "indirect table outside RAM", "loop in an indirect table",
	"indirect not at the head", "avail index jump", "chain longer than the queue",
};

static void hostile_ring(struct vdev *d, enum hostile h)
{
	unsigned int qi = BALLOON_Q_INFLATE;
	uint64_t buf = vd_alloc(d, PAGE, PAGE), tbl = vd_alloc(d, 16 * 4, 16);
	struct vd_queue *v = &d->vq[qi];

	switch (h) {
	case H_HEAD: vd_publish(d, qi, QSIZE + 5); break;
	case H_NEXT: vd_write_desc(d, qi, 0, 0, buf, 4, 1, 999); vd_publish(d, qi, 0); break;
	case H_LOOP:
		vd_write_desc(d, qi, 0, 0, buf, 4, 1, 1);
		vd_write_desc(d, qi, 0, 1, buf, 4, 1, 0);
		vd_publish(d, qi, 0);
		break;
	case H_HOLE: vd_write_desc(d, qi, 0, 0, 0xd0000000, 4096, 0, 0); vd_publish(d, qi, 0); break;
	case H_END: vd_write_desc(d, qi, 0, 0, RAM - 2048, 4096, 0, 0); vd_publish(d, qi, 0); break;
	case H_WRAP:
		vd_write_desc(d, qi, 0, 0, 0xfffffffffffff000ULL, 0x2000, 0, 0);
		vd_publish(d, qi, 0);
		break;
	case H_ORDER:
		vd_write_desc(d, qi, 0, 0, buf, 4, 1 | 2, 1);
		vd_write_desc(d, qi, 0, 1, buf, 4, 0, 0);
		vd_publish(d, qi, 0);
		break;
	case H_IND_LEN: vd_write_desc(d, qi, 0, 0, tbl, 24, 4, 0); vd_publish(d, qi, 0); break;
	case H_IND_NEXT:
		vd_write_desc(d, qi, tbl, 0, buf, 4, 0, 0);
		vd_write_desc(d, qi, 0, 0, tbl, 16, 4 | 1, 1);
		vd_publish(d, qi, 0);
		break;
	case H_IND_NESTED:
		vd_write_desc(d, qi, tbl, 0, tbl, 16, 4, 0);
		vd_write_desc(d, qi, 0, 0, tbl, 16, 4, 0);
		vd_publish(d, qi, 0);
		break;
	case H_IND_OUT: vd_write_desc(d, qi, 0, 0, 0xd0000000, 64, 4, 0); vd_publish(d, qi, 0); break;
	case H_IND_LOOP:
		vd_write_desc(d, qi, tbl, 0, buf, 4, 1, 1);
		vd_write_desc(d, qi, tbl, 1, buf, 4, 1, 0);
		vd_write_desc(d, qi, 0, 0, tbl, 32, 4, 0);
		vd_publish(d, qi, 0);
		break;
	case H_IND_NOT_HEAD:
		vd_write_desc(d, qi, tbl, 0, buf, 4, 0, 0);
		vd_write_desc(d, qi, 0, 0, buf, 4, 1, 1);
		vd_write_desc(d, qi, 0, 1, tbl, 16, 4, 0);
		vd_publish(d, qi, 0);
		break;
	case H_AVAIL_JUMP:
		qts_writem(d->q, 2, v->avail + 2, (uint16_t)(v->avail_idx + QSIZE + 1));
		break;
	case H_CHAIN_LONG:
		for (unsigned int i = 0; i < QSIZE; i++)
			vd_write_desc(d, qi, 0, i, buf, 4, 1, (uint16_t)((i + 1) % QSIZE));
		vd_publish(d, qi, 0);
		break;
	case NR_HOSTILE:
		break;
	}
	vd_kick(d, qi);
}

static void t_hostile(void)
{
	struct qts *q = start("--memory 64M --balloon");
	uint32_t pfn = (uint32_t)(TEST_MEM / PAGE);
	struct vdev d;

	for (int h = 0; h < NR_HOSTILE; h++) {
		balloon_up(q, &d, base_features);
		hostile_ring(&d, (enum hostile)h);
		if (!(vd_status(&d) & VIRTIO_STATUS_NEEDS_RESET)) {
			fprintf(stderr, "  hostile case '%s': no DEVICE_NEEDS_RESET\n", hostile_name[h]);
			CHECK(0);
		}
		CHECK(vd_isr(&d) & VIRTIO_ISR_CONFIG);
		CHECK_EQ(counter(q, "broken"), h + 1);
		CHECK_EQ(qts_kv(q, "inflated_pages"), 0);	/* nothing acted on */
	}
	/* rings outside RAM or misaligned are refused at enable */
	vd_probe(q, &d, 0x1045, DRV_MEM, DRV_END);
	CHECK(vd_negotiate(&d, base_features));
	qts_writem(q, 2, d.common + VIRTIO_PCI_COMMON_Q_SELECT, 0);
	qts_writem(q, 4, d.common + VIRTIO_PCI_COMMON_Q_DESCLO, 0xd0000000u);
	qts_writem(q, 2, d.common + VIRTIO_PCI_COMMON_Q_ENABLE, 1);
	CHECK(vd_status(&d) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(qts_readm(q, 2, d.common + VIRTIO_PCI_COMMON_Q_ENABLE), 0);
	CHECK(vd_negotiate(&d, base_features));
	qts_writem(q, 4, d.common + VIRTIO_PCI_COMMON_Q_DESCLO, DRV_MEM + 8);
	qts_writem(q, 2, d.common + VIRTIO_PCI_COMMON_Q_ENABLE, 1);
	CHECK(vd_status(&d) & VIRTIO_STATUS_NEEDS_RESET);
	/* and after a reset the device works again */
	balloon_up(q, &d, base_features);
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, &pfn, 1));
	CHECK_EQ(counter(q, "inflated_pages"), 1);
	CHECK(!(vd_status(&d) & VIRTIO_STATUS_NEEDS_RESET));
	CHECK_EQ(qts_quit(q), 0);
}

/* Indirect descriptors and event index work when used properly. */
static void t_indirect(void)
{
	struct qts *q = start("--memory 64M --balloon");
	uint32_t pfns[2] = { (uint32_t)(TEST_MEM / PAGE), (uint32_t)(TEST_MEM / PAGE + 1) };
	struct vdev d;
	uint64_t tbl, buf;

	balloon_up(q, &d, base_features | 1ULL << VIRTIO_F_INDIRECT_DESC);
	tbl = vd_alloc(&d, 32, 16);
	buf = vd_alloc(&d, 8, 8);
	qts_memwrite(q, buf, pfns, 8);
	vd_write_desc(&d, 0, tbl, 0, buf, 4, 1, 1);
	vd_write_desc(&d, 0, tbl, 1, buf + 4, 4, 0, 0);
	vd_write_desc(&d, 0, 0, 0, tbl, 32, 4, 0);
	vd_publish(&d, 0, 0);
	vd_kick(&d, 0);
	CHECK_EQ(vd_used(&d, 0, NULL), 0);
	CHECK_EQ(counter(q, "inflated_pages"), 2);
	CHECK_EQ(qts_kv(q, "discard_calls"), 1);
	/* event index: the device asks for the next notification */
	CHECK_EQ(qts_readm(q, 2, d.vq[0].used + 4 + 8 * QSIZE), d.vq[0].avail_idx);
	CHECK_EQ(qts_quit(q), 0);
}

/* Inflate 8 MiB of a 2 MiB hugetlbfs guest in Linux-sized elements (256
 * PFNs, half a host page each); the host memory given back. */
static uint64_t huge_inflate(const char *track, uint64_t *discarded)
{
	char args[128];
	unsigned int n = (unsigned int)(8 * MIB / PAGE);
	uint32_t *pfns = malloc(n * sizeof(*pfns));
	uint64_t before, after = 0;
	struct qts *q;
	struct vdev d;

	snprintf(args, sizeof(args), "--memory 64M --hugepages 2M --report-delay-ms 50 --balloon=x-track=%s",
		 track);
	q = start(args);
	balloon_up(q, &d, base_features);
	qts_ok(q, "memset 0x%llx %llu 0x5a", TEST_MEM, 8 * MIB);
	before = mem_stat(q, "memfd_kib");
	for (unsigned int i = 0; i < n; i++)
		pfns[i] = (uint32_t)(TEST_MEM / PAGE + i);
	for (unsigned int i = 0; i < n; i += 256)
		CHECK(send_pfns(&d, BALLOON_Q_INFLATE, pfns + i, 256));
	for (int i = 0; i < 100 && (after = mem_stat(q, "memfd_kib")) + 8 * 1024 > before; i++)
		usleep(20000);
	*discarded = counter(q, "discarded_bytes");
	CHECK_EQ(qts_kv(q, "inflated_pages"), n);
	free(pfns);
	CHECK_EQ(qts_quit(q), 0);
	return before > after ? (before - after) * 1024 : 0;
}

/* Hugetlbfs: a 2 MiB page goes back once all its pieces are inflated,
 * across elements; QEMU's per-element tracking gives nothing back. */
static void t_hugetlb(void)
{
	const char *nr = "/proc/sys/vm/nr_hugepages";
	long old = read_long(nr);
	uint64_t unit_back, elem_back, unit_disc, elem_disc;

	REQUIRE(old >= 0 && !write_long(nr, old + 64));
	if (read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") < 64) {
		write_long(nr, old);
		fprintf(stderr, "  cannot reserve 64 hugepages (held by another test?)\n");
		CHECK(0);
		return;
	}
	unit_back = huge_inflate("unit", &unit_disc);
	elem_back = huge_inflate("element", &elem_disc);
	write_long(nr, old);
	CHECK_EQ(unit_disc, 8 * MIB);
	CHECK(unit_back >= 8 * MIB);
	CHECK_EQ(elem_disc, 0);
	CHECK_EQ(elem_back, 0);
}

static unsigned int find_cap(struct qts *q, unsigned int devfn, unsigned int id)
{
	unsigned int off = qts_pci_read(q, devfn, PCI_CAPABILITY_LIST, 1);

	for (int guard = 0; off && guard < 48; guard++) {
		if (qts_pci_read(q, devfn, off, 1) == id)
			return off;
		off = qts_pci_read(q, devfn, off + 1, 1);
	}
	return 0;
}

static void msix_entry(struct vdev *d, unsigned int v, uint32_t data, uint32_t ctrl)
{
	uint64_t e = d->bar + VIRTIO_PCI_MSIX_TABLE + 16ULL * v;

	qts_writem(d->q, 4, e, 0xfee00000u);
	qts_writem(d->q, 4, e + 4, 0);
	qts_writem(d->q, 4, e + 8, data);
	qts_writem(d->q, 4, e + 12, ctrl);
}

/* MSIs sent so far; *data the last one's data. */
static uint64_t msis(struct qts *q, uint64_t *data)
{
	uint64_t n = qts_val(q, "msi");

	*data = qts_kv(q, "data");
	return n;
}

/* Find MSI-X, give vector 0 (data 0x30) to configuration changes and
 * vector 1 (data 0x31) to the inflate queue, enable; the capability. */
static unsigned int msix_setup(struct qts *q, struct vdev *d)
{
	unsigned int cap = find_cap(q, d->devfn, PCI_CAP_ID_MSIX);

	if (!cap)
		return 0;
	CHECK_EQ(qts_pci_read(q, d->devfn, cap + PCI_MSIX_FLAGS, 2) & 0x7ff, BALLOON_NR_QUEUES);
	CHECK_EQ(qts_pci_read(q, d->devfn, cap + PCI_MSIX_TABLE, 4), VIRTIO_PCI_MSIX_TABLE);
	CHECK_EQ(qts_pci_read(q, d->devfn, cap + PCI_MSIX_PBA, 4), VIRTIO_PCI_MSIX_PBA);
	msix_entry(d, 0, 0x30, 0);
	msix_entry(d, 1, 0x31, 0);
	qts_pci_write(q, d->devfn, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	qts_writem(q, 2, d->common + VIRTIO_PCI_COMMON_MSIX, 99);	/* no such vector */
	CHECK_EQ(qts_readm(q, 2, d->common + VIRTIO_PCI_COMMON_MSIX), VIRTIO_MSI_NO_VECTOR);
	qts_writem(q, 2, d->common + VIRTIO_PCI_COMMON_MSIX, 0);
	CHECK_EQ(qts_readm(q, 2, d->common + VIRTIO_PCI_COMMON_MSIX), 0);
	qts_writem(q, 2, d->common + VIRTIO_PCI_COMMON_Q_SELECT, 0);
	qts_writem(q, 2, d->common + VIRTIO_PCI_COMMON_Q_MSIX, 1);
	CHECK_EQ(qts_readm(q, 2, d->common + VIRTIO_PCI_COMMON_Q_MSIX), 1);
	return cap;
}

/* Event index: after the first interrupt, one only when the used index
 * passes the driver's used_event. */
static void t_event_idx(void)
{
	struct qts *q = start("--memory 64M --balloon");
	uint32_t pfn = (uint32_t)(TEST_MEM / PAGE);
	uint64_t data;
	struct vdev d;

	balloon_up(q, &d, base_features);
	REQUIRE(msix_setup(q, &d));
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, &pfn, 1));
	CHECK_EQ(msis(q, &data), 1);
	pfn++;
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, &pfn, 1));	/* used_event 0: quiet */
	CHECK_EQ(msis(q, &data), 1);
	qts_writem(q, 2, d.vq[0].avail + 4 + 2 * QSIZE, 2);	/* used_event = 2 */
	pfn++;
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, &pfn, 1));
	CHECK_EQ(msis(q, &data), 2);
	CHECK_EQ(qts_quit(q), 0);
}

/* MSI-X: one vector per queue and one for configuration changes, masking
 * per vector and per function with pending bits, INTx silent meanwhile. */
static void t_msix(void)
{
	struct qts *q = start("--memory 64M --balloon");
	uint32_t pfn = (uint32_t)(TEST_MEM / PAGE);
	unsigned int cap;
	uint64_t data = 0;
	struct vdev d;

	/* without event index: every used buffer asks for an interrupt */
	balloon_up(q, &d, base_features & ~(1ULL << VIRTIO_F_EVENT_IDX));
	cap = msix_setup(q, &d);
	REQUIRE(cap);
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, &pfn, 1));
	CHECK_EQ(msis(q, &data), 1);
	CHECK_EQ(data, 0x31);
	CHECK_EQ(qts_val(q, "irq %u", d.gsi), 0);			/* no INTx */
	qts_ok(q, "balloon-target %llu", 32 * MIB);
	CHECK_EQ(msis(q, &data), 2);
	CHECK_EQ(data, 0x30);
	/* a masked vector keeps its interrupt pending until unmasked */
	msix_entry(&d, 1, 0x31, 1);
	pfn++;
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, &pfn, 1));
	CHECK_EQ(msis(q, &data), 2);
	CHECK_EQ(qts_readm(q, 4, d.bar + VIRTIO_PCI_MSIX_PBA), 2);
	msix_entry(&d, 1, 0x31, 0);
	CHECK_EQ(msis(q, &data), 3);
	CHECK_EQ(qts_readm(q, 4, d.bar + VIRTIO_PCI_MSIX_PBA), 0);
	/* so does the function mask */
	qts_pci_write(q, d.devfn, cap + PCI_MSIX_FLAGS, 2,
		      PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	pfn++;
	CHECK(send_pfns(&d, BALLOON_Q_INFLATE, &pfn, 1));
	CHECK_EQ(msis(q, &data), 3);
	qts_pci_write(q, d.devfn, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	CHECK_EQ(msis(q, &data), 4);
	CHECK_EQ(data, 0x31);
	CHECK_EQ(qts_quit(q), 0);
}

/* Malformed test-driver commands get ERR, never a crash. */
static void t_protocol(void)
{
	struct qts *q = start("--memory 64M");

	CHECK(!strncmp(qts_cmd(q, "bogus"), "ERR", 3));
	CHECK(!strncmp(qts_cmd(q, "outl"), "ERR", 3));
	CHECK(!strncmp(qts_cmd(q, "read 0xd0000000 16"), "ERR", 3));
	CHECK(!strncmp(qts_cmd(q, "write 0x1000 2 zz"), "ERR", 3));
	CHECK(!strncmp(qts_cmd(q, "memset 0x1000 999999999999 1"), "ERR", 3));
	CHECK(!strncmp(qts_cmd(q, "balloon-actual"), "ERR", 3));	/* no balloon */
	CHECK(!strncmp(qts_cmd(q, "irq 99"), "ERR", 3));
	CHECK_EQ(qts_readm(q, 4, 0xd0000000), 0xffffffffu);	/* nothing there */
	CHECK_EQ(qts_quit(q), 0);
}

TEST_MAIN(T(t_pci), T(t_negotiate), T(t_target), T(t_inflate_deflate), T(t_per_page),
	  T(t_stats), T(t_reporting), T(t_poison), T(t_hostile), T(t_indirect), T(t_msix), T(t_event_idx), T(t_hugetlb),
	  T(t_protocol))
