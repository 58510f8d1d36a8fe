/* SPDX-License-Identifier: MIT */
/*
 * memmgr/pool.c - pool creation and layout: nodes, zones, zonelists,
 * watermarks and lowmem reserves, metadata, memory blocks and their backing.
 *
 * The pfn space is laid out node by node; each node has its ZONE_NORMAL
 * blocks (the last cma_bytes of it as CMA pageblocks) then its ZONE_MOVABLE
 * blocks.  Memory blocks are aligned to at least the largest buddy order so
 * that buddies never straddle two blocks.  After its zones, a node keeps
 * hotplug_bytes of pfn space (and metadata) reserved for blocks added later
 * with gmm_pool_add_block(); gmm_pool_remove_block() takes an empty block
 * out again.  Hotplug is serialised with free page reporting by
 * report_lock; watermarks are recomputed after each change.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define MIB (1ull << 20)
#define DEFAULT_BLOCK_BYTES (128 * MIB)

void gmm_pool_config_init(struct gmm_pool_config *cfg, uint64_t bytes)
{
	if (!cfg) {
		gmm_set_error(-EINVAL, "gmm_pool_config_init: NULL configuration");
		return;
	}
	memset(cfg, 0, sizeof(*cfg));
	cfg->nr_nodes = 1;
	cfg->nodes[0].normal_bytes = bytes;
	cfg->nodes[0].host_node = -1;
	for (int i = 1; i < GMM_MAX_NODES; i++)
		cfg->nodes[i].host_node = -1;
	cfg->max_order = GMM_DEFAULT_MAX_ORDER;
	cfg->block_bytes = DEFAULT_BLOCK_BYTES;
	cfg->mobility_grouping = true;
	cfg->nofragment = true;
	cfg->defrag_mode = true;
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static int check_node(const struct gmm_pool_config *cfg, unsigned int n)
{
	const struct gmm_node_config *nc = &cfg->nodes[n];

	if (nc->normal_bytes % cfg->block_bytes || nc->movable_bytes % cfg->block_bytes ||
	    nc->hotplug_bytes % cfg->block_bytes)
		return gmm_set_error(-EINVAL, "node %u: zone sizes must be multiples of the "
				     "memory block size (%llu bytes)", n,
				     (unsigned long long)cfg->block_bytes);
	if (nc->cma_bytes % (GMM_PAGEBLOCK_PAGES << GMM_PAGE_SHIFT) ||
	    nc->cma_bytes > nc->normal_bytes)
		return gmm_set_error(-EINVAL, "node %u: cma_bytes must be whole pageblocks "
				     "within ZONE_NORMAL", n);
	for (unsigned int m = 0; m < cfg->nr_nodes; m++) {
		uint8_t d = cfg->distance[n][m];

		if (d && (m == n ? d != 10 : d <= 10))
			return gmm_set_error(-EINVAL, "distance[%u][%u]=%u: 10 means local, "
					     "remote nodes need more", n, m, d);
	}
	return 0;
}

/* Add @bytes to *@total unless the pool would exceed its pfn space. */
static bool add_bytes(uint64_t *total, uint64_t bytes)
{
	return !__builtin_add_overflow(*total, bytes, total) &&
	       (*total >> GMM_PAGE_SHIFT) < GMM_MAX_PFNS;
}

