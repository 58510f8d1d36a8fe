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
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <gmm/guest.h>

#include "internal.h"

#define MAP_HUGE_BIT (1ull << 62)
#define MAP_MIGRATING (1ull << 61) /* being moved: writers wait (migration below) */
#define MAP_PTR_PIN (1ull << 60)   /* handed out by gmm_guest_ptr(): never moved */
#define MAP_PIN_SHIFT 40           /* gmm_guest_pin() count, 16 bits */
#define MAP_PIN_ONE (1ull << MAP_PIN_SHIFT)
#define MAP_PIN_MASK (0xffffull << MAP_PIN_SHIFT)
#define MAP_PFN_MASK ((1ull << 40) - 1)
#define HUGE_ORDER GMM_PAGEBLOCK_ORDER
#define HUGE_PAGES GMM_PAGEBLOCK_PAGES
#define REGION_ALIGN (2ull << 20)
#define REGION_STRIPES 64 /* chunk locks per region, by 2 MiB chunk */
/* mappings left to the rest of the process (libraries, heap, thread
 * stacks, the pool's own view, device buffers) below vm.max_map_count */
#define MAPS_HEADROOM 2048
#define MAX_MAP_COUNT_PATH "/proc/sys/vm/max_map_count"

struct region {
	uint64_t gpa, size, nr_pages;
	char *hva;
	int node;
	uint64_t *map; /* per page, atomic */
	uint64_t vma_unit; /* hugetlbfs: pages per host mapping, which never merges; else 0 */
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
	int64_t maps;		/* host mappings of all regions (atomic) */
	int64_t maps_budget;	/* what they may reach: vm.max_map_count less the rest */
	bool dying;		/* destroy: discards unmap without the budget */
	uint64_t migrated;	/* pages moved, atomic */
	uint32_t mseq;		/* bumped (futex) when a migration ends */
	/* the write stop of migrations (migration section) */
	int wstop;		/* enum gmm_write_stop in use, atomic */
	const struct gmm_pause_ops *pause_ops; /* atomic */
	void *pause_ctx;
	pthread_mutex_t wstop_lock; /* wstop_why, wst, pause_ops changes */
	char wstop_why[160];
	struct gmm_wstop_stats wst;
	pthread_mutex_t pin_lock; /* gmm_guest_pin/unpin: check and count as one */
	/* khugepaged holds the guest (under the pool's guests_lock) */
	unsigned int collapse_users;
	pthread_cond_t collapse_idle;
	/* collapse counters (atomic) */
	uint64_t collapse_alloc, collapse_alloc_failed, collapsed;
};

static const struct gmm_migrate_ops guest_migrate_ops;
static void guest_unlist(struct gmm_guest *g);
static int wstop_resolve(struct gmm_guest *g);
static void wstop_register(struct gmm_guest *g, char *hva, uint64_t len);
static void migration_wake(struct gmm_guest *g);

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
	cfg->uffd = -1;
}

