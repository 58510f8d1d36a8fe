/* SPDX-License-Identifier: MIT */
/*
 * virtio/balloon.h - virtio-balloon (device 5, PCI 1af4:1045) with
 * VERSION_1, MUST_TELL_HOST, STATS_VQ, DEFLATE_ON_OOM, PAGE_POISON and
 * REPORTING (VIRTIO 1.2 section 5.5).
 *
 * Queues: 0 inflate, 1 deflate, 2 stats, 3 free page reporting.
 * - Inflate: the guest's 4 KiB PFNs, checked against guest RAM, sorted and
 *   coalesced into ranges, each discarded with one call of the guest-RAM
 *   interface (gmm mode: the frames go back to the pool at once). When the
 *   host backs RAM in larger units (2 MiB hugetlbfs pages), a unit goes
 *   back once all its 4 KiB pieces are inflated; the pieces are counted
 *   across elements and batches until deflated ("unit" tracking). The
 *   "element" tracking is QEMU's: one partially inflated host page,
 *   forgotten at the end of each element or when a PFN of another page
 *   comes; it is there to measure the difference.
 * - In gmm mode, discarded frames go back to the pool at once, and a
 *   reporting pass queued on the event loop hands their host memory back
 *   without waiting for the pool's reporting delay.
 * - Deflate: bookkeeping only; pages are backed again on their next touch.
 * - Stats: QEMU's scheme: the device holds the driver's buffer and gives
 *   it back every polling interval to ask for fresh figures.
 * - Reporting: each reported range discarded at once, unless the driver
 *   set a nonzero poison value (a discarded page reads back as zeros, not
 *   as the poison pattern the guest expects).
 *
 * Calling contract: balloon_create() before the VM runs (it registers the
 * balloon with balloon_ctl); the control ops and balloon_counters() from
 * any thread; balloon_destroy() after every thread stopped using it.
 */
#ifndef GMM_VIRTIO_BALLOON_H
#define GMM_VIRTIO_BALLOON_H

#include "virtio_pci.h"

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_ID_BALLOON			5
#define VIRTIO_BALLOON_F_MUST_TELL_HOST		0
#define VIRTIO_BALLOON_F_STATS_VQ		1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM		2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT		3
#define VIRTIO_BALLOON_F_PAGE_POISON		4
#define VIRTIO_BALLOON_F_REPORTING		5
#define VIRTIO_BALLOON_PFN_SHIFT		12

enum balloon_queue {
	BALLOON_Q_INFLATE,
	BALLOON_Q_DEFLATE,
	BALLOON_Q_STATS,
	BALLOON_Q_REPORTING,
	BALLOON_NR_QUEUES,
};

/* Device configuration layout (little endian). */
#define BALLOON_CFG_NUM_PAGES		0
#define BALLOON_CFG_ACTUAL		4
#define BALLOON_CFG_FREE_PAGE_CMD	8
#define BALLOON_CFG_POISON		12
#define BALLOON_CFG_SIZE		16

enum balloon_track {
	BALLOON_TRACK_UNIT,		/* across elements and batches (default) */
	BALLOON_TRACK_ELEMENT,		/* QEMU's: per element, one host page */
};

struct balloon_cfg {
	bool deflate_on_oom;
	bool free_page_reporting;
	int64_t stats_period;		/* seconds, 0: no polling */
	enum balloon_track track;
	bool per_page;			/* x-per-page: one discard per 4 KiB page */
	uint64_t unit_bytes;		/* the host's backing unit (4K or 2M) */
};

/* What the balloon did, for tests, benchmarks and the summary. */
struct balloon_counters {
	uint64_t inflated_pages;	/* 4 KiB pages in the balloon now */
	uint64_t inflate_pfns;		/* PFNs received in inflate requests */
	uint64_t deflate_pfns;
	uint64_t bad_pfns;		/* PFNs outside guest RAM, ignored */
	uint64_t discard_calls;		/* calls of the discard interface */
	uint64_t discarded_bytes;	/* bytes asked to be discarded */
	uint64_t reported_bytes;	/* free page reporting: bytes discarded */
	uint64_t report_skipped;	/* reported bytes kept (page poison) */
	uint64_t stats_updates;
	uint64_t inflate_ns;		/* time spent handling inflate requests */
	unsigned long broken;		/* times the driver broke a queue */
};

struct balloon;
struct vm;
struct evloop;

/* Create the device on the PCI host; NULL with err set on failure. */
struct balloon *balloon_create(struct vm *vm, struct pci_host *h,
			       struct guestmem *gm, struct evloop *loop,
			       uint64_t ram_bytes, const struct balloon_cfg *cfg,
			       char *err, size_t errlen);
/* Free it (its timer removed from the loop); NULL is fine. */
void balloon_destroy(struct balloon *b);

/* A consistent copy of its counters. */
void balloon_counters(struct balloon *b, struct balloon_counters *c);

/* The transport, for the test driver's description of the device. */
struct virtio_dev *balloon_virtio(struct balloon *b);

#endif
