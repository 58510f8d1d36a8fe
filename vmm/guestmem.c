/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem.c - guest RAM for every memory mode: the layout and the one
 * region table, the fault entry point for vCPU exits, the vCPU hooks, the
 * bounds-checked accessors, pins, discard and populate; each reaches the
 * mode through its ops table (guestmem_impl.h) after one region lookup.
 */
#include "guestmem_impl.h"
#include <gmm/guest.h>
#include <gmm/kvm_compat.h>
#include <gmm/thread.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB		(1ULL << 20)
#define PIN_MAX		UINT16_MAX

struct guestmem_vcpu {
	struct guestmem *gm;
	unsigned int cpu;
	uint64_t discard_seq;	/* gm->discard_seq when it last entered KVM_RUN */
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

const char *guestmem_faults_name(enum guestmem_faults faults)
{
	return faults == GUESTMEM_FAULTS_UFFD ? "userfaultfd" : "exits";
}

static const struct guestmem_ops *mode_ops(enum guestmem_mode mode)
{
	switch (mode) {
	case GUESTMEM_GMM:
		return &guestmem_gmm_ops;
	case GUESTMEM_LAZY:
		return &guestmem_lazy_ops;
	default:
		return &guestmem_plain_ops;
	}
}

static int add_slot(struct guestmem *gm, uint64_t gpa, uint64_t size, unsigned int node)
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
	uint64_t unit = cfg->mode == GUESTMEM_GMM && cfg->page_size < 2 * MIB ?
			2 * MIB : cfg->page_size;

