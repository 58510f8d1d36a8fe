/* SPDX-License-Identifier: MIT */
/*
 * tests/pcp/pcp_test.h - pool helpers of the cache tests (checks: tests/check.h).
 */
#ifndef GMM_TESTS_PCP_TEST_H
#define GMM_TESTS_PCP_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <gmm/gmm.h>

#include "../check.h"

#define MIB (1ull << 20)

/* A one-node pool of @normal bytes of ZONE_NORMAL and @movable of ZONE_MOVABLE. */
static inline struct gmm_pool *test_pool(unsigned long long normal, unsigned long long movable)
{
	struct gmm_pool_config cfg;
	struct gmm_pool *p = NULL;

	gmm_pool_config_init(&cfg, normal);
	cfg.nodes[0].movable_bytes = movable;
	CHECK(gmm_pool_create(&cfg, &p) == 0);
	return p;
}

#endif
