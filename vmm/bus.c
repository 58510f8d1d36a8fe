/* SPDX-License-Identifier: MIT */
/*
 * vmm/bus.c - port I/O and MMIO buses (contract in bus.h): a sorted array of
 * regions under a reader-writer lock, looked up by binary search.
 */
#include "bus.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	pthread_rwlock_init(&b->lock, NULL);
	b->name = name;
}

void bus_destroy(struct bus *b)
{
	pthread_rwlock_destroy(&b->lock);
}

/* Index of the first region whose end is above addr. */
static unsigned int lower_bound(const struct bus *b, uint64_t addr)
{
	unsigned int lo = 0, hi = b->nr;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (b->r[mid].base + b->r[mid].len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque, const char *name)
{
	unsigned int i;
	int ret = 0;

	if (!len || base + len < base || !ops)
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	i = lower_bound(b, base);
	if (b->nr == BUS_MAX_REGIONS)
		ret = -ENOSPC;
	else if (i < b->nr && b->r[i].base < base + len)
		ret = -EEXIST;
	if (!ret) {
		memmove(&b->r[i + 1], &b->r[i], (b->nr - i) * sizeof(b->r[0]));
		b->r[i] = (struct bus_region){ base, len, ops, opaque, name };
		b->nr++;
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_unregister(struct bus *b, uint64_t base, void *opaque)
{
	unsigned int i;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&b->lock);
	i = lower_bound(b, base);
	if (i < b->nr && b->r[i].base == base && b->r[i].opaque == opaque) {
		memmove(&b->r[i], &b->r[i + 1], (b->nr - i - 1) * sizeof(b->r[0]));
		b->nr--;
		ret = 0;
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

bool bus_access(struct bus *b, uint64_t addr, void *data, unsigned int len,
		bool is_write)
{
	const struct bus_region *r;
	unsigned int i;
	bool hit = false;

	pthread_rwlock_rdlock(&b->lock);
	i = lower_bound(b, addr);
	r = &b->r[i];
	if (i < b->nr && r->base <= addr && addr + len <= r->base + r->len) {
		hit = true;
		if (is_write && r->ops->write)
			r->ops->write(r->opaque, addr - r->base, data, len);
		else if (!is_write && r->ops->read)
			r->ops->read(r->opaque, addr - r->base, data, len);
		else if (!is_write)
			memset(data, 0xff, len);
	}
	pthread_rwlock_unlock(&b->lock);
	if (!hit && !is_write)
		memset(data, 0xff, len);
	return hit;
}
