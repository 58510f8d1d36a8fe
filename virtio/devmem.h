/* SPDX-License-Identifier: MIT */
/*
 * virtio/devmem.h - the one place where devices reach guest RAM: thin
 * wrappers over vmm/guestmem.h's bounds-checked accessors and discard, so
 * that a change of that interface touches only this file.
 *
 * Every function may be called from any thread; the range must lie in
 * guest RAM (-EFAULT otherwise), nothing outside it is ever touched.
 */
#ifndef GMM_VIRTIO_DEVMEM_H
#define GMM_VIRTIO_DEVMEM_H

#include "evloop.h"
#include "guestmem.h"
#include <gmm/report.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline int devmem_read(struct guestmem *gm, uint64_t gpa, void *buf,
			      size_t len)
{
	return guestmem_read(gm, gpa, buf, len);
}

static inline int devmem_write(struct guestmem *gm, uint64_t gpa,
			       const void *buf, size_t len)
{
	return guestmem_write(gm, gpa, buf, len);
}

static inline bool devmem_is_ram(struct guestmem *gm, uint64_t gpa,
				 uint64_t len)
{
	return len == 0 || (gpa + len > gpa && guestmem_is_ram(gm, gpa, len));
}

/* Give the host memory of the whole backing units in the range back. */
static inline int devmem_discard(struct guestmem *gm, uint64_t gpa,
				 uint64_t len)
{
	return guestmem_discard(gm, gpa, len);
}

/*
 * Hand memory discarded in gmm mode back to the host now: a reporting pass
 * of the pool (no-op in the other modes, whose discard already did it).
 * May take milliseconds: call it off the vCPU threads.
 */
static inline void devmem_return_to_host(struct guestmem *gm)
{
	struct gmm_pool *pool = guestmem_gmm_pool(gm);

	if (pool)
		gmm_report_now(pool, NULL);
}

/*
 * A device's hand-back of what it discarded, run on the event loop (off the
 * vCPU threads): at most one queued at a time. Set gm and loop (NULL: never
 * queued) before use; devmem_queue_return() from any thread.
 */
struct devmem_return {
	struct guestmem *gm;
	struct evloop *loop;
	atomic_bool pending;
};

static inline void devmem_return_run(void *opaque, uint32_t events)
{
	struct devmem_return *r = opaque;

	(void)events;
	atomic_store(&r->pending, false);
	devmem_return_to_host(r->gm);
}

static inline void devmem_queue_return(struct devmem_return *r)
{
	if (!r->loop || atomic_exchange(&r->pending, true))
		return;
	if (evloop_call(r->loop, devmem_return_run, r))
		atomic_store(&r->pending, false);
}

#endif
