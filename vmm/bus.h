/* SPDX-License-Identifier: MIT */
/*
 * vmm/bus.h - the device model's address spaces: a port I/O bus and an MMIO
 * bus on which devices register regions, each with an ops table and an
 * opaque pointer to the device's own state.
 *
 * Calling contract:
 * - bus_init() once before any other call; bus_destroy() when no thread can
 *   access the bus any more.
 * - bus_register() and bus_unregister() may be called from any thread at
 *   any time, also from a region's handler on the OTHER bus (a PCI
 *   configuration write on the port bus moves a BAR on the MMIO bus); never
 *   from a handler of the same bus (that would deadlock).
 * - bus_access() may be called from any thread (vCPU threads, the test
 *   driver); the handler runs with the bus's lock held shared, so handlers
 *   of one bus may run concurrently: each device locks its own state.
 * - Regions never overlap: bus_register() refuses an overlapping region.
 */
#ifndef GMM_VMM_BUS_H
#define GMM_VMM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Regions on one bus (devices, BARs, the PCI configuration ports). */
#define BUS_MAX_REGIONS		32

/* One access: off is relative to the region's base, len 1, 2, 4 or 8. */
struct bus_ops {
	void (*read)(void *opaque, uint64_t off, void *data, unsigned int len);
	void (*write)(void *opaque, uint64_t off, const void *data,
		      unsigned int len);
};

struct bus_region {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

struct bus {
	pthread_rwlock_t lock;
	unsigned int nr;
	struct bus_region r[BUS_MAX_REGIONS];	/* sorted by base */
	const char *name;
};

/* An empty bus named name (for messages). */
void bus_init(struct bus *b, const char *name);
/* Free its lock; the regions' owners free their own state. */
void bus_destroy(struct bus *b);

/* Add [base, base + len); 0, -EEXIST (overlap), -ENOSPC or -EINVAL. */
int bus_register(struct bus *b, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque, const char *name);

/* Remove the region at base registered with opaque; 0 or -ENOENT. */
int bus_unregister(struct bus *b, uint64_t base, void *opaque);

/*
 * Perform an access of len bytes at addr. Returns true when a region took
 * it; false when no region covers the whole access (reads then see
 * all-ones, as on a real bus with nothing behind the address).
 */
bool bus_access(struct bus *b, uint64_t addr, void *data, unsigned int len,
		bool is_write);

#endif
