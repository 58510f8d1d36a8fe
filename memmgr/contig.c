/* SPDX-License-Identifier: MIT */
/*
 * memmgr/contig.c - contiguous allocation by migration (the kernel's
 * alloc_contig_range and alloc_contig_pages): isolate the pageblocks,
 * move the owned movable blocks out, and take the range once every frame
 * is free; the search for a suitable range (pfn_range_valid_contig); and
 * gmm_migrate_block(), the move of one block to a new one on its node.
 * CMA (cma.c) and hot-remove (pool.c) reuse the evacuation.
 */
#include <sched.h>

#include "internal.h"

#define CONTIG_MIGRATE_TRIES 5 /* passes over the range before giving up */
#define CONTIG_REPORTED_RUNS 32 /* runs of reported frames repopulated after a take */

/* Why a range could not be emptied. */
enum contig_why {
	WHY_NONE,
	WHY_UNMOVABLE, /* an allocated block that is not movable */
	WHY_UNOWNED,   /* a movable block without an owner to move it */
	WHY_BUSY,      /* the owner said -EAGAIN (or a cached block) every pass */
	WHY_PINNED,    /* the owner said -EBUSY every pass */
	WHY_NOMEM,     /* no target for a move */
};

static int migrate_block(struct gmm_pool *p, uint64_t pfn, enum gmm_migrate_mode mode,
			 bool any_node, uint64_t *new_pfn);

static const char *const why_text[] = {
	[WHY_NONE] = "frames held off the free lists",
	[WHY_UNMOVABLE] = "holds an unmovable block",
	[WHY_UNOWNED] = "holds a movable block without an owner",
	[WHY_BUSY] = "an owner stayed busy",
	[WHY_PINNED] = "holds a pinned block",
	[WHY_NOMEM] = "no free memory to move a block to",
};

/* The head of the block holding @pfn (free, allocated or cached), or @pfn. */
static uint64_t head_of(const struct gmm_pool *p, uint64_t pfn)
{
	uint64_t h;

	if (fr_kind(p, pfn) != FR_TAIL)
		return pfn;
	h = buddy_find_head(p, pfn);
	return h == GMM_PFN_NONE ? pfn : h;
}

/* The next allocated or cached block head at or after @pfn below @end, or @end. */
static uint64_t next_used(struct gmm_pool *p, struct gmm_zone *z, uint64_t pfn, uint64_t end)
{
	pthread_mutex_lock(&z->lock);
	while (pfn < end) {
		uint8_t s = fr_state(p, pfn);
		unsigned int k = s & FR_KIND_MASK;

		if (k == FR_ALLOC || k == FR_PCP)
			break;
		pfn += k == FR_FREE ? 1ull << ((s & FR_ORDER_MASK) >> FR_ORDER_SHIFT) : 1;
	}
	pthread_mutex_unlock(&z->lock);
	return pfn;
}

/* Move the used block at @pfn out; whether it is gone (else *@why says why not). */
static bool evacuate_one(struct gmm_pool *p, uint64_t pfn, bool any_node, enum contig_why *why)
{
	uint8_t s = fr_state(p, pfn);
	int err;

	if ((s & FR_KIND_MASK) != FR_ALLOC && (s & FR_KIND_MASK) != FR_PCP)
		return true; /* freed since next_used() saw it (it stays in the range) */
	if ((s & FR_KIND_MASK) == FR_PCP) {
		*why = WHY_BUSY; /* freed into a cache after the drain: drained next pass */
		return false;
	}
	if (!(s & FR_FLAG)) {
		*why = WHY_UNMOVABLE;
		return false;
	}
	err = migrate_block(p, pfn, GMM_MIGRATE_SYNC, any_node, NULL);
	if (!err || err == -EINVAL) /* moved, or freed meanwhile */
		return true;
	*why = err == -ENOENT ? WHY_UNOWNED : err == -ENOMEM ? WHY_NOMEM :
	       err == -EBUSY ? WHY_PINNED : WHY_BUSY;
	return false;
}

static bool why_hard(enum contig_why why)
{
	return why == WHY_UNMOVABLE || why == WHY_UNOWNED || why == WHY_NOMEM;
}

/* One pass: move every used block of [start, end) out; returns the blocks left. */
static uint64_t evacuate_pass(struct gmm_pool *p, struct gmm_zone *z, uint64_t start,
			      uint64_t end, bool any_node, enum contig_why *why)
{
	uint64_t left = 0, pfn;

	pthread_mutex_lock(&z->lock);
	pfn = head_of(p, start);
	pthread_mutex_unlock(&z->lock);
	while ((pfn = next_used(p, z, pfn, end)) < end) {
		unsigned int o = fr_order(p, pfn);

		if (!evacuate_one(p, pfn, any_node, why)) {
			left++;
			if (why_hard(*why))
				return left;
		}
		pfn += 1ull << o;
	}
	return left;
}

