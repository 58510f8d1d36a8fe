/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem_devram.c - device RAM (contract in guestmem.h): a device's
 * memslot (virtio-mem) that is RAM for the other devices exactly where it
 * is plugged. An access holds devram_lock for reading from the check to
 * the end of the copy, so a unit cannot be unplugged (and unmapped) under
 * it; the device takes it for writing to change what is plugged.
 */
#include "guestmem_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The device RAM holding all of [gpa, gpa + len), or NULL. */
static struct devram *find(struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < gm->nr_devram; i++) {
		struct devram *d = &gm->devram[i];

		if (gpa >= d->gpa && gpa - d->gpa < d->size && len <= d->size - (gpa - d->gpa))
			return d;
	}
	return NULL;
}

/* Every unit of [gpa, gpa + len) (in d, len > 0) plugged (lock held). */
static bool plugged(const struct devram *d, uint64_t gpa, uint64_t len)
{
	for (uint64_t u = (gpa - d->gpa) / d->unit; u <= (gpa + len - 1 - d->gpa) / d->unit; u++) {
		if (!d->plugged[u])
			return false;
	}
	return true;
}

int guestmem_devram_add(struct guestmem *gm, uint64_t gpa, uint64_t size, void *hva,
			uint64_t unit)
{
	uint64_t page = gm->cfg.page_size > 4096 ? gm->cfg.page_size : 4096;
	struct devram *d;

	if (gm->nr_devram == GUESTMEM_MAX_DEVRAM)
		return -ENOSPC;
	if (!unit || (unit & (unit - 1)) || !size || size % unit || gpa + size < gpa ||
	    gpa < guestmem_end(gm))
		return -EINVAL;
	d = &gm->devram[gm->nr_devram];
	*d = (struct devram){ .gpa = gpa, .size = size, .unit = unit, .hva = hva, .page = page };
	d->plugged = calloc(size / unit, sizeof(d->plugged[0]));
	if (!d->plugged)
		return -ENOMEM;
	pthread_rwlock_wrlock(&gm->devram_lock);
	gm->nr_devram++;
	pthread_rwlock_unlock(&gm->devram_lock);
	return 0;
}

void guestmem_devram_set(struct guestmem *gm, uint64_t gpa, uint64_t len, bool on)
{
	struct devram *d = len ? find(gm, gpa, len) : NULL;

	if (!d)
		return;
	pthread_rwlock_wrlock(&gm->devram_lock);
	for (uint64_t u = (gpa - d->gpa) / d->unit; u <= (gpa + len - 1 - d->gpa) / d->unit; u++)
		d->plugged[u] = on;
	pthread_rwlock_unlock(&gm->devram_lock);
}

uint64_t guestmem_end(const struct guestmem *gm)
{
	uint64_t end = 0;

	for (unsigned int i = 0; i < gm->nr; i++) {
		const struct guestmem_slot *s = &gm->reg[i].slot;

		if (s->gpa + s->size > end)
			end = s->gpa + s->size;
	}
	for (unsigned int i = 0; i < gm->nr_devram; i++) {
		if (gm->devram[i].gpa + gm->devram[i].size > end)
			end = gm->devram[i].gpa + gm->devram[i].size;
	}
	return end;
}

bool guestmem_devram_is_ram(struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	struct devram *d = find(gm, gpa, len ? len : 1);
	bool ok;

	if (!d)
		return false;
	pthread_rwlock_rdlock(&gm->devram_lock);
	ok = plugged(d, gpa, len ? len : 1);
	pthread_rwlock_unlock(&gm->devram_lock);
	return ok;
}

int guestmem_devram_copy(struct guestmem *gm, uint64_t gpa, void *buf, size_t len, bool write)
{
	struct devram *d = find(gm, gpa, len ? len : 1);
	int ret = -EFAULT;

	if (!d)
		return -EFAULT;
	pthread_rwlock_rdlock(&gm->devram_lock);
	if (plugged(d, gpa, len ? len : 1)) {
		if (write)
			memcpy(d->hva + (gpa - d->gpa), buf, len);
		else
			memcpy(buf, d->hva + (gpa - d->gpa), len);
		ret = 0;
	}
	pthread_rwlock_unlock(&gm->devram_lock);
	return ret;
}

/* The whole host pages of the range go back to the host (the frames stay
 * the device's, so the pool is not told); on a mapping with bigger pages
 * than the range, nothing does. */
int guestmem_devram_discard(struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	struct devram *d = find(gm, gpa, len ? len : 1);
	uint64_t start, end;
	int ret = -EFAULT;

	if (!d)
		return -EFAULT;
	start = (gpa - d->gpa + d->page - 1) & ~(d->page - 1);
	end = (gpa - d->gpa + len) & ~(d->page - 1);
	pthread_rwlock_rdlock(&gm->devram_lock);
	if (len && plugged(d, gpa, len)) {
		ret = 0;
		if (end > start && madvise(d->hva + start, end - start, MADV_REMOVE))
			ret = -errno;
	}
	pthread_rwlock_unlock(&gm->devram_lock);
	return ret;
}

void guestmem_devram_destroy(struct guestmem *gm)
{
	for (unsigned int i = 0; i < gm->nr_devram; i++)
		free(gm->devram[i].plugged);
	gm->nr_devram = 0;
}
