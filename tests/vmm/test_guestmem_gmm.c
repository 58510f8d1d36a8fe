/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/test_guestmem_gmm.c - guestmem's gmm mode without KVM, driven by
 * simulated kvm_run exits: MMIO reads and writes completed on lazily backed
 * pages, accesses straddling pages and 2 MiB blocks, memory-fault exits,
 * accessor bounds, discard then re-fault reading zero, free page
 * reporting, two vCPU threads attached as gmm threads faulting at once, a
 * 2-node layout with each region's frames on its pool node, the 32-bit
 * hole, prealloc, and hugetlbfs 2 MiB backing with hugepages this test
 * reserves (and the clear error without any).  Host-side statistics must
 * agree with what was touched.
 */
#include "guestmem_test.h"
#include "../sysfs_long.h"
#include <gmm/gmm.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define MIB		(1ULL << 20)
#define HUGE		(2 * MIB)
#define PAGES_PER_HUGE	512

static const char nr_huge_path[] = "/proc/sys/vm/nr_hugepages";

static struct guestmem *make(uint64_t n0, uint64_t n1, uint64_t page_size, bool prealloc,
			     char *err, size_t errlen)
{
	struct guestmem_cfg cfg = {
		.mode = GUESTMEM_GMM, .page_size = page_size, .prealloc = prealloc,
		.nr_nodes = n1 ? 2 : 1, .nodes = { { n0, -1 }, { n1, -1 } },
	};

	return guestmem_create(&cfg, err, errlen);
}

static struct guestmem *make_ok(uint64_t n0, uint64_t n1)
{
	char err[256];
	struct guestmem *gm = make(n0, n1, 4096, false, err, sizeof(err));

	if (!gm)
		fprintf(stderr, "guestmem_create: %s\n", err);
	EXPECT(gm);
	return gm;
}

static bool backed(struct guestmem *gm, uint64_t gpa)
{
	return gmm_guest_gpa_to_pfn(guestmem_gmm_guest(gm), gpa) != GMM_PFN_NONE;
}

static void test_mmio(void)
{
	struct guestmem *gm = make_ok(16 * MIB, 0);
	struct guestmem_vcpu *v;
	struct guestmem_stats st;
	uint64_t got = 1;

	if (!gm)
		return;
	v = guestmem_vcpu_attach(gm, 0);
	EXPECT(v);
	EXPECT(!strcmp(guestmem_mode_name(GUESTMEM_GMM), "gmm"));
	guestmem_get_stats(gm, &st);
	EXPECT(st.faults == 0 && st.backed == 0 && st.page_size == 4096);
	EXPECT(!backed(gm, 0x123450));
	/* a write to an unbacked page backs its whole 2 MiB block and lands */
	EXPECT(mmio(v, 0x123450, true, 0x1122334455667788ULL, 8, NULL) == 1);
	EXPECT(guestmem_read(gm, 0x123450, &got, 8) == 0 && got == 0x1122334455667788ULL);
	guestmem_get_stats(gm, &st);
	EXPECT(st.faults == 1 && st.huge_faults == 1 && st.backed == PAGES_PER_HUGE);
	EXPECT(st.huge_bytes == HUGE);
	/* a read of an unbacked page sees zero; of a backed one, its data */
	EXPECT(mmio(v, 8 * MIB + 0x5000, false, ~0ULL, 4, &got) == 1 && got == 0);
	EXPECT(mmio(v, 0x123454, false, 0, 4, &got) == 1 && got == 0x11223344);
	/* straddling two 2 MiB blocks: both get backed, bytes land on both */
	EXPECT(mmio(v, 4 * MIB - 4, true, 0xa1a2a3a4b1b2b3b4ULL, 8, NULL) == 1);
	EXPECT(backed(gm, 4 * MIB - 4096) && backed(gm, 4 * MIB));
	EXPECT(guestmem_read(gm, 4 * MIB - 4, &got, 8) == 0 && got == 0xa1a2a3a4b1b2b3b4ULL);
	EXPECT(mmio(v, 4 * MIB - 2, false, 0, 4, &got) == 1 && got == 0xa3a4b1b2ULL);
	guestmem_get_stats(gm, &st);
	EXPECT(st.backed == 4 * PAGES_PER_HUGE && st.huge_faults == 4);
	/* outside RAM: a device's; crossing RAM's end: refused; too long */
	EXPECT(mmio(v, 64 * MIB, true, 1, 4, NULL) == 0);
	EXPECT(mmio(v, 16 * MIB - 4, true, 1, 8, NULL) < 0);
	guestmem_vcpu_detach(v);
	guestmem_destroy(gm);
}

