/* SPDX-License-Identifier: MIT */
/*
 * tests/harness.h - a minimal test harness: TEST() functions registered in
 * a table, CHECK() assertions that report file:line and keep going within a
 * test, and a closing line "N passed, N failed" that CI reads.
 */
#ifndef GMM_TESTS_HARNESS_H
#define GMM_TESTS_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_failed_checks;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__,     \
				__LINE__, #cond);                                    \
			harness_failed_checks++;                                     \
		}                                                                    \
	} while (0)

#define CHECK_EQ(a, b)                                                               \
	do {                                                                         \
		long long _a = (long long)(a), _b = (long long)(b);                  \
		if (_a != _b) {                                                      \
			fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n",  \
				__FILE__, __LINE__, #a, #b, _a, _b);                 \
			harness_failed_checks++;                                     \
		}                                                                    \
	} while (0)

/* Stop the current test: a precondition for the rest of it failed. */
#define REQUIRE(cond)                                                                \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "  %s:%d: REQUIRE(%s) failed\n", __FILE__,   \
				__LINE__, #cond);                                    \
			harness_failed_checks++;                                     \
			return;                                                      \
		}                                                                    \
	} while (0)

struct harness_test {
	const char *name;
	void (*fn)(void);
};

#define T(fn) { #fn, fn }

/* Define main(): run every listed test, or those named on the command line. */
#define TEST_MAIN(...)                                                               \
	static const struct harness_test harness_tests[] = { __VA_ARGS__ };          \
	int main(int argc, char **argv)                                              \
	{                                                                            \
		return harness_run(argc, argv, harness_tests,                        \
				   sizeof(harness_tests) / sizeof(harness_tests[0])); \
	}

/* Run the tests; print one line each and the summary. */
static inline int harness_run(int argc, char **argv, const struct harness_test *harness_tests,
			      size_t n)
{
	int passed = 0, failed = 0;

	for (size_t i = 0; i < n; i++) {
		int before = harness_failed_checks, wanted = argc < 2;

		for (int a = 1; a < argc; a++)
			wanted |= !strcmp(argv[a], harness_tests[i].name);
		if (!wanted)
			continue;
		harness_tests[i].fn();
		if (harness_failed_checks == before) {
			printf("ok   %s\n", harness_tests[i].name);
			passed++;
		} else {
			printf("FAIL %s\n", harness_tests[i].name);
			failed++;
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif
