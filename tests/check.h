/* SPDX-License-Identifier: MIT */
/*
 * tests/check.h - fatal checks, for tests whose later steps build on the
 * earlier ones (a failed step leaves nothing worth checking): print
 * file:line, the condition, errno and gmm's last error, and exit 1.
 * Tests made of independent cases use tests/harness.h instead, whose
 * CHECK records the failure and goes on.
 */
#ifndef GMM_TESTS_CHECK_H
#define GMM_TESTS_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <gmm/pool.h>

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "FAIL %s:%d: CHECK(%s) (errno %d, last error: %s)\n", \
				__FILE__, __LINE__, #cond, errno, gmm_last_error());   \
			exit(1);                                                       \
		}                                                                      \
	} while (0)

#define CHECK_EQ(a, b)                                                                 \
	do {                                                                           \
		unsigned long long a_ = (unsigned long long)(a);                       \
		unsigned long long b_ = (unsigned long long)(b);                       \
		if (a_ != b_) {                                                        \
			fprintf(stderr, "FAIL %s:%d: %s == %llu, expected %s == %llu\n", \
				__FILE__, __LINE__, #a, a_, #b, b_);                   \
			exit(1);                                                       \
		}                                                                      \
	} while (0)

#endif