int contig_evacuate(struct gmm_pool *p, uint64_t start, uint64_t end, bool any_node)
{
	struct gmm_zone *z = pfn_zone(p, start);
	enum contig_why why = WHY_NONE;
	uint64_t left = 1;

	for (int i = 0; i < CONTIG_MIGRATE_TRIES && left; i++) {
		why = WHY_NONE;
		left = evacuate_pass(p, z, start, end, any_node, &why);
		if (!left || why_hard(why))
			break;
		if (p->drain_all)
			p->drain_all(p);
		sched_yield();
	}
	if (!left)
		return 0;
	return gmm_set_error(-EBUSY, "range [%llu, %llu) %s", (unsigned long long)start,
			     (unsigned long long)end, why_text[why]);
}

/* --- taking the free range ---------------------------------------------------- */

/* Runs of frames that were reported (discarded) when taken. */
struct reported_runs {
	uint64_t start[CONTIG_REPORTED_RUNS], end[CONTIG_REPORTED_RUNS];
	unsigned int n;
};

static void runs_add(struct reported_runs *r, uint64_t s, uint64_t e)
{
	if (r->n && r->end[r->n - 1] == s) {
		r->end[r->n - 1] = e;
		return;
	}
	if (r->n == CONTIG_REPORTED_RUNS) {
		/* full: widen the last run (repopulating frames we own is harmless) */
		r->end[r->n - 1] = e;
		return;
	}
	r->start[r->n] = s;
	r->end[r->n++] = e;
}

/*
 * Take the part of the free block [@pfn, @pfn + 2^@o) (off its list) that
 * lies in [@start, @end) as single allocated frames; the parts outside go
 * back to the free lists as aligned pieces, reported as the block was.
 */
static void take_part(struct gmm_zone *z, uint64_t pfn, unsigned int o, bool reported,
		      uint64_t start, uint64_t end, struct reported_runs *r)
{
	struct gmm_pool *p = z->pool;
	uint64_t last = pfn + (1ull << o);

	if (pfn >= end || last <= start) {
		freelist_add_flag(z, pfn, o, pb_mt(p, pfn), true, reported);
		return;
	}
	if (pfn < start || last > end) {
		take_part(z, pfn, o - 1, reported, start, end, r);
		take_part(z, pfn + (1ull << (o - 1)), o - 1, reported, start, end, r);
		return;
	}
	for (uint64_t i = pfn; i < last; i++) {
		p->link[i] = 0;
		fr_set(p, i, FR_ALLOC, 0, false);
	}
	if (reported)
		runs_add(r, pfn, last);
}

/* Every frame of [start, end) free (isolated): take them as order-0 frames. */
static int take_range(struct gmm_pool *p, struct gmm_zone *z, uint64_t start, uint64_t end,
		      struct reported_runs *r)
{
	uint64_t pfn, head;

	pthread_mutex_lock(&z->lock);
	head = head_of(p, start);
	for (pfn = head; pfn < end; pfn += 1ull << fr_order(p, pfn)) {
		if (fr_kind(p, pfn) != FR_FREE) {
			pthread_mutex_unlock(&z->lock);
			return gmm_set_error(-EBUSY, "range [%llu, %llu): frame %llu is not free",
					     (unsigned long long)start, (unsigned long long)end,
					     (unsigned long long)pfn);
		}
	}
	for (pfn = head; pfn < end;) {
		unsigned int o = fr_order(p, pfn);
		bool reported = fr_reported(p, pfn);

		freelist_del(z, pfn, o, pb_mt(p, pfn));
		take_part(z, pfn, o, reported, start, end, r);
		pfn += 1ull << o;
	}
	z->ev.alloc++;
	pthread_mutex_unlock(&z->lock);
	return 0;
}

/* Discarded frames were taken: the backing makes them usable (hugetlbfs), block by block. */
static int repopulate_runs(struct gmm_pool *p, const struct reported_runs *r)
{
	const struct gmm_backing_ops *ops = p->cfg.backing;
	uint64_t mb = 1ull << p->block_shift;

	if (!ops->repopulate)
		return 0;
	for (unsigned int i = 0; i < r->n; i++) {
		for (uint64_t pfn = r->start[i], next; pfn < r->end[i]; pfn = next) {
			int err;

			next = (pfn | (mb - 1)) + 1;
			if (next > r->end[i])
				next = r->end[i];
			err = ops->repopulate(p->cfg.backing_ctx, pfn, next - pfn,
					      gmm_pfn_to_host(p, pfn));
			if (err)
				return err;
		}
	}
	return 0;
}

