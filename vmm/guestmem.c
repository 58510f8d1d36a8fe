/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem.c - guest RAM: region layout and memslots for every mode, the
 * "plain" and "lazy" backings over anonymous memory, and the fault entry
 * point, vCPU hooks and bounds-checked accessors declared in guestmem.h,
 * which hand the "gmm" mode to guestmem_gmm.c.
 */
#include "guestmem.h"
#include "guestmem_gmm.h"
#include <gmm/kvm_compat.h>
#include <gmm/thread.h>

#include <errno.h>
#include <linux/mman.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_STRIPES	64
#define MPOL_BIND_	2
#define PROGRESS_STEP	(64ULL << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct region {
	struct guestmem_slot slot;
	void *base;			/* reservation, aligned to page_size */
	size_t reserved;		/* bytes reserved at base */
	int host_node;
	_Atomic uint8_t *state;		/* per backing unit: 1 = backed */
};

struct guestmem {
	struct guestmem_cfg cfg;
	unsigned int nr;
	struct region reg[GUESTMEM_MAX_SLOTS];
	pthread_mutex_t lock[NR_STRIPES];
	_Atomic uint64_t faults;
	_Atomic uint64_t backed;
	_Atomic uint64_t discards;
	struct gmm_ram *gr;		/* gmm mode, else NULL */
};

struct guestmem_vcpu {
	struct guestmem *gm;
	unsigned int cpu;
};

const char *guestmem_mode_name(enum guestmem_mode mode)
{
	switch (mode) {
	case GUESTMEM_GMM:
		return "gmm";
	case GUESTMEM_LAZY:
		return "lazy";
	default:
		return "plain";
	}
}

