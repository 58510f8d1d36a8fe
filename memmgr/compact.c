/* SPDX-License-Identifier: MIT */
/*
 * memmgr/compact.c - compaction of a zone (the kernel's mm/compaction.c).
 *
 * A migrate scanner walks up from the zone's start and collects owned
 * movable blocks (up to COMPACT_CLUSTER_MAX at a time); a free scanner
 * takes free blocks out of the buddy's free lists as targets, above the
 * point where the two would meet (found from the per-pageblock free counts)
 * and in pageblocks the migrate scanner left behind.  Both work under the
 * zone lock; the moves themselves (the owners' callbacks, in batches) run
 * without it.  Suitability (watermark and
 * fragmentation index), pageblock skip bits, deferral, capture and the
 * fragmentation score follow the kernel; differences are noted in place.
 */
#include <string.h>

#include "internal.h"

#define COMPACT_CLUSTER_MAX 32   /* blocks isolated per round (the kernel's) */
#define COMPACT_MAX_DEFER_SHIFT 6
#define EXTFRAG_THRESHOLD 500    /* vm.extfrag_threshold */
#define COMPACTION_HPAGE_ORDER GMM_PAGEBLOCK_ORDER
#define COMPACT_MOVED_MAX (GMM_PAGEBLOCK_PAGES + COMPACT_CLUSTER_MAX) /* moved-out blocks held */
#define COMPACT_FREE_MAX (COMPACT_CLUSTER_MAX * 2) /* isolated targets and their split halves */

struct blk {
	uint64_t pfn;
	unsigned int order;
	bool reported;   /* a target: its host memory was discarded */
};

struct compact_control {
	struct gmm_zone *z;
	int order;                /* -1: the whole zone */
	enum gmm_migrate_mode mode;
	bool ignore_skip;         /* manual compaction: scan blocks marked skip */
	bool abandon_unmovable;   /* sync too: leave a pageblock at its first non-movable frame */
	bool proactive;
	unsigned int score_low;   /* proactive: stop at or below this score */
	uint64_t target;          /* order 9: stop once this many frames are in free pageblocks */
	bool capture;             /* take the produced block for the requester */
	int mt;                   /* ... of this migratetype */
	bool movable;             /* ... declared movable */
	bool nofragment;          /* ... without a fragmenting fallback (defrag mode) */
	uint64_t captured;
	bool captured_reported;   /* its host memory was discarded */
	uint64_t migrate_pfn, free_pfn, end_pfn;
	struct blk mig[COMPACT_CLUSTER_MAX];
	unsigned int nr_mig;
	uint64_t cluster_block;   /* pageblock of the cluster's first source */
	uint64_t nr_fr_frames;    /* frames in fr[] */
	unsigned int dry;         /* orders whose free lists held no target at the last search */
	/* moved-out blocks of the pageblocks being emptied, freed once the migrate
	 * scanner has left them (so they merge at once, never sit on the lists
	 * that the free scanner searches) */
	uint32_t moved[COMPACT_MOVED_MAX];
	unsigned int nr_moved;
	struct blk fr[COMPACT_FREE_MAX];
	unsigned int nr_fr;
	struct gmm_compact_result res;
};

/* A run over @z for @order (-1: the whole zone) of movable frames, nothing captured. */
static void cc_init(struct compact_control *cc, struct gmm_zone *z, int order,
		    enum gmm_migrate_mode mode)
{
	memset(cc, 0, sizeof(*cc));
	cc->z = z;
	cc->order = order;
	cc->mode = mode;
	cc->mt = GMM_MT_MOVABLE;
	cc->captured = GMM_PFN_NONE;
	cc->abandon_unmovable = (order < 0 || order >= GMM_PAGEBLOCK_ORDER) &&
				pool_defrag_mode(z->pool);
}

/* --- per-zone state: deferral and the cached scanner positions --------- */

/* The kernel's defer_compaction(): after a failure, skip the next 2^shift tries. */
static void defer_compaction(struct gmm_zone *z, int order)
{
	struct compact_zone_state *cs = &z->compact;

	cs->considered = 0;
	if (cs->defer_shift < COMPACT_MAX_DEFER_SHIFT)
		cs->defer_shift++;
	if (order < (int)cs->order_failed || !cs->order_failed)
		cs->order_failed = (unsigned int)order;
}

/* The kernel's compaction_deferred(). */
static bool compaction_deferred(struct gmm_zone *z, int order)
{
	struct compact_zone_state *cs = &z->compact;

	if (!cs->order_failed || order < (int)cs->order_failed)
		return false;
	if (++cs->considered >= 1u << cs->defer_shift) {
		cs->considered = 1u << cs->defer_shift;
		return false;
	}
	return true;
}

/* The kernel's compaction_defer_reset() after a success. */
static void defer_reset(struct gmm_zone *z, int order)
{
	struct compact_zone_state *cs = &z->compact;

	cs->considered = 0;
	cs->defer_shift = 0;
	if (order >= (int)cs->order_failed)
		cs->order_failed = (unsigned int)order + 1;
}

static uint64_t zone_end(const struct gmm_zone *z)
{
	return (z->start_pfn + z->spanned) & ~(GMM_PAGEBLOCK_PAGES - 1);
}

static void clear_skip_bits(struct gmm_zone *z)
{
	struct gmm_pool *p = z->pool;

	for (uint64_t b = z->start_pfn; b < zone_end(z); b += GMM_PAGEBLOCK_PAGES)
		if (pfn_zone(p, b) == z && (*pb_byte(p, b) & PB_SKIP))
			pb_store(p, b, *pb_byte(p, b) & (uint8_t)~PB_SKIP);
}

static void set_skip(struct gmm_zone *z, uint64_t block)
{
	pb_store(z->pool, block, *pb_byte(z->pool, block) | PB_SKIP);
}

/* --- the migrate scanner ------------------------------------------------- */

/* The kernel's suitable_migration_source(): async compaction only moves
 * frames out of MOVABLE (and CMA) pageblocks. */
