/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem_anon.c - the memory modes over anonymous memory: "plain"
 * (every memslot mapped and accessible from the start: the benchmark
 * baseline) and "lazy" (a reservation, backed a unit at a time by
 * mmap(MAP_FIXED) on a fault: the control for gmm's own cost).  Lazy
 * placeholders are PROT_NONE, or userfaultfd-registered anonymous memory.
 */
#include "guestmem_impl.h"

#include <errno.h>
#include <linux/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MPOL_BIND_	2
#define PROGRESS_STEP	(64ULL << 20)
#define MIB		(1ULL << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static int hugetlb_flags(uint64_t page_size)
{
	if (page_size == 2 * MIB)
		return MAP_HUGETLB | MAP_HUGE_2MB;
	if (page_size == (1ULL << 30))
		return MAP_HUGETLB | MAP_HUGE_1GB;
	return 0;
}

static int bind_node(void *addr, size_t len, int node)
{
	unsigned long mask[4] = { 0 };

	if (node < 0)
		return 0;
	mask[node / 64] = 1UL << (node % 64);
	if (syscall(SYS_mbind, addr, len, MPOL_BIND_, mask, 256, 0))
		return -errno;
	return 0;
}

/* Map [off, off+len) of a region accessible (fresh zeroed memory). */
static int map_backing(struct guestmem *gm, struct region *r, uint64_t off, uint64_t len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
	void *p;

	flags |= hugetlb_flags(gm->cfg.page_size);
	p = mmap((char *)r->slot.hva + off, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	return bind_node(p, len, r->host_node);
}

static uint64_t nr_units(const struct guestmem *gm, const struct region *r)
{
	return r->slot.size / gm->cfg.page_size;
}

/* Reserve the region's host range: PROT_NONE, or a userfaultfd placeholder. */
static int reserve(struct guestmem *gm, struct region *r, char *err, size_t errlen)
{
	uint64_t align = gm->cfg.page_size < 2 * MIB ? 2 * MIB : gm->cfg.page_size;
	size_t len = r->slot.size + align;
	uintptr_t a;
	void *p;

	p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot reserve %llu MiB of address space: %s",
			 (unsigned long long)(r->slot.size >> 20), strerror(errno));
		return -1;
	}
	r->base = p;
	r->reserved = len;
	a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	r->slot.hva = (void *)a;
	if (gm->uffd >= 0 && guestmem_uffd_placeholder(gm, r->slot.hva, r->slot.size)) {
		pthread_mutex_lock(&gm->why_lock);
		snprintf(err, errlen, "%s", gm->uffd_why);
		pthread_mutex_unlock(&gm->why_lock);
		return -1;
	}
	return 0;
}

static void progress(uint64_t done, uint64_t total, bool last)
{
	if (!isatty(STDERR_FILENO) && !last)
		return;
	fprintf(stderr, "\rprealloc: %llu/%llu MiB%s", (unsigned long long)(done >> 20),
		(unsigned long long)(total >> 20), last ? "\n" : "");
}

static int prefault(struct guestmem *gm, char *err, size_t errlen)
{
	uint64_t done = 0, total = 0;

	for (unsigned int i = 0; i < gm->nr; i++)
		total += gm->reg[i].slot.size;
	for (unsigned int i = 0; i < gm->nr; i++) {
		struct region *r = &gm->reg[i];

		for (uint64_t off = 0; off < r->slot.size; off += PROGRESS_STEP) {
			uint64_t len = r->slot.size - off;

			if (len > PROGRESS_STEP)
				len = PROGRESS_STEP;
			if (madvise((char *)r->slot.hva + off, len, MADV_POPULATE_WRITE)) {
				snprintf(err, errlen, "prealloc failed after %llu MiB: %s",
					 (unsigned long long)(done >> 20), strerror(errno));
				return -1;
			}
			done += len;
			progress(done, total, false);
		}
	}
	progress(done, total, true);
	return 0;
}

