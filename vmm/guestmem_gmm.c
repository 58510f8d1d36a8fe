/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem_gmm.c - the "gmm" guest memory mode: one libgmm pool over a
 * memfd (shmem, or hugetlbfs 2 MiB pages) with one pool node per guest NUMA
 * node bound to its host node, one gmm guest whose RAM regions are
 * guestmem's slots, eager population, free page reporting, and the ops
 * table guestmem.c dispatches faults, accesses, pins and discards to.
 */
#include "guestmem_impl.h"
#include <gmm/gmm.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB			(1ULL << 20)
#define MIN_BLOCK		(4 * MIB)	/* 2^max_order frames */
#define MAX_BLOCK		(128 * MIB)	/* the pool's default */
#define PROGRESS_MIN_BYTES	(512 * MIB)	/* a "large guest" */

struct gmm_ram {
	struct gmm_pool *pool;
	struct gmm_guest *guest;
	void *memfd;			/* the pool's backing context; it frees it */
	bool khugepaged;		/* guestmem_khugepaged() started it, atomic */
};

struct progress {
	struct timespec t0;
	bool tty;
};

static uint64_t round_up(uint64_t x, uint64_t to)
{
	return (x + to - 1) / to * to;
}

/*
 * Frames a pool of @bytes keeps back from movable allocations: its min
 * watermark (the kernel's min_free_kbytes = sqrt(16 * KiB)) twice over plus
 * the low/high steps, so a guest can back every page of its RAM.
 */
static uint64_t watermark_headroom(uint64_t bytes)
{
	uint64_t min_kib = (uint64_t)sqrt((double)(bytes >> 10) * 16);

	if (min_kib < 128)
		min_kib = 128;
	if (min_kib > 262144)
		min_kib = 262144;
	return round_up((2 * min_kib << 10) + (bytes >> 8), 2 * MIB);
}

/* Memory blocks of about 1/64 of the pool, 4 to 128 MiB: little rounding. */
static uint64_t block_bytes(uint64_t total)
{
	uint64_t b = MIN_BLOCK;

	while (b < MAX_BLOCK && b * 2 <= total / 64)
		b *= 2;
	return b;
}

static uint64_t node_bytes(const struct guestmem_cfg *cfg, unsigned int n, uint64_t block)
{
	uint64_t size = cfg->nodes[n].size;

	size += watermark_headroom(size);
	if (n == 0)
		size += cfg->device_bytes;
	size += cfg->node_device_bytes[n];
	return round_up(size, block);
}

static int make_backing(struct gmm_ram *gr, const struct guestmem_cfg *cfg, char *err,
			size_t errlen)
{
	struct gmm_memfd_config mc = { .page_size = cfg->page_size > 4096 ? cfg->page_size : 0 };
	int ret = gmm_memfd_create(&mc, &gr->memfd);

	if (ret)
		snprintf(err, errlen, "%s%s", mc.page_size ? "--hugepages: " : "",
			 gmm_last_error());
	return ret;
}

static int make_pool(struct gmm_ram *gr, const struct guestmem_cfg *cfg, char *err,
		     size_t errlen)
{
	struct gmm_pool_config pc;
	uint64_t total = 0, block;
	int ret;

	for (unsigned int n = 0; n < cfg->nr_nodes; n++)
		total += cfg->nodes[n].size + cfg->node_device_bytes[n];
	block = block_bytes(total + cfg->device_bytes);
	gmm_pool_config_init(&pc, 0);
	pc.nr_nodes = cfg->nr_nodes;
	pc.block_bytes = block;
	pc.backing = &gmm_backing_memfd;
	pc.backing_ctx = gr->memfd;
	for (unsigned int n = 0; n < cfg->nr_nodes; n++) {
		pc.nodes[n].normal_bytes = node_bytes(cfg, n, block);
		pc.nodes[n].host_node = cfg->nodes[n].host_node;
	}
	ret = gmm_pool_create(&pc, &gr->pool);
	if (ret) {
		snprintf(err, errlen, "cannot create the gmm pool for %llu MiB of guest RAM: %s",
			 (unsigned long long)(total / MIB), gmm_last_error());
		gmm_backing_memfd.destroy(gr->memfd); /* still ours: the pool was not made */
		gr->memfd = NULL;
	}
	return ret;
}

static void ram_destroy(struct gmm_ram *gr);

