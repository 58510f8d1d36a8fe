/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/test_guestmem.c - guestmem's lazy and plain modes without KVM:
 * layout around the 32-bit hole, the lazy fault path completing MMIO reads and writes the way
 * KVM_EXIT_MMIO asks, KVM_EXIT_MEMORY_FAULT, discard, the accessors' bounds,
 * and two threads faulting the same pages at once (no write may be lost).
 */
#include "guestmem_test.h"

#include <pthread.h>
#include <stdlib.h>

static struct guestmem *make(enum guestmem_mode mode, uint64_t n0, uint64_t n1)
{
	struct guestmem_cfg cfg = {
		.mode = mode, .page_size = 4096, .nr_nodes = n1 ? 2 : 1,
		.nodes = { { n0, -1 }, { n1, -1 } },
	};
	char err[256];
	struct guestmem *gm = guestmem_create(&cfg, err, sizeof(err));

	if (!gm)
		fprintf(stderr, "guestmem_create: %s\n", err);
	return gm;
}

static void test_layout(void)
{
	struct guestmem *gm = make(GUESTMEM_LAZY, 2ULL << 30, 3ULL << 30);
	const struct guestmem_slot *s;

	EXPECT(gm);
	if (!gm)
		return;
	EXPECT(guestmem_nr_slots(gm) == 3);
	s = guestmem_slot(gm, 0);
	EXPECT(s->gpa == 0 && s->size == (2ULL << 30) && s->node == 0);
	s = guestmem_slot(gm, 1);
	EXPECT(s->gpa == (2ULL << 30) && s->size == (1ULL << 30) && s->node == 1);
	s = guestmem_slot(gm, 2);
	EXPECT(s->gpa == GUESTMEM_HOLE_END && s->size == (2ULL << 30) && s->node == 1);
	EXPECT(!guestmem_is_ram(gm, GUESTMEM_HOLE_START, 1));
	EXPECT(guestmem_is_ram(gm, GUESTMEM_HOLE_END, 4096));
	guestmem_destroy(gm);
}

static void test_lazy_faults(void)
{
	struct guestmem *gm = make(GUESTMEM_LAZY, 16 << 20, 16 << 20);
	struct guestmem_vcpu *v;
	struct guestmem_stats st;
	uint64_t got, buf[2];

	if (!gm)
		return;
	v = guestmem_vcpu_attach(gm, 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.faults == 0 && st.backed == 0);
	/* a write to an unbacked page backs it and lands */
	EXPECT(mmio(v, 0x123450, true, 0x1122334455667788ULL, 8, NULL) == 1);
	EXPECT(guestmem_read(gm, 0x123450, &got, 8) == 0 && got == 0x1122334455667788ULL);
	/* a read of an unbacked page on the other node sees zero */
	EXPECT(mmio(v, (16 << 20) + 0x5000, false, 0, 4, &got) == 1 && got == 0);
	/* a read of a backed page sees its data; no new fault */
	EXPECT(mmio(v, 0x123454, false, 0, 4, &got) == 1 && got == 0x11223344);
	guestmem_get_stats(gm, &st);
	EXPECT(st.faults == 2 && st.backed == 2);
	/* an access straddling two pages backs both */
	EXPECT(mmio(v, 0x200ffc, true, ~0ULL, 8, NULL) == 1);
	guestmem_get_stats(gm, &st);
	EXPECT(st.faults == 4);
	/* outside RAM: not ours */
	EXPECT(mmio(v, 64 << 20, true, 1, 4, NULL) == 0);
	EXPECT(mmio(v, (32 << 20) - 4, true, 1, 8, NULL) < 0);
	/* KVM_EXIT_MEMORY_FAULT backs the whole range */
	EXPECT(memory_fault(v, 0x400000, 3 * 4096, 0) == 1);
	guestmem_get_stats(gm, &st);
	EXPECT(st.faults == 7);
	/* discard: the page goes back, reads zero, the next touch faults */
	EXPECT(guestmem_discard(gm, 0x123000, 4096) == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.discards == 1 && st.backed == 6);
	EXPECT(mmio(v, 0x123450, false, 0, 8, &got) == 1 && got == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.faults == 8);
	/* accessors: bounds */
	EXPECT(guestmem_write(gm, (32 << 20) - 8, buf, 16) < 0);
	EXPECT(guestmem_read(gm, 1ULL << 40, buf, 8) < 0);
	guestmem_vcpu_detach(v);
	guestmem_destroy(gm);
}

