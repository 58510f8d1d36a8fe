/* SPDX-License-Identifier: MIT */
/*
 * vmm/util.h - small helpers shared by gmm-vmm and its devices (virtio/):
 * header-only, so that device code built without vm.c (fuzzers, device
 * tests) has them too. Any thread.
 */
#ifndef GMM_VMM_UTIL_H
#define GMM_VMM_UTIL_H

#include <stdint.h>
#include <time.h>

#define NSEC_PER_SEC	1000000000ULL

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* x rounded up to a multiple of to (> 0; need not be a power of two). */
static inline uint64_t align_up(uint64_t x, uint64_t to)
{
	return (x + to - 1) / to * to;
}

#endif