static void test_memory_fault_and_discard(void)
{
	struct guestmem *gm = make_ok(16 * MIB, 0);
	struct guestmem_vcpu *v;
	struct guestmem_stats st;
	uint64_t got = 1, buf[2] = { 0 };

	if (!gm)
		return;
	v = guestmem_vcpu_attach(gm, 0);
	/* KVM_EXIT_MEMORY_FAULT: backed, no data moved; private: refused */
	EXPECT(memory_fault(v, 6 * MIB + 0x3000, 4096, 0) == 1);
	EXPECT(backed(gm, 6 * MIB + 0x3000));
	EXPECT(memory_fault(v, 10 * MIB, 4096, KVM_MEMORY_EXIT_FLAG_PRIVATE) < 0);
	EXPECT(memory_fault(v, 1ULL << 40, 4096, 0) == 0);
	EXPECT(guestmem_read(gm, 6 * MIB + 0x3000, &got, 8) == 0 && got == 0);
	/* discard: the page goes back, reads zero on its next fault */
	EXPECT(guestmem_write(gm, 6 * MIB + 0x3010, &(uint64_t){ 77 }, 8) == 0);
	EXPECT(guestmem_discard(gm, 6 * MIB + 0x3000, 4096) == 0);
	EXPECT(!backed(gm, 6 * MIB + 0x3000) && backed(gm, 6 * MIB + 0x4000));
	guestmem_get_stats(gm, &st);
	EXPECT(st.discards == 1 && st.backed == PAGES_PER_HUGE - 1);
	EXPECT(mmio(v, 6 * MIB + 0x3010, false, ~0ULL, 8, &got) == 1 && got == 0);
	/* a partial page is kept; a whole block goes */
	EXPECT(guestmem_discard(gm, 6 * MIB + 0x3001, 4096) == 0 && backed(gm, 6 * MIB + 0x3000));
	EXPECT(guestmem_discard(gm, 6 * MIB, HUGE) == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.backed == 0 && st.discards == PAGES_PER_HUGE + 1);
	/* accessors: bounds */
	EXPECT(guestmem_write(gm, 16 * MIB - 8, buf, 16) == -EFAULT);
	EXPECT(guestmem_read(gm, 1ULL << 40, buf, 8) == -EFAULT);
	EXPECT(guestmem_read(gm, ~0ULL - 4, buf, 8) == -EFAULT);
	EXPECT(guestmem_discard(gm, 15 * MIB, 2 * MIB) == -EFAULT);
	EXPECT(guestmem_read(gm, 0, buf, 0) == 0);
	guestmem_vcpu_detach(v);
	guestmem_destroy(gm);
}

