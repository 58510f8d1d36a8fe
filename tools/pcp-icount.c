/* SPDX-License-Identifier: MIT */
/*
 * tools/pcp-icount.c - a deterministic driver of the cached order-0 pair for
 * Valgrind's callgrind (tools/pcp-icount.sh runs it): attach, allocate N and
 * free N order-0 frames for a warm-up round, then R more rounds, detach.
 * The script counts the instructions of gmm_alloc() and gmm_free() (and what
 * they call) for two values of R and prints the difference per pair, which
 * leaves out the setup, the warm-up and the driver's own loop.
 *
 *   pcp-icount N R [node]   (node: -1 for GMM_NO_NODE, default 0)
 */
#include <stdio.h>
#include <stdlib.h>

#include <gmm/gmm.h>

#define POOL_BYTES (256ull << 20)

static void die(const char *what)
{
	fprintf(stderr, "pcp-icount: %s: %s\n", what, gmm_last_error());
	exit(1);
}

static void rounds(struct gmm_pool *p, uint64_t *v, size_t n, size_t r, int node)
{
	for (size_t k = 0; k < r; k++) {
		for (size_t i = 0; i < n; i++) {
			v[i] = gmm_alloc(p, 0, GMM_MOVABLE, node);
			if (v[i] == GMM_PFN_NONE)
				die("gmm_alloc");
		}
		for (size_t i = 0; i < n; i++)
			if (gmm_free(p, v[i], 0))
				die("gmm_free");
	}
}

int main(int argc, char **argv)
{
	struct gmm_pool_config cfg;
	struct gmm_pool *p;
	size_t n, r;
	int node = 0;
	uint64_t *v;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: %s N ROUNDS [node]\n", argv[0]);
		return 2;
	}
	n = strtoul(argv[1], NULL, 0);
	r = strtoul(argv[2], NULL, 0);
	if (argc == 4)
		node = atoi(argv[3]);
	v = malloc((n ? n : 1) * sizeof(*v));
	gmm_pool_config_init(&cfg, POOL_BYTES);
	if (!v || !n || gmm_pool_create(&cfg, &p))
		die("setup");
	if (gmm_thread_attach(p))
		die("gmm_thread_attach");
	rounds(p, v, n, 1, node);
	rounds(p, v, n, r, node);
	gmm_thread_detach(p);
	if (gmm_pool_check(p) || gmm_pool_nr_free(p) != gmm_pool_nr_pages(p))
		die("pool not intact");
	gmm_pool_destroy(p);
	free(v);
	return 0;
}
