/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/test_guestmem_uffd.c - guestmem's userfaultfd fault path without
 * KVM, and what devices get from guestmem: a plain thread touching guest RAM
 * through its host mapping raises the same MISSING faults a vCPU does on
 * upstream KVM.  Checked in gmm and lazy modes: the toucher's writes land
 * (in gmm mode, in the pool frame now backing the page), discard then
 * refault reads zero, hugetlbfs 2 MiB pages are mapped whole, stopping the
 * handlers while a thread is blocked in a fault lets it go on, pinned pages
 * survive discard, and the host mapping count (checked against
 * /proc/self/maps) stays within its budget with a clear error at the limit.
 */
#include "guestmem_test.h"
#include "../sysfs_long.h"
#include <gmm/gmm.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MIB		(1ULL << 20)
#define HUGE		(2 * MIB)
#define PAGE		4096ULL
#define PAGES_PER_HUGE	512
#define TOUCHES		64
#define MAGIC		0x5eed0000deadULL
#define JOIN_SECONDS	30	/* a blocked toucher would hang here */

/* guestmem_uffd.c's handoff to a faulting thread, for TSan */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define handoff(hva) __tsan_acquire(hva)
#else
#define handoff(hva) ((void)(hva))
#endif

static const char nr_huge_path[] = "/proc/sys/vm/nr_hugepages";

static struct guestmem *make(enum guestmem_mode mode, enum guestmem_faults faults,
			     uint64_t n0, uint64_t n1, uint64_t page_size, unsigned int handlers)
{
	struct guestmem_cfg cfg = {
		.mode = mode, .page_size = page_size, .faults = faults,
		.uffd_handlers = handlers, .nr_nodes = n1 ? 2 : 1,
		.nodes = { { n0, -1 }, { n1, -1 } },
	};
	char err[256];
	struct guestmem *gm = guestmem_create(&cfg, err, sizeof(err));

	if (!gm)
		fprintf(stderr, "guestmem_create (%s): %s\n", guestmem_mode_name(mode), err);
	EXPECT(gm);
	return gm;
}

static const struct guestmem_slot *slot_of(struct guestmem *gm, uint64_t gpa)
{
	for (unsigned int i = 0; i < guestmem_nr_slots(gm); i++) {
		const struct guestmem_slot *s = guestmem_slot(gm, i);

		if (gpa >= s->gpa && gpa - s->gpa < s->size)
			return s;
	}
	return NULL;
}

/* The host address of gpa through guestmem's slots (what KVM would use). */
static uint64_t *host(struct guestmem *gm, uint64_t gpa)
{
	const struct guestmem_slot *s = slot_of(gm, gpa);

	return (uint64_t *)((char *)s->hva + (gpa - s->gpa));
}

struct toucher {
	struct guestmem *gm;
	const uint64_t *gpas;
	unsigned int n;
	bool write;
	uint64_t got[TOUCHES];
	unsigned int done;
};