static int check_config(const struct gmm_pool_config *cfg)
{
	uint64_t total = 0, all = 0;

	if (!cfg->nr_nodes || cfg->nr_nodes > GMM_MAX_NODES)
		return gmm_set_error(-EINVAL, "nr_nodes %u: must be 1..%d", cfg->nr_nodes,
				     GMM_MAX_NODES);
	if (cfg->max_order < GMM_PAGEBLOCK_ORDER || cfg->max_order > GMM_MAX_ORDER_LIMIT)
		return gmm_set_error(-EINVAL, "max_order %u: must be %d..%d", cfg->max_order,
				     GMM_PAGEBLOCK_ORDER, GMM_MAX_ORDER_LIMIT);
	if (!is_pow2(cfg->block_bytes) ||
	    cfg->block_bytes < (GMM_PAGE_SIZE << cfg->max_order))
		return gmm_set_error(-EINVAL, "block_bytes %llu: must be a power of two of at "
				     "least the largest buddy block (%lu bytes)",
				     (unsigned long long)cfg->block_bytes,
				     GMM_PAGE_SIZE << cfg->max_order);
	for (unsigned int n = 0; n < cfg->nr_nodes; n++) {
		const struct gmm_node_config *nc = &cfg->nodes[n];
		int err = check_node(cfg, n);

		if (err)
			return err;
		if (!add_bytes(&total, nc->normal_bytes) || !add_bytes(&total, nc->movable_bytes) ||
		    !add_bytes(&all, nc->normal_bytes) || !add_bytes(&all, nc->movable_bytes) ||
		    !add_bytes(&all, nc->hotplug_bytes))
			return gmm_set_error(-EINVAL, "node %u: the pool's sizes add up to more "
					     "than the 16 TiB limit", n);
	}
	if (!total)
		return gmm_set_error(-EINVAL, "the pool has no memory");
	return 0;
}

static uint8_t node_distance(const struct gmm_pool *p, int a, int b)
{
	uint8_t d = p->cfg.distance[a][b];

	if (d)
		return d;
	return a == b ? 10 : 20;
}

/*
 * Zonelist of node @n: nodes by distance (ties: nodes after @n before nodes
 * below it, as the kernel's find_next_best_node spreads them), and in each
 * node the higher zone first.
 */
static void build_zonelist(struct gmm_pool *p, struct gmm_node *nd)
{
	int order[GMM_MAX_NODES], nr = (int)p->cfg.nr_nodes;

	for (int i = 0; i < nr; i++)
		order[i] = i;
	for (int i = 1; i < nr; i++) {
		for (int j = i; j > 0; j--) {
			int a = order[j - 1], b = order[j];
			int ka = node_distance(p, nd->id, a) * 2 + (a < nd->id);
			int kb = node_distance(p, nd->id, b) * 2 + (b < nd->id);

			if (ka < kb || (ka == kb && a < b))
				break;
			order[j - 1] = b;
			order[j] = a;
		}
	}
	nd->nr_zonelist = 0;
	for (int i = 0; i < nr; i++) {
		for (int zt = GMM_NR_ZONES - 1; zt >= 0; zt--) {
			struct gmm_zone *z = &p->nodes[order[i]].zones[zt];

			if (z->managed || p->nodes[order[i]].hotplug_end)
				nd->zonelist[nd->nr_zonelist++] = z;
		}
	}
}

