/* SPDX-License-Identifier: MIT */
/*
 * gmm/report.h - free page reporting toward the host.
 *
 * Like the kernel's page_reporting: once free blocks of at least the
 * reporting order appear, a worker waits a short delay, then takes up to a
 * batch of unreported free blocks off the free lists (so nobody allocates
 * them meanwhile), discards their host memory through the backing (punch
 * hole, MADV_DONTNEED) without holding the zone lock, and puts them back
 * marked reported.  Merging a reported block with an unreported one gives
 * an unreported block; splitting a reported block gives reported pieces.
 * An allocation that gets a reported block knows it reads as zero (GMM_ZERO
 * skips its memset) and has the backing repopulate it (hugetlbfs).  Host
 * memory then follows the pool's real use.
 *
 * Frames in flight: while a pass holds its batch off the free lists (for
 * the duration of the discards), those frames are neither free nor
 * allocated.  gmm_pool_nr_free(), the zone statistics and
 * gmm_report_stats() do not count them (like the kernel's NR_FREE_PAGES
 * while page_reporting holds pages); gmm_pool_check() waits for the pass to
 * put them back, so it never reports them as lost.
 */
#ifndef GMM_REPORT_H
#define GMM_REPORT_H

#include <stdint.h>

#include <gmm/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Default delay before a reporting pass, as the kernel's (2 s). */
#define GMM_REPORT_DELAY_MS 2000
/** Blocks taken off the free lists at a time, as the kernel's capacity. */
#define GMM_REPORT_BATCH 32
/** Largest batch: the worker keeps the batch on its stack. */
#define GMM_REPORT_BATCH_MAX 256
/** gmm_report_config.order: report free blocks of every order, single frames too. */
#define GMM_REPORT_ALL_ORDERS 0xffffffffu

/** Options of the reporter.  Zero fields take the defaults. */
struct gmm_report_config {
	/* wait after a block became free before a pass, in ms (any value from
	 * 1 up; small values report sooner and cost more passes);
	 * 0: GMM_REPORT_DELAY_MS */
	unsigned int delay_ms;
	/* smallest order reported; 0: pageblock order (2 MiB, as the
	 * kernel's page_reporting_order); GMM_REPORT_ALL_ORDERS: order 0.
	 * Raised to the host page's order (hugetlbfs: smaller pieces cannot
	 * go back) and capped at the pool's max order. */
	unsigned int order;
	/* 0: GMM_REPORT_BATCH; more than GMM_REPORT_BATCH_MAX is refused */
	unsigned int batch;
};

/** Reporting figures (bytes). */
struct gmm_report_stats {
	uint64_t free_reported;   /* free memory whose host memory is discarded */
	uint64_t free_unreported; /* free memory the host may still hold */
	uint64_t reported_bytes;  /* discarded in all, since the pool began */
	uint64_t reported_blocks;
	uint64_t passes;          /* reporting passes run */
	uint64_t errors;          /* discards that failed */
	unsigned int order;       /* the order in effect */
	int running;              /* 1 when the worker runs */
};

/**
 * gmm_report_start() - start the reporting worker of a pool.
 * @pool: the pool
 * @cfg:  options, or NULL for the defaults
 *
 * Return: 0, -EBUSY when it already runs, -EOPNOTSUPP when the backing
 * cannot discard, -EINVAL for a bad order or batch, -EAGAIN when no thread.
 */
int gmm_report_start(struct gmm_pool *pool, const struct gmm_report_config *cfg);

/**
 * gmm_report_stop() - stop the worker (a pass in progress completes).
 * @pool: the pool
 *
 * Reported marks stay.  gmm_pool_destroy() stops it too.
 */
void gmm_report_stop(struct gmm_pool *pool);

/**
 * gmm_report_now() - run one reporting pass on the calling thread.
 * @pool: the pool
 * @cfg:  options when the worker does not run (NULL: defaults); ignored
 *        (the worker's options apply) when it runs
 *
 * No delay: every unreported free block of the reporting order is
 * discarded before it returns.
 *
 * Return: bytes discarded, or a negative errno.
 */
int64_t gmm_report_now(struct gmm_pool *pool, const struct gmm_report_config *cfg);

/**
 * gmm_report_stats() - reported and unreported free memory, and counters.
 * @pool: the pool
 * @st:   receives the figures
 *
 * Return: 0 or -EINVAL.
 */
int gmm_report_stats(struct gmm_pool *pool, struct gmm_report_stats *st);

#ifdef __cplusplus
}
#endif
#endif