/* A thread that is not a vCPU and not attached anywhere: just touches. */
static void *touch(void *arg)
{
	struct toucher *t = arg;

	for (unsigned int i = 0; i < t->n; i++) {
		volatile uint64_t *p = host(t->gm, t->gpas[i]);

		if (t->write)
			*p = t->gpas[i] ^ MAGIC;
		else if (i < TOUCHES)
			t->got[i] = *p;
		else
			(void)*p;
		handoff(slot_of(t->gm, t->gpas[i])->hva);
		__atomic_store_n(&t->done, i + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static int run_toucher(struct toucher *t)
{
	struct timespec ts;
	pthread_t th;
	int ret;

	pthread_create(&th, NULL, touch, t);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += JOIN_SECONDS;
	ret = pthread_timedjoin_np(th, NULL, &ts);
	if (ret)
		fprintf(stderr, "toucher still blocked after %d s (%u of %u done)\n",
			JOIN_SECONDS, t->done, t->n);
	return ret;
}

static uint64_t touch_gpas[TOUCHES];

/* Pages spread over both nodes, several in one 2 MiB chunk. */
static unsigned int spread(uint64_t node_bytes, unsigned int *chunks)
{
	unsigned int n = 0;

	*chunks = 0;
	for (uint64_t c = 0; c < 2 * node_bytes / HUGE && n < TOUCHES; c += 3) {
		(*chunks)++;
		for (uint64_t k = 0; k < 4 && n < TOUCHES; k++)
			touch_gpas[n++] = c * HUGE + k * 37 * PAGE + 8 * k;
	}
	return n;
}

static uint64_t pool_word(struct guestmem *gm, uint64_t gpa)
{
	struct gmm_guest *g = guestmem_gmm_guest(gm);
	uint64_t pfn = gmm_guest_gpa_to_pfn(g, gpa);

	if (pfn == GMM_PFN_NONE)
		return 0;
	return *(uint64_t *)((char *)gmm_pfn_to_host(guestmem_gmm_pool(gm), pfn) + gpa % PAGE);
}

static void test_fault(enum guestmem_mode mode, unsigned int handlers)
{
	struct guestmem *gm = make(mode, GUESTMEM_FAULTS_UFFD, 16 * MIB, 16 * MIB, PAGE, handlers);
	struct toucher t = { .gm = gm, .gpas = touch_gpas, .write = true };
	struct guestmem_stats st;
	unsigned int chunks, wrong = 0;

	if (!gm)
		return;
	t.n = spread(16 * MIB, &chunks);
	EXPECT(run_toucher(&t) == 0);
	for (unsigned int i = 0; i < t.n; i++) {
		uint64_t got = 0;

		EXPECT(guestmem_read(gm, touch_gpas[i], &got, 8) == 0);
		wrong += got != (touch_gpas[i] ^ MAGIC);
		if (mode == GUESTMEM_GMM)
			wrong += pool_word(gm, touch_gpas[i]) != (touch_gpas[i] ^ MAGIC);
	}
	EXPECT(wrong == 0);
	guestmem_get_stats(gm, &st);
	if (mode == GUESTMEM_GMM) {
		/* the first touch of a chunk backs it with a 2 MiB block */
		EXPECT(st.uffd_faults == chunks && st.huge_faults == chunks);
		EXPECT(st.backed == chunks * PAGES_PER_HUGE);
	} else {
		EXPECT(st.uffd_faults == t.n && st.backed == t.n);
	}
	printf("uffd %s, %u handler(s): %u touches, %llu faults served\n",
	       guestmem_mode_name(mode), handlers, t.n, (unsigned long long)st.uffd_faults);
	guestmem_destroy(gm);
}

/* A 16 MiB guest with a writer and a reader of gpa; the writer has written. */
struct one_page {
	uint64_t gpa;
	struct toucher w, r;
};

static struct guestmem *one_page(struct one_page *p, enum guestmem_mode mode,
				 uint64_t page_size, uint64_t gpa)
{
	struct guestmem *gm = make(mode, GUESTMEM_FAULTS_UFFD, 16 * MIB, 0, page_size, 1);

	p->gpa = gpa;
	p->w = (struct toucher){ .gm = gm, .gpas = &p->gpa, .n = 1, .write = true };
	p->r = (struct toucher){ .gm = gm, .gpas = &p->gpa, .n = 1 };
	if (gm)
		EXPECT(run_toucher(&p->w) == 0);
	return gm;
}

static void test_discard_refault(enum guestmem_mode mode)
{
	struct one_page p;
	struct guestmem *gm = one_page(&p, mode, PAGE, 5 * MIB + 3 * PAGE + 16);
	uint64_t gpa = p.gpa;
	struct toucher *w = &p.w, *r = &p.r;
	struct guestmem_stats st;

	if (!gm)
		return;
	EXPECT(run_toucher(r) == 0 && r->got[0] == (gpa ^ MAGIC));
	EXPECT(guestmem_discard(gm, gpa & ~(PAGE - 1), PAGE) == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.discards == 1 && st.uffd_faults == 1);
	if (mode == GUESTMEM_GMM)
		EXPECT(gmm_guest_gpa_to_pfn(guestmem_gmm_guest(gm), gpa) == GMM_PFN_NONE);
	/* the placeholder is back and registered: the next touch faults, reads 0 */
	r->got[0] = 1;
	EXPECT(run_toucher(r) == 0 && r->got[0] == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.uffd_faults == 2);
	EXPECT(run_toucher(w) == 0);
	if (mode == GUESTMEM_GMM)
		EXPECT(pool_word(gm, gpa) == (gpa ^ MAGIC));
	guestmem_destroy(gm);
}

static void hugetlbfs(enum guestmem_mode mode)
{
	struct one_page p;
	struct guestmem *gm = one_page(&p, mode, HUGE, 3 * MIB + 8);
	uint64_t gpa = p.gpa;
	struct toucher r = p.r;
	struct guestmem_stats st;

	if (!gm)
		return;
	guestmem_get_stats(gm, &st);
	EXPECT(st.uffd_faults == 1);
	/* the whole 2 MiB host page is mapped at once */
	EXPECT(st.backed * st.page_size == HUGE);
	if (mode == GUESTMEM_GMM)
		EXPECT(st.huge_bytes == HUGE && pool_word(gm, gpa) == (gpa ^ MAGIC));
	r.gpas = (uint64_t[]){ 2 * MIB + 4 * PAGE };
	EXPECT(run_toucher(&r) == 0 && r.got[0] == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.uffd_faults == 1);
	EXPECT(guestmem_discard(gm, 2 * MIB, HUGE) == 0);
	r.gpas = &gpa;
	r.got[0] = 1;
	EXPECT(run_toucher(&r) == 0 && r.got[0] == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.uffd_faults == 2);
	guestmem_destroy(gm);
}

/* Reserves 2 MiB hugepages (root) and puts the old count back. */
static void test_hugetlbfs(void)
{
	long old = read_long(nr_huge_path);

	if (old < 0 || write_long(nr_huge_path, old + 16) || read_long(nr_huge_path) < old + 16) {
		printf("SKIP: the host could not reserve 16 hugepages of 2 MiB\n");
		EXPECT(geteuid() != 0 || old < 0);
		return;
	}
	hugetlbfs(GUESTMEM_GMM);
	hugetlbfs(GUESTMEM_LAZY);
	printf("uffd on hugetlbfs 2 MiB pages: gmm and lazy checked\n");
	write_long(nr_huge_path, old);
	EXPECT(read_long(nr_huge_path) == old);
}

#define SHUTDOWN_PAGES	16384

/* Stop the handlers while a thread is faulting: it must not stay blocked. */
static void test_shutdown(enum guestmem_mode mode)
{
	uint64_t bytes = mode == GUESTMEM_GMM ? 512 * MIB : 64 * MIB;
	uint64_t stride = bytes / SHUTDOWN_PAGES;
	struct guestmem *gm = make(mode, GUESTMEM_FAULTS_UFFD, bytes, 0, PAGE, 1);
	uint64_t *gpas = calloc(SHUTDOWN_PAGES, sizeof(*gpas));
	struct toucher t = { .gm = gm, .gpas = gpas, .n = SHUTDOWN_PAGES };
	struct timespec pause = { 0, 100000 };
	struct guestmem_stats st;
	pthread_t th;
	struct timespec ts;

	if (!gm || !gpas)
		goto out;
	for (unsigned int i = 0; i < SHUTDOWN_PAGES; i++)
		gpas[i] = i * stride;
	pthread_create(&th, NULL, touch, &t);
	/* release in the middle of the run: the toucher is then (almost
	 * always) blocked in a fault, and has faults still to take */
	while (__atomic_load_n(&t.done, __ATOMIC_ACQUIRE) < SHUTDOWN_PAGES / 8)
		nanosleep(&pause, NULL);
	guestmem_release(gm);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += JOIN_SECONDS;
	EXPECT(pthread_timedjoin_np(th, NULL, &ts) == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(t.done == SHUTDOWN_PAGES && st.uffd_faults > 0);
	EXPECT(st.uffd_faults < (mode == GUESTMEM_GMM ? bytes / HUGE : SHUTDOWN_PAGES));
	printf("uffd %s shutdown: released after %llu of %u faults\n", guestmem_mode_name(mode),
	       (unsigned long long)st.uffd_faults,
	       mode == GUESTMEM_GMM ? (unsigned int)(bytes / HUGE) : SHUTDOWN_PAGES);
out:
	guestmem_destroy(gm);
	free(gpas);
}

static void test_pins(enum guestmem_faults faults)
{
	struct guestmem *gm = make(GUESTMEM_GMM, faults, 16 * MIB, 0, PAGE, 1);
	uint64_t ring = 6 * MIB + 100, got = 0;
	char *p;

	if (!gm)
		return;
	p = guestmem_pin(gm, ring, 2 * PAGE);
	EXPECT(p);
	if (!p)
		goto out;
	memcpy(p, "ring", 5);
	memcpy(p + PAGE, "more", 5);
	EXPECT(guestmem_write(gm, 6 * MIB + 5 * PAGE, &ring, 8) == 0);
	/* pinned pages stay; the others in the range go: -EBUSY says so */
	EXPECT(guestmem_discard(gm, 6 * MIB, 8 * PAGE) == -EBUSY);
	EXPECT(!strcmp(p, "ring") && !strcmp(p + PAGE, "more"));
	EXPECT(gmm_guest_gpa_to_pfn(guestmem_gmm_guest(gm), ring + PAGE) != GMM_PFN_NONE);
	EXPECT(gmm_guest_gpa_to_pfn(guestmem_gmm_guest(gm), 6 * MIB + 5 * PAGE) == GMM_PFN_NONE);
	/* pins nest */
	EXPECT(guestmem_pin(gm, ring, 1) == p);
	guestmem_unpin(gm, ring, 1);
	EXPECT(guestmem_discard(gm, 6 * MIB, PAGE) == -EBUSY);
	guestmem_unpin(gm, ring, 2 * PAGE);
	EXPECT(guestmem_discard(gm, 6 * MIB, 8 * PAGE) == 0);
	EXPECT(guestmem_read(gm, ring, &got, 8) == 0 && got == 0);
	/* not RAM */
	errno = 0;
	EXPECT(!guestmem_pin(gm, 16 * MIB - 8, 16) && errno == EFAULT);
out:
	guestmem_destroy(gm);
}

/* Kernel mappings inside guest RAM, from /proc/self/maps. */
static uint64_t maps_in_ram(struct guestmem *gm)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long a, b;
	uint64_t n = 0;
	char line[512];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &a, &b) != 2)
			continue;
		for (unsigned int i = 0; i < guestmem_nr_slots(gm); i++) {
			const struct guestmem_slot *s = guestmem_slot(gm, i);
			unsigned long lo = (unsigned long)s->hva, hi = lo + s->size;

			n += a < hi && b > lo;
		}
	}
	fclose(f);
	return n;
}