static uint64_t int_sqrt(uint64_t x)
{
	uint64_t r = 0;

	for (uint64_t bit = 1ull << 62; bit; bit >>= 2) {
		if (x >= r + bit) {
			x -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
	}
	return r;
}

/* Under every zone lock (setup_watermarks()). */
static void compute_watermarks(struct gmm_pool *p)
{
	uint64_t lowmem = 0, min_kbytes, min_pages;

	for_each_zone(p, z)
		if (z->type == GMM_ZONE_NORMAL)
			lowmem += z->managed;
	min_kbytes = int_sqrt((lowmem << (GMM_PAGE_SHIFT - 10)) * 16);
	if (min_kbytes < 128)
		min_kbytes = 128;
	if (min_kbytes > 262144)
		min_kbytes = 262144;
	min_pages = min_kbytes >> (GMM_PAGE_SHIFT - 10);
	for_each_zone(p, z) {
		uint64_t tmp = lowmem ? min_pages * z->managed / lowmem : 0;
		uint64_t scale = z->managed * 10 / 10000;

		if (z->type == GMM_ZONE_MOVABLE) {
			uint64_t m = z->managed / 1024;

			z->wmark[WMARK_MIN] = m < 32 ? 32 : m > 128 ? 128 : m;
		} else {
			z->wmark[WMARK_MIN] = tmp;
			/* sysctl_lowmem_reserve_ratio[ZONE_NORMAL] = 32 */
			z->lowmem_reserve[GMM_ZONE_MOVABLE] =
				p->nodes[z->node].zones[GMM_ZONE_MOVABLE].managed / 32;
		}
		tmp = (tmp >> 2) > scale ? tmp >> 2 : scale;
		z->wmark[WMARK_LOW] = z->wmark[WMARK_MIN] + tmp;
		z->wmark[WMARK_HIGH] = z->wmark[WMARK_LOW] + tmp;
	}
}

/*
 * The kernel's init_per_zone_wmark_min() and __setup_per_zone_wmarks().
 * Hotplug runs it while others allocate: every zone lock is held (in zone
 * order, as gmm_pool_check() takes them), since allocators read the marks
 * under their zone's lock.
 */
static void setup_watermarks(struct gmm_pool *p)
{
	for_each_zone(p, z)
		pthread_mutex_lock(&z->lock);
	compute_watermarks(p);
	for_each_zone(p, z)
		pthread_mutex_unlock(&z->lock);
}

static int alloc_metadata(struct gmm_pool *p)
{
	uint64_t link = p->nr_pfns * sizeof(uint64_t);
	uint64_t state = (p->nr_pfns + GMM_PAGE_SIZE - 1) & ~(GMM_PAGE_SIZE - 1);
	uint64_t pb = p->nr_pfns >> GMM_PAGEBLOCK_ORDER;

	p->meta_bytes = link + state + pb * (sizeof(uint16_t) + sizeof(struct gmm_pageblock));
	p->meta = mmap(NULL, p->meta_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->meta == MAP_FAILED) {
		p->meta = NULL;
		return gmm_set_error(-ENOMEM, "cannot reserve %zu bytes of frame metadata",
				     p->meta_bytes);
	}
	p->link = p->meta;
	p->state = (uint8_t *)p->meta + link;
	p->pb = (struct gmm_pageblock *)(p->state + state);
	p->pb_nfree = (uint16_t *)(p->pb + pb);
	p->mblocks = calloc(p->nr_mblocks, sizeof(*p->mblocks));
	if (!p->mblocks)
		return gmm_set_error(-ENOMEM, "cannot allocate %llu memory block descriptors",
				     (unsigned long long)p->nr_mblocks);
	return 0;
}

static void init_zone(struct gmm_pool *p, struct gmm_zone *z, int node, int type)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&z->lock, &a);
	pthread_mutexattr_destroy(&a);
	z->pool = p;
	z->node = node;
	z->type = type;
	z->pcp_off = pcp_zone_off(z);
	for (unsigned int o = 0; o <= GMM_MAX_ORDER_LIMIT; o++)
		for (int mt = 0; mt < GMM_MT_NR; mt++)
			z->area[o][mt].list.head = z->area[o][mt].list.tail = PFN_NIL;
}

/*
 * Hand the frames of one memory block to the buddy allocator.  Fresh memory
 * of a backing that can discard holds no host memory and reads as zero: it
 * starts out reported.
 */
static void free_block_frames(struct gmm_zone *z, uint64_t start, uint64_t nr)
{
	struct gmm_pool *p = z->pool;
	uint64_t chunk = 1ull << p->max_order;
	bool fresh = p->cfg.backing->discard != NULL;

	for (uint64_t pfn = start; pfn < start + nr; pfn += chunk) {
		int mt = pb_mt(p, pfn);
		bool uniform = true;

		for (uint64_t b = pfn; b < pfn + chunk; b += GMM_PAGEBLOCK_PAGES)
			uniform &= pb_mt(p, b) == mt;
		if (uniform) {
			freelist_add_flag(z, pfn, p->max_order, mt, true, fresh);
			continue;
		}
		for (uint64_t b = pfn; b < pfn + chunk; b += GMM_PAGEBLOCK_PAGES)
			buddy_free_one_flag(z, b, GMM_PAGEBLOCK_ORDER, pb_mt(p, b), fresh);
	}
}

