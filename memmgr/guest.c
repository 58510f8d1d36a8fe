/* SPDX-License-Identifier: MIT */
/*
 * memmgr/guest.c - the guest address space: RAM regions and their host
 * virtual ranges (memslots), the per-page backing map, mapping pool frames
 * into regions, the vCPU fault entry point, the VMM's accessors, discard,
 * populate, the reverse map in frame metadata, and guest statistics.
 *
 * A map entry is 0 (unbacked) or (pfn + 1), with MAP_HUGE when the frame
 * belongs to an unsplit block of the guest's huge unit (an order-9 block,
 * or on hugetlbfs a host page).  Locking is described in gmm/guest.h.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <gmm/guest.h>

#include "internal.h"

#define MAP_HUGE_BIT (1ull << 62)
#define MAP_PFN_MASK ((1ull << 40) - 1)
#define HUGE_ORDER GMM_PAGEBLOCK_ORDER
#define HUGE_PAGES GMM_PAGEBLOCK_PAGES
#define REGION_ALIGN (2ull << 20)
#define REGION_STRIPES 64 /* chunk locks per region, by 2 MiB chunk */

struct region {
	uint64_t gpa, size, nr_pages;
	char *hva;
	int node;
	uint64_t *map; /* per page, atomic */
	size_t map_bytes;
	/* shared: backing and accessing pages; exclusive: discard, teardown */
	pthread_rwlock_t lock;
	/* backing a 2 MiB chunk: stripes[chunk % REGION_STRIPES], under lock shared */
	pthread_mutex_t stripes[REGION_STRIPES];
};

struct gmm_guest {
	struct gmm_pool *pool;
	struct gmm_guest_config cfg;
	unsigned int id;
	unsigned int unit_order; /* host page order: frames are mapped in these */
	unsigned int nr_regions;
	struct region regions[GMM_GUEST_MAX_REGIONS];
	uint64_t faults, huge_faults, discarded; /* atomic */
};

static inline uint64_t entry_get(const struct region *r, uint64_t idx)
{
	return __atomic_load_n(&r->map[idx], __ATOMIC_ACQUIRE);
}

static inline void entry_set(struct region *r, uint64_t idx, uint64_t v)
{
	__atomic_store_n(&r->map[idx], v, __ATOMIC_RELEASE);
}

static inline uint64_t entry_pfn(uint64_t e)
{
	return (e & MAP_PFN_MASK) - 1;
}

/* --- creation -------------------------------------------------------------- */

void gmm_guest_config_init(struct gmm_guest_config *cfg)
{
	if (!cfg) {
		gmm_set_error(-EINVAL, "gmm_guest_config_init: NULL configuration");
		return;
	}
	memset(cfg, 0, sizeof(*cfg));
	cfg->huge_fault = true;
}