static bool migrate_source_ok(const struct compact_control *cc, uint64_t b)
{
	uint8_t v = *pb_byte(cc->z->pool, b);
	int mt = v & PB_MT_MASK;

	if (v & PB_ISOLATE || mt == GMM_MT_HIGHATOMIC)
		return false;
	if (!cc->ignore_skip && (v & PB_SKIP))
		return false;
	if (cc->mode == GMM_MIGRATE_ASYNC)
		return mt == GMM_MT_MOVABLE || mt == GMM_MT_CMA;
	return true;
}

/*
 * The aligned chunk a pass must empty whole to produce anything: a
 * pageblock for a whole-zone pass or pageblock orders, else the order
 * asked for.
 */
static unsigned int goal_order(const struct compact_control *cc)
{
	return cc->order < 0 || cc->order >= GMM_PAGEBLOCK_ORDER ? GMM_PAGEBLOCK_ORDER :
								  (unsigned int)cc->order;
}

/*
 * A non-movable frame at @pfn: the aligned chunk around it cannot be
 * emptied, so moving anything else out of it is wasted (the kernel's
 * skip_on_failure).  Drop the sources already taken from the chunk; returns
 * where the scan goes on.  Applies to
 * - async mode, in MOVABLE and CMA pageblocks (the kernel's rule);
 * - in defrag mode, the passes whose goal is whole pageblocks (whole-zone,
 *   proactive, pageblock orders), whatever the pageblock's type
 *   (cc->abandon_unmovable): no frame is stolen in defrag mode, so a
 *   pageblock holding a non-movable frame is one of that type's own, which
 *   movable memory only enters by claiming it whole; reading on finds
 *   nothing to make room with, and the pageblock cannot be produced.
 * Without defrag mode the sync modes still empty such chunks, as the
 * kernel's do: there the non-movable frame was stolen into a movable
 * pageblock, and emptying the pageblock of all but its few foreign frames
 * lets their type claim it whole later, which keeps the long-run grouping
 * (bench-alloc frag, "compact" column: 0% instead of 30-98% when abandoned).
 */
static uint64_t abandon_chunk(struct compact_control *cc, uint64_t pfn)
{
	uint64_t chunk = 1ull << goal_order(cc), from = pfn & ~(chunk - 1);

	while (cc->nr_mig && cc->mig[cc->nr_mig - 1].pfn >= from)
		cc->nr_mig--;
	return from + chunk;
}

/*
 * Scan one pageblock from cc->migrate_pfn, collecting owned movable blocks
 * (the kernel's isolate_migratepages_block).  Every frame whose state it
 * reads counts as scanned, a free or allocated block as all its frames (as
 * the kernel); the frames of an abandoned chunk after the unmovable frame
 * are not read and not counted.
 */
static void scan_migrate_block(struct compact_control *cc, uint64_t end)
{
	struct gmm_pool *p = cc->z->pool;
	uint64_t pfn = cc->migrate_pfn, start = pfn, scanned = 0;
	int mt = pb_mt(p, start);
	bool movable = false;
	bool abandon = cc->abandon_unmovable ||
		       (cc->mode == GMM_MIGRATE_ASYNC && (mt == GMM_MT_MOVABLE || mt == GMM_MT_CMA));

	while (pfn < end && cc->nr_mig < COMPACT_CLUSTER_MAX) {
		uint8_t s = fr_state(p, pfn);
		unsigned int o = (s & FR_ORDER_MASK) >> FR_ORDER_SHIFT;
		uint64_t n = (s & FR_KIND_MASK) == FR_FREE || (s & FR_KIND_MASK) == FR_ALLOC ?
				     1ull << o : 1;

		scanned += n;
		if ((s & FR_KIND_MASK) != FR_ALLOC) {
			pfn += n;
			continue;
		}
		if (!(s & FR_FLAG) && abandon) {
			pfn = abandon_chunk(cc, pfn);
			continue;
		}
		if ((s & FR_FLAG) && o < GMM_PAGEBLOCK_ORDER && (rmap_load(p, pfn) & RMAP_OWNED)) {
			if (!cc->nr_mig)
				cc->cluster_block = pfn & ~(GMM_PAGEBLOCK_PAGES - 1);
			cc->mig[cc->nr_mig++] = (struct blk){ pfn, o, false };
			movable = true;
		}
		pfn += n;
	}
	cc->res.migrate_scanned += scanned;
	cc->migrate_pfn = pfn;
	if (!movable && start == (start & ~(GMM_PAGEBLOCK_PAGES - 1)) && pfn >= end)
		set_skip(cc->z, start);
}

static unsigned int block_nfree(const struct gmm_pool *p, uint64_t b)
{
	return p->pb_nfree[b >> GMM_PAGEBLOCK_ORDER];
}

/*
 * The kernel's isolate_migratepages(): fill cc->mig from the next blocks.
 * Unsuitable pageblocks and wholly free ones are passed by their pageblock
 * byte and free count, reading no frame (the kernel's skip bits and
 * fast_find_migrateblock() spare it the same reads).
 */
/* The bit of cc->dry for the free list of @o and @mt (MOVABLE or CMA). */
static unsigned int dry_bit(unsigned int o, int mt)
{
	return 1u << (2 * o + (mt == GMM_MT_CMA));
}

/*
 * Free the moved-out blocks below @below.  A pageblock they leave partly
 * used (a move refused, a non-movable frame) may offer blocks larger than a
 * frame again, so the larger free lists are searched again; wholly free
 * ones offer nothing (a produced block is not a target).  Under the lock.
 */
static void free_moved(struct compact_control *cc, uint64_t below)
{
	struct gmm_zone *z = cc->z;
	unsigned int left = 0, freed = 0;
	uint64_t seen = GMM_PFN_NONE; /* the pageblock checked last (they come in runs) */
	bool partial = false;

	for (unsigned int i = 0; i < cc->nr_moved; i++) {
		if (cc->moved[i] >= below)
			continue;
		buddy_free_range(z, cc->moved[i], fr_order(z->pool, cc->moved[i]));
		z->ev.free++;
		freed++;
	}
	if (!freed)
		return;
	for (unsigned int i = 0; i < cc->nr_moved; i++) {
		uint64_t b = cc->moved[i] & ~(GMM_PAGEBLOCK_PAGES - 1);

		if (cc->moved[i] >= below) {
			cc->moved[left++] = cc->moved[i];
		} else if (b != seen) {
			seen = b;
			partial |= block_nfree(z->pool, b) < GMM_PAGEBLOCK_PAGES;
		}
	}
	zone_maybe_clear_boost(z);
	if (partial)
		cc->dry &= dry_bit(0, GMM_MT_MOVABLE) | dry_bit(0, GMM_MT_CMA);
	cc->nr_moved = left;
}