/* Free page reporting: a discarded 2 MiB block ends up reported. */
static void test_reporting(void)
{
	struct guestmem_cfg cfg = {
		.mode = GUESTMEM_GMM, .page_size = 4096, .report_delay_ms = 10,
		.nr_nodes = 1, .nodes = { { 32 * MIB, -1 } },
	};
	struct gmm_report_stats rs;
	char err[256];
	struct guestmem *gm = guestmem_create(&cfg, err, sizeof(err));
	struct gmm_pool *pool;

	EXPECT(gm);
	if (!gm)
		return;
	pool = guestmem_gmm_pool(gm);
	EXPECT(guestmem_write(gm, 4 * MIB, "x", 1) == 0);
	EXPECT(guestmem_discard(gm, 4 * MIB, HUGE) == 0);
	EXPECT(gmm_report_now(pool, NULL) >= 0);
	EXPECT(gmm_report_stats(pool, &rs) == 0);
	EXPECT(rs.running == 1 && rs.free_unreported == 0 && rs.reported_bytes >= HUGE);
	EXPECT(rs.free_reported == gmm_pool_nr_free(pool) * 4096);
	guestmem_destroy(gm);
}

/* The layout: node 0 fills the low 3 GiB, node 1 is split by the hole. */
static void test_two_nodes(void)
{
	struct guestmem *gm = make_ok(2ULL << 30, 3ULL << 30);
	struct gmm_pool *pool;
	struct guestmem_vcpu *v;

	if (!gm)
		return;
	pool = guestmem_gmm_pool(gm);
	v = guestmem_vcpu_attach(gm, 0);
	EXPECT(guestmem_nr_slots(gm) == 3);
	EXPECT(!guestmem_is_ram(gm, GUESTMEM_HOLE_START, 1));
	EXPECT(mmio(v, GUESTMEM_HOLE_START, true, 1, 4, NULL) == 0);
	for (unsigned int i = 0; i < guestmem_nr_slots(gm); i++) {
		const struct guestmem_slot *s = guestmem_slot(gm, i);
		uint64_t gpa[2] = { s->gpa + 0x1000, s->gpa + s->size - 8 };

		EXPECT(s->hva && s->node == (i ? 1u : 0u));
		for (int k = 0; k < 2; k++) {
			uint64_t pfn;

			EXPECT(mmio(v, gpa[k], true, gpa[k], 8, NULL) == 1);
			pfn = gmm_guest_gpa_to_pfn(guestmem_gmm_guest(gm), gpa[k]);
			EXPECT(pfn != GMM_PFN_NONE && gmm_pfn_node(pool, pfn) == (int)s->node);
			/* the memslot's hva is where KVM would see the data */
			EXPECT(*(volatile uint64_t *)((char *)s->hva + (gpa[k] - s->gpa)) == gpa[k]);
		}
	}
	guestmem_vcpu_detach(v);
	EXPECT(gmm_pool_check(pool) == 0);
	guestmem_destroy(gm);
}

static void test_prealloc(void)
{
	char err[256];
	struct guestmem *gm = make(32 * MIB, 16 * MIB, 4096, true, err, sizeof(err));
	struct guestmem_stats st;

	EXPECT(gm);
	if (!gm)
		return;
	guestmem_get_stats(gm, &st);
	EXPECT(st.backed == 48 * MIB / 4096 && st.faults == 0 && st.huge_bytes == 48 * MIB);
	EXPECT(((volatile char *)guestmem_slot(gm, 1)->hva)[8 * MIB] == 0);
	guestmem_destroy(gm);
}

struct racer {
	struct guestmem *gm;
	unsigned int id;
	int errors;
};

#define RACE_PAGES 4096

/* A vCPU loop without KVM_RUN: offline, "run", online, fault, quiescent. */
static void *race(void *arg)
{
	struct racer *r = arg;
	struct guestmem_vcpu *v = guestmem_vcpu_attach(r->gm, r->id);

	if (!v) {
		r->errors++;
		return NULL;
	}
	for (uint64_t p = 0; p < RACE_PAGES; p++) {
		guestmem_vcpu_offline(v);
		guestmem_vcpu_online(v);
		if (mmio(v, MIB + p * 4096 + 8 * r->id, true, p * 16 + r->id + 1, 8, NULL) != 1)
			r->errors++;
		if (p % 64 == 63 && guestmem_discard(r->gm, MIB + (p - 63) * 4096, 4096))
			r->errors++;
		guestmem_vcpu_quiescent(v);
	}
	guestmem_vcpu_detach(v);
	return NULL;
}

