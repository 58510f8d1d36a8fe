/* SPDX-License-Identifier: MIT */
/*
 * vmm/balloon_ctl.h - the one control interface to a VM's balloon, shared
 * by the monitor (QMP `balloon`, `query-balloon`, `qom-get`/`qom-set` of
 * `guest-stats` and `guest-stats-polling-interval`, the BALLOON_CHANGE
 * event) and the command line.
 *
 * Calling contract:
 * - The balloon device calls balloon_ctl_register() once, before the VM
 *   runs, and never unregisters while the VM lives.  Until it does (or in a
 *   VM without a balloon) every balloon_ctl_* query returns -ENODEV, which
 *   the monitor answers with QMP's DeviceNotActive.
 * - The ops may be called from any thread (the monitor runs on the event
 *   loop thread); each is short and never waits for the guest.
 * - The device calls balloon_ctl_changed() whenever the balloon's actual
 *   size changes (from any thread); the listener set with
 *   balloon_ctl_listen() (the monitor) is called synchronously and must
 *   only queue work (e.g. evloop_call()).
 * Sizes are QEMU's: the target and `actual` are the guest's logical RAM
 * size in bytes (RAM minus the balloon), as in QMP's `balloon` command.
 */
#ifndef GMM_VMM_BALLOON_CTL_H
#define GMM_VMM_BALLOON_CTL_H

#include <stdbool.h>
#include <stdint.h>

/* virtio-balloon statistics tags (VIRTIO 1.2 5.5.6.3 and Linux 6.12+). */
enum balloon_stat {
	BALLOON_STAT_SWAP_IN,
	BALLOON_STAT_SWAP_OUT,
	BALLOON_STAT_MAJFLT,
	BALLOON_STAT_MINFLT,
	BALLOON_STAT_MEMFREE,
	BALLOON_STAT_MEMTOT,
	BALLOON_STAT_AVAIL,
	BALLOON_STAT_CACHES,
	BALLOON_STAT_HTLB_PGALLOC,
	BALLOON_STAT_HTLB_PGFAIL,
	BALLOON_STAT_OOM_KILL,
	BALLOON_STAT_ALLOC_STALL,
	BALLOON_STAT_ASYNC_SCAN,
	BALLOON_STAT_DIRECT_SCAN,
	BALLOON_STAT_ASYNC_RECLAIM,
	BALLOON_STAT_DIRECT_RECLAIM,
	BALLOON_NR_STATS,
};

/* QEMU's property names for them ("stat-swap-in", ...). */
extern const char *const balloon_stat_names[BALLOON_NR_STATS];

struct balloon_stats {
	uint64_t value[BALLOON_NR_STATS];
	uint32_t valid;			/* bit per tag the guest reported */
	int64_t last_update;		/* seconds since the epoch, 0: never */
};

struct balloon_ctl_ops {
	/* Ask the guest for this logical size; 0 or -errno (-EINVAL: 0 or
	 * more than the guest's RAM). */
	int (*set_target)(void *opaque, uint64_t logical_bytes);
	/* The logical size now (RAM minus what the guest has inflated). */
	int (*get_actual)(void *opaque, uint64_t *logical_bytes);
	int (*get_stats)(void *opaque, struct balloon_stats *st);
	/* Stats polling interval in seconds, 0: off. */
	int (*get_stats_interval)(void *opaque, int64_t *seconds);
	int (*set_stats_interval)(void *opaque, int64_t seconds);
};

struct vm;

/* The device registers its ops (see the contract). */
void balloon_ctl_register(struct vm *vm, const struct balloon_ctl_ops *ops,
			  void *opaque);

/* Whether a balloon is registered. */
bool balloon_ctl_present(const struct vm *vm);

/* The ops above, through the registry; -ENODEV without a balloon. */
int balloon_ctl_set_target(struct vm *vm, uint64_t logical_bytes);
int balloon_ctl_get_actual(struct vm *vm, uint64_t *logical_bytes);
int balloon_ctl_get_stats(struct vm *vm, struct balloon_stats *st);
int balloon_ctl_get_stats_interval(struct vm *vm, int64_t *seconds);
int balloon_ctl_set_stats_interval(struct vm *vm, int64_t seconds);

/* The device says the actual size changed. */
void balloon_ctl_changed(struct vm *vm, uint64_t actual_bytes);

/* The listener for changes (one; the monitor). */
void balloon_ctl_listen(struct vm *vm, void (*fn)(void *opaque, uint64_t actual),
			void *opaque);

#endif