static void isolate_migrate(struct compact_control *cc)
{
	struct gmm_zone *z = cc->z;
	struct gmm_pool *p = z->pool;

	pthread_mutex_lock(&z->lock);
	free_moved(cc, cc->migrate_pfn & ~(GMM_PAGEBLOCK_PAGES - 1));
	while (!cc->nr_mig && cc->migrate_pfn < cc->free_pfn) {
		uint64_t b = cc->migrate_pfn & ~(GMM_PAGEBLOCK_PAGES - 1);
		uint64_t end = b + GMM_PAGEBLOCK_PAGES;

		if (pfn_zone(p, b) != z || !migrate_source_ok(cc, b) ||
		    block_nfree(p, b) == GMM_PAGEBLOCK_PAGES) {
			cc->migrate_pfn = end;
			continue;
		}
		scan_migrate_block(cc, end);
	}
	pthread_mutex_unlock(&z->lock);
}

/* --- the free scanner ---------------------------------------------------- */

/* The kernel's suitable_migration_target(). */
static bool free_target_ok(const struct compact_control *cc, uint64_t b)
{
	uint8_t v = *pb_byte(cc->z->pool, b);
	int mt = v & PB_MT_MASK;

	if (v & PB_ISOLATE)
		return false;
	if (!cc->ignore_skip && (v & PB_SKIP))
		return false;
	return mt == GMM_MT_MOVABLE || mt == GMM_MT_CMA;
}

/* Frames a target pageblock offers: its free frames unless it is wholly free
 * (a produced block is not broken up again). */
static uint64_t target_supply(const struct compact_control *cc, uint64_t b)
{
	unsigned int n = block_nfree(cc->z->pool, b);

	if (pfn_zone(cc->z->pool, b) != cc->z || !free_target_ok(cc, b))
		return 0;
	return n < GMM_PAGEBLOCK_PAGES ? n : 0;
}

/*
 * Where the free scanner's territory begins: walking pageblocks inward from
 * cc->migrate_pfn and cc->free_pfn, the frames allocated in the source
 * blocks below against the free frames of the target blocks above, from the
 * per-pageblock free counts (no frame is read).  It is where the kernel's
 * two scanners would meet; the free scanner then takes its targets from the
 * free lists instead of reading every frame of the (mostly full) pageblocks
 * above it.  Under the zone lock.
 */
static uint64_t meeting_point(const struct compact_control *cc)
{
	struct gmm_pool *p = cc->z->pool;
	uint64_t lo = cc->migrate_pfn & ~(GMM_PAGEBLOCK_PAGES - 1), hi = cc->free_pfn;
	uint64_t demand = 0, supply = 0;

	while (lo < hi) {
		if (demand <= supply) {
			if (pfn_zone(p, lo) == cc->z && migrate_source_ok(cc, lo))
				demand += GMM_PAGEBLOCK_PAGES - block_nfree(p, lo);
			lo += GMM_PAGEBLOCK_PAGES;
		} else {
			hi -= GMM_PAGEBLOCK_PAGES;
			supply += target_supply(cc, hi);
		}
	}
	return hi;
}

/* The orders compaction takes targets from: below the one it produces. */
static int target_top_order(const struct compact_control *cc)
{
	return cc->order > 0 && cc->order < GMM_PAGEBLOCK_ORDER ? cc->order : GMM_PAGEBLOCK_ORDER;
}

/*
 * Isolate the free block at @pfn as a target: off its list, allocated but
 * not yet owned.  Under the lock.  Every frame's link word is cleared: an
 * isolated target reads as an allocated movable block, and no reader (the
 * migrate scanners of other compactions, gmm_frame_owner()) may take what a
 * free list or an earlier owner left in those words for an rmap.
 */
static void isolate_target(struct compact_control *cc, uint64_t pfn, unsigned int o, int mt)
{
	struct gmm_pool *p = cc->z->pool;
	bool reported = fr_reported(p, pfn);

	cc->nr_fr_frames += 1ull << o;
	freelist_del(cc->z, pfn, o, mt);
	for (uint64_t f = 0; f < 1ull << o; f++)
		rmap_store(p, pfn + f, 0);
	fr_set(p, pfn, FR_ALLOC, o, true);
	cc->fr[cc->nr_fr++] = (struct blk){ pfn, o, reported };
}

static uint64_t fr_frames(const struct compact_control *cc)
{
	return cc->nr_fr_frames;
}

/*
 * May a free block in pageblock @b be a target?  Above the free scanner's
 * boundary (the kernel's rule), or in a pageblock the migrate scanner has
 * left behind in this pass: a block it did not empty (an unmovable frame, a
 * refused move) produces nothing, and filling its holes costs nothing.
 * Never in the pageblocks between, which the migrate scanner still empties.
 */
static bool target_block_ok(const struct compact_control *cc, uint64_t b)
{
	if (b >= cc->end_pfn)
		return false;
	if (b < cc->free_pfn && (!cc->nr_mig || b + GMM_PAGEBLOCK_PAGES > cc->cluster_block))
		return false;
	return free_target_ok(cc, b);
}

/*
 * Take targets from one free list until @need frames are isolated, looking
 * at each entry once at most.  Each entry looked at counts as scanned (the
 * kernel's fast_isolate_freepages() counts so); the others go to the tail
 * (its move_freelist_tail()), so the next search starts with entries not
 * seen.  A list where no entry would do is not searched again until the
 * free scanner's territory grows (cc->dry).
 */
