/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/fake_balloon.c - a balloon for gmm-vmm-test, the test build of
 * gmm-vmm: registered through balloon_ctl exactly as the virtio balloon
 * does, it "inflates" at once to any target (actual = target, then
 * balloon_ctl_changed()), reports two statistics (total and free memory)
 * once polling is on, and keeps the polling interval.  It lets the monitor
 * tests check balloon, query-balloon, qom-get/qom-set and BALLOON_CHANGE
 * without a guest driver.  With GMM_VMM_TEST_NO_BALLOON in the environment
 * it registers nothing (the sanitizer runs' stand-in for plain gmm-vmm).
 */
#include "vmm.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct fake_balloon {
	struct vm *vm;
	uint64_t ram;
	_Atomic uint64_t actual;
	_Atomic int64_t interval;
	_Atomic int64_t polled_at;	/* when polling was turned on */
};

static struct fake_balloon fake;

static int set_target(void *opaque, uint64_t bytes)
{
	struct fake_balloon *b = opaque;

	if (!bytes || bytes > b->ram)
		return -EINVAL;
	atomic_store(&b->actual, bytes);
	balloon_ctl_changed(b->vm, bytes);
	return 0;
}

static int get_actual(void *opaque, uint64_t *bytes)
{
	struct fake_balloon *b = opaque;

	*bytes = atomic_load(&b->actual);
	return 0;
}

static int get_stats(void *opaque, struct balloon_stats *st)
{
	struct fake_balloon *b = opaque;

	*st = (struct balloon_stats){ 0 };
	st->last_update = atomic_load(&b->polled_at);
	if (!st->last_update)
		return 0;
	st->value[BALLOON_STAT_MEMTOT] = atomic_load(&b->actual);
	st->value[BALLOON_STAT_MEMFREE] = atomic_load(&b->actual) / 2;
	st->valid = 1u << BALLOON_STAT_MEMTOT | 1u << BALLOON_STAT_MEMFREE;
	return 0;
}

static int get_interval(void *opaque, int64_t *seconds)
{
	struct fake_balloon *b = opaque;

	*seconds = atomic_load(&b->interval);
	return 0;
}

static int set_interval(void *opaque, int64_t seconds)
{
	struct fake_balloon *b = opaque;

	atomic_store(&b->interval, seconds);
	atomic_store(&b->polled_at, seconds ? (int64_t)time(NULL) : 0);
	return 0;
}

static const struct balloon_ctl_ops fake_ops = {
	.set_target = set_target,
	.get_actual = get_actual,
	.get_stats = get_stats,
	.get_stats_interval = get_interval,
	.set_stats_interval = set_interval,
};

/* gmm-vmm's hook for devices of test builds (vmm/main.c). */
void vmm_test_devices(struct vm *vm)
{
	/* the sanitizer runs use this one binary for both roles */
	if (getenv("GMM_VMM_TEST_NO_BALLOON"))
		return;
	fake.vm = vm;
	fake.ram = vm->opts->memory;
	atomic_store(&fake.actual, fake.ram);
	balloon_ctl_register(vm, &fake_ops, &fake);
}