static struct gmm_ram *ram_create(const struct guestmem_cfg *cfg, int uffd,
				  uint64_t uffd_features, char *err, size_t errlen)
{
	struct gmm_ram *gr = calloc(1, sizeof(*gr));
	struct gmm_guest_config gc;

	if (!gr) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (make_backing(gr, cfg, err, errlen))
		goto fail;
	/* on failure the pool has freed the backing (except for a config it
	 * refuses outright, which make_pool never builds) */
	if (make_pool(gr, cfg, err, errlen))
		goto fail;
	gmm_guest_config_init(&gc);
	gc.uffd = uffd;
	gc.uffd_features = uffd_features;
	gc.write_stop = cfg->write_stop;
	gc.max_mappings = cfg->max_mappings;
	if (gmm_guest_create(gr->pool, &gc, &gr->guest)) {
		snprintf(err, errlen, "cannot create the gmm guest: %s", gmm_last_error());
		goto fail;
	}
	return gr;
fail:
	ram_destroy(gr);
	return NULL;
}

static int ram_add(struct gmm_ram *gr, struct guestmem_slot *slot, char *err, size_t errlen)
{
	struct gmm_memslot ms;
	int ret = gmm_guest_add_ram(gr->guest, slot->gpa, slot->size, (int)slot->node, &ms);

	if (ret) {
		snprintf(err, errlen, "cannot add guest RAM [0x%llx, +%llu MiB): %s",
			 (unsigned long long)slot->gpa, (unsigned long long)(slot->size / MIB),
			 gmm_last_error());
		return ret;
	}
	slot->hva = ms.hva;
	return 0;
}

static void show_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	struct timespec t;
	double s;

	if (done < total) {
		if (p->tty)
			fprintf(stderr, "\rprealloc: %llu/%llu MiB", (unsigned long long)(done / MIB),
				(unsigned long long)(total / MIB));
		return;
	}
	if (!p->tty && total < PROGRESS_MIN_BYTES)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	s = (double)(t.tv_sec - p->t0.tv_sec) + (double)(t.tv_nsec - p->t0.tv_nsec) / 1e9;
	fprintf(stderr, "%sprealloc: %llu MiB populated in %.2f s\n", p->tty ? "\r" : "",
		(unsigned long long)(total / MIB), s);
}

static int ram_prealloc(struct gmm_ram *gr, char *err, size_t errlen)
{
	struct gmm_memslot ms[GMM_GUEST_MAX_REGIONS];
	struct progress p = { .tty = isatty(STDERR_FILENO) };
	unsigned int n;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &p.t0);
	ret = gmm_pool_populate(gr->pool, 0, UINT64_MAX, 0, show_progress, &p);
	if (ret) {
		snprintf(err, errlen, "prealloc: %s", gmm_last_error());
		return ret;
	}
	n = gmm_guest_memslots(gr->guest, ms, GMM_GUEST_MAX_REGIONS);
	for (unsigned int i = 0; i < n && !ret; i++)
		ret = gmm_guest_populate(gr->guest, ms[i].gpa, ms[i].size);
	if (ret)
		snprintf(err, errlen, "prealloc: %s", gmm_last_error());
	return ret;
}

static int start_reporting(struct gmm_ram *gr, unsigned int delay_ms, char *err,
			    size_t errlen)
{
	struct gmm_report_config rc = { .delay_ms = delay_ms };
	int ret;

	if (!delay_ms)
		return 0;
	ret = gmm_report_start(gr->pool, &rc);
	if (ret)
		snprintf(err, errlen, "cannot start free page reporting: %s", gmm_last_error());
	return ret;
}

static void ram_destroy(struct gmm_ram *gr)
{
	if (!gr)
		return;
	if (gr->pool)
		gmm_report_stop(gr->pool);
	gmm_guest_destroy(gr->guest);
	gmm_pool_destroy(gr->pool);
	free(gr);
}

static int gmm_setup(struct guestmem *gm, char *err, size_t errlen)
{
	struct gmm_ram *gr = ram_create(&gm->cfg, gm->uffd, gm->uffd_features, err, errlen);

	if (!gr)
		return -1;
	gm->priv = gr;
	for (unsigned int i = 0; i < gm->nr; i++) {
		if (ram_add(gr, &gm->reg[i].slot, err, errlen))
			return -1;
	}
	if (gm->cfg.prealloc && ram_prealloc(gr, err, errlen))
		return -1;
	if (start_reporting(gr, gm->cfg.report_delay_ms, err, errlen))
		return -1;
	if (gm->cfg.khugepaged && guestmem_khugepaged(gm, true, NULL)) {
		snprintf(err, errlen, "cannot start khugepaged: %s", gmm_last_error());
		return -1;
	}
	return 0;
}

static void gmm_destroy(struct guestmem *gm)
{
	ram_destroy(gm->priv);
}

static struct gmm_guest *guest_of(const struct guestmem *gm)
{
	return ((struct gmm_ram *)gm->priv)->guest;
}

struct gmm_pool *guestmem_gmm_pool(const struct guestmem *gm)
{
	return gm->ops == &guestmem_gmm_ops && gm->priv ? ((struct gmm_ram *)gm->priv)->pool : NULL;
}