static void test_plain(void)
{
	struct guestmem *gm = make(GUESTMEM_PLAIN, 8 << 20, 0);
	uint64_t v = 42, got = 1;
	const struct guestmem_slot *s;

	if (!gm)
		return;
	s = guestmem_slot(gm, 0);
	((volatile uint64_t *)s->hva)[100] = 7;
	EXPECT(guestmem_write(gm, 0x3000, &v, 8) == 0);
	EXPECT(guestmem_discard(gm, 0x3000, 4096) == 0);
	EXPECT(guestmem_read(gm, 0x3000, &got, 8) == 0 && got == 0);
	EXPECT(((volatile uint64_t *)s->hva)[100] == 7);
	guestmem_destroy(gm);
}

static void test_prealloc(void)
{
	struct guestmem_cfg cfg = {
		.mode = GUESTMEM_LAZY, .page_size = 4096, .prealloc = true,
		.nr_nodes = 1, .nodes = { { 8 << 20, -1 } },
	};
	char err[256];
	struct guestmem *gm = guestmem_create(&cfg, err, sizeof(err));
	struct guestmem_stats st;

	EXPECT(gm);
	if (!gm)
		return;
	guestmem_get_stats(gm, &st);
	EXPECT(st.backed == 2048 && st.faults == 0);
	EXPECT(((volatile char *)guestmem_slot(gm, 0)->hva)[4 << 20] == 0);
	guestmem_destroy(gm);
}

struct racer {
	struct guestmem *gm;
	unsigned int id;
	int bad;			/* discard_race: a call failed */
};

#define RACE_PAGES 2048

static void *race(void *arg)
{
	struct racer *r = arg;
	struct guestmem_vcpu *v = guestmem_vcpu_attach(r->gm, r->id);

	for (uint64_t p = 0; p < RACE_PAGES; p++)
		mmio(v, 0x100000 + p * 4096 + 8 * r->id, true, p * 16 + r->id + 1, 8, NULL);
	guestmem_vcpu_detach(v);
	return NULL;
}

static void test_race(void)
{
	struct guestmem *gm = make(GUESTMEM_LAZY, 32 << 20, 0);
	struct racer r[2] = { { gm, 0, 0 }, { gm, 1, 0 } };
	struct guestmem_stats st;
	unsigned int lost = 0;

	if (!gm)
		return;
	run_two(race, &r[0], &r[1]);
	for (uint64_t p = 0; p < RACE_PAGES; p++) {
		uint64_t w[2];

		guestmem_read(gm, 0x100000 + p * 4096, w, sizeof(w));
		lost += (w[0] != p * 16 + 1) + (w[1] != p * 16 + 2);
	}
	guestmem_get_stats(gm, &st);
	EXPECT(lost == 0);
	EXPECT(st.faults == RACE_PAGES);
	guestmem_destroy(gm);
}

/*
 * Device accesses and MMIO faults against discards of the same units (the
 * balloon discarding pages a device is copying): every access either sees
 * the unit backed for its whole copy or backs it again, none touches a
 * unit a discard made PROT_NONE under it (that would be SIGSEGV).
 */
#define DISCARD_RACE_BYTES	(64 << 10)	/* 16 units: a long copy */
#define DISCARD_RACE_ROUNDS	20000
#define DISCARD_RACE_GPA	0x200000ULL

static void *discard_race(void *arg)
{
	struct racer *r = arg;
	static uint8_t buf[2][DISCARD_RACE_BYTES];
	struct guestmem_vcpu *v = r->id ? NULL : guestmem_vcpu_attach(r->gm, 0);
	int bad = 0;

	for (unsigned int i = 0; i < DISCARD_RACE_ROUNDS; i++) {
		if (r->id) {
			bad |= guestmem_discard(r->gm, DISCARD_RACE_GPA, DISCARD_RACE_BYTES);
			continue;
		}
		memset(buf[0], (int)(i & 0xff), sizeof(buf[0]));
		bad |= guestmem_write(r->gm, DISCARD_RACE_GPA, buf[0], sizeof(buf[0]));
		bad |= guestmem_read(r->gm, DISCARD_RACE_GPA, buf[1], sizeof(buf[1]));
		bad |= mmio(v, DISCARD_RACE_GPA + (i % 16) * 4096 + 8, true, i, 8, NULL) != 1;
	}
	guestmem_vcpu_detach(v);
	r->bad = bad;
	return NULL;
}

static void test_discard_race(void)
{
	struct guestmem *gm = make(GUESTMEM_LAZY, 8 << 20, 0);
	struct racer r[2] = { { gm, 0, 0 }, { gm, 1, 0 } };
	struct guestmem_stats st;

	EXPECT(gm);
	if (!gm)
		return;
	run_two(discard_race, &r[0], &r[1]);
	guestmem_get_stats(gm, &st);
	EXPECT(r[0].bad == 0 && r[1].bad == 0);
	EXPECT(st.discards > 0);
	guestmem_destroy(gm);
}

int main(void)
{
	test_layout();
	test_lazy_faults();
	test_plain();
	test_prealloc();
	test_race();
	test_discard_race();
	return report("guestmem");
}