static void search_free_list(struct compact_control *cc, unsigned int o, int mt,
			     uint64_t need)
{
	struct gmm_pool *p = cc->z->pool;
	struct freelist *fl = &cc->z->area[o][mt];
	uint32_t pfn = fl->list.head;
	bool took = false;

	for (uint64_t left = fl->nr; left && pfn != PFN_NIL && cc->nr_fr < COMPACT_FREE_MAX && fr_frames(cc) < need;
	     left--) {
		uint32_t next = pl_next(p, pfn);

		cc->res.free_scanned++;
		if (target_block_ok(cc, pfn & ~(GMM_PAGEBLOCK_PAGES - 1))) {
			isolate_target(cc, pfn, o, mt);
			took = true;
		} else if (next != PFN_NIL) {
			pl_del(p, &fl->list, pfn);
			pl_add_tail(p, &fl->list, pfn);
		}
		pfn = next;
	}
	if (!took)
		cc->dry |= dry_bit(o, mt); /* looked at every entry */
}

/*
 * The kernel's isolate_freepages() with fast_isolate_freepages() as the only
 * way in: targets of at least @min_order come from the free lists (orders
 * below the one being produced), inside the territory above cc->free_pfn.
 * When there is none for order-0 sources, the territory grows down to the
 * meeting point of what is left (at least a pageblock); for larger sources
 * it does not (those stay where they are).
 */
static void isolate_free(struct compact_control *cc, unsigned int min_order, uint64_t need)
{
	struct gmm_zone *z = cc->z;
	int top = target_top_order(cc);
	unsigned int had = cc->nr_fr;
	/* @need frames more than those isolated already */
	uint64_t want = fr_frames(cc) + need;

	pthread_mutex_lock(&z->lock);
	for (;;) {
		uint64_t lower;

		/* the best fit first: a larger block is split only when none fits */
		for (int o = (int)min_order; o < top && fr_frames(cc) < want; o++) {
			if (!(cc->dry & dry_bit((unsigned int)o, GMM_MT_MOVABLE)))
				search_free_list(cc, (unsigned int)o, GMM_MT_MOVABLE, want);
			if (!(cc->dry & dry_bit((unsigned int)o, GMM_MT_CMA)))
				search_free_list(cc, (unsigned int)o, GMM_MT_CMA, want);
		}
		if (cc->nr_fr > had || cc->free_pfn <= cc->migrate_pfn || min_order)
			break;
		/* nothing above: the scanners meet lower than counted (targets were taken) */
		lower = meeting_point(cc);
		cc->free_pfn = lower < cc->free_pfn ? lower : cc->free_pfn - GMM_PAGEBLOCK_PAGES;
		cc->dry = 0;
	}
	pthread_mutex_unlock(&z->lock);
}

/* Keep the upper half of a split target for later, or give it back when there is no room. */
static void keep_half(struct compact_control *cc, struct blk h)
{
	struct gmm_pool *p = cc->z->pool;

	if (cc->nr_fr == COMPACT_FREE_MAX) {
		buddy_free_one_flag(cc->z, h.pfn, h.order, pb_mt(p, h.pfn), h.reported);
		return;
	}
	fr_set(p, h.pfn, FR_ALLOC, h.order, true);
	cc->fr[cc->nr_fr++] = h;
	cc->nr_fr_frames += 1ull << h.order;
}

/* The smallest isolated block of at least @order, or -1. */
static int best_fit(const struct compact_control *cc, unsigned int order)
{
	int best = -1;

	for (unsigned int i = 0; i < cc->nr_fr; i++)
		if (cc->fr[i].order >= order && (best < 0 || cc->fr[i].order < cc->fr[best].order))
			best = (int)i;
	return best;
}

/*
 * Targets for the sources in cc->mig from the isolated free blocks, split
 * as needed (the kernel's split_free_page): each source that gets one goes
 * into @r (from r[*nr] on), the others stay at the front of cc->mig.
 * Under the lock.  The link words were cleared at isolation.
 */
static void assign_targets(struct compact_control *cc, struct migrate_req *r, unsigned int *nr)
{
	struct gmm_pool *p = cc->z->pool;
	unsigned int left = 0;

	for (unsigned int m = 0; m < cc->nr_mig; m++) {
		unsigned int order = cc->mig[m].order;
		int i = best_fit(cc, order);
		struct blk b;

		if (i < 0) {
			cc->mig[left++] = cc->mig[m];
			continue;
		}
		b = cc->fr[i];
		cc->fr[i] = cc->fr[--cc->nr_fr];
		cc->nr_fr_frames -= 1ull << b.order;
		while (b.order > order) {
			b.order--;
			keep_half(cc, (struct blk){ b.pfn + (1ull << b.order), b.order, b.reported });
		}
		fr_set(p, b.pfn, FR_ALLOC, order, true);
		r[(*nr)++] = (struct migrate_req){ .old = cc->mig[m].pfn, .new = b.pfn,
						   .order = order, .target_reported = b.reported };
	}
	cc->nr_mig = left;
}

/* Frames the sources of @order left without a target need. */
static uint64_t frames_left(const struct compact_control *cc, unsigned int order)
{
	uint64_t n = 0;

	for (unsigned int m = 0; m < cc->nr_mig; m++)
		if (cc->mig[m].order == order)
			n += 1ull << order;
	return n;
}

/* Leave the sources of @order where they are (counted as failed). */
static void drop_sources(struct compact_control *cc, unsigned int order)
{
	unsigned int left = 0;

	for (unsigned int m = 0; m < cc->nr_mig; m++) {
		if (cc->mig[m].order == order)
			cc->res.failed += 1ull << order;
		else
			cc->mig[left++] = cc->mig[m];
	}
	cc->nr_mig = left;
}

/* The smallest order a source left without a target needs. */
static unsigned int min_source_order(const struct compact_control *cc)
{
	unsigned int o = GMM_PAGEBLOCK_ORDER;

	for (unsigned int m = 0; m < cc->nr_mig; m++)
		if (cc->mig[m].order < o)
			o = cc->mig[m].order;
	return o;
}