static int register_guest(struct gmm_pool *p, struct gmm_guest *g)
{
	int err = gmm_set_error(-ENOSPC, "pool has %d guests already", GMM_MAX_GUESTS - 1);

	pthread_mutex_lock(&p->guests_lock);
	for (unsigned int i = 1; i < GMM_MAX_GUESTS; i++) {
		if (!p->guests[i]) {
			p->guests[i] = g;
			g->id = i;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&p->guests_lock);
	return err;
}

int gmm_guest_create(struct gmm_pool *p, const struct gmm_guest_config *cfg,
		     struct gmm_guest **out)
{
	const struct gmm_backing_ops *ops;
	struct gmm_guest *g;
	int err;

	if (!p || !out)
		return gmm_set_error(-EINVAL, "gmm_guest_create: NULL argument");
	ops = p->cfg.backing;
	if (!ops->frame_fd)
		return gmm_set_error(-EOPNOTSUPP, "guest: backing '%s' cannot map frames into "
				     "guest RAM (use the memfd backing)", ops->name);
	g = calloc(1, sizeof(*g));
	if (!g)
		return gmm_set_error(-ENOMEM, "guest: out of memory");
	g->pool = p;
	if (cfg)
		g->cfg = *cfg;
	else
		gmm_guest_config_init(&g->cfg);
	g->unit_order = ops->page_order ? ops->page_order(p->cfg.backing_ctx) : 0;
	if (g->unit_order > p->max_order || g->unit_order > HUGE_ORDER) {
		err = gmm_set_error(-EINVAL, "guest: host pages of order %u cannot back guest "
				    "RAM (up to 2 MiB pages)", g->unit_order);
		free(g);
		return err;
	}
	err = register_guest(p, g);
	if (err) {
		free(g);
		return err;
	}
	*out = g;
	return 0;
}

unsigned int gmm_guest_id(const struct gmm_guest *g)
{
	if (!g) {
		gmm_set_error(-EINVAL, "gmm_guest_id: NULL guest");
		return 0;
	}
	return g->id;
}

static bool overlaps(const struct gmm_guest *g, uint64_t gpa, uint64_t size)
{
	for (unsigned int i = 0; i < g->nr_regions; i++) {
		const struct region *r = &g->regions[i];

		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return true;
	}
	return false;
}

/* Reserve an aligned PROT_NONE host range for the region. */
static char *reserve_hva(uint64_t size)
{
	char *area, *start;

	area = mmap(NULL, size + REGION_ALIGN, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (area == MAP_FAILED)
		return NULL;
	start = (char *)(((uintptr_t)area + REGION_ALIGN - 1) & ~(uintptr_t)(REGION_ALIGN - 1));
	if (start > area)
		munmap(area, (size_t)(start - area));
	munmap(start + size, (size_t)(area + REGION_ALIGN - start));
	return start;
}

static int check_ram(const struct gmm_guest *g, uint64_t gpa, uint64_t size, int node)
{
	if ((gpa | size) & (REGION_ALIGN - 1) || !size || gpa + size < gpa)
		return gmm_set_error(-EINVAL, "guest RAM [0x%llx, +0x%llx): must be non-empty "
				     "and 2 MiB aligned", (unsigned long long)gpa,
				     (unsigned long long)size);
	if ((gpa + size) >> GMM_PAGE_SHIFT > RMAP_GFN_MASK)
		return gmm_set_error(-EINVAL, "guest RAM beyond 2^60 bytes");
	if (node < 0 || node >= (int)g->pool->cfg.nr_nodes)
		return gmm_set_error(-EINVAL, "guest RAM: node %d is not in the pool", node);
	if (g->nr_regions == GMM_GUEST_MAX_REGIONS)
		return gmm_set_error(-ENOSPC, "guest has %d RAM regions already",
				     GMM_GUEST_MAX_REGIONS);
	if (overlaps(g, gpa, size))
		return gmm_set_error(-EINVAL, "guest RAM [0x%llx, +0x%llx) overlaps a region",
				     (unsigned long long)gpa, (unsigned long long)size);
	return 0;
}

static void region_init_locks(struct region *r)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	/* discards must not starve behind a stream of faults */
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&r->lock, &a);
	pthread_rwlockattr_destroy(&a);
	for (unsigned int i = 0; i < REGION_STRIPES; i++)
		pthread_mutex_init(&r->stripes[i], NULL);
}

/*
 * The region locks are held across allocations, which may drain the
 * per-thread caches and wait for every attached thread's quiescent state:
 * a thread that has to wait for one of them waits offline.
 */
static void region_lock(struct region *r, bool exclusive)
{
	bool was;

	if (!(exclusive ? pthread_rwlock_trywrlock(&r->lock) : pthread_rwlock_tryrdlock(&r->lock)))
		return;
	was = pcp_offline_begin();
	if (exclusive)
		pthread_rwlock_wrlock(&r->lock);
	else
		pthread_rwlock_rdlock(&r->lock);
	pcp_offline_end(was);
}

static pthread_mutex_t *chunk_lock(struct region *r, uint64_t idx)
{
	pthread_mutex_t *m = &r->stripes[(idx >> HUGE_ORDER) % REGION_STRIPES];
	bool was;

	if (!pthread_mutex_trylock(m))
		return m;
	was = pcp_offline_begin();
	pthread_mutex_lock(m);
	pcp_offline_end(was);
	return m;
}

static void fill_slot(const struct gmm_guest *g, unsigned int i, struct gmm_memslot *s)
{
	const struct region *r = &g->regions[i];

	s->slot = i;
	s->gpa = r->gpa;
	s->size = r->size;
	s->hva = r->hva;
	s->node = r->node;
}

int gmm_guest_add_ram(struct gmm_guest *g, uint64_t gpa, uint64_t size, int node,
		      struct gmm_memslot *slot)
{
	struct region *r;
	int err;