static long read_long(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

/* The process's mappings now: the lines of /proc/self/maps. */
static long count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	long n = 0;
	int c;

	if (!f)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* How many mappings the guest's regions may reach before the host refuses. */
static int64_t maps_budget(void)
{
	long max = read_long(MAX_MAP_COUNT_PATH);

	if (max <= 0)
		return INT64_MAX;
	return (int64_t)max - count_maps() - MAPS_HEADROOM;
}

/* A guest is a frame owner (gmm/migrate.h): its rmap id is its owner id. */
static int register_guest(struct gmm_pool *p, struct gmm_guest *g)
{
	int err = gmm_owner_register(p, &guest_migrate_ops, g, &g->id);

	if (err)
		return err;
	pthread_mutex_lock(&p->guests_lock);
	p->guests[g->id] = g;
	pthread_mutex_unlock(&p->guests_lock);
	return 0;
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
	/* before the guest is published in the pool's table (khugepaged) */
	g->maps_budget = g->cfg.max_mappings ? (int64_t)g->cfg.max_mappings : maps_budget();
	pthread_mutex_init(&g->pin_lock, NULL);
	pthread_cond_init(&g->collapse_idle, NULL);
	err = wstop_resolve(g);
	if (!err)
		err = register_guest(p, g);
	if (err) {
		pthread_mutex_destroy(&g->pin_lock);
		pthread_cond_destroy(&g->collapse_idle);
		pthread_mutex_destroy(&g->wstop_lock);
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

/* Register [addr, addr + len) with the guest's userfaultfd (MISSING faults). */
static int uffd_register(const struct gmm_guest *g, void *addr, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(g->cfg.uffd, UFFDIO_REGISTER, &reg))
		return gmm_set_error(-errno, "guest: cannot register [%p, +0x%llx) with "
				     "userfaultfd: %s", addr, (unsigned long long)len,
				     strerror(errno));
	return 0;
}

/*
 * Make [addr, addr + len) an unbacked placeholder again: PROT_NONE without a
 * userfaultfd; with one, anonymous memory registered for MISSING faults.  It
 * is registered while still PROT_NONE, so no access in between can populate
 * it behind the map (a vCPU touching it meanwhile sees -EFAULT and retries).
 */
static int placeholder(const struct gmm_guest *g, void *addr, uint64_t len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
	int err;

	if (mmap(addr, len, PROT_NONE, flags, -1, 0) == MAP_FAILED)
		return gmm_set_error(-errno, "guest: cannot unmap [%p, +0x%llx): %s", addr,
				     (unsigned long long)len, strerror(errno));
	if (g->cfg.uffd < 0)
		return 0;
	err = uffd_register(g, addr, len);
	if (!err && mprotect(addr, len, PROT_READ | PROT_WRITE))
		err = gmm_set_error(-errno, "guest: placeholder [%p, +0x%llx): %s", addr,
				    (unsigned long long)len, strerror(errno));
	return err;
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
	r->vma_unit = g->unit_order ? 1ull << g->unit_order : 0;
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
	err = g->cfg.uffd < 0 ? 0 : placeholder(g, r->hva, size);
	if (err) {
		munmap(r->hva, size);
		munmap(r->map, r->map_bytes);
		return err;
	}
	__atomic_fetch_add(&g->maps, 1, __ATOMIC_RELAXED);
	region_init_locks(r);
	__atomic_store_n(&g->nr_regions, g->nr_regions + 1, __ATOMIC_RELEASE);
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

/* mmap(MAP_FIXED) @nr frames from @pfn at page @idx of @r. */
static int mmap_frames(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t pfn,
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

/* Map frames and, with the uffd-wp write stop, register them for it. */
static int map_frames(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t pfn,
		      uint64_t nr)
{
	int err = mmap_frames(g, r, idx, pfn, nr);

	if (!err)
		wstop_register(g, r->hva + (idx << GMM_PAGE_SHIFT), nr << GMM_PAGE_SHIFT);
	return err;
}

static void set_rmap(struct gmm_guest *g, uint64_t pfn, uint64_t gfn, uint64_t nr)
{
	for (uint64_t i = 0; i < nr; i++)
		rmap_store(g->pool, pfn + i, gfn == UINT64_MAX ? 0 : rmap_make(g->id, gfn + i));
}

/*
 * Host mappings.  Pages @i - 1 and @i of @r lie in different kernel
 * mappings when one is backed and the other not, or when both are backed by
 * frames that are not file-neighbours (the kernel merges a mapping with its
 * neighbour when the file offsets continue; unbacked placeholders merge too;
 * hugetlbfs mappings never merge: every host page is one).
 * A region has 1 + its boundaries mappings.  Counted as the map changes,
 * under the chunk lock; a boundary between chunks being backed at the same
 * moment may be miscounted by one, which MAPS_HEADROOM absorbs.
 */
static bool boundary(const struct region *r, uint64_t i)
{
	uint64_t a, b;

	if (!i || i >= r->nr_pages)
		return false;
	a = entry_get(r, i - 1);
	b = entry_get(r, i);
	if (!a || !b)
		return !a != !b;
	if (r->vma_unit) /* hugetlbfs mappings are VM_DONTEXPAND: never merged */
		return !(i & (r->vma_unit - 1));
	return entry_pfn(b) != entry_pfn(a) + 1;
}

/* Boundaries at pages [@a, @b]: the edges of the range [@a, @b) and inside it. */
static int64_t boundaries(const struct region *r, uint64_t a, uint64_t b)
{
	int64_t n = 0;

	for (uint64_t i = a; i <= b; i++)
		n += boundary(r, i);
	return n;
}

/* Room for @more mappings (a run inside a placeholder splits it in three: 2)? */
static int check_maps(struct gmm_guest *g, uint64_t gpa, int64_t more)
{
	int64_t maps = __atomic_load_n(&g->maps, __ATOMIC_RELAXED);
	long max;

	if (more <= 0 || maps + more <= __atomic_load_n(&g->maps_budget, __ATOMIC_RELAXED))
		return 0;
	if (g->cfg.max_mappings)
		return gmm_set_error(-ENOSPC, "guest: backing gpa 0x%llx needs more than the "
				     "%llu host mappings the guest may have",
				     (unsigned long long)gpa,
				     (unsigned long long)g->cfg.max_mappings);
	/* the limit may have been raised since: look again */
	max = read_long(MAX_MAP_COUNT_PATH);
	if (max > 0)
		__atomic_store_n(&g->maps_budget, max - (count_maps() - maps) - MAPS_HEADROOM,
				 __ATOMIC_RELAXED);
	if (maps + more <= __atomic_load_n(&g->maps_budget, __ATOMIC_RELAXED))
		return 0;
	return gmm_set_error(-ENOSPC, "guest: backing gpa 0x%llx needs a host mapping beyond "
			     "vm.max_map_count (%ld; mappings: %lld of guest RAM, %ld of the rest of "
			     "the process): raise it (sysctl vm.max_map_count) or use --hugepages 2M",
			     (unsigned long long)gpa, max, (long long)maps,
			     (long)(count_maps() - maps));
}

/* Put pages back to placeholders; a hole in a run may split its mapping. */
static int unmap_pages(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t nr)
{
	uint64_t end = idx + nr;
	/* afterwards: only the edges, where a backed neighbour meets the hole */
	int64_t after = (idx && entry_get(r, idx - 1)) + (end < r->nr_pages && entry_get(r, end));
	int err = g->dying ? 0 : check_maps(g, r->gpa + (idx << GMM_PAGE_SHIFT),
					    after - boundaries(r, idx, end));

	return err ? err : placeholder(g, r->hva + (idx << GMM_PAGE_SHIFT), nr << GMM_PAGE_SHIFT);
}

/*
 * Mappings gained by mapping frames [@pfn, +@nr) at pages [@idx, +@nr), backed
 * or not (backing, migration, collapse): the boundaries at the range's
 * edges afterwards, less every boundary there and inside it now.
 */
static int64_t remap_delta(const struct region *r, uint64_t idx, uint64_t pfn, uint64_t nr)
{
	uint64_t end = idx + nr;
	uint64_t a = idx ? entry_get(r, idx - 1) : 0;
	uint64_t b = end < r->nr_pages ? entry_get(r, end) : 0;
	int64_t after = (idx && (!a || entry_pfn(a) + 1 != pfn)) +
			(end < r->nr_pages && (!b || entry_pfn(b) != pfn + nr));

	if (r->vma_unit) /* one mapping per host page, merging with nothing */
		after = (idx > 0) + (end < r->nr_pages) + (int64_t)(nr / r->vma_unit) - 1;
	return after - boundaries(r, idx, end);
}

/* Map @nr frames from @pfn at page @idx and record them. */
static int install(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t pfn,
		   uint64_t nr, uint64_t flags)
{
	int64_t before;
	int err = check_maps(g, r->gpa + (idx << GMM_PAGE_SHIFT),
			     remap_delta(r, idx, pfn, nr));

	err = err ? err : map_frames(g, r, idx, pfn, nr);
	if (err)
		return err;
	before = boundaries(r, idx, idx + nr);
	set_rmap(g, pfn, (r->gpa >> GMM_PAGE_SHIFT) + idx, nr);
	for (uint64_t i = 0; i < nr; i++)
		entry_set(r, idx + i, (pfn + i + 1) | flags);
	__atomic_fetch_add(&g->maps, boundaries(r, idx, idx + nr) - before, __ATOMIC_RELAXED);
	return 0;
}

/* Clear the entries of pages [@idx, @idx + @nr) after their unmapping. */
static void clear_entries(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t nr)
{
	int64_t before = boundaries(r, idx, idx + nr);

	for (uint64_t i = idx; i < idx + nr; i++)
		entry_set(r, i, 0);
	__atomic_fetch_add(&g->maps, boundaries(r, idx, idx + nr) - before, __ATOMIC_RELAXED);
}

static bool range_unbacked(const struct region *r, uint64_t idx, uint64_t nr)
{
	for (uint64_t i = idx; i < idx + nr; i++)
		if (entry_get(r, i))
			return false;
	return true;
}

/*
 * Back the page @idx of @r (under its chunk lock): with an aligned order-9
 * block when 2 MiB faults are on and its whole 2 MiB unit is unbacked, else
 * with one host page (4 KiB, or a whole hugetlbfs page).
 */
static int back_page(struct gmm_guest *g, struct region *r, uint64_t idx)
{
	unsigned int u = g->unit_order, order = u;
	uint64_t base, pfn = GMM_PFN_NONE;
	int err;

	if (entry_get(r, idx))
		return 0;
	if (!u && g->cfg.huge_fault && range_unbacked(r, idx & ~(HUGE_PAGES - 1), HUGE_PAGES)) {
		order = HUGE_ORDER;
		pfn = gmm_alloc(g->pool, order, GMM_MOVABLE | GMM_ZERO | GMM_LIGHT, r->node);
	}
	if (pfn == GMM_PFN_NONE) {
		order = u;
		pfn = gmm_alloc(g->pool, u, GMM_MOVABLE | GMM_ZERO, r->node);
	}
	if (pfn == GMM_PFN_NONE)
		return gmm_set_error(-ENOMEM, "guest: no frame for gpa 0x%llx: %s",
				     (unsigned long long)(r->gpa + (idx << GMM_PAGE_SHIFT)),
				     gmm_last_error());
	base = idx & ~((1ull << order) - 1);
	err = install(g, r, base, pfn, 1ull << order, order ? MAP_HUGE_BIT : 0);
	if (err)
		gmm_free(g->pool, pfn, order);
	else if (order > u)
		__atomic_fetch_add(&g->huge_faults, 1, __ATOMIC_RELAXED);
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
	/* the caller may keep the pointer: these pages are never migrated */
	for (uint64_t i = off >> GMM_PAGE_SHIFT; i <= (off + (len ? len : 1) - 1) >> GMM_PAGE_SHIFT; i++)
		__atomic_fetch_or(&r->map[i], MAP_PTR_PIN, __ATOMIC_RELAXED);
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
static int release_unit(struct gmm_guest *g, struct region *r, uint64_t base,
			unsigned int order)
{
	uint64_t n = 1ull << order, pfn = entry_pfn(entry_get(r, base));
	int err = unmap_pages(g, r, base, n);

	if (err)
		return err; /* still mapped: the frames stay the guest's */
	clear_entries(g, r, base, n);
	set_rmap(g, pfn, UINT64_MAX, n);
	gmm_free(g->pool, pfn, order);
	__atomic_fetch_add(&g->discarded, n, __ATOMIC_RELAXED);
	return 0;
}

/* A discard covers part of a 2 MiB block: make its frames single pages. */
static void split_unit(struct gmm_guest *g, struct region *r, uint64_t base)
{
	gmm_split(g->pool, entry_pfn(entry_get(r, base)), HUGE_ORDER);
	for (uint64_t i = base; i < base + HUGE_PAGES; i++)
		entry_set(r, i, entry_get(r, i) & ~MAP_HUGE_BIT);
}

/* Release the run of plain backed pages from @idx (below @end) up to *@stop. */
static int release_run(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t end,
		       uint64_t *stop)
{
	uint64_t j = idx;
	int err;

	while (j < end && entry_get(r, j) && !(entry_get(r, j) & MAP_HUGE_BIT))
		j++;
	*stop = j;
	err = unmap_pages(g, r, idx, j - idx);
	if (err)
		return err; /* still mapped: the frames stay the guest's */
	for (uint64_t i = idx; i < j; i++) {
		uint64_t pfn = entry_pfn(entry_get(r, i));

		rmap_store(g->pool, pfn, 0);
		gmm_free(g->pool, pfn, 0);
	}
	clear_entries(g, r, idx, j - idx);
	__atomic_fetch_add(&g->discarded, j - idx, __ATOMIC_RELAXED);
	return 0;
}

/* Stops at the first failure (-ENOSPC: the mapping budget). */
static int discard_locked(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t end)
{
	unsigned int u = g->unit_order;
	int err = 0;

	while (idx < end && !err) {
		uint64_t e = entry_get(r, idx), base = idx & ~(HUGE_PAGES - 1);

		if (!e) {
			idx++;
			continue;
		}
		if (!(e & MAP_HUGE_BIT)) {
			err = release_run(g, r, idx, end, &idx);
			continue;
		}
		if (u) {
			base = idx & ~((1ull << u) - 1);
			err = release_unit(g, r, base, u);
			idx = base + (1ull << u);
			continue;
		}
		if (base >= idx && base + HUGE_PAGES <= end) {
			err = release_unit(g, r, base, HUGE_ORDER);
			idx = base + HUGE_PAGES;
			continue;
		}
		split_unit(g, r, base);
	}
	return err;
}

int gmm_guest_discard(struct gmm_guest *g, uint64_t gpa, uint64_t size)
{
	struct region *r;
	uint64_t idx, end, umask;
	int err;

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
	err = discard_locked(g, r, idx, end);
	pthread_rwlock_unlock(&r->lock);
	return err;
}

void gmm_guest_destroy(struct gmm_guest *g)
{
	if (!g)
		return;
	guest_unlist(g);
	gmm_owner_unregister(g->pool, g->id);
	g->dying = true;
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
	pthread_mutex_destroy(&g->wstop_lock);
	pthread_mutex_destroy(&g->pin_lock);
	pthread_cond_destroy(&g->collapse_idle);
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
	st->host_mappings = (uint64_t)__atomic_load_n(&g->maps, __ATOMIC_RELAXED);
	st->host_mappings_max = (uint64_t)__atomic_load_n(&g->maps_budget, __ATOMIC_RELAXED);
	st->thp_collapse_alloc = __atomic_load_n(&g->collapse_alloc, __ATOMIC_RELAXED);
	st->thp_collapse_alloc_failed = __atomic_load_n(&g->collapse_alloc_failed, __ATOMIC_RELAXED);
	st->pages_collapsed = __atomic_load_n(&g->collapsed, __ATOMIC_RELAXED);
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
		l = rmap_load(p, pfn);
	pthread_mutex_unlock(&z->lock);
	if (!(l & RMAP_OWNED))
		return gmm_set_error(-ENOENT, "pfn %llu backs no guest page",
				     (unsigned long long)pfn);
	*guest_id = (unsigned int)((l >> 48) & 0x7fff);
	*gfn = l & RMAP_GFN_MASK;
	return 0;
}

/* --- migration (gmm/migrate.h) ------------------------------------------- */

/*
 * Moving the frames behind backed units (4 KiB pages, unsplit 2 MiB blocks,
 * hugetlbfs pages) without losing a write, a batch at a time:
 *  1. with GMM_WSTOP_PAUSE, the embedder pauses its vCPUs (before any lock:
 *     a vCPU may wait on a fault handler that needs the region lock); when
 *     it refuses, the batch is not moved (-EAGAIN, as a busy owner);
 *  2. the region lock exclusively (try only: the caller may be a thread
 *     that holds it shared and is allocating): VMM accessors, faults and
 *     discards wait on it;
 *  3. MAP_MIGRATING in the units' entries, then the write stop of each run
 *     of adjacent units: mprotect(PROT_READ) (a vCPU write exits or fails
 *     with EFAULT, a host thread takes SIGSEGV and its handler calls
 *     gmm_guest_migration_wait()), or UFFDIO_WRITEPROTECT (the writer
 *     sleeps in the kernel); either returns once TLBs are shot down and
 *     KVM's mappings invalidated through its MMU notifier.  With the
 *     pause, nothing (only paused vCPUs write outside the accessors);
 *  4. copy every unit through the pool's mapping;
 *  5. map each new frame with MAP_FIXED (read-write: this ends the
 *     mprotect or write-protect of the unit), move the rmap, update the
 *     entries (which clears MAP_MIGRATING); uffd: register each run of
 *     remapped units for WP again and UFFDIO_WAKE its writers;
 *  6. unlock, resume the vCPUs, wake futex waiters.
 * Pinned units are refused: a device may write them through a pointer.
 */

#define MIGRATE_SYNC_TRIES 64 /* lock attempts of a sync migration */
#define PAUSE_WHY "no pause ops registered (gmm_guest_set_pause)"

/* One unit of a batch: 2^order pages at @base of a region, @old to @new. */
struct mig_unit {
	uint64_t base, old, new;
	unsigned int order;
	int err; /* out: 0 moved, -EAGAIN, -EBUSY, or the mapping's error */
};

/* A write stop in progress. */
struct wstop {
	const struct gmm_pause_ops *ops;
	int mode;     /* the mode of this batch */
	bool paused;  /* the embedder's vCPUs are paused */
	bool refused; /* pause() refused: the batch is not moved */
	bool fallback; /* GMM_WSTOP_PAUSE without pause ops: mprotect */
	uint64_t t0;  /* when the writers were stopped (ns), 0: not yet */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *const wstop_names[] = {
	[GMM_WSTOP_DEFAULT] = "default", [GMM_WSTOP_MPROTECT] = "mprotect",
	[GMM_WSTOP_UFFD_WP] = "uffd-wp", [GMM_WSTOP_PAUSE] = "pause",
};

const char *gmm_write_stop_name(int mode)
{
	if (mode < 0 || mode > GMM_WSTOP_PAUSE)
		return "?";
	return wstop_names[mode];
}

int gmm_write_stop_parse(const char *name)
{
	for (int m = 0; name && m <= GMM_WSTOP_PAUSE; m++)
		if (!strcmp(name, wstop_names[m]))
			return m;
	return gmm_set_error(-EINVAL, "write stop '%s': not default, mprotect, uffd-wp or pause",
			     name ? name : "(null)");
}

/* Use mprotect from now on, saying why (first reason wins). */
static void wstop_fall_back(struct gmm_guest *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void wstop_fall_back(struct gmm_guest *g, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&g->wstop_lock);
	if (!g->wstop_why[0]) {
		va_start(ap, fmt);
		vsnprintf(g->wstop_why, sizeof(g->wstop_why), fmt, ap);
		va_end(ap);
	}
	__atomic_store_n(&g->wstop, GMM_WSTOP_MPROTECT, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g->wstop_lock);
}

/* The mode at creation: what the config asks, where the guest can do it. */
static int wstop_resolve(struct gmm_guest *g)
{
	int req = g->cfg.write_stop;
	bool wp = g->cfg.uffd >= 0 && (g->cfg.uffd_features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);

	pthread_mutex_init(&g->wstop_lock, NULL);
	if (req < GMM_WSTOP_DEFAULT || req > GMM_WSTOP_PAUSE)
		return gmm_set_error(-EINVAL, "guest: write stop %d is not one of enum "
				     "gmm_write_stop", req);
	g->wstop = req;
	if (req == GMM_WSTOP_DEFAULT)
		g->wstop = wp ? GMM_WSTOP_UFFD_WP : GMM_WSTOP_PAUSE;
	if (g->wstop != GMM_WSTOP_UFFD_WP || wp)
		return 0;
	wstop_fall_back(g, "%s", g->cfg.uffd < 0 ? "no userfaultfd in the guest config" :
			"the userfaultfd lacks UFFD_FEATURE_WP_HUGETLBFS_SHMEM (kernel < 5.19, "
			"or not asked for in UFFDIO_API)");
	return 0;
}

int gmm_guest_set_pause(struct gmm_guest *g, const struct gmm_pause_ops *ops, void *ctx)
{
	if (!g || (ops && (!ops->pause || !ops->resume)))
		return gmm_set_error(-EINVAL, "gmm_guest_set_pause: NULL guest or operation");
	pthread_mutex_lock(&g->wstop_lock);
	g->pause_ctx = ctx;
	__atomic_store_n(&g->pause_ops, ops, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g->wstop_lock);
	return 0;
}

int gmm_guest_wstop_stats(struct gmm_guest *g, struct gmm_wstop_stats *st)
{
	if (!g || !st)
		return gmm_set_error(-EINVAL, "gmm_guest_wstop_stats: NULL argument");
	pthread_mutex_lock(&g->wstop_lock);
	*st = g->wst;
	st->requested = g->cfg.write_stop;
	st->mode = __atomic_load_n(&g->wstop, __ATOMIC_ACQUIRE);
	if (st->mode == GMM_WSTOP_PAUSE && !g->pause_ops) {
		st->mode = GMM_WSTOP_MPROTECT;
		snprintf(st->why, sizeof(st->why), "%s", PAUSE_WHY);
	} else
		snprintf(st->why, sizeof(st->why), "%s", g->wstop_why);
	pthread_mutex_unlock(&g->wstop_lock);
	return 0;
}

/* uffd-wp: register a range just mapped for write-protect faults. */
static void wstop_register(struct gmm_guest *g, char *hva, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)hva, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (__atomic_load_n(&g->wstop, __ATOMIC_ACQUIRE) != GMM_WSTOP_UFFD_WP)
		return;
	if (ioctl(g->cfg.uffd, UFFDIO_REGISTER, &reg))
		wstop_fall_back(g, "UFFDIO_REGISTER_MODE_WP of [%p, +0x%llx): %s", (void *)hva,
				(unsigned long long)len, strerror(errno));
}

static int uffd_wp(const struct gmm_guest *g, char *hva, uint64_t len, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)hva, .len = len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(g->cfg.uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

/* Step 1: the mode of this batch; pause the vCPUs for GMM_WSTOP_PAUSE. */
static void wstop_begin(struct gmm_guest *g, struct wstop *ws)
{
	const struct gmm_pause_ops *ops = __atomic_load_n(&g->pause_ops, __ATOMIC_ACQUIRE);
	bool was;

	ws->ops = ops;
	ws->mode = __atomic_load_n(&g->wstop, __ATOMIC_ACQUIRE);
	ws->paused = ws->refused = ws->fallback = false;
	ws->t0 = 0;
	if (ws->mode != GMM_WSTOP_PAUSE)
		return;
	if (!ops) {
		ws->mode = GMM_WSTOP_MPROTECT;
		ws->fallback = true;
		return;
	}
	ws->t0 = mono_ns();
	was = pcp_offline_begin(); /* a vCPU on its way out may drain the caches */
	ws->paused = !ops->pause(g->pause_ctx);
	pcp_offline_end(was);
	ws->refused = !ws->paused;
}

/* Step 3 for pages [@base, +@n) of @r (marked migrating): 0 or -errno. */
static int wstop_protect(struct gmm_guest *g, struct region *r, struct wstop *ws,
			 uint64_t base, uint64_t n)
{
	char *hva = r->hva + (base << GMM_PAGE_SHIFT);
	uint64_t len = n << GMM_PAGE_SHIFT;
	int err = 0;

	if (!ws->t0)
		ws->t0 = mono_ns();
	if (ws->mode == GMM_WSTOP_MPROTECT && mprotect(hva, len, PROT_READ))
		err = -errno;
	else if (ws->mode == GMM_WSTOP_UFFD_WP)
		err = uffd_wp(g, hva, len, true);
	if (err)
		gmm_set_error(err, "migrate: write-protecting gpa 0x%llx (%s): %s",
			      (unsigned long long)(r->gpa + (base << GMM_PAGE_SHIFT)),
			      gmm_write_stop_name(ws->mode), strerror(-err));
	return err;
}

/* Undo step 3 for a unit that stays where it was (and its MAP_MIGRATING). */
static void wstop_unprotect(struct gmm_guest *g, struct region *r, struct wstop *ws,
			    uint64_t base, uint64_t n)
{
	char *hva = r->hva + (base << GMM_PAGE_SHIFT);

	if (ws->mode == GMM_WSTOP_MPROTECT)
		mprotect(hva, n << GMM_PAGE_SHIFT, PROT_READ | PROT_WRITE);
	else if (ws->mode == GMM_WSTOP_UFFD_WP)
		uffd_wp(g, hva, n << GMM_PAGE_SHIFT, false); /* wakes the writers too */
	for (uint64_t i = 0; i < n; i++)
		__atomic_fetch_and(&r->map[base + i], ~MAP_MIGRATING, __ATOMIC_ACQ_REL);
}

/* Step 5's end for remapped pages [@base, +@n): register them for uffd-wp
 * again, and wake the writers sleeping in a write-protect fault. */
static void wstop_release(struct gmm_guest *g, struct region *r, struct wstop *ws,
			  uint64_t base, uint64_t n)
{
	struct uffdio_range range = {
		.start = (uintptr_t)(r->hva + (base << GMM_PAGE_SHIFT)),
		.len = n << GMM_PAGE_SHIFT,
	};

	wstop_register(g, (char *)(uintptr_t)range.start, range.len);
	if (ws->mode == GMM_WSTOP_UFFD_WP)
		ioctl(g->cfg.uffd, UFFDIO_WAKE, &range);
}

/* Step 6 (region unlocked): resume the vCPUs, wake waiters, count. */
static void wstop_end(struct gmm_guest *g, struct wstop *ws, uint64_t units, uint64_t pages)
{
	uint64_t ns = ws->t0 ? mono_ns() - ws->t0 : 0;

	if (ws->paused)
		ws->ops->resume(g->pause_ctx);
	migration_wake(g);
	if (!ws->t0 && !ws->refused)
		return;
	pthread_mutex_lock(&g->wstop_lock);
	g->wst.refused += ws->refused;
	if (ws->refused) {
		pthread_mutex_unlock(&g->wstop_lock);
		return;
	}
	g->wst.batches++;
	g->wst.units += units;
	g->wst.pages += pages;
	g->wst.fallbacks += ws->fallback;
	g->wst.stop_ns += ns;
	if (ns > g->wst.stop_ns_max)
		g->wst.stop_ns_max = ns;
	pthread_mutex_unlock(&g->wstop_lock);
}

static bool region_trylock_excl(struct region *r, enum gmm_migrate_mode mode)
{
	unsigned int tries = mode == GMM_MIGRATE_ASYNC ? 1 : MIGRATE_SYNC_TRIES;

	for (unsigned int i = 0; i < tries; i++) {
		if (!pthread_rwlock_trywrlock(&r->lock))
			return true;
		sched_yield();
	}
	return false;
}

static struct region *region_of_gfn(struct gmm_guest *g, uint64_t gfn)
{
	uint64_t gpa = gfn << GMM_PAGE_SHIFT;

	for (unsigned int i = 0; i < g->nr_regions; i++) {
		struct region *r = &g->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

/* Does the unit of 2^@order pages at @base map @pfn as one block, unpinned? */
static int unit_check(const struct region *r, uint64_t base, uint64_t pfn, unsigned int order)
{
	uint64_t n = 1ull << order;

	if (base + n > r->nr_pages)
		return -EAGAIN;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t e = entry_get(r, base + i);

		if (!e || entry_pfn(e) != pfn + i || !(e & MAP_HUGE_BIT) != !order)
			return -EAGAIN;
		if (e & (MAP_PTR_PIN | MAP_PIN_MASK))
			return -EBUSY;
	}
	return 0;
}

static void migration_wake(struct gmm_guest *g)
{
	__atomic_fetch_add(&g->mseq, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &g->mseq, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/*
 * Room for @more host mappings, without looking at the host's limit again
 * (check_maps() does, reading /proc/self/maps): migration and collapse are
 * optional work, refused cheaply at the budget.
 */
static bool maps_room(struct gmm_guest *g, int64_t more)
{
	return more <= 0 || __atomic_load_n(&g->maps, __ATOMIC_RELAXED) + more <=
			    __atomic_load_n(&g->maps_budget, __ATOMIC_RELAXED);
}

/* Record frames [@pfn, +@n) mapped at pages [@base, +@n); recount the mappings there. */
static void remap_entries(struct gmm_guest *g, struct region *r, uint64_t base, uint64_t pfn,
			  uint64_t n, uint64_t flags)
{
	int64_t before = boundaries(r, base, base + n);

	set_rmap(g, pfn, (r->gpa >> GMM_PAGE_SHIFT) + base, n);
	for (uint64_t i = 0; i < n; i++)
		entry_set(r, base + i, (pfn + i + 1) | flags);
	__atomic_fetch_add(&g->maps, boundaries(r, base, base + n) - before, __ATOMIC_RELAXED);
}

/* Step 3 for pages [@base, +@n): MAP_MIGRATING, then the stop; neither on failure. */
static int stop_run(struct gmm_guest *g, struct region *r, struct wstop *ws, uint64_t base,
		    uint64_t n)
{
	int err;

	for (uint64_t k = base; k < base + n; k++)
		__atomic_fetch_or(&r->map[k], MAP_MIGRATING, __ATOMIC_ACQ_REL);
	err = wstop_protect(g, r, ws, base, n);
	if (err)
		wstop_unprotect(g, r, ws, base, n);
	return err;
}

/* Step 3 for the checked units: one stop per run of adjacent units. */
static void protect_units(struct gmm_guest *g, struct region *r, struct wstop *ws,
			  struct mig_unit *u, unsigned int n)
{
	for (unsigned int i = 0, j; i < n; i = j) {
		uint64_t end;
		int err;

		if (u[i].err) {
			j = i + 1;
			continue;
		}
		end = u[i].base + (1ull << u[i].order);
		for (j = i + 1; j < n && !u[j].err && u[j].base == end; j++)
			end += 1ull << u[j].order;
		err = stop_run(g, r, ws, u[i].base, end - u[i].base);
		if (!err)
			continue;
		for (unsigned int k = i; k < j; k++)
			u[k].err = err;
	}
}

/* Step 5 for one copied unit: 0 or the mapping's error (then it stays). */
static int remap_unit(struct gmm_guest *g, struct region *r, struct wstop *ws,
		      const struct mig_unit *u)
{
	uint64_t n = 1ull << u->order, flags = u->order ? MAP_HUGE_BIT : 0;
	int err = mmap_frames(g, r, u->base, u->new, n);

	if (err) {
		wstop_unprotect(g, r, ws, u->base, n);
		return err;
	}
	remap_entries(g, r, u->base, u->new, n, flags);
	__atomic_fetch_add(&g->migrated, n, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Step 2's check of unit @u: the new frame may split a run of
 * file-neighbours, so the batch (*@more mappings so far) stays in the budget.
 */
static int unit_room(struct gmm_guest *g, const struct region *r, const struct mig_unit *u,
		     int64_t *more)
{
	int64_t d = remap_delta(r, u->base, u->new, 1ull << u->order);

	if (!maps_room(g, *more + d))
		return -EAGAIN;
	*more += d;
	return 0;
}

/* wstop_release() of each run of adjacent moved units. */
static void release_units(struct gmm_guest *g, struct region *r, struct wstop *ws,
			  const struct mig_unit *u, unsigned int n)
{
	for (unsigned int i = 0, j; i < n; i = j) {
		uint64_t end = u[i].base + (1ull << u[i].order);

		for (j = i + 1; j < n && !u[j].err && u[j].base == end; j++)
			end += 1ull << u[j].order;
		if (!u[i].err)
			wstop_release(g, r, ws, u[i].base, end - u[i].base);
	}
}

/*
 * The write stop and move of a batch of units of one region (steps 1-6):
 * for every caller that moves guest pages (the owner callback, a batched
 * one, gmm_guest_migrate()).  The caller holds no lock of the guest; the
 * targets are allocated.  Each unit's err says what became of it; the
 * caller frees the old blocks of moved units and the new ones of the rest.
 * Return: the units moved.
 */
static unsigned int guest_migrate_batch(struct gmm_guest *g, struct region *r,
					struct mig_unit *u, unsigned int n,
					enum gmm_migrate_mode mode)
{
	unsigned int moved = 0;
	uint64_t pages = 0;
	int64_t more = 0;
	struct wstop ws;

	wstop_begin(g, &ws);
	if (ws.refused || !region_trylock_excl(r, mode)) {
		for (unsigned int i = 0; i < n; i++)
			u[i].err = -EAGAIN;
		wstop_end(g, &ws, 0, 0);
		return 0;
	}
	for (unsigned int i = 0; i < n; i++) {
		u[i].err = unit_check(r, u[i].base, u[i].old, u[i].order);
		if (!u[i].err)
			u[i].err = unit_room(g, r, &u[i], &more);
	}
	protect_units(g, r, &ws, u, n);
	for (unsigned int i = 0; i < n; i++)
		if (!u[i].err)
			memcpy(gmm_pfn_to_host(g->pool, u[i].new), gmm_pfn_to_host(g->pool, u[i].old),
			       GMM_PAGE_SIZE << u[i].order);
	for (unsigned int i = 0; i < n; i++) {
		if (u[i].err || (u[i].err = remap_unit(g, r, &ws, &u[i])))
			continue;
		moved++;
		pages += 1ull << u[i].order;
	}
	release_units(g, r, &ws, u, n);
	pthread_rwlock_unlock(&r->lock);
	wstop_end(g, &ws, moved, pages);
	return moved;
}

/* A compaction item as a unit of region @r: false when it is not one. */
static bool item_unit(const struct gmm_guest *g, const struct region *r,
		      const struct gmm_migrate_item *it, struct mig_unit *u)
{
	if (!r || (it->order && it->order != HUGE_ORDER && it->order != g->unit_order))
		return false;
	*u = (struct mig_unit){ it->key - (r->gpa >> GMM_PAGE_SHIFT), it->old_pfn, it->new_pfn,
				it->order, 0 };
	return !(u->base & ((1ull << it->order) - 1));
}

/* The owner callback: each run of items in one region is one batch. */
static void guest_migrate_items(void *ctx, struct gmm_migrate_item *it, unsigned int n,
				enum gmm_migrate_mode mode)
{
	struct mig_unit u[GMM_MIGRATE_BATCH_MAX];
	unsigned int idx[GMM_MIGRATE_BATCH_MAX];
	struct gmm_guest *g = ctx;

	for (unsigned int i = 0, j; i < n; i = j) {
		struct region *r = region_of_gfn(g, it[i].key);
		unsigned int k = 0;

		for (j = i; j < n && k < GMM_MIGRATE_BATCH_MAX; j++) {
			if (j > i && region_of_gfn(g, it[j].key) != r)
				break;
			it[j].err = -EAGAIN;
			if (item_unit(g, r, &it[j], &u[k]))
				idx[k++] = j;
		}
		if (!k)
			continue;
		guest_migrate_batch(g, r, u, k, mode);
		for (unsigned int m = 0; m < k; m++)
			it[idx[m]].err = u[m].err;
	}
}

static int guest_migrate(void *ctx, uint64_t gfn, uint64_t old, uint64_t new, unsigned int order,
			 enum gmm_migrate_mode mode)
{
	struct gmm_migrate_item it = { gfn, old, new, order, 0 };

	guest_migrate_items(ctx, &it, 1, mode);
	return it.err;
}

static const struct gmm_migrate_ops guest_migrate_ops = {
	.name = "guest",
	.migrate = guest_migrate,
	.migrate_batch = guest_migrate_items,
};

/* gmm_guest_migrate(): up to @max units from page *@idx below @end, with targets. */
static unsigned int collect_units(struct gmm_guest *g, struct region *r, uint64_t *idx,
				  uint64_t end, struct mig_unit *u, unsigned int max,
				  struct gmm_guest_migrate_result *res)
{
	uint64_t pages = 0;
	unsigned int n = 0;

	while (*idx < end && n < max) {
		uint64_t e = entry_get(r, *idx), base, new;
		unsigned int order = g->unit_order;

		if (!e) {
			(*idx)++;
			continue;
		}
		if ((e & MAP_HUGE_BIT) && !order)
			order = HUGE_ORDER;
		if (n && pages + (1ull << order) > GMM_GUEST_MIGRATE_BATCH_PAGES)
			break;
		base = *idx & ~((1ull << order) - 1);
		*idx = base + (1ull << order);
		/* unlocked: a discard may clear the unit meanwhile (checked again
		 * under the region lock) */
		e = entry_get(r, base);
		if (!e)
			continue;
		if (e & (MAP_PTR_PIN | MAP_PIN_MASK)) {
			res->pinned++;
			continue;
		}
		new = gmm_alloc(g->pool, order, GMM_MOVABLE, r->node);
		if (new == GMM_PFN_NONE) {
			res->nomem++;
			continue;
		}
		pages += 1ull << order;
		u[n++] = (struct mig_unit){ base, entry_pfn(e), new, order, 0 };
	}
	return n;
}

/* Free what a batch left: old blocks of moved units, new ones of the rest. */
static void settle_units(struct gmm_guest *g, struct mig_unit *u, unsigned int n,
			 struct gmm_guest_migrate_result *res)
{
	for (unsigned int i = 0; i < n; i++) {
		/* the new block's zone: u[i].old may be stale when the unit failed */
		struct gmm_zone *z = pfn_zone(g->pool, u[i].err ? u[i].new : u[i].old);
		uint64_t pages = 1ull << u[i].order;

		if (u[i].err) {
			gmm_free(g->pool, u[i].new, u[i].order);
			res->pinned += u[i].err == -EBUSY;
			res->busy += u[i].err != -EBUSY;
		} else {
			gmm_rmap_clear(g->pool, u[i].old, u[i].order);
			migrate_free(g->pool, u[i].old, u[i].order);
			res->units++;
			res->pages += pages;
		}
		pthread_mutex_lock(&z->lock);
		if (u[i].err)
			z->compact.ev.pgmigrate_fail += pages;
		else
			z->compact.ev.pgmigrate_success += pages;
		pthread_mutex_unlock(&z->lock);
	}
}

static void migrate_region(struct gmm_guest *g, struct region *r, uint64_t idx, uint64_t end,
			   struct mig_unit *u, unsigned int batch,
			   struct gmm_guest_migrate_result *res)
{
	while (idx < end) {
		unsigned int n = collect_units(g, r, &idx, end, u, batch, res);

		if (!n)
			continue;
		guest_migrate_batch(g, r, u, n, GMM_MIGRATE_SYNC);
		res->batches++;
		settle_units(g, u, n, res);
	}
}

int gmm_guest_migrate(struct gmm_guest *g, uint64_t gpa, uint64_t size, unsigned int batch,
		      struct gmm_guest_migrate_result *res)
{
	struct gmm_guest_migrate_result own;
	struct mig_unit *u;

	if (!g || gpa + size < gpa)
		return gmm_set_error(-EINVAL, "gmm_guest_migrate: NULL guest or range wraps");
	res = res ? res : &own;
	memset(res, 0, sizeof(*res));
	batch = batch ? batch : GMM_GUEST_MIGRATE_BATCH;
	u = calloc(batch, sizeof(*u));
	if (!u)
		return gmm_set_error(-ENOMEM, "gmm_guest_migrate: out of memory");
	for (unsigned int i = 0; i < g->nr_regions; i++) {
		struct region *r = &g->regions[i];
		uint64_t a = gpa > r->gpa ? gpa : r->gpa;
		uint64_t b = gpa + size < r->gpa + r->size ? gpa + size : r->gpa + r->size;

		if (a < b)
			migrate_region(g, r, (a - r->gpa) >> GMM_PAGE_SHIFT,
				       (b - r->gpa + GMM_PAGE_SIZE - 1) >> GMM_PAGE_SHIFT, u, batch,
				       res);
	}
	free(u);
	return 0;
}

int gmm_guest_migration_wait(struct gmm_guest *g, const void *addr)
{
	const char *a = addr;

	if (!g)
		return -EINVAL;
	for (unsigned int i = 0; i < g->nr_regions; i++) {
		struct region *r = &g->regions[i];
		uint64_t idx;
		int waited = 0;

		if (a < r->hva || a >= r->hva + r->size)
			continue;
		idx = (uint64_t)(a - r->hva) >> GMM_PAGE_SHIFT;
		for (;;) {
			uint32_t seq = __atomic_load_n(&g->mseq, __ATOMIC_ACQUIRE);

			if (!(entry_get(r, idx) & MAP_MIGRATING))
				return waited;
			syscall(SYS_futex, &g->mseq, FUTEX_WAIT_PRIVATE, seq, NULL, NULL, 0);
			waited = 1;
		}
	}
	return -EFAULT;
}

/* Add @delta pins to pages [idx, end) of @r (backing them first). */
static int pin_range(struct gmm_guest *g, uint64_t gpa, uint64_t len, int delta)
{
	struct region *r = find_region(g, gpa, len ? len : 1);
	uint64_t idx, end;
	int err = 0;

	if (!r)
		return -EFAULT;
	idx = (gpa - r->gpa) >> GMM_PAGE_SHIFT;
	end = (gpa - r->gpa + (len ? len : 1) - 1) / GMM_PAGE_SIZE + 1;
	if (delta > 0) {
		err = lock_backed(g, r, idx, end);
		if (err)
			return err;
	} else {
		region_lock(r, false);
	}
	/* check and count under one lock: two unpins of a page pinned once
	 * must not both pass the check (the count would wrap into the entry's
	 * flags); the holder makes no gmm call, so a plain lock */
	pthread_mutex_lock(&g->pin_lock);
	for (uint64_t i = idx; i < end && !err; i++)
		if ((entry_get(r, i) & MAP_PIN_MASK) == (delta > 0 ? MAP_PIN_MASK : 0))
			err = gmm_set_error(delta > 0 ? -EOVERFLOW : -EINVAL,
					    "guest pin: page at gpa 0x%llx %s",
					    (unsigned long long)(r->gpa + (i << GMM_PAGE_SHIFT)),
					    delta > 0 ? "has 65535 pins" : "is not pinned");
	for (uint64_t i = idx; i < end && !err; i++)
		__atomic_fetch_add(&r->map[i], delta > 0 ? MAP_PIN_ONE : -MAP_PIN_ONE,
				   __ATOMIC_RELAXED);
	pthread_mutex_unlock(&g->pin_lock);
	pthread_rwlock_unlock(&r->lock);
	return err;
}

int gmm_guest_pin(struct gmm_guest *g, uint64_t gpa, uint64_t len)
{
	return pin_range(g, gpa, len, 1);
}

int gmm_guest_unpin(struct gmm_guest *g, uint64_t gpa, uint64_t len)
{
	return pin_range(g, gpa, len, -1);
}

uint64_t gmm_guest_migrated(const struct gmm_guest *g)
{
	return g ? __atomic_load_n(&g->migrated, __ATOMIC_RELAXED) : 0;
}

/* --- collapse onto 2 MiB blocks (khugepaged) ------------------------------- */

/*
 * A chunk is collapsed as a migration batch of one unit is moved, with the
 * guest's write stop (wstop_begin() before the region lock, which is held
 * exclusively; stop_run() on each backed run): the backed runs are copied into an
 * aligned order-9 block (unbacked pages, up to max_ptes_none of them, read
 * as zero), and the block is mapped over the whole chunk in one mmap, which
 * ends the write stop; then the entries, the rmap and the mapping count are
 * updated and the old frames freed.  The block is allocated before the lock
 * is taken: the allocation may compact, and compaction may move pages of
 * the same region (it only try-locks the region).
 */

#define COLLAPSE_SKIP (MAP_HUGE_BIT | MAP_MIGRATING | MAP_PTR_PIN | MAP_PIN_MASK)

/* May the chunk at @base be collapsed, with at most @max_none unbacked pages? */
static bool chunk_collapsible(const struct region *r, uint64_t base, unsigned int max_none)
{
	unsigned int none = 0;

	for (uint64_t i = base; i < base + HUGE_PAGES; i++) {
		uint64_t e = entry_get(r, i);

		if (!e && ++none > max_none)
			return false;
		if (e & COLLAPSE_SKIP)
			return false;
	}
	return none < HUGE_PAGES;
}

/* The next run of backed pages in [*@i, @end): its start, and *@i past it; false at @end. */
static bool next_backed_run(const struct region *r, uint64_t *i, uint64_t end, uint64_t *start)
{
	while (*i < end && !entry_get(r, *i))
		(*i)++;
	*start = *i;
	while (*i < end && entry_get(r, *i))
		(*i)++;
	return *i > *start;
}

/* Write-stop every backed run of the chunk; on failure none stays stopped. */
static int chunk_write_stop(struct gmm_guest *g, struct region *r, struct wstop *ws,
			    uint64_t base)
{
	uint64_t i = base, start, j = base, s2;
	int err = 0;

	while (!err && next_backed_run(r, &i, base + HUGE_PAGES, &start))
		err = stop_run(g, r, ws, start, i - start);
	if (!err)
		return 0;
	while (next_backed_run(r, &j, start, &s2))
		wstop_unprotect(g, r, ws, s2, j - s2);
	return err;
}

static void chunk_write_stop_cancel(struct gmm_guest *g, struct region *r, struct wstop *ws,
				   uint64_t base)
{
	uint64_t i = base, start;

	while (next_backed_run(r, &i, base + HUGE_PAGES, &start))
		wstop_unprotect(g, r, ws, start, i - start);
}

/* Copy the chunk into @block and map it in one piece; *@added: pages that were unbacked. */
static int collapse_locked(struct gmm_guest *g, struct region *r, struct wstop *ws,
			   uint64_t base, uint64_t block, uint64_t *added)
{
	uint64_t old[HUGE_PAGES];
	int err;

	if (!maps_room(g, remap_delta(r, base, block, HUGE_PAGES)))
		return -ENOSPC;
	err = chunk_write_stop(g, r, ws, base);
	if (err)
		return err;
	*added = 0;
	for (uint64_t i = 0; i < HUGE_PAGES; i++) {
		uint64_t e = entry_get(r, base + i);
		void *to = gmm_pfn_to_host(g->pool, block + i);

		old[i] = e ? entry_pfn(e) : GMM_PFN_NONE;
		if (e)
			memcpy(to, gmm_pfn_to_host(g->pool, old[i]), GMM_PAGE_SIZE);
		else
			memset(to, 0, GMM_PAGE_SIZE);
		*added += !e;
	}
	err = mmap_frames(g, r, base, block, HUGE_PAGES);
	if (err) {
		chunk_write_stop_cancel(g, r, ws, base);
		return err;
	}
	remap_entries(g, r, base, block, HUGE_PAGES, MAP_HUGE_BIT);
	wstop_release(g, r, ws, base, HUGE_PAGES);
	for (uint64_t i = 0; i < HUGE_PAGES; i++) {
		if (old[i] == GMM_PFN_NONE)
			continue;
		rmap_store(g->pool, old[i], 0);
		gmm_free(g->pool, old[i], 0);
	}
	return 0;
}

static void count(uint64_t *guest_counter, uint64_t *pass_counter)
{
	__atomic_fetch_add(guest_counter, 1, __ATOMIC_RELAXED);
	(*pass_counter)++;
}

/* Collapse one chunk: 1 done, 0 not collapsible (or raced), -ENOMEM no order-9 block. */
static int collapse_chunk(struct gmm_guest *g, struct region *r, uint64_t base,
			  unsigned int max_none, struct gmm_collapse_stats *st)
{
	uint64_t block, added = 0;
	struct wstop ws;
	int err = -EAGAIN;

	st->pages_scanned += HUGE_PAGES;
	if (g->unit_order || !chunk_collapsible(r, base, max_none))
		return 0;
	block = gmm_alloc(g->pool, HUGE_ORDER, GMM_MOVABLE, r->node);
	if (block == GMM_PFN_NONE) {
		count(&g->collapse_alloc_failed, &st->thp_collapse_alloc_failed);
		return -ENOMEM;
	}
	count(&g->collapse_alloc, &st->thp_collapse_alloc);
	/* the pause before the lock, as in guest_migrate_batch(); refused: skipped */
	wstop_begin(g, &ws);
	if (!ws.refused) {
		region_lock(r, true);
		if (chunk_collapsible(r, base, max_none))
			err = collapse_locked(g, r, &ws, base, block, &added);
		pthread_rwlock_unlock(&r->lock);
	}
	wstop_end(g, &ws, !err, err ? 0 : HUGE_PAGES - added);
	if (err) {
		gmm_free(g->pool, block, HUGE_ORDER);
		return 0;
	}
	count(&g->collapsed, &st->pages_collapsed);
	st->pages_added += added;
	return 1;
}

struct gmm_guest *guest_collapse_get(struct gmm_pool *p, unsigned int *id)
{
	struct gmm_guest *g = NULL;

	pthread_mutex_lock(&p->guests_lock);
	for (; *id < GMM_MAX_GUESTS && !g; (*id)++)
		g = p->guests[*id];
	if (g) {
		(*id)--;
		g->collapse_users++;
	}
	pthread_mutex_unlock(&p->guests_lock);
	return g;
}

void guest_collapse_put(struct gmm_guest *g)
{
	pthread_mutex_lock(&g->pool->guests_lock);
	if (!--g->collapse_users)
		pthread_cond_broadcast(&g->collapse_idle);
	pthread_mutex_unlock(&g->pool->guests_lock);
}

/*
 * Destroy: out of the pool's table, so khugepaged picks the guest no more,
 * then wait until it has put it back (offline: it may be compacting, which
 * drains the caches).
 */
static void guest_unlist(struct gmm_guest *g)
{
	struct gmm_pool *p = g->pool;
	bool was = pcp_offline_begin();

	pthread_mutex_lock(&p->guests_lock);
	if (p->guests[g->id] == g)
		p->guests[g->id] = NULL;
	while (g->collapse_users)
		pthread_cond_wait(&g->collapse_idle, &p->guests_lock);
	pthread_mutex_unlock(&p->guests_lock);
	pcp_offline_end(was);
}

int gmm_guest_collapse(struct gmm_guest *g, uint64_t max_chunks, struct gmm_collapse_stats *st)
{
	unsigned int nr;

	if (!g || !st)
		return gmm_set_error(-EINVAL, "gmm_guest_collapse: NULL argument");
	memset(st, 0, sizeof(*st));
	nr = __atomic_load_n(&g->nr_regions, __ATOMIC_ACQUIRE);
	for (unsigned int ri = 0; ri < nr && st->pages_collapsed < max_chunks; ri++) {
		struct region *r = &g->regions[ri];

		for (uint64_t base = 0; base < r->nr_pages && st->pages_collapsed < max_chunks;
		     base += HUGE_PAGES)
			collapse_chunk(g, r, base, 0, st);
	}
	return 0;
}

/* khugepaged's cursor in a guest: region index and page index. */
#define CURSOR_REGION_SHIFT 40

bool guest_collapse_scan(struct gmm_guest *g, uint64_t *cursor, uint64_t *budget,
			 unsigned int max_none, struct gmm_collapse_stats *st)
{
	unsigned int nr = __atomic_load_n(&g->nr_regions, __ATOMIC_ACQUIRE);

	for (;;) {
		unsigned int ri = (unsigned int)(*cursor >> CURSOR_REGION_SHIFT);
		uint64_t base = *cursor & ((1ull << CURSOR_REGION_SHIFT) - 1);

		if (ri >= nr) {
			*cursor = 0;
			return true;
		}
		if (base >= g->regions[ri].nr_pages) {
			*cursor = (uint64_t)(ri + 1) << CURSOR_REGION_SHIFT;
			continue;
		}
		if (!*budget)
			return false;
		*budget = *budget > HUGE_PAGES ? *budget - HUGE_PAGES : 0;
		/* no block: stay on this chunk, the caller sleeps */
		if (collapse_chunk(g, &g->regions[ri], base, max_none, st) == -ENOMEM)
			return false;
		*cursor += HUGE_PAGES;
	}
}