/* Give back isolated targets not used, as reported as they were taken. */
static void release_free(struct compact_control *cc)
{
	struct gmm_zone *z = cc->z;

	if (!cc->nr_fr)
		return;
	pthread_mutex_lock(&z->lock);
	for (unsigned int i = 0; i < cc->nr_fr; i++) {
		struct blk b = cc->fr[i];

		buddy_free_one_flag(z, b.pfn, b.order, pb_mt(z->pool, b.pfn), b.reported);
		z->ev.free++;
	}
	cc->nr_fr = 0;
	cc->nr_fr_frames = 0;
	zone_maybe_clear_boost(z);
	pthread_mutex_unlock(&z->lock);
}

/* --- moving ---------------------------------------------------------------- */

/*
 * Targets for the cluster: one lock round while the isolated blocks last,
 * then more from the free lists.  A source for which the free scanner finds
 * no block large enough stays unmoved (counted as failed); the scanners
 * have met when it finds nothing at all.  Returns the moves in @r.
 */
static unsigned int cluster_targets(struct compact_control *cc, struct migrate_req *r)
{
	struct gmm_zone *z = cc->z;
	unsigned int n = 0;

	pthread_mutex_lock(&z->lock);
	assign_targets(cc, r, &n);
	pthread_mutex_unlock(&z->lock);
	while (cc->nr_mig) {
		unsigned int before = cc->nr_mig, o = min_source_order(cc);

		if (cc->nr_fr > COMPACT_FREE_MAX - COMPACT_CLUSTER_MAX)
			release_free(cc); /* all too small for what is left */
		isolate_free(cc, o, frames_left(cc, o));
		pthread_mutex_lock(&z->lock);
		assign_targets(cc, r, &n);
		pthread_mutex_unlock(&z->lock);
		if (cc->nr_mig < before)
			continue;
		if (!o)
			break; /* the scanners met: the sources left wait for the next pass */
		drop_sources(cc, o); /* no free block that large: they stay */
	}
	return n;
}

/*
 * Targets discarded by free page reporting get their host memory back
 * first (hugetlbfs); a target that cannot is given back as it was.
 */
static void prepare_targets(struct compact_control *cc, struct migrate_req *r, unsigned int n)
{
	struct gmm_zone *z = cc->z;

	for (unsigned int i = 0; i < n; i++) {
		if (!r[i].target_reported || !pool_prepare_reported(z->pool, r[i].new, r[i].order))
			continue;
		r[i].err = -ENOMEM;
		r[i].keep_target = true;
		pthread_mutex_lock(&z->lock);
		buddy_free_one_flag(z, r[i].new, r[i].order, pb_mt(z->pool, r[i].new), true);
		pthread_mutex_unlock(&z->lock);
	}
}

/* Move the cluster as one batch (migrate_batch()). */
static void migrate_cluster(struct compact_control *cc)
{
	struct migrate_req r[COMPACT_CLUSTER_MAX];
	unsigned int n = cluster_targets(cc, r);

	/* a pass producing pageblocks frees what it moved out once past them */
	bool defer = cc->order < 0 || cc->order >= GMM_PAGEBLOCK_ORDER || cc->proactive;

	for (unsigned int i = 0; i < n; i++)
		r[i].keep_old = defer;
	prepare_targets(cc, r, n);
	migrate_batch(cc->z->pool, r, n, cc->mode);
	for (unsigned int i = 0; i < n; i++) {
		if (r[i].err) {
			cc->res.failed += 1ull << r[i].order;
			continue;
		}
		cc->res.migrated += 1ull << r[i].order;
		if (!defer)
			continue;
		if (cc->nr_moved == COMPACT_MOVED_MAX) {
			pthread_mutex_lock(&cc->z->lock);
			free_moved(cc, UINT64_MAX);
			pthread_mutex_unlock(&cc->z->lock);
		}
		cc->moved[cc->nr_moved++] = (uint32_t)r[i].old;
	}
	/* past a pageblock: free what was moved out of it now, so that the
	 * next check of the stop condition sees the block it produced */
	if (cc->nr_moved && cc->moved[0] < (cc->migrate_pfn & ~(GMM_PAGEBLOCK_PAGES - 1))) {
		pthread_mutex_lock(&cc->z->lock);
		free_moved(cc, cc->migrate_pfn & ~(GMM_PAGEBLOCK_PAGES - 1));
		pthread_mutex_unlock(&cc->z->lock);
	}
	cc->nr_mig = 0;
}

/* --- when to stop ----------------------------------------------------------- */

/* Is a free block of cc->order on a list the requester may use?  Under the lock. */
static bool order_free(const struct compact_control *cc)
{
	const struct gmm_zone *z = cc->z;

	for (unsigned int o = (unsigned int)cc->order; o <= z->pool->max_order; o++) {
		if (!z->area_nr[o])
			continue;
		if (z->area[o][cc->mt].list.head != PFN_NIL)
			return true;
		if (cc->mt == GMM_MT_MOVABLE && z->area[o][GMM_MT_CMA].list.head != PFN_NIL)
			return true;
		/* a whole pageblock of another type can be claimed */
		if (o >= GMM_PAGEBLOCK_ORDER)
			for (int mt = 0; mt < MT_PCPTYPES; mt++)
				if (z->area[o][mt].list.head != PFN_NIL)
					return true;
	}
	return false;
}

/* Free frames in blocks of at least a pageblock.  Under the lock. */
static uint64_t free_in_pageblocks(const struct gmm_zone *z)
{
	uint64_t n = 0;

	for (unsigned int o = GMM_PAGEBLOCK_ORDER; o <= z->pool->max_order; o++)
		for (int mt = 0; mt < MT_PCPTYPES && o <= GMM_MAX_ORDER_LIMIT; mt++)
			n += z->area[o][mt].nr << o;
	return n;
}

/* Capture: take the block for the requester under the lock that saw it. */
static void capture_block(struct compact_control *cc)
{
	struct gmm_zone *z = cc->z;
	bool reported = false;
	unsigned int af = (cc->mt == GMM_MT_MOVABLE ? ALLOC_CMA : 0) |
			  (cc->nofragment ? ALLOC_NOFRAGMENT : 0);
	uint64_t pfn = buddy_rmqueue(z, (unsigned int)cc->order, cc->mt, af, &reported);

	if (pfn == GMM_PFN_NONE)
		return;
	z->pool->link[pfn] = 0;
	fr_set(z->pool, pfn, FR_ALLOC, (unsigned int)cc->order, cc->movable);
	cc->captured_reported = reported;
	z->ev.alloc++;
	z->compact.ev.compact_capture++;
	cc->captured = pfn;
}