/* A reporting pass that holds blocks of the range off the lists puts them back. */
static void report_barrier(struct gmm_pool *p)
{
	bool was = pcp_offline_begin();

	pthread_mutex_lock(&p->report_lock);
	pthread_mutex_unlock(&p->report_lock);
	pcp_offline_end(was);
}

int gmm_alloc_contig_range(struct gmm_pool *p, uint64_t start, uint64_t end)
{
	struct reported_runs runs = { .n = 0 };
	uint64_t lo, hi;
	int err;

	if (!p)
		return gmm_set_error(-EINVAL, "gmm_alloc_contig_range: NULL pool");
	if (start >= end || end > p->nr_pfns)
		return gmm_set_error(-EINVAL, "contiguous range [%llu, %llu): empty or beyond "
				     "the pool", (unsigned long long)start,
				     (unsigned long long)end);
	lo = start & ~(uint64_t)(GMM_PAGEBLOCK_PAGES - 1);
	hi = (end + GMM_PAGEBLOCK_PAGES - 1) & ~(uint64_t)(GMM_PAGEBLOCK_PAGES - 1);
	err = gmm_isolate_range(p, lo, hi);
	if (err)
		return err;
	/* after the isolation a reporting pass takes nothing here: wait for one in flight */
	report_barrier(p);
	err = contig_evacuate(p, start, end, false);
	if (!err)
		err = take_range(p, pfn_zone(p, start), start, end, &runs);
	gmm_undo_isolate_range(p, lo, hi);
	if (!err && runs.n && repopulate_runs(p, &runs)) {
		gmm_free_contig_range(p, start, end);
		return gmm_set_error(-ENOMEM, "contiguous range [%llu, %llu): the backing "
				     "cannot repopulate its discarded frames",
				     (unsigned long long)start, (unsigned long long)end);
	}
	return err;
}

int gmm_free_contig_range(struct gmm_pool *p, uint64_t start, uint64_t end)
{
	if (!p || start >= end || end > p->nr_pfns)
		return gmm_set_error(-EINVAL, "gmm_free_contig_range: bad range");
	for (uint64_t pfn = start; pfn < end; pfn++)
		if (!pfn_zone(p, pfn) || fr_state(p, pfn) != FR_ALLOC)
			return gmm_set_error(-EINVAL, "gmm_free_contig_range: frame %llu is not "
					     "an allocated single frame",
					     (unsigned long long)pfn);
	for (uint64_t pfn = start; pfn < end; pfn++)
		gmm_free(p, pfn, 0);
	return 0;
}

/* --- finding a range (the kernel's alloc_contig_pages) --------------------------- */

/*
 * Could [@s, @e) of zone @z be taken by migration (pfn_range_valid_contig)?
 * Lock-free and racy, like the kernel's: gmm_alloc_contig_range() decides.
 * Its pageblocks must be present in @z, not isolated, and CMA exactly when
 * @cma; its frames free, cached or movable (the owner, in link[], is not
 * read here: without the zone lock the buddy may be rewriting that word).
 * If not, *@bad is a pfn that spoils every range holding it.
 */
static bool range_suitable(struct gmm_pool *p, struct gmm_zone *z, uint64_t s, uint64_t e,
			   bool cma, uint64_t *bad)
{
	for (uint64_t b = s & ~(uint64_t)(GMM_PAGEBLOCK_PAGES - 1); b < e; b += GMM_PAGEBLOCK_PAGES) {
		uint8_t v = __atomic_load_n(pb_byte(p, b), __ATOMIC_RELAXED);

		if (pfn_zone(p, b) != z || (v & PB_ISOLATE) ||
		    ((v & PB_MT_MASK) == GMM_MT_CMA) != cma) {
			*bad = b + GMM_PAGEBLOCK_PAGES - 1;
			return false;
		}
	}
	for (uint64_t pfn = head_of(p, s); pfn < e;) {
		uint8_t st = fr_state(p, pfn);
		unsigned int k = st & FR_KIND_MASK;

		if (k == FR_ALLOC && !(st & FR_FLAG)) {
			*bad = pfn + (1ull << ((st & FR_ORDER_MASK) >> FR_ORDER_SHIFT)) - 1;
			return false;
		}
		pfn += k == FR_TAIL ? 1 : 1ull << ((st & FR_ORDER_MASK) >> FR_ORDER_SHIFT);
	}
	return true;
}