#define MAPS_LIMIT	40

static void test_mapping_limit(enum guestmem_faults faults)
{
	struct guestmem_cfg cfg = {
		.mode = GUESTMEM_GMM, .page_size = PAGE, .faults = faults,
		.max_mappings = MAPS_LIMIT, .nr_nodes = 1, .nodes = { { 32 * MIB, -1 } },
	};
	char err[256];
	struct guestmem *gm = guestmem_create(&cfg, err, sizeof(err));
	struct guestmem_stats st;
	uint64_t gpa, got = 0;
	int ret = 0;

	EXPECT(gm);
	if (!gm)
		return;
	EXPECT(guestmem_populate(gm, 0, HUGE) == 0 && guestmem_write(gm, 8, &cfg, 8) == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.mappings == maps_in_ram(gm) && st.mappings_max == MAPS_LIMIT);
	/* holes in a 2 MiB block: each splits a mapping, until the budget */
	for (gpa = 4 * PAGE; gpa < HUGE && !ret; gpa += 2 * PAGE)
		ret = guestmem_discard(gm, gpa, PAGE);
	EXPECT(ret == -ENOSPC);
	EXPECT(strstr(gmm_last_error(), "host mappings"));
	printf("mapping limit: %s\n", gmm_last_error());
	guestmem_get_stats(gm, &st);
	EXPECT(st.mappings == maps_in_ram(gm) && st.mappings <= MAPS_LIMIT);
	/* what was not discarded is intact; a new mapping is refused clearly */
	EXPECT(guestmem_read(gm, 8, &got, 8) == 0 && !memcmp(&got, &cfg, 8));
	EXPECT(guestmem_write(gm, 20 * MIB, &got, 8) == -ENOSPC);
	guestmem_get_stats(gm, &st);
	EXPECT(st.mappings == maps_in_ram(gm) && st.mappings <= MAPS_LIMIT);
	/* giving the whole block back merges everything again */
	EXPECT(guestmem_discard(gm, 0, HUGE) == 0);
	guestmem_get_stats(gm, &st);
	EXPECT(st.mappings == 1 && maps_in_ram(gm) == 1);
	guestmem_destroy(gm);
}

int main(void)
{
	test_fault(GUESTMEM_GMM, 1);
	test_fault(GUESTMEM_GMM, 2);
	test_fault(GUESTMEM_LAZY, 1);
	test_discard_refault(GUESTMEM_GMM);
	test_discard_refault(GUESTMEM_LAZY);
	test_hugetlbfs();
	test_shutdown(GUESTMEM_GMM);
	test_shutdown(GUESTMEM_LAZY);
	test_pins(GUESTMEM_FAULTS_EXIT);
	test_pins(GUESTMEM_FAULTS_UFFD);
	test_mapping_limit(GUESTMEM_FAULTS_EXIT);
	test_mapping_limit(GUESTMEM_FAULTS_UFFD);
	return report("guestmem userfaultfd");
}