static int zone_frag_score(struct gmm_zone *z);

/* The kernel's __compact_finished(): 1 done, 0 go on. */
static int compact_finished(struct compact_control *cc)
{
	bool done;

	if (cc->proactive)
		return zone_frag_score(cc->z) <= (int)cc->score_low;
	if (cc->order < 0)
		return 0;
	pthread_mutex_lock(&cc->z->lock);
	done = cc->target ? free_in_pageblocks(cc->z) >= cc->target : order_free(cc);
	if (done && cc->capture)
		capture_block(cc);
	pthread_mutex_unlock(&cc->z->lock);
	return done;
}

/* --- a run ------------------------------------------------------------------- */

static void account(struct compact_control *cc, bool daemon)
{
	struct gmm_compact_events *ev = &cc->z->compact.ev;

	ev->compact_migrate_scanned += cc->res.migrate_scanned;
	ev->compact_free_scanned += cc->res.free_scanned;
	ev->compact_isolated += cc->res.migrated + cc->res.failed;
	ev->pgmigrate_success += cc->res.migrated;
	ev->pgmigrate_fail += cc->res.failed;
	if (daemon) {
		ev->compact_daemon_migrate_scanned += cc->res.migrate_scanned;
		ev->compact_daemon_free_scanned += cc->res.free_scanned;
	}
}

/* The kernel's compact_zone(): 0 when finished, -EAGAIN when the scanners met. */
static int compact_zone(struct compact_control *cc, bool daemon)
{
	struct gmm_zone *z = cc->z;
	struct compact_zone_state *cs = &z->compact;
	int done = 0;

	pthread_mutex_lock(&z->lock);
	/* the kernel's compaction_restarting(): after the longest deferral, forget the skip bits */
	if (cs->defer_shift == COMPACT_MAX_DEFER_SHIFT &&
	    cs->considered >= 1u << COMPACT_MAX_DEFER_SHIFT)
		clear_skip_bits(z);
	cc->end_pfn = zone_end(z);
	cc->migrate_pfn = cs->migrate_pfn > z->start_pfn ? cs->migrate_pfn : z->start_pfn;
	cc->free_pfn = cs->free_pfn && cs->free_pfn <= cc->end_pfn ? cs->free_pfn : cc->end_pfn;
	if (cc->order < 0 || cc->proactive) {
		cc->migrate_pfn = z->start_pfn;
		cc->free_pfn = cc->end_pfn;
	}
	cc->free_pfn = meeting_point(cc);
	pthread_mutex_unlock(&z->lock);
	while (!(done = compact_finished(cc)) && cc->migrate_pfn < cc->free_pfn) {
		isolate_migrate(cc);
		if (!cc->nr_mig)
			break;
		migrate_cluster(cc);
	}
	release_free(cc);
	pthread_mutex_lock(&z->lock);
	free_moved(cc, UINT64_MAX);
	if (!done && !cc->captured && cc->order >= 0 && !cc->proactive)
		done = order_free(cc);
	cc->res.complete = cc->migrate_pfn >= cc->free_pfn;
	if (cc->res.complete) {
		/* a finished pass starts again from the ends */
		cs->migrate_pfn = z->start_pfn;
		cs->free_pfn = cc->end_pfn;
		if (cc->ignore_skip || cc->proactive)
			clear_skip_bits(z);
	} else {
		cs->migrate_pfn = cc->migrate_pfn;
		cs->free_pfn = cc->free_pfn;
	}
	account(cc, daemon);
	pthread_mutex_unlock(&z->lock);
	return done || cc->captured || cc->order < 0 ? 0 : -EAGAIN;
}

/* --- suitability ------------------------------------------------------------- */

static int zone_fragindex(struct gmm_zone *z, unsigned int order)
{
	struct gmm_zone_stats st;

	if (gmm_zone_stats(z->pool, z->node, z->type, &st))
		return 0;
	return gmm_fragmentation_index(&st, order);
}

/*
 * The kernel's compaction_suitable(): enough free memory, and failure from
 * fragmentation rather than from lack of memory (extfrag_threshold).
 * @defrag: a defrag-mode run for a small order, which must free a whole
 * pageblock: the gap is a pageblock's (compact_gap(pageblock_order)), and
 * the fragmentation index is not asked (the request failed for want of a
 * pageblock, not of frames).
 */
static bool compaction_suitable(struct gmm_zone *z, unsigned int order, int hz, bool defrag)
{
	unsigned int gap = defrag && order < GMM_PAGEBLOCK_ORDER ? GMM_PAGEBLOCK_ORDER : order;
	uint64_t mark;
	bool ok;

	pthread_mutex_lock(&z->lock);
	mark = (order > GMM_COSTLY_ORDER ? z->wmark[WMARK_LOW] : z->wmark[WMARK_MIN]) + (2ull << gap);
	ok = z->nr_free > mark + z->lowmem_reserve[hz];
	pthread_mutex_unlock(&z->lock);
	if (!ok)
		return false;
	if (order > GMM_COSTLY_ORDER) {
		int fi = zone_fragindex(z, order);

		if (fi >= 0 && fi <= EXTFRAG_THRESHOLD)
			return false;
	}
	return true;
}

/* --- direct compaction --------------------------------------------------------- */

/*
 * One zone's direct compaction.  @defrag: the run frees a whole pageblock
 * (order_free() counts one of any type as done) and the capture may only
 * take it whole; its deferral is the pageblock order's, as the goal is.
 */