	if (!g)
		return gmm_set_error(-EINVAL, "gmm_guest_add_ram: NULL guest");
	err = check_ram(g, gpa, size, node);
	if (err)
		return err;
	r = &g->regions[g->nr_regions];
	memset(r, 0, sizeof(*r));
	r->gpa = gpa;
	r->size = size;
	r->nr_pages = size >> GMM_PAGE_SHIFT;
	r->node = node;
	r->map_bytes = r->nr_pages * sizeof(uint64_t);
	r->map = mmap(NULL, r->map_bytes, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->map == MAP_FAILED)
		return gmm_set_error(-ENOMEM, "guest RAM: cannot allocate the backing map");
	r->hva = reserve_hva(size);
	if (!r->hva) {
		munmap(r->map, r->map_bytes);
		return gmm_set_error(-ENOMEM, "guest RAM: cannot reserve %llu bytes of address "
				     "space", (unsigned long long)size);
	}
	region_init_locks(r);
	g->nr_regions++;
	if (slot)
		fill_slot(g, g->nr_regions - 1, slot);
	return 0;
}

unsigned int gmm_guest_memslots(const struct gmm_guest *g, struct gmm_memslot *out,
				unsigned int max)
{
	if (!g || (max && !out)) {
		gmm_set_error(-EINVAL, "gmm_guest_memslots: NULL argument");
		return 0;
	}
	for (unsigned int i = 0; i < g->nr_regions && i < max; i++)
		fill_slot(g, i, &out[i]);
	return g->nr_regions;
}

/* --- mapping ------------------------------------------------------------- */

static int map_frames(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t pfn,
		      uint64_t nr)
{
	struct gmm_pool *p = g->pool;
	uint64_t off;
	int fd, err;
	void *a;

	err = p->cfg.backing->frame_fd(p->cfg.backing_ctx, pfn, &fd, &off);
	if (err)
		return err;
	a = mmap(r->hva + (idx << GMM_PAGE_SHIFT), nr << GMM_PAGE_SHIFT, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, (off_t)off);
	if (a == MAP_FAILED)
		return gmm_set_error(-ENOMEM, "guest: mapping frame %llu at gpa 0x%llx: %s",
				     (unsigned long long)pfn,
				     (unsigned long long)(r->gpa + (idx << GMM_PAGE_SHIFT)),
				     strerror(errno));
	return 0;
}