/* Add one memory block of zone @z at @start: backing, pageblock types, free frames. */
static int add_mblock(struct gmm_pool *p, struct gmm_zone *z, uint64_t start, uint64_t cma_from)
{
	uint64_t nr = 1ull << p->block_shift;
	struct gmm_mblock *mb = pfn_mblock(p, start);
	int def = p->cfg.mobility_grouping ? GMM_MT_MOVABLE : GMM_MT_UNMOVABLE;
	void *addr = NULL;
	int err;

	err = p->cfg.backing->block_add(p->cfg.backing_ctx, start, nr,
					p->nodes[z->node].host_node, &addr);
	if (err)
		return err;
	pthread_mutex_lock(&z->lock);
	mb->host = addr;
	mb->zone = z;
	for (uint64_t b = start; b < start + nr; b += GMM_PAGEBLOCK_PAGES) {
		pb_set_type(p, b, b >= cma_from ? GMM_MT_CMA : def);
		pb_set_pcp(p, b, (uint16_t)z->pcp_off);
	}
	if (!z->present || start < z->start_pfn) {
		uint64_t end = z->present ? z->start_pfn + z->spanned : start + nr;

		z->start_pfn = start;
		z->spanned = end - start;
	}
	z->present += nr;
	z->managed += nr;
	if (start + nr > z->start_pfn + z->spanned)
		z->spanned = start + nr - z->start_pfn;
	__atomic_fetch_add(&p->nr_present, nr, __ATOMIC_RELAXED);
	free_block_frames(z, start, nr);
	pthread_mutex_unlock(&z->lock);
	return 0;
}

static int add_zone_blocks(struct gmm_pool *p, struct gmm_zone *z, uint64_t *pfn,
			   uint64_t bytes, uint64_t cma_bytes)
{
	uint64_t nr = bytes >> GMM_PAGE_SHIFT;
	uint64_t cma_from = *pfn + nr - (cma_bytes >> GMM_PAGE_SHIFT);

	if (!cma_bytes)
		cma_from = UINT64_MAX;
	for (uint64_t off = 0; off < nr; off += 1ull << p->block_shift) {
		int err = add_mblock(p, z, *pfn + off, cma_from);

		if (err)
			return err;
	}
	*pfn += nr;
	return 0;
}

static int layout(struct gmm_pool *p)
{
	uint64_t pfn = 0;

	for (unsigned int n = 0; n < p->cfg.nr_nodes; n++) {
		const struct gmm_node_config *nc = &p->cfg.nodes[n];
		struct gmm_node *nd = &p->nodes[n];
		int err;

		err = add_zone_blocks(p, &nd->zones[GMM_ZONE_NORMAL], &pfn, nc->normal_bytes,
				      nc->cma_bytes);
		if (!err)
			err = add_zone_blocks(p, &nd->zones[GMM_ZONE_MOVABLE], &pfn,
					      nc->movable_bytes, 0);
		if (err)
			return err;
		if (nc->hotplug_bytes) {
			nd->hotplug_start = pfn;
			pfn += nc->hotplug_bytes >> GMM_PAGE_SHIFT;
			nd->hotplug_end = pfn;
		}
	}
	return 0;
}

/* Free everything of @p; the backing context too when the pool owns it. */
static void pool_teardown(struct gmm_pool *p, bool own_backing)
{
	const struct gmm_backing_ops *ops;

	kcompactd_stop_all(p);
	khugepaged_fini(p);
	report_fini(p);
	pcp_pool_destroy(p);
	ops = p->cfg.backing;
	for (uint64_t i = 0; p->mblocks && i < p->nr_mblocks; i++) {
		if (p->mblocks[i].zone && ops->block_remove)
			ops->block_remove(p->cfg.backing_ctx, i << p->block_shift,
					  1ull << p->block_shift, p->mblocks[i].host);
	}
	if (own_backing && ops->destroy)
		ops->destroy(p->cfg.backing_ctx);
	for_each_zone(p, z)
		pthread_mutex_destroy(&z->lock);
	pthread_mutex_destroy(&p->report_lock);
	pthread_mutex_destroy(&p->guests_lock);
	if (p->meta)
		munmap(p->meta, p->meta_bytes);
	free(p->mblocks);
	free(p);
}