static void test_race(void)
{
	struct guestmem *gm = make_ok(32 * MIB, 0);
	struct racer r[2] = { { gm, 0, 0 }, { gm, 1, 0 } };
	unsigned int lost = 0;

	if (!gm)
		return;
	run_two(race, &r[0], &r[1]);
	EXPECT(r[0].errors == 0 && r[1].errors == 0);
	for (uint64_t p = 0; p < RACE_PAGES; p++) {
		uint64_t w[2];

		if (p % 64 == 0)
			continue;	/* discarded while the other thread wrote */
		guestmem_read(gm, MIB + p * 4096, w, sizeof(w));
		lost += (w[0] != p * 16 + 1) + (w[1] != p * 16 + 2);
	}
	EXPECT(lost == 0);
	EXPECT(gmm_pool_check(guestmem_gmm_pool(gm)) == 0);
	guestmem_destroy(gm);
}

static void hugepages_missing(void)
{
	char err[256] = "";
	struct guestmem *gm = make(16 * MIB, 0, HUGE, false, err, sizeof(err));

	EXPECT(!gm && strstr(err, "hugepages") && !strchr(err, '\n'));
	printf("hugepages: without a reservation: %s\n", err);
	guestmem_destroy(gm);
}

static void hugepages_reserved(void)
{
	char err[256] = "";
	struct guestmem *gm = make(16 * MIB, 0, HUGE, false, err, sizeof(err));
	struct guestmem_vcpu *v;
	struct guestmem_stats st;
	uint64_t got = 1;

	if (!gm)
		fprintf(stderr, "guestmem_create (2M): %s\n", err);
	EXPECT(gm);
	if (!gm)
		return;
	v = guestmem_vcpu_attach(gm, 0);
	EXPECT(mmio(v, 3 * MIB + 8, true, 0x5a5a, 8, NULL) == 1);
	EXPECT(mmio(v, 3 * MIB + 8, false, 0, 8, &got) == 1 && got == 0x5a5a);
	EXPECT(mmio(v, 9 * MIB, false, 1, 8, &got) == 1 && got == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.backed == 2 * PAGES_PER_HUGE && st.huge_bytes == 4 * MIB);
	/* on hugetlbfs only whole 2 MiB pages go back */
	EXPECT(guestmem_discard(gm, 2 * MIB, 4096) == 0 && backed(gm, 2 * MIB));
	EXPECT(guestmem_discard(gm, 2 * MIB, HUGE) == 0 && !backed(gm, 3 * MIB));
	EXPECT(mmio(v, 3 * MIB + 8, false, 1, 8, &got) == 1 && got == 0);
	guestmem_vcpu_detach(v);
	guestmem_destroy(gm);
}

/* Reserves 2 MiB hugepages (root) and puts the old count back. */
static void test_hugepages(void)
{
	long old = read_long(nr_huge_path);

	if (old < 0 || geteuid() != 0 || write_long(nr_huge_path, 0)) {
		printf("SKIP: hugepage checks need root and %s\n", nr_huge_path);
		return;
	}
	if (read_long(nr_huge_path) == 0)
		hugepages_missing();
	else
		printf("note: hugepages in use elsewhere; the no-reservation check did not run\n");
	if (!write_long(nr_huge_path, old + 32) && read_long(nr_huge_path) >= old + 32)
		hugepages_reserved();
	else
		printf("SKIP: the host could not reserve 32 hugepages of 2 MiB\n");
	write_long(nr_huge_path, old);
	EXPECT(read_long(nr_huge_path) == old);
}

int main(void)
{
	test_mmio();
	test_memory_fault_and_discard();
	test_reporting();
	test_two_nodes();
	test_prealloc();
	test_race();
	test_hugepages();
	return report("guestmem gmm mode");
}
