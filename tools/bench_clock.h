/* SPDX-License-Identifier: MIT */
/*
 * tools/bench_clock.h - the benchmarks' one clock: CLOCK_MONOTONIC in
 * seconds, as a double (nanosecond resolution for any uptime below
 * 100 days). Header-only; any thread.
 */
#ifndef GMM_TOOLS_BENCH_CLOCK_H
#define GMM_TOOLS_BENCH_CLOCK_H

#include <time.h>

static inline double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#endif