static unsigned int nr_guests(struct gmm_pool *p)
{
	unsigned int n = 0;

	pthread_mutex_lock(&p->guests_lock);
	for (unsigned int i = 0; i < GMM_MAX_GUESTS; i++)
		n += p->guests[i] != NULL;
	pthread_mutex_unlock(&p->guests_lock);
	return n;
}

int gmm_pool_destroy(struct gmm_pool *p)
{
	unsigned int n;

	if (!p)
		return 0;
	n = pcp_nr_attached(p);
	if (n)
		return gmm_set_error(-EBUSY, "pool destroy: %u thread(s) still attached "
				     "(gmm_thread_detach() them first); nothing freed", n);
	n = nr_guests(p);
	if (n)
		return gmm_set_error(-EBUSY, "pool destroy: %u guest(s) still use the pool "
				     "(gmm_guest_destroy() them first); nothing freed", n);
	pool_teardown(p, true);
	return 0;
}

int gmm_pool_create(const struct gmm_pool_config *cfg, struct gmm_pool **pool)
{
	struct gmm_pool *p;
	uint64_t total = 0;
	int err;

	gmm_clear_error();
	if (!cfg || !pool)
		return gmm_set_error(-EINVAL, "gmm_pool_create: NULL argument");
	err = check_config(cfg);
	if (err)
		return err;
	p = aligned_alloc(64, (sizeof(*p) + 63) & ~(size_t)63); /* the zones' line layout */
	if (!p)
		return gmm_set_error(-ENOMEM, "cannot allocate the pool");
	memset(p, 0, sizeof(*p));
	p->cfg = *cfg;
	if (!p->cfg.backing)
		p->cfg.backing = &gmm_backing_anon;
	p->max_order = cfg->max_order;
	p->block_shift = (unsigned int)__builtin_ctzll(cfg->block_bytes) - GMM_PAGE_SHIFT;
	for (unsigned int n = 0; n < cfg->nr_nodes; n++)
		total += cfg->nodes[n].normal_bytes + cfg->nodes[n].movable_bytes +
			 cfg->nodes[n].hotplug_bytes;
	p->report_order = ~0u;
	pthread_mutex_init(&p->report_lock, NULL);
	pthread_mutex_init(&p->guests_lock, NULL);
	p->nr_pfns = total >> GMM_PAGE_SHIFT;
	p->nr_mblocks = p->nr_pfns >> p->block_shift;
	for (unsigned int n = 0; n < cfg->nr_nodes; n++) {
		p->nodes[n].id = (int)n;
		p->nodes[n].host_node = cfg->nodes[n].host_node;
		for (int zt = 0; zt < GMM_NR_ZONES; zt++)
			init_zone(p, &p->nodes[n].zones[zt], (int)n, zt);
	}
	p->policy_word = 1 | ((uint64_t)GMM_POLICY_PREFERRED << POLICY_MODE_SHIFT);
	err = alloc_metadata(p);
	if (!err)
		err = layout(p);
	if (err) {
		pool_teardown(p, false);
		return err;
	}
	for (unsigned int n = 0; n < cfg->nr_nodes; n++)
		build_zonelist(p, &p->nodes[n]);
	setup_watermarks(p);
	err = pcp_pool_init(p);
	if (err) {
		pool_teardown(p, false);
		return err;
	}
	*pool = p;
	return 0;
}


