/* SPDX-License-Identifier: MIT */
/*
 * tests/install/embed.c - a program outside the tree, built against the
 * installed libgmm through pkg-config: what an embedding VMM does first.
 */
#include <stdio.h>

#include <gmm/gmm.h>

int main(void)
{
	struct gmm_pool_config cfg;
	struct gmm_pool *pool;
	uint64_t pfn;

	gmm_pool_config_init(&cfg, 128ull << 20);
	if (gmm_pool_create(&cfg, &pool)) {
		fprintf(stderr, "embed: %s\n", gmm_last_error());
		return 1;
	}
	pfn = gmm_alloc(pool, 9, GMM_MOVABLE | GMM_ZERO, GMM_NO_NODE);
	if (pfn == GMM_PFN_NONE || gmm_free(pool, pfn, 9) || gmm_pool_check(pool)) {
		fprintf(stderr, "embed: %s\n", gmm_last_error());
		return 1;
	}
	gmm_pool_destroy(pool);
	printf("embed: allocated and freed a 2 MiB block through the installed library\n");
	return 0;
}
