/* SPDX-License-Identifier: MIT */
/*
 * vmm/balloon_ctl.c - the balloon control registry (contract in
 * balloon_ctl.h): one balloon per VM, reached through struct vm.
 */
#include "balloon_ctl.h"
#include "vmm.h"

#include <errno.h>

const char *const balloon_stat_names[BALLOON_NR_STATS] = {
	[BALLOON_STAT_SWAP_IN] = "stat-swap-in",
	[BALLOON_STAT_SWAP_OUT] = "stat-swap-out",
	[BALLOON_STAT_MAJFLT] = "stat-major-faults",
	[BALLOON_STAT_MINFLT] = "stat-minor-faults",
	[BALLOON_STAT_MEMFREE] = "stat-free-memory",
	[BALLOON_STAT_MEMTOT] = "stat-total-memory",
	[BALLOON_STAT_AVAIL] = "stat-available-memory",
	[BALLOON_STAT_CACHES] = "stat-disk-caches",
	[BALLOON_STAT_HTLB_PGALLOC] = "stat-htlb-pgalloc",
	[BALLOON_STAT_HTLB_PGFAIL] = "stat-htlb-pgfail",
	[BALLOON_STAT_OOM_KILL] = "stat-oom-kills",
	[BALLOON_STAT_ALLOC_STALL] = "stat-alloc-stalls",
	[BALLOON_STAT_ASYNC_SCAN] = "stat-async-scans",
	[BALLOON_STAT_DIRECT_SCAN] = "stat-direct-scans",
	[BALLOON_STAT_ASYNC_RECLAIM] = "stat-async-reclaims",
	[BALLOON_STAT_DIRECT_RECLAIM] = "stat-direct-reclaims",
};

void balloon_ctl_register(struct vm *vm, const struct balloon_ctl_ops *ops,
			  void *opaque)
{
	vm->balloon_opaque = opaque;
	atomic_store(&vm->balloon_ops, ops);
}

bool balloon_ctl_present(const struct vm *vm)
{
	return atomic_load(&vm->balloon_ops) != NULL;
}

int balloon_ctl_set_target(struct vm *vm, uint64_t logical_bytes)
{
	const struct balloon_ctl_ops *ops = atomic_load(&vm->balloon_ops);

	return ops ? ops->set_target(vm->balloon_opaque, logical_bytes) : -ENODEV;
}

int balloon_ctl_get_actual(struct vm *vm, uint64_t *logical_bytes)
{
	const struct balloon_ctl_ops *ops = atomic_load(&vm->balloon_ops);

	return ops ? ops->get_actual(vm->balloon_opaque, logical_bytes) : -ENODEV;
}

int balloon_ctl_get_stats(struct vm *vm, struct balloon_stats *st)
{
	const struct balloon_ctl_ops *ops = atomic_load(&vm->balloon_ops);

	return ops ? ops->get_stats(vm->balloon_opaque, st) : -ENODEV;
}

int balloon_ctl_get_stats_interval(struct vm *vm, int64_t *seconds)
{
	const struct balloon_ctl_ops *ops = atomic_load(&vm->balloon_ops);

	return ops ? ops->get_stats_interval(vm->balloon_opaque, seconds) : -ENODEV;
}

int balloon_ctl_set_stats_interval(struct vm *vm, int64_t seconds)
{
	const struct balloon_ctl_ops *ops = atomic_load(&vm->balloon_ops);

	return ops ? ops->set_stats_interval(vm->balloon_opaque, seconds) : -ENODEV;
}

void balloon_ctl_changed(struct vm *vm, uint64_t actual_bytes)
{
	void (*fn)(void *, uint64_t) = atomic_load(&vm->balloon_listener);

	if (fn)
		fn(vm->balloon_listener_opaque, actual_bytes);
}

void balloon_ctl_listen(struct vm *vm, void (*fn)(void *opaque, uint64_t actual),
			void *opaque)
{
	vm->balloon_listener_opaque = opaque;
	atomic_store(&vm->balloon_listener, fn);
}