static int back_region_fully(struct guestmem *gm, struct region *r)
{
	uint64_t n = nr_units(gm, r);
	int ret = map_backing(gm, r, 0, r->slot.size);

	if (ret)
		return ret;
	for (uint64_t i = 0; i < n; i++)
		atomic_store(&r->state[i], 1);
	atomic_fetch_add(&gm->backed, n);
	return 0;
}

static int setup_region(struct guestmem *gm, struct region *r, bool lazy, char *err,
			size_t errlen)
{
	int ret;

	if (reserve(gm, r, err, errlen))
		return -1;
	r->state = calloc(nr_units(gm, r), 1);
	if (!r->state) {
		snprintf(err, errlen, "out of memory for the page map");
		return -1;
	}
	if (lazy)
		return 0;
	ret = back_region_fully(gm, r);
	if (ret) {
		snprintf(err, errlen, "cannot map %llu MiB of guest RAM%s: %s",
			 (unsigned long long)(r->slot.size >> 20),
			 hugetlb_flags(gm->cfg.page_size) ? " from hugepages" : "", strerror(-ret));
		return -1;
	}
	return 0;
}

static int anon_setup(struct guestmem *gm, char *err, size_t errlen)
{
	bool lazy = gm->cfg.mode == GUESTMEM_LAZY && !gm->cfg.prealloc;

	for (unsigned int i = 0; i < gm->nr; i++) {
		if (setup_region(gm, &gm->reg[i], lazy, err, errlen))
			return -1;
	}
	return gm->cfg.prealloc ? prefault(gm, err, errlen) : 0;
}

static void anon_destroy(struct guestmem *gm)
{
	for (unsigned int i = 0; i < gm->nr; i++) {
		if (gm->reg[i].base)
			munmap(gm->reg[i].base, gm->reg[i].reserved);
		free((void *)gm->reg[i].state);
	}
}

/* Back unit (its stripe lock held); count it if a fault did it. */
static int back_locked(struct guestmem *gm, struct region *r, uint64_t unit, bool fault)
{
	int ret;

	if (atomic_load(&r->state[unit]))
		return 0;
	ret = map_backing(gm, r, unit * gm->cfg.page_size, gm->cfg.page_size);
	if (ret)
		return ret;
	atomic_store_explicit(&r->state[unit], 1, memory_order_release);
	atomic_fetch_add(&gm->backed, 1);
	if (fault)
		atomic_fetch_add(&gm->faults, 1);
	return 0;
}

static int back_range(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len,
		      bool fault)
{
	uint64_t end = gpa + len;
	int ret = 0;

	for (gpa &= ~(gm->cfg.page_size - 1); gpa < end && !ret; gpa += gm->cfg.page_size) {
		uint64_t unit = (gpa - r->slot.gpa) / gm->cfg.page_size;
		pthread_mutex_t *lock = &gm->lock[unit % GUESTMEM_STRIPES];

		if (atomic_load_explicit(&r->state[unit], memory_order_acquire))
			continue;
		pthread_mutex_lock(lock);
		ret = back_locked(gm, r, unit, fault);
		pthread_mutex_unlock(lock);
	}
	return ret;
}

/*
 * Back the units of [gpa, gpa + len) (at least gpa's) and copy len bytes,
 * a unit at a time under its stripe lock: a discard (which takes the same
 * lock to make the unit PROT_NONE) cannot unmap it in the middle of a copy.
 */
static int back_copy(struct guestmem *gm, struct region *r, uint64_t gpa, void *buf, size_t len,
		     bool write, bool fault)
{
	uint64_t ps = gm->cfg.page_size;
	uint8_t *p = buf;
	int ret = 0;

	if (!len)
		return back_range(gm, r, gpa, 1, fault);
	if (gm->cfg.mode == GUESTMEM_PLAIN) {	/* its discard never unmaps */
		if (write)
			memcpy(guestmem_hva(r, gpa), buf, len);
		else
			memcpy(buf, guestmem_hva(r, gpa), len);
		return 0;
	}
	while (len && !ret) {
		uint64_t unit = (gpa - r->slot.gpa) / ps;
		size_t n = ps - (gpa & (ps - 1)) < len ? ps - (gpa & (ps - 1)) : len;
		pthread_mutex_t *lock = &gm->lock[unit % GUESTMEM_STRIPES];

		pthread_mutex_lock(lock);
		ret = back_locked(gm, r, unit, fault);
		if (!ret && write)
			memcpy(guestmem_hva(r, gpa), p, n);
		else if (!ret)
			memcpy(p, guestmem_hva(r, gpa), n);
		pthread_mutex_unlock(lock);
		gpa += n;
		p += n;
		len -= n;
	}
	return ret;
}

