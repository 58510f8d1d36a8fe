/* SPDX-License-Identifier: MIT */
/*
 * tests/pcp/pcp_test.h - check macros and pool helpers of the cache tests.
 */
#ifndef GMM_TESTS_PCP_TEST_H
#define GMM_TESTS_PCP_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <gmm/gmm.h>

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n",  \
				__FILE__, __LINE__, #cond, gmm_last_error());          \
			exit(1);                                                       \
		}                                                                      \
	} while (0)

#define CHECK_EQ(a, b)                                                                 \
	do {                                                                           \
		unsigned long long a_ = (unsigned long long)(a);                       \
		unsigned long long b_ = (unsigned long long)(b);                       \
		if (a_ != b_) {                                                        \
			fprintf(stderr, "%s:%d: %s == %llu, expected %s == %llu\n",    \
				__FILE__, __LINE__, #a, a_, #b, b_);                   \
			exit(1);                                                       \
		}                                                                      \
	} while (0)

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