	if (!cfg->nr_nodes || cfg->nr_nodes > GUESTMEM_MAX_NODES) {
		snprintf(err, errlen, "between 1 and %d guest NUMA nodes are supported",
			 GUESTMEM_MAX_NODES);
		return -1;
	}
	if (cfg->mode == GUESTMEM_GMM && cfg->page_size > 2 * MIB) {
		snprintf(err, errlen, "--memory-mode gmm backs guest RAM with pages of at most 2 MiB (use --hugepages 2M or --memory-mode lazy)");
		return -1;
	}
	if (cfg->uffd_handlers > GUESTMEM_UFFD_MAX_HANDLERS) {
		snprintf(err, errlen, "at most %d userfaultfd handler threads",
			 GUESTMEM_UFFD_MAX_HANDLERS);
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

/* Pin counts, one per unit; untouched pages of the array cost nothing. */
static int alloc_pins(struct guestmem *gm, char *err, size_t errlen)
{
	for (unsigned int i = 0; i < gm->nr; i++) {
		struct region *r = &gm->reg[i];
		void *p;

		r->pins_bytes = r->slot.size / gm->unit * sizeof(*r->pins);
		p = mmap(NULL, r->pins_bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			r->pins_bytes = 0;
			snprintf(err, errlen, "out of memory for the pin counts");
			return -1;
		}
		r->pins = p;
	}
	return 0;
}

static int setup(struct guestmem *gm, char *err, size_t errlen)
{
	bool uffd = gm->cfg.faults == GUESTMEM_FAULTS_UFFD && gm->cfg.mode != GUESTMEM_PLAIN;

	if (layout(gm)) {
		snprintf(err, errlen, "guest memory layout needs too many memslots");
		return -1;
	}
	if (alloc_pins(gm, err, errlen))
		return -1;
	if (uffd && guestmem_uffd_open(gm, err, errlen))
		return -1;
	if (gm->ops->setup(gm, err, errlen))
		return -1;
	return uffd ? guestmem_uffd_start(gm, err, errlen) : 0;
}

struct guestmem *guestmem_create(const struct guestmem_cfg *cfg, char *err, size_t errlen)
{
	struct guestmem *gm;

	if (check_cfg(cfg, err, errlen))
		return NULL;
	gm = calloc(1, sizeof(*gm));
	if (!gm) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	gm->cfg = *cfg;
	gm->ops = mode_ops(cfg->mode);
	gm->unit = cfg->mode == GUESTMEM_GMM ? 4096 : cfg->page_size;
	gm->uffd = gm->stop_fd = -1;
	for (int i = 0; i < GUESTMEM_STRIPES; i++)
		pthread_mutex_init(&gm->lock[i], NULL);
	pthread_mutex_init(&gm->pin_lock, NULL);
	pthread_mutex_init(&gm->why_lock, NULL);
	pthread_rwlock_init(&gm->devram_lock, NULL);
	if (setup(gm, err, errlen)) {
		guestmem_destroy(gm);
		return NULL;
	}
	return gm;
}

void guestmem_destroy(struct guestmem *gm)
{
	if (!gm)
		return;
	guestmem_khugepaged(gm, false, NULL); /* it may use the userfaultfd */
	guestmem_uffd_release(gm);
	gm->ops->destroy(gm);
	for (unsigned int i = 0; i < gm->nr; i++) {
		if (gm->reg[i].pins_bytes)
			munmap((void *)gm->reg[i].pins, gm->reg[i].pins_bytes);
	}
	guestmem_devram_destroy(gm);
	free(gm);
}

void guestmem_release(struct guestmem *gm)
{
	guestmem_khugepaged(gm, false, NULL); /* it may use the userfaultfd */
	guestmem_uffd_release(gm);
}

unsigned int guestmem_nr_slots(const struct guestmem *gm)
{
	return gm->nr;
}

const struct guestmem_slot *guestmem_slot(const struct guestmem *gm, unsigned int i)
{
	return i < gm->nr ? &gm->reg[i].slot : NULL;
}

static _Thread_local bool fault_thread;

bool guestmem_on_fault_thread(void)
{
	return fault_thread;
}

void guestmem_mark_fault_thread(void)
{
	fault_thread = true;
}

struct guestmem_vcpu *guestmem_vcpu_attach(struct guestmem *gm, unsigned int cpu)
{
	struct guestmem_vcpu *v = calloc(1, sizeof(*v));

	fault_thread = true;

	if (!v)
		return NULL;
	if (gm->ops->attach(gm)) {
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
	v->gm->ops->detach(v->gm);
	free(v);
}

/* The gmm_thread_* calls do nothing on a thread that is not attached. */
void guestmem_vcpu_offline(struct guestmem_vcpu *v)
{
	v->discard_seq = atomic_load(&v->gm->discard_seq);
	if (v->gm->ops->gmm_thread)
		gmm_thread_offline();
}

void guestmem_vcpu_online(struct guestmem_vcpu *v)
{
	if (v->gm->ops->gmm_thread)
		gmm_thread_online();
}

void guestmem_vcpu_quiescent(struct guestmem_vcpu *v)
{
	if (v->gm->ops->gmm_thread)
		gmm_thread_quiescent();
}

struct region *guestmem_find(const struct guestmem *gm, uint64_t gpa)
{
	for (unsigned int i = 0; i < gm->nr; i++) {
		const struct region *r = &gm->reg[i];

		if (gpa >= r->slot.gpa && gpa - r->slot.gpa < r->slot.size)
			return (struct region *)r;
	}
	return NULL;
}

struct region *guestmem_find_hva(const struct guestmem *gm, uintptr_t hva)
{
	for (unsigned int i = 0; i < gm->nr; i++) {
		const struct region *r = &gm->reg[i];
		uintptr_t start = (uintptr_t)r->slot.hva;

		if (hva >= start && hva - start < r->slot.size)
			return (struct region *)r;
	}
	return NULL;
}

/* The region holding all of [gpa, gpa + len), or NULL. */
static struct region *find_range(const struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	struct region *r = guestmem_find(gm, gpa);

	if (!r || len > r->slot.size - (gpa - r->slot.gpa))
		return NULL;
	return r;
}

bool guestmem_is_ram(const struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	return find_range(gm, gpa, len) != NULL ||
	       guestmem_devram_is_ram((struct guestmem *)gm, gpa, len);
}

/* An exit's access: the pages [gpa, end) and, for MMIO, the data to complete. */
struct access {
	uint64_t gpa, end;
	unsigned int len;	/* MMIO: bytes; KVM_EXIT_MEMORY_FAULT: 0 */
	bool is_write;
	void *data;
};

/* 1: RAM, a in it; 0: not RAM (a device's); negative: a bad exit. */
static int decode(struct guestmem *gm, struct kvm_run *run, struct access *a, struct region **r)
{
	struct gmm_kvm_memory_fault *mf = gmm_kvm_memory_fault(run);

	if (run->exit_reason == KVM_EXIT_MMIO) {
		*a = (struct access){ run->mmio.phys_addr, 0, run->mmio.len, run->mmio.is_write,
				      run->mmio.data };
		*r = guestmem_find(gm, a->gpa);
		if (!*r)
			return 0;
		if (a->len > sizeof(run->mmio.data) || !find_range(gm, a->gpa, a->len))
			return -EFAULT;
		a->end = a->gpa + 1;	/* one call backs the access, straddling or not */
		return 1;
	}
	if (run->exit_reason != KVM_EXIT_MEMORY_FAULT)
		return 0;
	*a = (struct access){ mf->gpa & ~4095ULL, mf->gpa + (mf->size ? mf->size : 1), 0, false,
			      NULL };
	*r = find_range(gm, mf->gpa, a->end - mf->gpa);
	if (!*r)
		return 0;
	return mf->flags & KVM_MEMORY_EXIT_FLAG_PRIVATE ? -EINVAL : 1;
}

/*
 * The vCPU exit's path to the pool: guestmem_fault -> ops->fault (gmm:
 * gmm_fault) -> gmm_guest_fault -> back_range -> back_page -> gmm_alloc.
 */
int guestmem_fault(struct guestmem_vcpu *v, struct kvm_run *run)
{
	struct guestmem *gm = v->gm;
	struct region *r;
	struct access a;
	int ret = decode(gm, run, &a, &r);

	for (; ret > 0 && a.gpa < a.end; a.gpa += 4096) {
		int err = gm->ops->fault(gm, r, a.gpa, a.len, a.is_write, a.data);

		if (err)
			return err;
	}
	return ret;
}

/*
 * gmm mode: compaction may have write-protected the page for a copy (the
 * bare -EFAULT names no address).  Wait up to EFAULT_MIGRATION_WAIT_MS for
 * a migration to end; true when one did, so the vCPU re-enters.
 */
#define EFAULT_MIGRATION_WAIT_MS	100

static bool migration_ended(struct guestmem_vcpu *v)
{
	struct gmm_guest *g = guestmem_gmm_guest(v->gm);
	bool ended = false;
	uint64_t before;

	if (!g)
		return false;
	before = gmm_guest_migrated(g);
	guestmem_vcpu_offline(v);	/* a migration may wait for our cache */
	for (int i = 0; i < EFAULT_MIGRATION_WAIT_MS && !ended; i++) {
		struct timespec ts = { .tv_nsec = 1000000 };

		nanosleep(&ts, NULL);
		ended = gmm_guest_migrated(g) != before;
	}
	guestmem_vcpu_online(v);
	return ended;
}

int guestmem_efault(struct guestmem_vcpu *v, char *why, size_t whylen)
{
	struct guestmem *gm = v->gm;
	uint64_t seq;

	if (gm->uffd < 0) {
		snprintf(why, whylen, "KVM gave no exit for a guest access%s",
			 gm->cfg.mode == GUESTMEM_PLAIN ? "" :
			 " (unbacked pages exit only on some kernels: try --fault-path uffd)");
		return 0;
	}
	if (atomic_load(&gm->uffd_err)) {
		pthread_mutex_lock(&gm->why_lock);
		snprintf(why, whylen, "%s", gm->uffd_why);
		pthread_mutex_unlock(&gm->why_lock);
		return 0;
	}
	seq = atomic_load(&gm->discard_seq);
	if (seq == v->discard_seq && !(seq & 1)) {
		if (migration_ended(v))
			return 1;
		snprintf(why, whylen, "an access outside any backed or placeholder guest page");
		return 0;
	}
	while (atomic_load(&gm->discard_seq) & 1)
		sched_yield();
	return 1;
}

static int copy(struct guestmem *gm, uint64_t gpa, void *buf, size_t len, bool write)
{
	struct region *r = find_range(gm, gpa, len);

	if (!r)
		return guestmem_devram_copy(gm, gpa, buf, len, write);
	return len ? gm->ops->copy(gm, r, gpa, buf, len, write) : 0;
}

int guestmem_read(struct guestmem *gm, uint64_t gpa, void *buf, size_t len)
{
	return copy(gm, gpa, buf, len, false);
}

int guestmem_write(struct guestmem *gm, uint64_t gpa, const void *buf, size_t len)
{
	return copy(gm, gpa, (void *)buf, len, true);
}

int guestmem_populate(struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	struct region *r = find_range(gm, gpa, len);

	if (!r)
		return -EFAULT;
	return len ? gm->ops->populate(gm, r, gpa, len) : 0;
}

static uint64_t unit_index(const struct guestmem *gm, const struct region *r, uint64_t gpa)
{
	return (gpa - r->slot.gpa) / gm->unit;
}

/* Discard the unpinned runs of whole units in [start, end) of r (pin_lock held). */
static int discard_unpinned(struct guestmem *gm, struct region *r, uint64_t start, uint64_t end)
{
	bool busy = false;
	int ret = 0;

	while (start < end && !ret) {
		uint64_t stop = start;

		while (stop < end && !atomic_load(&r->pins[unit_index(gm, r, stop)]))
			stop += gm->unit;
		if (stop > start)
			ret = gm->ops->discard(gm, r, start, stop - start);
		for (start = stop; start < end && atomic_load(&r->pins[unit_index(gm, r, start)]);)
			start += gm->unit;
		busy |= start > stop;
	}
	return ret ? ret : busy ? -EBUSY : 0;
}

int guestmem_discard(struct guestmem *gm, uint64_t gpa, uint64_t len)
{
	struct region *r = find_range(gm, gpa, len);
	uint64_t start = (gpa + gm->unit - 1) & ~(gm->unit - 1);
	uint64_t end = (gpa + len) & ~(gm->unit - 1);
	int ret;

	if (!r)
		return guestmem_devram_discard(gm, gpa, len);
	if (end <= start)
		return 0;
	pthread_mutex_lock(&gm->pin_lock);
	atomic_fetch_add(&gm->discard_seq, 1);
	ret = discard_unpinned(gm, r, start, end);
	atomic_fetch_add(&gm->discard_seq, 1);
	pthread_mutex_unlock(&gm->pin_lock);
	return ret;
}

/* Add delta to the pin count of every unit of [gpa, gpa + len) (pin_lock held). */
static bool pin_units(struct guestmem *gm, struct region *r, uint64_t gpa, size_t len, int delta)
{
	uint64_t first = unit_index(gm, r, gpa), last = unit_index(gm, r, gpa + len - 1);

	for (uint64_t u = first; delta > 0 && u <= last; u++) {
		if (atomic_load(&r->pins[u]) == PIN_MAX)
			return false;
	}
	for (uint64_t u = first; u <= last; u++)
		atomic_fetch_add(&r->pins[u], delta);
	return true;
}

void *guestmem_pin(struct guestmem *gm, uint64_t gpa, size_t len)
{
	struct region *r = find_range(gm, gpa, len ? len : 1);
	bool ok;
	int ret;

	if (!r) {
		errno = EFAULT;
		return NULL;
	}
	len = len ? len : 1;
	pthread_mutex_lock(&gm->pin_lock);
	ok = pin_units(gm, r, gpa, len, 1);
	pthread_mutex_unlock(&gm->pin_lock);
	if (!ok) {
		errno = EBUSY;
		return NULL;
	}
	ret = gm->ops->pin ? gm->ops->pin(gm, r, gpa, len) : gm->ops->populate(gm, r, gpa, len);
	if (ret) {
		pthread_mutex_lock(&gm->pin_lock);
		pin_units(gm, r, gpa, len, -1);
		pthread_mutex_unlock(&gm->pin_lock);
		errno = -ret;
		return NULL;
	}
	return guestmem_hva(r, gpa);
}

void guestmem_unpin(struct guestmem *gm, uint64_t gpa, size_t len)
{
	struct region *r = find_range(gm, gpa, len ? len : 1);

	if (!r)
		return;
	pthread_mutex_lock(&gm->pin_lock);
	pin_units(gm, r, gpa, len ? len : 1, -1);
	pthread_mutex_unlock(&gm->pin_lock);
	if (gm->ops->unpin)
		gm->ops->unpin(gm, r, gpa, len ? len : 1);
}

void guestmem_get_stats(struct guestmem *gm, struct guestmem_stats *st)
{
	memset(st, 0, sizeof(*st));
	gm->ops->stats(gm, st);
	st->uffd_faults = atomic_load(&gm->uffd_faults);
}