static uint64_t direct_zone(struct gmm_zone *z, unsigned int order, int mt, bool movable,
			    int hz, enum gmm_migrate_mode mode, bool defrag)
{
	int defer_order = defrag && order < GMM_PAGEBLOCK_ORDER ? GMM_PAGEBLOCK_ORDER : (int)order;
	struct compact_control cc;
	bool deferred;

	pthread_mutex_lock(&z->lock);
	deferred = compaction_deferred(z, defer_order);
	if (deferred)
		z->compact.ev.compact_deferred++;
	pthread_mutex_unlock(&z->lock);
	if (deferred || !compaction_suitable(z, order, hz, defrag))
		return GMM_PFN_NONE;
	cc_init(&cc, z, (int)order, mode);
	cc.capture = true;
	cc.mt = mt;
	cc.movable = movable;
	cc.nofragment = defrag;
	compact_zone(&cc, false);
	pthread_mutex_lock(&z->lock);
	z->compact.ev.compact_stall++;
	if (cc.captured != GMM_PFN_NONE) {
		z->compact.ev.compact_success++;
		defer_reset(z, defer_order);
	} else {
		z->compact.ev.compact_fail++;
		if (mode != GMM_MIGRATE_ASYNC)
			defer_compaction(z, defer_order);
	}
	pthread_mutex_unlock(&z->lock);
	if (cc.captured != GMM_PFN_NONE && cc.captured_reported &&
	    pool_prepare_reported(z->pool, cc.captured, order)) {
		migrate_free(z->pool, cc.captured, order);
		return GMM_PFN_NONE;
	}
	return cc.captured;
}

uint64_t compact_direct(struct gmm_node *pref, unsigned int order, int mt, bool movable,
			int highest_zoneidx, uint64_t nodemask, bool nowait, bool defrag)
{
	void (*wake)(struct gmm_pool *, int, unsigned int);
	struct gmm_pool *p;

	if ((!order && !defrag) || !pref->nr_zonelist)
		return GMM_PFN_NONE;
	p = pref->zonelist[0]->pool;
	wake = __atomic_load_n(&p->kcompactd_wake, __ATOMIC_ACQUIRE);
	/* defrag mode: kcompactd's job is whole pageblocks (the kernel wakes
	 * kswapd and kcompactd for pageblock_order) */
	if (wake)
		wake(p, pref->id, defrag && order < GMM_PAGEBLOCK_ORDER ? GMM_PAGEBLOCK_ORDER : order);
	if (nowait)
		return GMM_PFN_NONE;
	for (int mode = GMM_MIGRATE_ASYNC; mode <= GMM_MIGRATE_SYNC_LIGHT; mode++) {
		for (unsigned int i = 0; i < pref->nr_zonelist; i++) {
			struct gmm_zone *z = pref->zonelist[i];
			uint64_t pfn;

			if ((int)z->type > highest_zoneidx || !((nodemask >> z->node) & 1))
				continue;
			pfn = direct_zone(z, order, mt, movable, highest_zoneidx,
					  (enum gmm_migrate_mode)mode, defrag);
			if (pfn != GMM_PFN_NONE)
				return pfn;
		}
	}
	return GMM_PFN_NONE;
}

/* --- the fragmentation score and proactive compaction ------------------------- */

/* The kernel's extfrag_for_order(zone, COMPACTION_HPAGE_ORDER), 0..100. */
static int zone_frag_score(struct gmm_zone *z)
{
	uint64_t free_pages = 0, suitable = 0;

	pthread_mutex_lock(&z->lock);
	for (unsigned int o = 0; o <= z->pool->max_order; o++) {
		uint64_t n = 0;

		for (int mt = 0; mt < GMM_MT_NR; mt++)
			if (mt != GMM_MT_ISOLATE)
				n += z->area[o][mt].nr;
		free_pages += n << o;
		if (o >= COMPACTION_HPAGE_ORDER)
			suitable += n << o;
	}
	pthread_mutex_unlock(&z->lock);
	if (!free_pages)
		return 0;
	return (int)((free_pages - suitable) * 100 / free_pages);
}

int gmm_fragmentation_score(struct gmm_pool *p, int node)
{
	uint64_t score = 0, present = 0;

	if (!p || node < 0 || node >= (int)p->cfg.nr_nodes)
		return gmm_set_error(-EINVAL, "fragmentation score: no node %d", node);
	for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
		struct gmm_zone *z = &p->nodes[node].zones[zt];

		if (!z->present)
			continue;
		score += (uint64_t)zone_frag_score(z) * z->present;
		present += z->present;
	}
	return present ? (int)(score / present) : 0;
}

int compact_proactive_node(struct gmm_pool *p, int node, unsigned int proactiveness)
{
	unsigned int low = 100 - proactiveness, high = low + 10 > 100 ? 100 : low + 10;
	int ran = 0;

	if ((unsigned int)gmm_fragmentation_score(p, node) <= high)
		return 0;
	for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
		struct gmm_zone *z = &p->nodes[node].zones[zt];
		struct compact_control cc;

		if (!z->present || zone_frag_score(z) <= (int)low)
			continue;
		cc_init(&cc, z, -1, GMM_MIGRATE_SYNC_LIGHT);
		cc.proactive = true;
		cc.score_low = low;
		compact_zone(&cc, true);
		ran = 1;
	}
	return ran;
}

/* kcompactd's work for @order on one zone (the kernel's kcompactd_do_work);
 * @target > 0: go on until that many frames are free in whole pageblocks. */
void compact_zone_order(struct gmm_zone *z, unsigned int order, uint64_t target)
{
	struct compact_control cc;
	bool deferred;
	int err;

	if (!z->present)
		return;
	pthread_mutex_lock(&z->lock);
	deferred = compaction_deferred(z, (int)order);
	pthread_mutex_unlock(&z->lock);
	if (deferred || !compaction_suitable(z, order, (int)z->type, false))
		return;
	cc_init(&cc, z, (int)order, GMM_MIGRATE_SYNC_LIGHT);
	cc.target = target;
	err = compact_zone(&cc, true);
	pthread_mutex_lock(&z->lock);
	if (err)
		defer_compaction(z, (int)order);
	else
		defer_reset(z, (int)order);
	pthread_mutex_unlock(&z->lock);
}

void compact_node_order(struct gmm_pool *p, int node, unsigned int order, uint64_t target)
{
	for (int zt = 0; zt < GMM_NR_ZONES; zt++)
		compact_zone_order(&p->nodes[node].zones[zt], order, target);
}