uint64_t contig_search(struct gmm_pool *p, struct gmm_zone *z, uint64_t nr, uint64_t align,
		       bool cma)
{
	uint64_t end = z->start_pfn + z->spanned;
	uint64_t s = (z->start_pfn + align - 1) & ~(align - 1);

	while (s + nr <= end && s + nr > s) {
		uint64_t bad, next;

		if (range_suitable(p, z, s, s + nr, cma, &bad)) {
			if (!gmm_alloc_contig_range(p, s, s + nr))
				return s;
			bad = s;
		}
		next = (bad + align) & ~(align - 1);
		s = next > s ? next : s + align;
	}
	return GMM_PFN_NONE;
}

uint64_t gmm_alloc_contig_pages(struct gmm_pool *p, uint64_t nr_pages, int node)
{
	uint64_t align = 1;
	struct gmm_node *nd;

	if (!p || !nr_pages || nr_pages > p->nr_pfns ||
	    (node != GMM_NO_NODE && (node < 0 || node >= (int)p->cfg.nr_nodes))) {
		gmm_set_error(-EINVAL, "gmm_alloc_contig_pages: bad pool, size %llu or node %d",
			      (unsigned long long)nr_pages, node);
		return GMM_PFN_NONE;
	}
	while (align < nr_pages && align < (1ull << GMM_MAX_ORDER_LIMIT))
		align <<= 1;
	nd = &p->nodes[node == GMM_NO_NODE ? 0 : node];
	for (unsigned int i = 0; i < nd->nr_zonelist; i++) {
		struct gmm_zone *z = nd->zonelist[i];
		uint64_t pfn;

		if (z->type == GMM_ZONE_MOVABLE)
			continue;
		pfn = contig_search(p, z, nr_pages, align, false);
		if (pfn != GMM_PFN_NONE)
			return pfn;
	}
	gmm_set_error(-ENOMEM, "no range of %llu frames in ZONE_NORMAL holds only free and "
		      "movable frames that could be moved", (unsigned long long)nr_pages);
	return GMM_PFN_NONE;
}

/* --- moving one block anywhere on its node (gmm/migrate.h) ----------------------- */

/* The order of the allocated block headed at @pfn, or -1. */
static int alloc_order(struct gmm_pool *p, uint64_t pfn)
{
	struct gmm_zone *z = pfn_zone(p, pfn);
	int o = -1;

	if (!z)
		return -1;
	pthread_mutex_lock(&z->lock);
	if (fr_kind(p, pfn) == FR_ALLOC)
		o = (int)fr_order(p, pfn);
	pthread_mutex_unlock(&z->lock);
	return o;
}

/*
 * Move the owned movable block at @pfn to a new block of its zone type on
 * its node, or, when @any_node and its node has no room, on any node (the
 * kernel's offline_pages() moves to other nodes).
 */
static int migrate_block(struct gmm_pool *p, uint64_t pfn, enum gmm_migrate_mode mode,
			 bool any_node, uint64_t *new_pfn)
{
	unsigned int flags = GMM_MOVABLE;
	struct gmm_zone *z;
	uint64_t new;
	int order, err;

	order = alloc_order(p, pfn);
	if (order < 0)
		return gmm_set_error(-EINVAL, "migrate: pfn %llu heads no allocated block",
				     (unsigned long long)pfn);
	if (!movable_rmap(p, pfn, (unsigned int)order))
		return gmm_set_error(-ENOENT, "migrate: pfn %llu is not movable or has no owner",
				     (unsigned long long)pfn);
	/* the same zone type: the block keeps its placement */
	z = pfn_zone(p, pfn);
	if (z->type == GMM_ZONE_NORMAL)
		flags |= GMM_NO_MOVABLE_ZONE;
	new = gmm_alloc(p, (unsigned int)order, flags | GMM_THISNODE, z->node);
	if (new == GMM_PFN_NONE && any_node && p->cfg.nr_nodes > 1)
		new = gmm_alloc(p, (unsigned int)order, flags, GMM_NO_NODE);
	if (new == GMM_PFN_NONE)
		return -ENOMEM;
	err = migrate_block_to(p, pfn, new, (unsigned int)order, mode);
	if (err) {
		gmm_free(p, new, (unsigned int)order);
		return gmm_set_error(err, "migrate: owner of pfn %llu refused (%d)",
				     (unsigned long long)pfn, err);
	}
	if (new_pfn)
		*new_pfn = new;
	return 0;
}

int gmm_migrate_block(struct gmm_pool *p, uint64_t pfn, enum gmm_migrate_mode mode,
		      uint64_t *new_pfn)
{
	if (!p)
		return gmm_set_error(-EINVAL, "gmm_migrate_block: NULL pool");
	return migrate_block(p, pfn, mode, false, new_pfn);
}