uint64_t gmm_pool_nr_pages(const struct gmm_pool *p)
{
	if (!p) {
		gmm_set_error(-EINVAL, "gmm_pool_nr_pages: NULL pool");
		return 0;
	}
	return __atomic_load_n(&p->nr_present, __ATOMIC_RELAXED);
}

/* --- hotplug ---------------------------------------------------------------- */

/* The first absent block of node @n's pfn space (its zones and its reserve). */
static uint64_t find_absent_block(const struct gmm_pool *p, int n)
{
	uint64_t start = 0, end;

	for (int i = 0; i < n; i++)
		start += (p->cfg.nodes[i].normal_bytes + p->cfg.nodes[i].movable_bytes +
			  p->cfg.nodes[i].hotplug_bytes) >> GMM_PAGE_SHIFT;
	end = start + ((p->cfg.nodes[n].normal_bytes + p->cfg.nodes[n].movable_bytes +
			p->cfg.nodes[n].hotplug_bytes) >> GMM_PAGE_SHIFT);
	for (uint64_t pfn = start; pfn < end; pfn += 1ull << p->block_shift)
		if (!pfn_mblock(p, pfn)->zone)
			return pfn;
	return GMM_PFN_NONE;
}

/*
 * Hotplug holds report_lock while it drains the per-thread caches (the
 * isolation does): whoever waits for the lock must be offline meanwhile,
 * or the drain's grace period would wait for it.
 */
static void hotplug_lock(struct gmm_pool *p)
{
	bool was = pcp_offline_begin();

	pthread_mutex_lock(&p->report_lock);
	pcp_offline_end(was);
}

int gmm_pool_add_block(struct gmm_pool *p, int node, enum gmm_zone_type zone, uint64_t *first_pfn)
{
	uint64_t pfn;
	int err;

	if (!p || node < 0 || node >= (int)p->cfg.nr_nodes || zone >= GMM_NR_ZONES)
		return gmm_set_error(-EINVAL, "add block: no node %d / zone %d in the pool", node,
				     (int)zone);
	hotplug_lock(p);
	pfn = find_absent_block(p, node);
	if (pfn == GMM_PFN_NONE) {
		pthread_mutex_unlock(&p->report_lock);
		return gmm_set_error(-ENOSPC, "add block: node %d has no pfn space left "
				     "(configure nodes[%d].hotplug_bytes)", node, node);
	}
	err = add_mblock(p, &p->nodes[node].zones[zone], pfn, UINT64_MAX);
	if (!err)
		setup_watermarks(p);
	pthread_mutex_unlock(&p->report_lock);
	if (!err && first_pfn)
		*first_pfn = pfn;
	return err;
}

/* Are all frames of [start, end) free (on the ISOLATE lists)? */
static bool block_all_free(const struct gmm_pool *p, uint64_t start, uint64_t end)
{
	for (uint64_t pfn = start; pfn < end; pfn += 1ull << fr_order(p, pfn))
		if (fr_kind(p, pfn) != FR_FREE)
			return false;
	return true;
}

static void take_block(struct gmm_zone *z, uint64_t start, uint64_t nr)
{
	struct gmm_pool *p = z->pool;

	for (uint64_t pfn = start; pfn < start + nr;) {
		unsigned int o = fr_order(p, pfn);

		freelist_del(z, pfn, o, GMM_MT_ISOLATE);
		pfn += 1ull << o;
	}
	for (uint64_t b = start; b < start + nr; b += GMM_PAGEBLOCK_PAGES) {
		pb_store(p, b, 0);
		pb_set_pcp(p, b, 0);
	}
	pfn_mblock(p, start)->zone = NULL;
	z->present -= nr;
	z->managed -= nr;
}

/*
 * The kernel's offline_pages(): isolate the block, migrate every owned
 * movable block out (without report_lock: the moves allocate, and a
 * reporting pass takes nothing from isolated pageblocks), then take it
 * when every frame is free, or undo the isolation.
 */