int guestmem_frame_fd(const struct guestmem *gm, uint64_t pfn, int *fd, uint64_t *off)
{
	struct gmm_ram *gr = gm->ops == &guestmem_gmm_ops ? gm->priv : NULL;

	if (!gr)
		return -EOPNOTSUPP;
	return gmm_backing_memfd.frame_fd(gr->memfd, pfn, fd, off);
}

int guestmem_khugepaged(struct guestmem *gm, bool enable, const struct gmm_khugepaged_config *cfg)
{
	struct gmm_ram *gr = gm->ops == &guestmem_gmm_ops ? gm->priv : NULL;
	int ret;

	if (!gr)
		return -EOPNOTSUPP;
	if (!enable) {
		gmm_khugepaged_stop(gr->pool);
		__atomic_store_n(&gr->khugepaged, false, __ATOMIC_RELAXED);
		return 0;
	}
	if (guestmem_khugepaged_running(gm))
		return gmm_khugepaged_configure(gr->pool, cfg);
	ret = gmm_khugepaged_start(gr->pool, cfg);
	if (!ret)
		__atomic_store_n(&gr->khugepaged, true, __ATOMIC_RELAXED);
	return ret;
}

bool guestmem_khugepaged_running(const struct guestmem *gm)
{
	const struct gmm_ram *gr = gm->ops == &guestmem_gmm_ops ? gm->priv : NULL;

	return gr && __atomic_load_n(&gr->khugepaged, __ATOMIC_RELAXED);
}

int guestmem_set_pause(struct guestmem *gm, const struct gmm_pause_ops *ops, void *ctx)
{
	struct gmm_guest *g = guestmem_gmm_guest(gm);

	return g ? gmm_guest_set_pause(g, ops, ctx) : -EOPNOTSUPP;
}

struct gmm_guest *guestmem_gmm_guest(const struct guestmem *gm)
{
	return gm->ops == &guestmem_gmm_ops && gm->priv ? guest_of(gm) : NULL;
}

const char *guestmem_strerror(const struct guestmem *gm, int err)
{
	if (gm->ops == &guestmem_gmm_ops && err == -ENOSPC)
		return gmm_last_error();
	return strerror(-err);
}

/* A vCPU exit, a userfaultfd fault or a KVM_EXIT_MEMORY_FAULT page. */
static int gmm_fault(struct guestmem *gm, struct region *r, uint64_t gpa, unsigned int len,
		     bool is_write, void *data)
{
	(void)r;
	return gmm_guest_fault(guest_of(gm), gpa, len, is_write, data);
}

static int gmm_populate(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len)
{
	(void)r;
	return gmm_guest_populate(guest_of(gm), gpa, len);
}

static int gmm_copy(struct guestmem *gm, struct region *r, uint64_t gpa, void *buf, size_t len,
		    bool write)
{
	(void)r;
	if (write)
		return gmm_guest_write(guest_of(gm), gpa, buf, len);
	return gmm_guest_read(guest_of(gm), gpa, buf, len);
}

/* Whole 4 KiB pages (on hugetlbfs, gmm keeps whole 2 MiB pages). */
static int gmm_discard(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len)
{
	(void)r;
	return gmm_guest_discard(guest_of(gm), gpa, len);
}

/* Pinned pages are never migrated: a device may write them through the pointer. */
static int gmm_pin(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len)
{
	(void)r;
	return gmm_guest_pin(guest_of(gm), gpa, len);
}

static void gmm_unpin(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len)
{
	(void)r;
	gmm_guest_unpin(guest_of(gm), gpa, len);
}

static void gmm_stats(struct guestmem *gm, struct guestmem_stats *st)
{
	struct gmm_guest_stats gs;

	st->page_size = GMM_PAGE_SIZE;
	if (gmm_guest_stats(guest_of(gm), &gs))
		return;
	st->faults = gs.faults;
	st->backed = gs.backed_pages;
	st->discards = gs.discarded_pages;
	st->huge_faults = gs.huge_faults;
	st->huge_bytes = gs.huge_bytes;
	st->mappings = gs.host_mappings;
	st->mappings_per_gib = gs.mappings_per_gib;
	st->mappings_max = gs.host_mappings_max;
}

static int gmm_attach(struct guestmem *gm)
{
	return gmm_thread_attach(((struct gmm_ram *)gm->priv)->pool);
}

static void gmm_detach(struct guestmem *gm)
{
	gmm_thread_detach(((struct gmm_ram *)gm->priv)->pool);
}

const struct guestmem_ops guestmem_gmm_ops = {
	.setup = gmm_setup,
	.destroy = gmm_destroy,
	.fault = gmm_fault,
	.populate = gmm_populate,
	.copy = gmm_copy,
	.discard = gmm_discard,
	.pin = gmm_pin,
	.unpin = gmm_unpin,
	.stats = gmm_stats,
	.attach = gmm_attach,
	.detach = gmm_detach,
	.gmm_thread = true,
};