static int hugetlb_flags(uint64_t page_size)
{
	if (page_size == (2ULL << 20))
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
static int map_backing(struct guestmem *gm, struct region *r, uint64_t off,
		       uint64_t len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
	char *want = (char *)r->slot.hva + off;
	void *p;

	flags |= hugetlb_flags(gm->cfg.page_size);
	p = mmap(want, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	return bind_node(p, len, r->host_node);
}

/* Put [off, off+len) back to an inaccessible, unbacked reservation. */
static int unmap_backing(struct region *r, uint64_t off, uint64_t len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
	void *p;

	p = mmap((char *)r->slot.hva + off, len, PROT_NONE, flags, -1, 0);
	return p == MAP_FAILED ? -errno : 0;
}

static uint64_t nr_units(const struct guestmem *gm, const struct region *r)
{
	return r->slot.size / gm->cfg.page_size;
}

static int reserve(struct guestmem *gm, struct region *r, char *err,
		   size_t errlen)
{
	uint64_t align = gm->cfg.page_size < (2ULL << 20) ?
			 (2ULL << 20) : gm->cfg.page_size;
	size_t len = r->slot.size + align;
	uintptr_t a;
	void *p;

	p = mmap(NULL, len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot reserve %llu MiB of address space: %s",
			 (unsigned long long)(r->slot.size >> 20),
			 strerror(errno));
		return -1;
	}
	r->base = p;
	r->reserved = len;
	a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	r->slot.hva = (void *)a;
	return 0;
}

static void progress(uint64_t done, uint64_t total, bool last)
{
	if (!isatty(STDERR_FILENO) && !last)
		return;
	fprintf(stderr, "\rprealloc: %llu/%llu MiB%s",
		(unsigned long long)(done >> 20),
		(unsigned long long)(total >> 20), last ? "\n" : "");
}

static int populate(struct guestmem *gm, uint64_t *done, uint64_t total)
{
	for (unsigned int i = 0; i < gm->nr; i++) {
		struct region *r = &gm->reg[i];

		for (uint64_t off = 0; off < r->slot.size; off += PROGRESS_STEP) {
			uint64_t len = r->slot.size - off;

			if (len > PROGRESS_STEP)
				len = PROGRESS_STEP;
			if (madvise((char *)r->slot.hva + off, len,
				    MADV_POPULATE_WRITE))
				return -errno;
			*done += len;
			progress(*done, total, false);
		}
	}
	return 0;
}

static int back_region_fully(struct guestmem *gm, struct region *r)
{
	uint64_t n = nr_units(gm, r);
	int ret;

	ret = map_backing(gm, r, 0, r->slot.size);
	if (ret)
		return ret;
	for (uint64_t i = 0; i < n; i++)
		atomic_store(&r->state[i], 1);
	atomic_fetch_add(&gm->backed, n);
	return 0;
}

static int setup_region(struct guestmem *gm, struct region *r, char *err,
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
	if (gm->cfg.mode == GUESTMEM_LAZY && !gm->cfg.prealloc)
		return 0;
	ret = back_region_fully(gm, r);
	if (ret) {
		snprintf(err, errlen, "cannot map %llu MiB of guest RAM%s: %s",
			 (unsigned long long)(r->slot.size >> 20),
			 hugetlb_flags(gm->cfg.page_size) ?
			 " from hugepages" : "", strerror(-ret));
		return -1;
	}
	return 0;
}

static int add_slot(struct guestmem *gm, uint64_t gpa, uint64_t size,
		    unsigned int node)
{
	struct region *r;

	if (gm->nr == GUESTMEM_MAX_SLOTS)
		return -1;
	r = &gm->reg[gm->nr++];
	r->slot.gpa = gpa;
	r->slot.size = size;
	r->slot.node = node;
	r->host_node = gm->cfg.nodes[node].host_node;
	return 0;
}

/* Lay the nodes out from GPA 0, splitting around the 32-bit hole. */
static int layout(struct guestmem *gm)
{
	uint64_t gpa = 0;

	for (unsigned int n = 0; n < gm->cfg.nr_nodes; n++) {
		uint64_t left = gm->cfg.nodes[n].size;

		if (gpa < GUESTMEM_HOLE_START && gpa + left > GUESTMEM_HOLE_START) {
			uint64_t low = GUESTMEM_HOLE_START - gpa;

			if (add_slot(gm, gpa, low, n))
				return -1;
			left -= low;
			gpa = GUESTMEM_HOLE_END;
		} else if (gpa == GUESTMEM_HOLE_START) {
			gpa = GUESTMEM_HOLE_END;
		}
		if (add_slot(gm, gpa, left, n))
			return -1;
		gpa += left;
	}
	return 0;
}

static int check_cfg(const struct guestmem_cfg *cfg, char *err, size_t errlen)
{
	/* gmm regions are whole 2 MiB units (gmm_guest_add_ram) */
	uint64_t unit = cfg->mode == GUESTMEM_GMM && cfg->page_size < (2ULL << 20) ?
			(2ULL << 20) : cfg->page_size;

	if (!cfg->nr_nodes || cfg->nr_nodes > GUESTMEM_MAX_NODES) {
		snprintf(err, errlen, "between 1 and %d guest NUMA nodes are supported",
			 GUESTMEM_MAX_NODES);
		return -1;
	}
	if (cfg->mode == GUESTMEM_GMM && cfg->page_size > (2ULL << 20)) {
		snprintf(err, errlen, "--memory-mode gmm backs guest RAM with pages of at most 2 MiB (use --hugepages 2M or --memory-mode lazy)");
		return -1;
	}
	for (unsigned int n = 0; n < cfg->nr_nodes; n++) {
		if (!cfg->nodes[n].size || cfg->nodes[n].size % unit) {
			snprintf(err, errlen,
				 "guest node %u: size must be a non-zero multiple of %llu KiB",
				 n, (unsigned long long)(unit >> 10));
			return -1;
		}
	}
	return 0;
}

static int setup_gmm(struct guestmem *gm, char *err, size_t errlen)
{
	gm->gr = gmm_ram_create(&gm->cfg, err, errlen);
	if (!gm->gr)
		return -1;
	for (unsigned int i = 0; i < gm->nr; i++) {
		if (gmm_ram_add(gm->gr, &gm->reg[i].slot, err, errlen))
			return -1;
	}
	if (gm->cfg.prealloc && gmm_ram_prealloc(gm->gr, err, errlen))
		return -1;
	return gmm_ram_start_reporting(gm->gr, gm->cfg.report_delay_ms, err, errlen);
}

struct guestmem *guestmem_create(const struct guestmem_cfg *cfg, char *err,
				 size_t errlen)
{
	struct guestmem *gm;
	uint64_t done = 0, total = 0;

	if (check_cfg(cfg, err, errlen))
		return NULL;
	gm = calloc(1, sizeof(*gm));
	if (!gm) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	gm->cfg = *cfg;
	for (int i = 0; i < NR_STRIPES; i++)
		pthread_mutex_init(&gm->lock[i], NULL);
	if (layout(gm)) {
		snprintf(err, errlen, "guest memory layout needs too many memslots");
		goto fail;
	}
	if (cfg->mode == GUESTMEM_GMM) {
		if (setup_gmm(gm, err, errlen))
			goto fail;
		return gm;
	}
	for (unsigned int i = 0; i < gm->nr; i++) {
		total += gm->reg[i].slot.size;
		if (setup_region(gm, &gm->reg[i], err, errlen))
			goto fail;
	}
	if (!cfg->prealloc)
		return gm;
	if (populate(gm, &done, total)) {
		snprintf(err, errlen, "prealloc failed after %llu MiB: %s",
			 (unsigned long long)(done >> 20), strerror(errno));
		goto fail;
	}
	progress(done, total, true);
	return gm;
fail:
	guestmem_destroy(gm);
	return NULL;
}

void guestmem_destroy(struct guestmem *gm)
{
	if (!gm)
		return;
	gmm_ram_destroy(gm->gr);
	for (unsigned int i = 0; i < gm->nr; i++) {
		if (gm->reg[i].base)
			munmap(gm->reg[i].base, gm->reg[i].reserved);
		free((void *)gm->reg[i].state);
	}
	free(gm);
}

unsigned int guestmem_nr_slots(const struct guestmem *gm)
{
	return gm->nr;
}

const struct guestmem_slot *guestmem_slot(const struct guestmem *gm,
					  unsigned int i)
{
	return i < gm->nr ? &gm->reg[i].slot : NULL;
}

struct gmm_pool *guestmem_gmm_pool(const struct guestmem *gm)
{
	return gm->gr ? gmm_ram_pool(gm->gr) : NULL;
}

struct gmm_guest *guestmem_gmm_guest(const struct guestmem *gm)
{
	return gm->gr ? gmm_ram_guest(gm->gr) : NULL;
}

struct guestmem_vcpu *guestmem_vcpu_attach(struct guestmem *gm,
					   unsigned int cpu)
{
	struct guestmem_vcpu *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	if (gm->gr && gmm_ram_thread_attach(gm->gr)) {
		free(v);
		return NULL;
	}
	v->gm = gm;
	v->cpu = cpu;
	return v;
}

void guestmem_vcpu_detach(struct guestmem_vcpu *v)
{
	if (!v)
		return;
	if (v->gm->gr)
		gmm_ram_thread_detach(v->gm->gr);
	free(v);
}

/* The gmm_thread_* calls do nothing on a thread that is not attached. */
void guestmem_vcpu_offline(struct guestmem_vcpu *v)
{
	if (v->gm->gr)
		gmm_thread_offline();
}

void guestmem_vcpu_online(struct guestmem_vcpu *v)
{
	if (v->gm->gr)
		gmm_thread_online();
}

void guestmem_vcpu_quiescent(struct guestmem_vcpu *v)
{
	if (v->gm->gr)
		gmm_thread_quiescent();
}

static struct region *find(const struct guestmem *gm, uint64_t gpa)
{
	for (unsigned int i = 0; i < gm->nr; i++) {
		const struct region *r = &gm->reg[i];

		if (gpa >= r->slot.gpa && gpa - r->slot.gpa < r->slot.size)
			return (struct region *)r;
	}
	return NULL;
}

bool guestmem_is_ram(const struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	const struct region *r = find(gm, gpa);

	if (!r)
		return false;
	return len <= r->slot.size - (gpa - r->slot.gpa);
}

/* Make the backing unit holding gpa accessible; count it if a fault did it. */
static int back_unit(struct guestmem *gm, struct region *r, uint64_t gpa,
		     bool fault)
{
	uint64_t unit = (gpa - r->slot.gpa) / gm->cfg.page_size;
	pthread_mutex_t *lock = &gm->lock[unit % NR_STRIPES];
	int ret = 0;

	if (atomic_load_explicit(&r->state[unit], memory_order_acquire))
		return 0;
	pthread_mutex_lock(lock);
	if (!atomic_load(&r->state[unit])) {
		ret = map_backing(gm, r, unit * gm->cfg.page_size,
				  gm->cfg.page_size);
		if (!ret) {
			atomic_store_explicit(&r->state[unit], 1,
					      memory_order_release);
			atomic_fetch_add(&gm->backed, 1);
			if (fault)
				atomic_fetch_add(&gm->faults, 1);
		}
	}
	pthread_mutex_unlock(lock);
	return ret;
}

static void *hva_of(struct region *r, uint64_t gpa)
{
	return (char *)r->slot.hva + (gpa - r->slot.gpa);
}

static int complete_mmio(struct guestmem *gm, struct kvm_run *run)
{
	uint64_t gpa = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;
	struct region *r = find(gm, gpa);
	int ret;

	if (!r)
		return 0;
	if (len > sizeof(run->mmio.data) || !guestmem_is_ram(gm, gpa, len))
		return -EFAULT;
	if (gm->gr) {
		ret = gmm_ram_fault(gm->gr, gpa, len, run->mmio.is_write, run->mmio.data);
		return ret ? ret : 1;
	}
	ret = back_unit(gm, r, gpa, true);
	if (!ret && (gpa + len - 1) / gm->cfg.page_size != gpa / gm->cfg.page_size)
		ret = back_unit(gm, r, gpa + len - 1, true);
	if (ret)
		return ret;
	if (run->mmio.is_write)
		memcpy(hva_of(r, gpa), run->mmio.data, len);
	else
		memcpy(run->mmio.data, hva_of(r, gpa), len);
	return 1;
}

static int back_range(struct guestmem *gm, uint64_t gpa, uint64_t len,
		      bool fault)
{
	uint64_t end = gpa + len;

	gpa &= ~(gm->cfg.page_size - 1);
	for (; gpa < end; gpa += gm->cfg.page_size) {
		struct region *r = find(gm, gpa);
		int ret;

		if (!r)
			return -EFAULT;
		ret = back_unit(gm, r, gpa, fault);
		if (ret)
			return ret;
	}
	return 0;
}

static int memory_fault(struct guestmem *gm, struct kvm_run *run)
{
	struct gmm_kvm_memory_fault *mf = gmm_kvm_memory_fault(run);
	uint64_t size = mf->size ? mf->size : 1;
	int ret;

	if (!guestmem_is_ram(gm, mf->gpa, size))
		return 0;
	if (mf->flags & KVM_MEMORY_EXIT_FLAG_PRIVATE)
		return -EINVAL;
	if (gm->gr)
		ret = gmm_ram_back(gm->gr, mf->gpa, size);
	else
		ret = back_range(gm, mf->gpa, size, true);
	return ret ? ret : 1;
}

int guestmem_fault(struct guestmem_vcpu *v, struct kvm_run *run)
{
	if (run->exit_reason == KVM_EXIT_MMIO)
		return complete_mmio(v->gm, run);
	if (run->exit_reason == KVM_EXIT_MEMORY_FAULT)
		return memory_fault(v->gm, run);
	return 0;
}

static int copy(struct guestmem *gm, uint64_t gpa, void *buf, size_t len,
		bool write)
{
	while (len) {
		struct region *r = find(gm, gpa);
		uint64_t unit_end, chunk;
		int ret;

		if (!r)
			return -EFAULT;
		unit_end = (gpa | (gm->cfg.page_size - 1)) + 1;
		chunk = unit_end - gpa < len ? unit_end - gpa : len;
		ret = back_unit(gm, r, gpa, false);
		if (ret)
			return ret;
		if (write)
			memcpy(hva_of(r, gpa), buf, chunk);
		else
			memcpy(buf, hva_of(r, gpa), chunk);
		buf = (char *)buf + chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

int guestmem_read(struct guestmem *gm, uint64_t gpa, void *buf, size_t len)
{
	if (!guestmem_is_ram(gm, gpa, len))
		return -EFAULT;
	if (gm->gr)
		return gmm_ram_copy(gm->gr, gpa, buf, len, false);
	return copy(gm, gpa, buf, len, false);
}

int guestmem_write(struct guestmem *gm, uint64_t gpa, const void *buf,
		   size_t len)
{
	if (!guestmem_is_ram(gm, gpa, len))
		return -EFAULT;
	if (gm->gr)
		return gmm_ram_copy(gm->gr, gpa, (void *)buf, len, true);
	return copy(gm, gpa, (void *)buf, len, true);
}

static int discard_unit(struct guestmem *gm, struct region *r, uint64_t unit)
{
	uint64_t off = unit * gm->cfg.page_size;
	pthread_mutex_t *lock = &gm->lock[unit % NR_STRIPES];
	int ret = 0;

	if (gm->cfg.mode == GUESTMEM_PLAIN) {
		if (madvise((char *)r->slot.hva + off, gm->cfg.page_size,
			    MADV_DONTNEED))
			return -errno;
		atomic_fetch_add(&gm->discards, 1);
		return 0;
	}
	pthread_mutex_lock(lock);
	if (atomic_load(&r->state[unit])) {
		ret = unmap_backing(r, off, gm->cfg.page_size);
		if (!ret) {
			atomic_store(&r->state[unit], 0);
			atomic_fetch_sub(&gm->backed, 1);
			atomic_fetch_add(&gm->discards, 1);
		}
	}
	pthread_mutex_unlock(lock);
	return ret;
}

int guestmem_discard(struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	uint64_t ps = gm->cfg.page_size;
	uint64_t start = (gpa + ps - 1) & ~(ps - 1);
	uint64_t end = (gpa + len) & ~(ps - 1);

	if (!guestmem_is_ram(gm, gpa, len))
		return -EFAULT;
	if (gm->gr)
		return gmm_ram_discard(gm->gr, gpa, len);
	for (; start < end; start += ps) {
		struct region *r = find(gm, start);
		int ret;

		if (!r)
			return -EFAULT;
		ret = discard_unit(gm, r, (start - r->slot.gpa) / ps);
		if (ret)
			return ret;
	}
	return 0;
}

void guestmem_get_stats(struct guestmem *gm, struct guestmem_stats *st)
{
	if (gm->gr) {
		gmm_ram_stats(gm->gr, st);
		return;
	}
	memset(st, 0, sizeof(*st));
	st->faults = atomic_load(&gm->faults);
	st->backed = atomic_load(&gm->backed);
	st->discards = atomic_load(&gm->discards);
	st->page_size = gm->cfg.page_size;
}