int gmm_pool_remove_block(struct gmm_pool *p, uint64_t first_pfn)
{
	uint64_t nr, end;
	struct gmm_zone *z;
	void *host;
	int err;

	if (!p)
		return gmm_set_error(-EINVAL, "remove block: NULL pool");
	nr = 1ull << p->block_shift;
	end = first_pfn + nr;
	z = pfn_zone(p, first_pfn);
	if (!z || (first_pfn & (nr - 1)))
		return gmm_set_error(-EINVAL, "remove block: pfn %llu is not the start of a "
				     "present memory block", (unsigned long long)first_pfn);
	hotplug_lock(p);
	err = gmm_isolate_range(p, first_pfn, end);
	if (err)
		goto out;
	pthread_mutex_unlock(&p->report_lock);
	err = contig_evacuate(p, first_pfn, end, true);
	hotplug_lock(p);
	pthread_mutex_lock(&z->lock);
	if (err || !block_all_free(p, first_pfn, end)) {
		pthread_mutex_unlock(&z->lock);
		gmm_undo_isolate_range(p, first_pfn, end);
		if (!err)
			err = gmm_set_error(-EBUSY, "remove block at pfn %llu: frames are still "
					    "allocated", (unsigned long long)first_pfn);
		goto out;
	}
	take_block(z, first_pfn, nr);
	host = pfn_mblock(p, first_pfn)->host;
	pthread_mutex_unlock(&z->lock);
	__atomic_fetch_sub(&p->nr_present, nr, __ATOMIC_RELAXED);
	setup_watermarks(p);
	if (p->cfg.backing->block_remove)
		p->cfg.backing->block_remove(p->cfg.backing_ctx, first_pfn, nr, host);
out:
	pthread_mutex_unlock(&p->report_lock);
	return err;
}

uint64_t gmm_pool_nr_free(struct gmm_pool *p)
{
	uint64_t sum = 0;

	if (!p) {
		gmm_set_error(-EINVAL, "gmm_pool_nr_free: NULL pool");
		return 0;
	}
	for_each_zone(p, z) {
		pthread_mutex_lock(&z->lock);
		sum += z->nr_free;
		pthread_mutex_unlock(&z->lock);
	}
	return sum;
}

int gmm_pfn_node(const struct gmm_pool *p, uint64_t pfn)
{
	struct gmm_zone *z = p ? pfn_zone(p, pfn) : NULL;

	if (!z)
		return gmm_set_error(-EINVAL, "pfn %llu is not in the pool%s",
				     (unsigned long long)pfn, p ? "" : " (NULL pool)");
	return z->node;
}

int gmm_pfn_zone(const struct gmm_pool *p, uint64_t pfn)
{
	struct gmm_zone *z = p ? pfn_zone(p, pfn) : NULL;

	if (!z)
		return gmm_set_error(-EINVAL, "pfn %llu is not in the pool%s",
				     (unsigned long long)pfn, p ? "" : " (NULL pool)");
	return (int)z->type;
}

int gmm_pageblock_migratetype(struct gmm_pool *p, uint64_t pfn)
{
	struct gmm_zone *z = p ? pfn_zone(p, pfn) : NULL;
	int mt;

	if (!z)
		return gmm_set_error(-EINVAL, "pfn %llu is not in the pool%s",
				     (unsigned long long)pfn, p ? "" : " (NULL pool)");
	pthread_mutex_lock(&z->lock);
	mt = pb_mt(p, pfn);
	pthread_mutex_unlock(&z->lock);
	return mt;
}

uint64_t gmm_metadata_bytes(const struct gmm_pool *p)
{
	if (!p) {
		gmm_set_error(-EINVAL, "gmm_metadata_bytes: NULL pool");
		return 0;
	}
	return p->nr_pfns * (sizeof(uint64_t) + 1) +
	       (p->nr_pfns >> GMM_PAGEBLOCK_ORDER) * (1 + sizeof(uint16_t));
}

unsigned int gmm_metadata_bytes_per_frame(void)
{
	return sizeof(uint64_t) + 1;
}