static void unmap_pages(struct region *r, uint64_t idx, uint64_t nr)
{
	mmap(r->hva + (idx << GMM_PAGE_SHIFT), nr << GMM_PAGE_SHIFT, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
}

static void set_rmap(struct gmm_guest *g, uint64_t pfn, uint64_t gfn, uint64_t nr)
{
	for (uint64_t i = 0; i < nr; i++)
		g->pool->link[pfn + i] = gfn == UINT64_MAX ? 0 : rmap_make(g->id, gfn + i);
}

/* Map @nr frames from @pfn at page @idx and record them. */
static int install(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t pfn,
		   uint64_t nr, uint64_t flags)
{
	int err = map_frames(g, r, idx, pfn, nr);

	if (err)
		return err;
	set_rmap(g, pfn, (r->gpa >> GMM_PAGE_SHIFT) + idx, nr);
	for (uint64_t i = 0; i < nr; i++)
		entry_set(r, idx + i, (pfn + i + 1) | flags);
	return 0;
}

static bool range_unbacked(const struct region *r, uint64_t idx, uint64_t nr)
{
	for (uint64_t i = idx; i < idx + nr; i++)
		if (entry_get(r, i))
			return false;
	return true;
}

/* Back an aligned 2 MiB unit at once; false when no order-9 block came. */
static bool back_huge(struct gmm_guest *g, struct region *r, uint64_t idx)
{
	uint64_t base = idx & ~(HUGE_PAGES - 1), pfn;

	if (!range_unbacked(r, base, HUGE_PAGES))
		return false;
	pfn = gmm_alloc(g->pool, HUGE_ORDER, GMM_MOVABLE | GMM_ZERO, r->node);
	if (pfn == GMM_PFN_NONE)
		return false;
	if (install(g, r, base, pfn, HUGE_PAGES, MAP_HUGE_BIT)) {
		gmm_free(g->pool, pfn, HUGE_ORDER);
		return false;
	}
	__atomic_fetch_add(&g->huge_faults, 1, __ATOMIC_RELAXED);
	return true;
}

/* Back the page @idx of @r (under its chunk lock). */
static int back_page(struct gmm_guest *g, struct region *r, uint64_t idx)
{
	unsigned int u = g->unit_order;
	uint64_t base, pfn;
	int err;

	if (entry_get(r, idx))
		return 0;
	if (!u && g->cfg.huge_fault && back_huge(g, r, idx))
		return 0;
	base = idx & ~((1ull << u) - 1);
	pfn = gmm_alloc(g->pool, u, GMM_MOVABLE | GMM_ZERO, r->node);
	if (pfn == GMM_PFN_NONE)
		return gmm_set_error(-ENOMEM, "guest: no frame for gpa 0x%llx: %s",
				     (unsigned long long)(r->gpa + (idx << GMM_PAGE_SHIFT)),
				     gmm_last_error());
	err = install(g, r, base, pfn, 1ull << u, u ? MAP_HUGE_BIT : 0);
	if (err)
		gmm_free(g->pool, pfn, u);
	return err;
}

static bool range_backed(const struct region *r, uint64_t idx, uint64_t end)
{
	for (uint64_t i = idx; i < end; i++)
		if (!entry_get(r, i))
			return false;
	return true;
}

/*
 * Back pages [idx, end) of @r, with the region lock held shared: one 2 MiB
 * chunk at a time under its chunk lock, so threads faulting in different
 * chunks of one region proceed in parallel.
 */
static int back_range(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t end)
{
	while (idx < end) {
		uint64_t stop = (idx | (HUGE_PAGES - 1)) + 1;
		pthread_mutex_t *m;
		int err = 0;

		if (stop > end)
			stop = end;
		if (range_backed(r, idx, stop)) {
			idx = stop;
			continue;
		}
		m = chunk_lock(r, idx);
		for (; idx < stop && !err; idx++)
			err = back_page(g, r, idx);
		pthread_mutex_unlock(m);
		if (err)
			return err;
	}
	return 0;
}

/* --- lookup ----------------------------------------------------------------- */

/* The region holding [gpa, gpa + len); NULL with gmm_errno() -EFAULT (-EINVAL: no guest). */
static struct region *find_region(struct gmm_guest *g, uint64_t gpa, uint64_t len)
{
	if (!g) {
		gmm_set_error(-EINVAL, "guest access: NULL guest");
		return NULL;
	}
	for (unsigned int i = 0; i < g->nr_regions; i++) {
		struct region *r = &g->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r;
	}
	gmm_set_error(-EFAULT, "guest range [0x%llx, +0x%llx) is not in one RAM region",
		      (unsigned long long)gpa, (unsigned long long)len);
	return NULL;
}

uint64_t gmm_guest_gpa_to_pfn(struct gmm_guest *g, uint64_t gpa)
{
	struct region *r = find_region(g, gpa, 1);
	uint64_t e;

	if (!r)
		return GMM_PFN_NONE;
	e = entry_get(r, (gpa - r->gpa) >> GMM_PAGE_SHIFT);
	if (!e) {
		gmm_set_error(-ENOENT, "gpa 0x%llx is not backed", (unsigned long long)gpa);
		return GMM_PFN_NONE;
	}
	return entry_pfn(e);
}

/* --- fault and accessors -------------------------------------------------- */

int gmm_guest_fault(struct gmm_guest *g, uint64_t gpa, unsigned int len, bool is_write,
		    void *data)
{
	uint64_t idx, end;
	struct region *r;
	char *hva;
	int err;

	if (len > 8 || (len && !data))
		return gmm_set_error(-EINVAL, "guest fault: access of %u bytes%s", len,
				     len && !data ? " without data" : "");
	r = find_region(g, gpa, len ? len : 1);
	if (!r)
		return gmm_errno();
	idx = (gpa - r->gpa) >> GMM_PAGE_SHIFT;
	end = (gpa - r->gpa + (len ? len : 1) - 1) / GMM_PAGE_SIZE + 1;
	hva = r->hva + (gpa - r->gpa);
	region_lock(r, false);
	err = back_range(g, r, idx, end);
	if (!err && len) {
		if (is_write)
			memcpy(hva, data, len);
		else
			memcpy(data, hva, len);
	}
	pthread_rwlock_unlock(&r->lock);
	if (!err)
		__atomic_fetch_add(&g->faults, 1, __ATOMIC_RELAXED);
	return err;
}

/* Lock @r shared for an access to pages [idx, end), backing them first. */
static int lock_backed(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t end)
{
	int err;

	region_lock(r, false);
	err = back_range(g, r, idx, end);
	if (err)
		pthread_rwlock_unlock(&r->lock);
	return err;
}

static int access_range(struct gmm_guest *g, uint64_t gpa, void *buf, size_t len, bool write)
{
	struct region *r;
	uint64_t off;
	int err;

	if (!g || (!buf && len))
		return gmm_set_error(-EINVAL, "guest access: NULL %s", g ? "buffer" : "guest");
	if (!len)
		return 0;
	r = find_region(g, gpa, len);
	if (!r)
		return gmm_errno();
	off = gpa - r->gpa;
	err = lock_backed(g, r, off >> GMM_PAGE_SHIFT, (off + len - 1) / GMM_PAGE_SIZE + 1);
	if (err)
		return err;
	if (write)
		memcpy(r->hva + off, buf, len);
	else
		memcpy(buf, r->hva + off, len);
	pthread_rwlock_unlock(&r->lock);
	return 0;
}

int gmm_guest_read(struct gmm_guest *g, uint64_t gpa, void *buf, size_t len)
{
	return access_range(g, gpa, buf, len, false);
}

int gmm_guest_write(struct gmm_guest *g, uint64_t gpa, const void *buf, size_t len)
{
	return access_range(g, gpa, (void *)buf, len, true);
}

void *gmm_guest_ptr(struct gmm_guest *g, uint64_t gpa, size_t len)
{
	struct region *r = find_region(g, gpa, len ? len : 1);
	uint64_t off;

	if (!r)
		return NULL;
	off = gpa - r->gpa;
	if (lock_backed(g, r, off >> GMM_PAGE_SHIFT, (off + (len ? len : 1) - 1) / GMM_PAGE_SIZE + 1))
		return NULL;
	pthread_rwlock_unlock(&r->lock);
	return r->hva + off;
}

int gmm_guest_populate(struct gmm_guest *g, uint64_t gpa, uint64_t size)
{
	struct region *r = find_region(g, gpa, size ? size : 1);
	uint64_t off;
	int err;

	if (!r)
		return gmm_errno();
	if (!size)
		return 0;
	off = gpa - r->gpa;
	region_lock(r, false);
	err = back_range(g, r, off >> GMM_PAGE_SHIFT, (off + size - 1) / GMM_PAGE_SIZE + 1);
	pthread_rwlock_unlock(&r->lock);
	return err;
}

/* --- discard -------------------------------------------------------------- */

/* Give back a whole unsplit unit at @base of 2^@order pages. */
static void release_unit(struct gmm_guest *g, struct region *r, uint64_t base,
			 unsigned int order)
{
	uint64_t n = 1ull << order, pfn = entry_pfn(entry_get(r, base));

	unmap_pages(r, base, n);
	for (uint64_t i = 0; i < n; i++)
		entry_set(r, base + i, 0);
	set_rmap(g, pfn, UINT64_MAX, n);
	gmm_free(g->pool, pfn, order);
	__atomic_fetch_add(&g->discarded, n, __ATOMIC_RELAXED);
}

/* A discard covers part of a 2 MiB block: make its frames single pages. */
static void split_unit(struct gmm_guest *g, struct region *r, uint64_t base)
{
	gmm_split(g->pool, entry_pfn(entry_get(r, base)), HUGE_ORDER);
	for (uint64_t i = base; i < base + HUGE_PAGES; i++)
		entry_set(r, i, entry_get(r, i) & ~MAP_HUGE_BIT);
}

/* Release the run of plain backed pages from @idx (below @end); returns its end. */
static uint64_t release_run(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t end)
{
	uint64_t j = idx;

	while (j < end && entry_get(r, j) && !(entry_get(r, j) & MAP_HUGE_BIT))
		j++;
	unmap_pages(r, idx, j - idx);
	for (uint64_t i = idx; i < j; i++) {
		uint64_t pfn = entry_pfn(entry_get(r, i));

		entry_set(r, i, 0);
		g->pool->link[pfn] = 0;
		gmm_free(g->pool, pfn, 0);
	}
	__atomic_fetch_add(&g->discarded, j - idx, __ATOMIC_RELAXED);
	return j;
}

static void discard_locked(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t end)
{
	unsigned int u = g->unit_order;

	while (idx < end) {
		uint64_t e = entry_get(r, idx), base = idx & ~(HUGE_PAGES - 1);

		if (!e) {
			idx++;
			continue;
		}
		if (!(e & MAP_HUGE_BIT)) {
			idx = release_run(g, r, idx, end);
			continue;
		}
		if (u) {
			base = idx & ~((1ull << u) - 1);
			release_unit(g, r, base, u);
			idx = base + (1ull << u);
			continue;
		}
		if (base >= idx && base + HUGE_PAGES <= end) {
			release_unit(g, r, base, HUGE_ORDER);
			idx = base + HUGE_PAGES;
			continue;
		}
		split_unit(g, r, base);
	}
}

int gmm_guest_discard(struct gmm_guest *g, uint64_t gpa, uint64_t size)
{
	struct region *r;
	uint64_t idx, end, umask;

	if (!g)
		return gmm_set_error(-EINVAL, "guest discard: NULL guest");
	if ((gpa | size) & (GMM_PAGE_SIZE - 1))
		return gmm_set_error(-EINVAL, "guest discard [0x%llx, +0x%llx): not page aligned",
				     (unsigned long long)gpa, (unsigned long long)size);
	if (!size)
		return 0;
	r = find_region(g, gpa, size);
	if (!r)
		return -EFAULT;
	umask = (1ull << g->unit_order) - 1;
	idx = (((gpa - r->gpa) >> GMM_PAGE_SHIFT) + umask) & ~umask;
	end = (((gpa - r->gpa + size) >> GMM_PAGE_SHIFT)) & ~umask;
	if (idx >= end)
		return 0;
	region_lock(r, true);
	discard_locked(g, r, idx, end);
	pthread_rwlock_unlock(&r->lock);
	return 0;
}

void gmm_guest_destroy(struct gmm_guest *g)
{
	if (!g)
		return;
	for (unsigned int i = 0; i < g->nr_regions; i++) {
		struct region *r = &g->regions[i];

		region_lock(r, true);
		discard_locked(g, r, 0, r->nr_pages);
		pthread_rwlock_unlock(&r->lock);
		pthread_rwlock_destroy(&r->lock);
		for (unsigned int k = 0; k < REGION_STRIPES; k++)
			pthread_mutex_destroy(&r->stripes[k]);
		munmap(r->hva, r->size);
		munmap(r->map, r->map_bytes);
	}
	pthread_mutex_lock(&g->pool->guests_lock);
	g->pool->guests[g->id] = NULL;
	pthread_mutex_unlock(&g->pool->guests_lock);
	free(g);
}

/* --- statistics and the reverse map --------------------------------------- */

static void region_stats(const struct region *r, struct gmm_guest_stats *st)
{
	uint64_t prev = 0;

	st->ram_bytes += r->size;
	for (uint64_t i = 0; i < r->nr_pages; i++) {
		uint64_t e = entry_get(r, i);

		if (e) {
			st->backed_pages++;
			if (e & MAP_HUGE_BIT)
				st->huge_bytes += GMM_PAGE_SIZE;
			if (!prev || entry_pfn(e) != entry_pfn(prev) + 1)
				st->mappings++;
		}
		prev = e;
	}
}

int gmm_guest_stats(struct gmm_guest *g, struct gmm_guest_stats *st)
{
	uint64_t gib;

	if (!g || !st)
		return gmm_set_error(-EINVAL, "gmm_guest_stats: NULL argument");
	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < g->nr_regions; i++)
		region_stats(&g->regions[i], st);
	if (g->unit_order)
		st->huge_bytes = st->backed_pages << GMM_PAGE_SHIFT;
	gib = (st->backed_pages << GMM_PAGE_SHIFT) >> 30;
	st->mappings_per_gib = gib ? st->mappings / gib : st->mappings;
	st->faults = __atomic_load_n(&g->faults, __ATOMIC_RELAXED);
	st->huge_faults = __atomic_load_n(&g->huge_faults, __ATOMIC_RELAXED);
	st->discarded_pages = __atomic_load_n(&g->discarded, __ATOMIC_RELAXED);
	return 0;
}

int gmm_frame_owner(struct gmm_pool *p, uint64_t pfn, unsigned int *guest_id, uint64_t *gfn)
{
	struct gmm_zone *z = p ? pfn_zone(p, pfn) : NULL;
	uint64_t head, l = 0;

	if (!z || !guest_id || !gfn)
		return gmm_set_error(-EINVAL, "gmm_frame_owner: pfn %llu is not in the pool",
				     (unsigned long long)pfn);
	pthread_mutex_lock(&z->lock);
	head = buddy_find_head(p, pfn);
	if (head != GMM_PFN_NONE && fr_kind(p, head) == FR_ALLOC)
		l = p->link[pfn];
	pthread_mutex_unlock(&z->lock);
	if (!(l & RMAP_OWNED))
		return gmm_set_error(-ENOENT, "pfn %llu backs no guest page",
				     (unsigned long long)pfn);
	*guest_id = (unsigned int)((l >> 48) & 0x7fff);
	*gfn = l & RMAP_GFN_MASK;
	return 0;
}