static int anon_fault(struct guestmem *gm, struct region *r, uint64_t gpa, unsigned int len,
		      bool is_write, void *data)
{
	return back_copy(gm, r, gpa, data, len, is_write, true);
}

static int anon_populate(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len)
{
	return back_range(gm, r, gpa, len, false);
}

static int anon_copy(struct guestmem *gm, struct region *r, uint64_t gpa, void *buf,
		     size_t len, bool write)
{
	return back_copy(gm, r, gpa, buf, len, write, false);
}

/* Put the unit back to an unbacked placeholder. */
static int unback_unit(struct guestmem *gm, struct region *r, uint64_t unit)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
	char *hva = (char *)r->slot.hva + unit * gm->cfg.page_size;

	if (gm->uffd >= 0)
		return guestmem_uffd_placeholder(gm, hva, gm->cfg.page_size);
	return mmap(hva, gm->cfg.page_size, PROT_NONE, flags, -1, 0) == MAP_FAILED ? -errno : 0;
}

static int discard_unit(struct guestmem *gm, struct region *r, uint64_t unit)
{
	pthread_mutex_t *lock = &gm->lock[unit % GUESTMEM_STRIPES];
	int ret = 0;

	pthread_mutex_lock(lock);
	if (atomic_load(&r->state[unit])) {
		ret = unback_unit(gm, r, unit);
		if (!ret) {
			atomic_store(&r->state[unit], 0);
			atomic_fetch_sub(&gm->backed, 1);
			atomic_fetch_add(&gm->discards, 1);
		}
	}
	pthread_mutex_unlock(lock);
	return ret;
}

static int lazy_discard(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len)
{
	int ret = 0;

	for (uint64_t off = gpa - r->slot.gpa; off < gpa - r->slot.gpa + len && !ret;
	     off += gm->cfg.page_size)
		ret = discard_unit(gm, r, off / gm->cfg.page_size);
	return ret;
}

/* plain: the memory stays mapped; its pages go back to the host. */
static int plain_discard(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len)
{
	if (madvise(guestmem_hva(r, gpa), len, MADV_DONTNEED))
		return -errno;
	atomic_fetch_add(&gm->discards, len / gm->cfg.page_size);
	return 0;
}

static void anon_stats(struct guestmem *gm, struct guestmem_stats *st)
{
	st->faults = atomic_load(&gm->faults);
	st->backed = atomic_load(&gm->backed);
	st->discards = atomic_load(&gm->discards);
	st->page_size = gm->cfg.page_size;
}

static int anon_attach(struct guestmem *gm)
{
	(void)gm;
	return 0;
}

static void anon_detach(struct guestmem *gm)
{
	(void)gm;
}

const struct guestmem_ops guestmem_plain_ops = {
	.setup = anon_setup,
	.destroy = anon_destroy,
	.fault = anon_fault,
	.populate = anon_populate,
	.copy = anon_copy,
	.discard = plain_discard,
	.stats = anon_stats,
	.attach = anon_attach,
	.detach = anon_detach,
};

const struct guestmem_ops guestmem_lazy_ops = {
	.setup = anon_setup,
	.destroy = anon_destroy,
	.fault = anon_fault,
	.populate = anon_populate,
	.copy = anon_copy,
	.discard = lazy_discard,
	.stats = anon_stats,
	.attach = anon_attach,
	.detach = anon_detach,
};