/* --- defrag mode (vm.defrag_mode) -------------------------------------------- */

int gmm_pool_set_defrag_mode(struct gmm_pool *p, bool on)
{
	if (!p)
		return gmm_set_error(-EINVAL, "gmm_pool_set_defrag_mode: NULL pool");
	__atomic_store_n(&p->cfg.defrag_mode, on, __ATOMIC_RELAXED);
	return 0;
}

bool gmm_pool_defrag_mode(struct gmm_pool *p)
{
	if (!p) {
		gmm_set_error(-EINVAL, "gmm_pool_defrag_mode: NULL pool");
		return false;
	}
	return pool_defrag_mode(p);
}

/* --- the public entry points ---------------------------------------------------- */

int gmm_compact_zone(struct gmm_pool *p, int node, enum gmm_zone_type zone, int order,
		     int mode, struct gmm_compact_result *res)
{
	struct compact_control cc;
	struct gmm_zone *z;
	int err;

	if (!p || node < 0 || node >= (int)p->cfg.nr_nodes || (int)zone < 0 ||
	    zone >= GMM_NR_ZONES || order < -1 || order > (int)p->max_order ||
	    mode < GMM_MIGRATE_ASYNC || mode > GMM_MIGRATE_SYNC)
		return gmm_set_error(-EINVAL, "gmm_compact_zone: bad pool, node, zone, order or mode");
	z = &p->nodes[node].zones[zone];
	if (!z->present)
		return gmm_set_error(-ENOENT, "node %d has no zone %d", node, zone);
	cc_init(&cc, z, order, (enum gmm_migrate_mode)mode);
	cc.ignore_skip = true;
	err = compact_zone(&cc, false);
	if (res)
		*res = cc.res;
	return err;
}

int gmm_compact_pool(struct gmm_pool *p)
{
	if (!p)
		return gmm_set_error(-EINVAL, "gmm_compact_pool: NULL pool");
	for (unsigned int n = 0; n < p->cfg.nr_nodes; n++)
		for (int zt = 0; zt < GMM_NR_ZONES; zt++)
			if (p->nodes[n].zones[zt].present)
				gmm_compact_zone(p, (int)n, (enum gmm_zone_type)zt, -1,
						 GMM_MIGRATE_SYNC, NULL);
	return 0;
}

int gmm_compact_stats(struct gmm_pool *p, struct gmm_compact_events *out)
{
	uint64_t *o = (uint64_t *)out;
	const size_t nr = sizeof(*out) / sizeof(uint64_t);

	if (!p || !out)
		return gmm_set_error(-EINVAL, "gmm_compact_stats: NULL argument");
	memset(out, 0, sizeof(*out));
	for (unsigned int n = 0; n < p->cfg.nr_nodes; n++) {
		for (int zt = 0; zt < GMM_NR_ZONES; zt++) {
			struct gmm_zone *z = &p->nodes[n].zones[zt];
			const uint64_t *e = (const uint64_t *)&z->compact.ev;

			pthread_mutex_lock(&z->lock);
			for (size_t i = 0; i < nr; i++)
				o[i] += e[i];
			pthread_mutex_unlock(&z->lock);
		}
	}
	return 0;
}

static const char *const event_names[] = {
	"compact_migrate_scanned", "compact_free_scanned", "compact_isolated",
	"compact_stall", "compact_fail", "compact_success", "compact_daemon_wake",
	"compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
	"pgmigrate_success", "pgmigrate_fail", "compact_capture", "compact_deferred",
};

_Static_assert(sizeof(event_names) / sizeof(event_names[0]) ==
		       sizeof(struct gmm_compact_events) / sizeof(uint64_t),
	       "a name per compaction counter");

void gmm_compact_print_stats(struct gmm_pool *p, FILE *f)
{
	struct gmm_compact_events ev;
	const uint64_t *e = (const uint64_t *)&ev;

	if (!f || gmm_compact_stats(p, &ev))
		return;
	for (size_t i = 0; i < sizeof(event_names) / sizeof(event_names[0]); i++)
		fprintf(f, "%s %llu\n", event_names[i], (unsigned long long)e[i]);
}

/* --- the pageblock map ---------------------------------------------------------- */

static char block_char(struct gmm_pool *p, uint64_t b)
{
	static const char letters[GMM_MT_NR] = "UMRHCI";
	uint64_t free_pages = 0, pfn = b;
	uint8_t v = *pb_byte(p, b);
	char c = v & PB_ISOLATE ? 'I' : letters[v & PB_MT_MASK];
	uint64_t h = buddy_find_head(p, b);

	if (h != GMM_PFN_NONE && h < b && fr_kind(p, h) == FR_FREE)
		return '.'; /* inside a free block larger than a pageblock */

	while (pfn < b + GMM_PAGEBLOCK_PAGES) {
		uint8_t s = fr_state(p, pfn);
		unsigned int o = (s & FR_ORDER_MASK) >> FR_ORDER_SHIFT;
		uint64_t n = (s & FR_KIND_MASK) == FR_FREE || (s & FR_KIND_MASK) == FR_ALLOC ?
				     1ull << o : 1;

		if ((s & FR_KIND_MASK) == FR_FREE)
			free_pages += n;
		pfn += n;
	}
	if (free_pages >= GMM_PAGEBLOCK_PAGES)
		return '.';
	return free_pages > GMM_PAGEBLOCK_PAGES / 2 ? (char)(c - 'A' + 'a') : c;
}

void gmm_pageblock_map(struct gmm_pool *p, FILE *f, unsigned int cols)
{
	unsigned int col = 0;

	if (!p || !f)
		return;
	if (!cols)
		cols = 64;
	for (uint64_t b = 0; b < p->nr_pfns; b += GMM_PAGEBLOCK_PAGES) {
		struct gmm_zone *z = pfn_zone(p, b);
		char c = ' ';

		if (z) {
			pthread_mutex_lock(&z->lock);
			c = block_char(p, b);
			pthread_mutex_unlock(&z->lock);
		}
		fputc(c, f);
		if (++col == cols) {
			fputc('\n', f);
			col = 0;
		}
	}
	if (col)
		fputc('\n', f);
}
