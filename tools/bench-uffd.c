/* SPDX-License-Identifier: MIT */
/*
 * tools/bench-uffd.c - guest RAM faults through userfaultfd (guestmem's
 * handler threads), measured with plain toucher threads standing in for
 * vCPUs (no KVM needed), against the baseline measured in the same run: the
 * same touches of "plain" guest RAM, where the host kernel backs each first
 * touch itself.
 *   lazy     one uffd fault per 4 KiB page (anonymous memory)
 *   gmm      one uffd fault per 2 MiB (an order-9 pool block), then 511
 *            touches without a fault
 * Handler threads: one (one per guest node here) or one per toucher.
 * Usage: bench-uffd [MiB per toucher]   (default 64)
 */
#include "bench_clock.h"
#include "guestmem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MIB	(1ULL << 20)
#define PAGE	4096ULL
#define TOUCHERS 2
#define ROUNDS	3

struct toucher {
	char *base;
	uint64_t bytes, stride;
	pthread_barrier_t *go;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	pthread_barrier_wait(t->go);
	for (uint64_t off = 0; off < t->bytes; off += t->stride)
		((volatile char *)t->base)[off] = 1;
	return NULL;
}

/* Touches per second of n touchers over their own part of guest RAM. */
static double run(enum guestmem_mode mode, unsigned int handlers, unsigned int n,
		  uint64_t bytes, uint64_t stride, uint64_t *faults)
{
	struct guestmem_cfg cfg = {
		.mode = mode, .page_size = PAGE, .faults = GUESTMEM_FAULTS_UFFD,
		.uffd_handlers = handlers, .report_delay_ms = 0, .nr_nodes = 1,
		.nodes = { { bytes * n, -1 } },
	};
	struct toucher t[TOUCHERS];
	pthread_t th[TOUCHERS];
	pthread_barrier_t go;
	struct guestmem_stats st;
	struct guestmem *gm;
	char err[256];
	double t0;

	gm = guestmem_create(&cfg, err, sizeof(err));
	if (!gm) {
		fprintf(stderr, "bench-uffd: %s\n", err);
		exit(1);
	}
	pthread_barrier_init(&go, NULL, n + 1);
	for (unsigned int i = 0; i < n; i++) {
		t[i] = (struct toucher){ (char *)guestmem_slot(gm, 0)->hva + i * bytes, bytes,
					 stride, &go };
		pthread_create(&th[i], NULL, touch, &t[i]);
	}
	pthread_barrier_wait(&go);
	t0 = now_s();
	for (unsigned int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	t0 = now_s() - t0;
	guestmem_get_stats(gm, &st);
	*faults = st.uffd_faults;
	guestmem_destroy(gm);
	pthread_barrier_destroy(&go);
	return (double)(bytes / stride * n) / t0;
}

/* Best of ROUNDS, each right after its plain baseline (the host is shared). */
static void line(const char *what, enum guestmem_mode mode, unsigned int handlers,
		 unsigned int n, uint64_t bytes, uint64_t stride)
{
	double rate = 0, base = 0, r;
	uint64_t faults, f;

	for (int i = 0; i < ROUNDS; i++) {
		r = run(GUESTMEM_PLAIN, 0, n, bytes, stride, &f);
		base = r > base ? r : base;
		r = run(mode, handlers, n, bytes, stride, &faults);
		rate = r > rate ? r : rate;
	}
	printf("%-44s %8.0f touches/s, %6llu uffd faults; plain %8.0f/s; ratio %.2f\n", what,
	       rate, (unsigned long long)faults, base, rate / base);
}

int main(int argc, char **argv)
{
	uint64_t bytes = (argc > 1 ? strtoull(argv[1], NULL, 0) : 64) * MIB;
	char what[64];

	printf("touches of fresh guest RAM by plain threads (vCPU stand-ins); baseline: the same\n"
	       "touches of plain guest RAM (the kernel backs each first touch), best of %d each\n",
	       ROUNDS);
	for (unsigned int n = 1; n <= TOUCHERS; n++) {
		for (unsigned int h = 1; h <= n; h++) {
			snprintf(what, sizeof(what), "lazy, %u toucher(s), %u handler(s)", n, h);
			line(what, GUESTMEM_LAZY, h, n, bytes, PAGE);
			snprintf(what, sizeof(what), "gmm 4K stride, %u toucher(s), %u handler(s)", n, h);
			line(what, GUESTMEM_GMM, h, n, bytes, PAGE);
		}
	}
	return 0;
}
