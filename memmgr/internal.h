/* SPDX-License-Identifier: MIT */
/*
 * memmgr/internal.h - the pool's data structures, shared by memmgr's files.
 *
 * Per-frame metadata is two arrays outside the managed memory:
 *   link[pfn]  (8 bytes)  free block head: next and prev pfn in its free list;
 *                         allocated frame: the owner's reverse map (later);
 *   state[pfn] (1 byte)   kind (tail / free head / allocated head / head of a
 *                         block in a per-thread cache), order, and one flag
 *                         (free: reported; allocated: movable).
 * A cache's owner flips its frames between "cached" and "allocated" without
 * the zone lock, while the buddy reads neighbouring state bytes under it, so
 * state[] is only accessed with relaxed atomic byte loads and stores, through
 * fr_state() and fr_state_set() (plain moves in the generated code, but no
 * data race in the C memory model).  Pageblock bytes are written under the
 * zone lock with pb_store() and read with pb_mt_relaxed() by lock-free
 * readers; see pb_store().
 * All-zero metadata means "tail frame": a fresh anonymous mapping is valid
 * metadata, so untouched memory costs nothing.  Pageblocks carry one byte:
 * migratetype, the isolate bit (kept apart from the type, as Linux 6.15+
 * does) and the compaction-skip bit.
 */
#ifndef GMM_MEMMGR_INTERNAL_H
#define GMM_MEMMGR_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>
#include <gmm/migrate.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define PFN_NIL UINT32_MAX
#define POLICY_MODE_SHIFT 60
/* Guests per pool: the id lives in the reverse map in link[] (rmap_*). */
#define GMM_MAX_GUESTS 256
/* The pfn space is indexed by 32-bit list links: at most 16 TiB per pool. */
#define GMM_MAX_PFNS ((uint64_t)UINT32_MAX)

/* state[] byte */
#define FR_KIND_MASK 0x03u
#define FR_TAIL 0x00u
#define FR_FREE 0x01u
#define FR_ALLOC 0x02u
#define FR_PCP 0x03u /* in a per-thread cache (pcp.c): neither free nor allocated */
#define FR_ORDER_SHIFT 2
#define FR_ORDER_MASK 0x7cu
#define FR_FLAG 0x80u /* free: reported to the host; allocated: movable */

/* pageblock byte */
#define PB_MT_MASK 0x07u
#define PB_ISOLATE 0x08u
#define PB_SKIP 0x10u

/* Migratetypes that share the fallback rules (the kernel's MIGRATE_PCPTYPES). */
#define MT_PCPTYPES 3

/* Internal allocation flags, the kernel's ALLOC_*. */
#define ALLOC_WMARK_MIN 0u
#define ALLOC_WMARK_LOW 1u
#define ALLOC_WMARK_HIGH 2u
#define ALLOC_WMARK_MASK 3u
#define ALLOC_NO_WATERMARKS 0x04u
#define ALLOC_MIN_RESERVE 0x08u
#define ALLOC_NON_BLOCK 0x10u
#define ALLOC_HIGHATOMIC 0x20u
#define ALLOC_CMA 0x40u
#define ALLOC_NOFRAGMENT 0x80u
/* defrag mode's last resort: a fragmenting fallback counts as defrag_fallback */
#define ALLOC_DEFRAG_LAST 0x100u
#define ALLOC_RESERVES (ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC)

enum { WMARK_MIN = 0, WMARK_LOW = 1, WMARK_HIGH = 2, NR_WMARK = 3 };

/*
 * A list of blocks doubly linked through link[] (next << 32 | prev, the
 * head's prev stale): the buddy's free lists and the per-thread caches'
 * lists (pl_* below).  The list is empty when head is PFN_NIL; the buddy's
 * lists then also have tail PFN_NIL, a cache list's tail may be stale (its
 * order-0 hit does not write it).
 */
struct pfn_list {
	uint32_t head;
	uint32_t tail;
};

struct freelist {
	struct pfn_list list;
	uint64_t nr;
};

/* Per-zone compaction state (compact.c), under the zone lock unless noted. */
struct compact_zone_state {
	uint64_t migrate_pfn; /* where the migrate scanner resumes (cached) */
	uint64_t free_pfn;    /* where the free scanner resumes (cached) */
	unsigned int considered, defer_shift, order_failed; /* defer_compaction() */
	struct gmm_compact_events ev;
};

/*
 * A zone.  The first line holds what the cache fast paths read without the
 * lock (pool, node, type, pcp_off, pcp_gen with ZONE_BELOW_HIGH); the lock
 * starts the next line, with the fields written under it after it: another
 * thread's refill or trim then takes lines that the cache hits of this
 * thread do not read.
 */
struct gmm_zone {
	_Alignas(64) struct gmm_pool *pool;
	int node;
	enum gmm_zone_type type;
	/* per-thread caches (pcp.h): this zone's part of a cache is at byte
	 * pcp_off; pcp_gen (relaxed atomic) is bit 0 ZONE_BELOW_HIGH, bit 1 always
	 * set, bits 2.. a count of cache size changes (pcp_zone_gen()) */
	uint32_t pcp_off;
	uint32_t pcp_gen;
	uint64_t start_pfn;
	uint64_t spanned;
	uint64_t present;
	uint64_t managed;
	uint64_t wmark[NR_WMARK];
	uint64_t lowmem_reserve[GMM_NR_ZONES];
	_Alignas(64) pthread_mutex_t lock;
	struct gmm_zone_events ev; /* alloc and free share the lock's line */
	/* free frames on lists other than ISOLATE (NR_FREE_PAGES) */
	uint64_t nr_free;
	uint64_t nr_free_mt[GMM_MT_NR];
	uint64_t boost;
	uint64_t nr_reserved_highatomic;
	uint64_t area_nr[GMM_MAX_ORDER_LIMIT + 1];
	/* free frames (not ISOLATE) whose host memory was discarded */
	uint64_t nr_reported;
	struct freelist area[GMM_MAX_ORDER_LIMIT + 1][GMM_MT_NR];
	struct compact_zone_state compact;
};
_Static_assert(offsetof(struct gmm_zone, pcp_gen) + sizeof(uint32_t) <= 64 &&
	       offsetof(struct gmm_zone, lock) % 64 == 0 && offsetof(struct gmm_zone, lock) >= 64,
	       "the fast paths' zone fields on the first line, the lock on a line of its own");

/* A frame owner (migrate.c): how to move its blocks. */
struct gmm_owner {
	const struct gmm_migrate_ops *ops;
	void *ctx;
	unsigned int busy; /* callbacks running, atomic */
};

struct gmm_node {
	int id;
	int host_node;
	struct gmm_zone zones[GMM_NR_ZONES];
	/* populated zones, nearest node first, MOVABLE before NORMAL */
	unsigned int nr_zonelist;
	struct gmm_zone *zonelist[GMM_MAX_NODES * GMM_NR_ZONES];
	/* pfn space reserved for hot-added blocks (0, 0: none) */
	uint64_t hotplug_start, hotplug_end;
};

/*
 * A pageblock's word: its zone's pcp_off (0 while the block is absent)
 * next to its type and flag bits, so that a free into a cache finds both
 * with one index (pcp_free0()).
 */
struct gmm_pageblock {
	uint16_t pcp_off;
	uint8_t bits; /* PB_* */
	uint8_t unused;
};

/* A memory block: the unit of backing and of pool growth. */
struct gmm_mblock {
	struct gmm_zone *zone; /* NULL: not present */
	char *host;            /* the pool's mapping of its first frame */
};

struct gmm_pool {
	struct gmm_pool_config cfg;
	unsigned int max_order;
	unsigned int block_shift; /* log2(frames per memory block) */
	uint64_t nr_pfns;         /* size of the pfn space */
	uint64_t nr_present;
	uint64_t nr_mblocks;
	struct gmm_mblock *mblocks;
	uint64_t *link;
	uint8_t *state;
	struct gmm_pageblock *pb; /* per pageblock: bits (pb_byte()), cache offset */
	uint16_t *pb_nfree;       /* per pageblock: frames on the buddy's free lists */
	/* per-thread caches (pcp.c); read by gmm_alloc()'s cache hit: with the
	 * metadata pointers, on a line only memory hotplug writes (nr_present;
	 * next to owners[] it shared a line with their busy counts) */
	struct pcp_pool *pcp;
	size_t meta_bytes;        /* size of the metadata mapping */
	void *meta;
	struct gmm_node nodes[GMM_MAX_NODES];
	/* default policy: node mask | mode << POLICY_MODE_SHIFT, and its interleave cursor */
	uint64_t policy_word;
	unsigned int policy_next;
	/* drain every per-thread cache; NULL until caches exist */
	void (*drain_all)(struct gmm_pool *pool);
	/* kcompactd.c's wake-up, set (atomically) once its threads exist:
	 * compaction calls up through it, not by name */
	void (*kcompactd_wake)(struct gmm_pool *pool, int node, unsigned int order);
	/* free page reporting (report.c): unreported free blocks of at least
	 * report_order call report_notify under the zone lock */
	unsigned int report_order;
	void (*report_notify)(struct gmm_pool *pool);
	struct gmm_reporter *reporter;
	pthread_mutex_t report_lock; /* one reporting pass or hotplug at a time */
	/* guests whose frames the pool holds, by rmap id (guest.c) */
	pthread_mutex_t guests_lock;
	struct gmm_guest *guests[GMM_MAX_GUESTS];
	/* frame owners by rmap id, under guests_lock (migrate.c) */
	struct gmm_owner owners[GMM_MAX_GUESTS];
	/* the kcompactd threads, or NULL (kcompactd.c) */
	struct kcompactd *kcompactd;
	/* the khugepaged thread, or NULL (khugepaged.c) */
	struct khugepaged *khugepaged;
};

/* --- frame and pageblock helpers ------------------------------------- */

static inline uint8_t fr_state(const struct gmm_pool *p, uint64_t pfn)
{
	return __atomic_load_n(&p->state[pfn], __ATOMIC_RELAXED);
}

static inline void fr_state_set(struct gmm_pool *p, uint64_t pfn, uint8_t s)
{
	__atomic_store_n(&p->state[pfn], s, __ATOMIC_RELAXED);
}

static inline unsigned int fr_kind(const struct gmm_pool *p, uint64_t pfn)
{
	return fr_state(p, pfn) & FR_KIND_MASK;
}

static inline unsigned int fr_order(const struct gmm_pool *p, uint64_t pfn)
{
	return (fr_state(p, pfn) & FR_ORDER_MASK) >> FR_ORDER_SHIFT;
}

static inline void fr_set(struct gmm_pool *p, uint64_t pfn, unsigned int kind,
			  unsigned int order, bool flag)
{
	fr_state_set(p, pfn, (uint8_t)(kind | (order << FR_ORDER_SHIFT) | (flag ? FR_FLAG : 0)));
}

/* A free head whose host memory was discarded (it reads as zero). */
static inline bool fr_reported(const struct gmm_pool *p, uint64_t pfn)
{
	return (fr_state(p, pfn) & (FR_KIND_MASK | FR_FLAG)) == (FR_FREE | FR_FLAG);
}

static inline struct gmm_mblock *pfn_mblock(const struct gmm_pool *p, uint64_t pfn)
{
	return &p->mblocks[pfn >> p->block_shift];
}

/* The zone of a pfn, or NULL when it is outside present memory. */
static inline struct gmm_zone *pfn_zone(const struct gmm_pool *p, uint64_t pfn)
{
	if (pfn >= p->nr_pfns)
		return NULL;
	return pfn_mblock(p, pfn)->zone;
}

/*
 * Count @order's frames at @pfn in (@add) or out of the free frames of their
 * pageblocks; a block of a pageblock or more fills each one it spans.  Under
 * the zone lock, by freelist_add_flag() and freelist_del() only; compaction
 * reads it under the same lock to skip full and empty pageblocks without
 * scanning their frames.
 */
static inline void pb_nfree_account(struct gmm_pool *p, uint64_t pfn, unsigned int order,
				    bool add)
{
	uint64_t b = pfn >> GMM_PAGEBLOCK_ORDER;

	if (order < GMM_PAGEBLOCK_ORDER) {
		if (add)
			p->pb_nfree[b] += (uint16_t)(1u << order);
		else
			p->pb_nfree[b] -= (uint16_t)(1u << order);
		return;
	}
	for (uint64_t n = 1ull << (order - GMM_PAGEBLOCK_ORDER); n--; b++)
		p->pb_nfree[b] = add ? GMM_PAGEBLOCK_PAGES : 0;
}

static inline uint8_t *pb_byte(const struct gmm_pool *p, uint64_t pfn)
{
	return &p->pb[pfn >> GMM_PAGEBLOCK_ORDER].bits;
}

/* The migratetype of a pfn's pageblock, ignoring isolation. */
static inline int pb_type(const struct gmm_pool *p, uint64_t pfn)
{
	return *pb_byte(p, pfn) & PB_MT_MASK;
}

/* The free list a pfn's pageblock uses: ISOLATE while isolated. */
static inline int pb_mt(const struct gmm_pool *p, uint64_t pfn)
{
	uint8_t b = *pb_byte(p, pfn);

	if (unlikely(b & PB_ISOLATE))
		return GMM_MT_ISOLATE;
	return b & PB_MT_MASK;
}

/*
 * Pageblock bytes are written under the zone lock, but a cache owner reads
 * one without it when it frees (is the block isolated?): writers store
 * atomically, lock-free readers use pb_mt_relaxed().
 */
static inline void pb_store(struct gmm_pool *p, uint64_t pfn, uint8_t v)
{
	__atomic_store_n(pb_byte(p, pfn), v, __ATOMIC_RELAXED);
}

static inline int pb_mt_relaxed(const struct gmm_pool *p, uint64_t pfn)
{
	uint8_t b = __atomic_load_n(pb_byte(p, pfn), __ATOMIC_RELAXED);

	if (unlikely(b & PB_ISOLATE))
		return GMM_MT_ISOLATE;
	return b & PB_MT_MASK;
}

/*
 * The cache offset of a pageblock's zone: written under the zone
 * lock when its memory block comes and goes, read by cache owners freeing a
 * frame of it without the lock.
 */
static inline void pb_set_pcp(struct gmm_pool *p, uint64_t pfn, uint16_t off)
{
	__atomic_store_n(&p->pb[pfn >> GMM_PAGEBLOCK_ORDER].pcp_off, off, __ATOMIC_RELAXED);
}

static inline void pb_set_type(struct gmm_pool *p, uint64_t pfn, int mt)
{
	uint8_t *b = pb_byte(p, pfn);

	pb_store(p, pfn, (uint8_t)((*b & ~PB_MT_MASK) | (unsigned int)mt));
}

/* vm.defrag_mode: changed at run time by gmm_pool_set_defrag_mode() (compact.c) */
static inline bool pool_defrag_mode(const struct gmm_pool *p)
{
	return p->cfg.mobility_grouping && __atomic_load_n(&p->cfg.defrag_mode, __ATOMIC_RELAXED);
}

static inline bool mt_mergeable(int mt)
{
	return mt < MT_PCPTYPES;
}

/*
 * --- pfn lists -------------------------------------------------------------
 *
 * The head's prev is left stale (nothing reads it; pl_del() and
 * pl_pop_tail() recognise the head by l->head): taking the head writes
 * nothing but the list, and adding a head stores the old head's prev half
 * alone (x86 is little-endian: prev is the low half, next the high half).
 * So a cache hit followed by a free of the same frame chains fewer stores
 * and loads of the same words.
 */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "link halves: next is the high half");

static inline void pl_set(struct gmm_pool *p, uint32_t pfn, uint32_t next, uint32_t prev)
{
	p->link[pfn] = ((uint64_t)next << 32) | prev;
}

static inline uint32_t pl_next(const struct gmm_pool *p, uint32_t pfn)
{
	return (uint32_t)(p->link[pfn] >> 32);
}

/* The previous entry; meaningless at the head. */
static inline uint32_t pl_prev(const struct gmm_pool *p, uint32_t pfn)
{
	return (uint32_t)p->link[pfn];
}

static inline void pl_set_prev(struct gmm_pool *p, uint32_t pfn, uint32_t prev)
{
	__builtin_memcpy((char *)&p->link[pfn], &prev, sizeof(prev));
}

static inline void pl_set_next(struct gmm_pool *p, uint32_t pfn, uint32_t next)
{
	__builtin_memcpy((char *)&p->link[pfn] + sizeof(next), &next, sizeof(next));
}

static inline void pl_add_head(struct gmm_pool *p, struct pfn_list *l, uint32_t pfn)
{
	uint32_t head = l->head;

	pl_set(p, pfn, head, PFN_NIL);
	if (head == PFN_NIL)
		l->tail = pfn;
	else
		pl_set_prev(p, head, pfn);
	l->head = pfn;
}

static inline void pl_add_tail(struct gmm_pool *p, struct pfn_list *l, uint32_t pfn)
{
	pl_set(p, pfn, PFN_NIL, l->tail);
	if (l->head == PFN_NIL) /* not the tail: stale in an empty cache list */
		l->head = pfn;
	else
		pl_set_next(p, l->tail, pfn);
	l->tail = pfn;
}

/* Unlink @pfn from anywhere in @l; its link word becomes 0. */
static inline void pl_del(struct gmm_pool *p, struct pfn_list *l, uint32_t pfn)
{
	uint32_t next = pl_next(p, pfn), prev;

	if (pfn == l->head) {
		l->head = next;
		if (next == PFN_NIL)
			l->tail = PFN_NIL;
	} else {
		prev = pl_prev(p, pfn);
		pl_set_next(p, prev, next);
		if (next == PFN_NIL)
			l->tail = prev;
		else
			pl_set_prev(p, next, prev);
	}
	p->link[pfn] = 0;
}

/* Unlink and return the head of a list known not to be empty (its link left as is). */
static inline uint32_t pl_pop_head(struct gmm_pool *p, struct pfn_list *l)
{
	uint32_t pfn = l->head, next = pl_next(p, pfn);

	l->head = next;
	if (next == PFN_NIL)
		l->tail = PFN_NIL;
	return pfn;
}

/* Unlink and return the tail of a list known not to be empty (its link left as is). */
static inline uint32_t pl_pop_tail(struct gmm_pool *p, struct pfn_list *l)
{
	uint32_t pfn = l->tail, prev;

	if (pfn == l->head) {
		l->head = l->tail = PFN_NIL;
		return pfn;
	}
	prev = pl_prev(p, pfn);
	l->tail = prev;
	pl_set_next(p, prev, PFN_NIL);
	return pfn;
}

/* --- zones ----------------------------------------------------------------- */

/* The zone after @z, node by node (the kernel's next_zone()); NULL after the last. */
static inline struct gmm_zone *next_zone(struct gmm_pool *p, struct gmm_zone *z)
{
	if ((int)z->type + 1 < GMM_NR_ZONES)
		return z + 1;
	if (z->node + 1 < (int)p->cfg.nr_nodes)
		return &p->nodes[z->node + 1].zones[0];
	return NULL;
}

/* Every zone of every node of @p, populated or not. */
#define for_each_zone(p, z) \
	for (struct gmm_zone *z = &(p)->nodes[0].zones[0]; z; z = next_zone(p, z))

/* Lock (@lock) or unlock every zone lock, in for_each_zone() order. */
static inline void zones_lock_all(struct gmm_pool *p, bool lock)
{
	for_each_zone(p, z) {
		if (lock)
			pthread_mutex_lock(&z->lock);
		else
			pthread_mutex_unlock(&z->lock);
	}
}

/*
 * Reverse map of an allocated frame in link[pfn]: bit 63 set, guest id in
 * bits 48..62, gfn in bits 0..47 (guest physical addresses up to 2^60).
 */
#define RMAP_OWNED (1ull << 63)
#define RMAP_GFN_MASK ((1ull << 48) - 1)

static inline uint64_t rmap_make(unsigned int guest_id, uint64_t gfn)
{
	return RMAP_OWNED | ((uint64_t)guest_id << 48) | (gfn & RMAP_GFN_MASK);
}

/* The rmap word of an allocated frame: relaxed atomics (rules in gmm/migrate.h). */
static inline uint64_t rmap_load(const struct gmm_pool *p, uint64_t pfn)
{
	return __atomic_load_n(&p->link[pfn], __ATOMIC_RELAXED);
}

static inline void rmap_store(struct gmm_pool *p, uint64_t pfn, uint64_t v)
{
	__atomic_store_n(&p->link[pfn], v, __ATOMIC_RELAXED);
}

static inline unsigned int rmap_owner(uint64_t l)
{
	return (unsigned int)((l >> 48) & 0x7fff);
}

/* --- error.c ---------------------------------------------------------- */
void gmm_clear_error(void);

/* --- backing.c: the host memory behind frames ---------------------------- */
/* An allocation took reported (discarded) frames: have the backing restore them. */
int pool_prepare_reported(struct gmm_pool *p, uint64_t pfn, unsigned int order);

/* --- watermark.c: under zone->lock ----------------------------------------- */
bool zone_watermark_fast(struct gmm_zone *z, unsigned int order, int highest_zoneidx,
			 unsigned int alloc_flags);
/* migrate.c: the rmap of an allocated movable block of @order at @pfn, or 0. */
uint64_t movable_rmap(struct gmm_pool *p, uint64_t pfn, unsigned int order);
void zone_maybe_clear_boost(struct gmm_zone *z);

/* --- buddy.c: all under zone->lock ------------------------------------ */
void buddy_free_one(struct gmm_zone *z, uint64_t pfn, unsigned int order, int mt);
void buddy_free_one_flag(struct gmm_zone *z, uint64_t pfn, unsigned int order, int mt,
			 bool reported);
void buddy_free_range(struct gmm_zone *z, uint64_t pfn, unsigned int order);
void buddy_remerge(struct gmm_zone *z, uint64_t lo, uint64_t hi);
/* Take a block; *@reported says whether its host memory was discarded (reads as zero). */
uint64_t buddy_rmqueue(struct gmm_zone *z, unsigned int order, int mt, unsigned int alloc_flags,
		       bool *reported);
void buddy_reserve_highatomic(struct gmm_zone *z, uint64_t pfn, unsigned int order);
bool buddy_unreserve_highatomic(struct gmm_zone *z, int mt, bool force);
uint64_t buddy_move_freepages_block(struct gmm_zone *z, uint64_t start, int old_mt, int new_mt);
uint64_t buddy_find_head(const struct gmm_pool *p, uint64_t pfn);
void freelist_del(struct gmm_zone *z, uint64_t pfn, unsigned int order, int mt);
void freelist_add_flag(struct gmm_zone *z, uint64_t pfn, unsigned int order, int mt, bool tail,
		       bool reported);

/* --- pcp.c ------------------------------------------------------------ */
/*
 * Around a wait that another thread may end only after a cache drain (a
 * lock held across an allocation): go offline so the drain's grace period
 * does not wait for us.  Returns whether to come back online.
 */
bool pcp_offline_begin(void);
void pcp_offline_end(bool was_online);
unsigned int pcp_nr_attached(struct gmm_pool *p);
/* The byte offset of @z's part in every cache (gmm_zone.pcp_off), never 0. */
uint32_t pcp_zone_off(const struct gmm_zone *z);

/* --- report.c --------------------------------------------------------- */
void report_fini(struct gmm_pool *p);

/* --- migrate.c / compact.c / kcompactd.c ------------------------------ */
/* Move the owned block at @old (order @order, allocated) into the allocated
 * block @new; on success @old is freed.  0 or the owner's error. */
int migrate_block_to(struct gmm_pool *p, uint64_t old, uint64_t new, unsigned int order,
		     enum gmm_migrate_mode mode);
/* One move of a batch: the owned block @old into the held block @new. */
struct migrate_req {
	uint64_t old, new;
	unsigned int order;
	bool keep_target; /* on failure leave @new to the caller (else it is freed) */
	bool keep_old;    /* on success leave @old allocated, its rmap cleared, to the caller */
	bool target_reported; /* compaction's: @new was discarded (pool_prepare_reported) */
	uint64_t rmap;    /* out: @old's rmap as read */
	int err;          /* in: 0, or an error to skip the move; out: 0 (moved, @old freed),
			   * -ENOENT (not owned), or the owner's */
};
/* Move a batch: the rmaps read in one zone lock round, one owner reference
 * per run of the same owner, the freed blocks in one more lock round.  No
 * lock held by the caller. */
void migrate_batch(struct gmm_pool *p, struct migrate_req *r, unsigned int n,
		   enum gmm_migrate_mode mode);
/* contig.c: move every used block out of [start, end) of one zone, whose
 * pageblocks the caller isolated (to other nodes too when @any_node and
 * the node is full); 0, or -EBUSY with the reason set. */
int contig_evacuate(struct gmm_pool *p, uint64_t start, uint64_t end, bool any_node);
/* contig.c: the first range of @nr frames aligned to @align (a power of
 * two) in zone @z, in CMA pageblocks exactly when @cma, taken with
 * gmm_alloc_contig_range(); or GMM_PFN_NONE. */
uint64_t contig_search(struct gmm_pool *p, struct gmm_zone *z, uint64_t nr, uint64_t align,
		       bool cma);
/* Free a block compaction holds straight into the buddy (not a cache). */
void migrate_free(struct gmm_pool *p, uint64_t pfn, unsigned int order);
/* Direct compaction in the allocator's slow path: a block of @order taken
 * for the caller (captured), or GMM_PFN_NONE.  @defrag (defrag mode): any
 * order, compacting until a whole pageblock is free, captured without a
 * fragmenting fallback.  Wakes @pref's kcompactd first. */
uint64_t compact_direct(struct gmm_node *pref, unsigned int order, int mt, bool movable,
			int highest_zoneidx, uint64_t nodemask, bool nowait, bool defrag);
/* Stop the kcompactd threads and free their control block (pool teardown). */
void kcompactd_stop_all(struct gmm_pool *p);
/* Waits of @node's kcompactd thread ended by a wake-up since its start (tests). */
uint64_t kcompactd_signalled(struct gmm_pool *p, int node);
/* kcompactd's work on one zone: compact for @order (and until @target frames
 * are free in whole pageblocks, when not 0). */
void compact_zone_order(struct gmm_zone *z, unsigned int order, uint64_t target);
/* kcompactd's work on @node: compact_zone_order() on each of its zones. */
void compact_node_order(struct gmm_pool *p, int node, unsigned int order, uint64_t target);
/* Proactive compaction when the node's score is above the high mark
 * (returns whether it ran). */
int compact_proactive_node(struct gmm_pool *p, int node, unsigned int proactiveness);

/* --- guest.c collapse / khugepaged.c ----------------------------------- */
struct gmm_guest;
struct gmm_collapse_stats;
/* Scan @g's chunks for collapse from *@cursor (0: the start) while *@budget
 * (guest pages) lasts, collapsing those with at most @max_none unbacked
 * pages; counts into @st.  True when the guest's end was reached (*@cursor
 * back to 0); false when the budget ran out or no order-9 block could be
 * had (the cursor stays on that chunk).  Caller holds no lock of @g. */
bool guest_collapse_scan(struct gmm_guest *g, uint64_t *cursor, uint64_t *budget,
			 unsigned int max_none, struct gmm_collapse_stats *st);
/* The guest with the lowest rmap id >= *@id (*@id set to it), held against
 * gmm_guest_destroy() until guest_collapse_put(); NULL past the last. */
struct gmm_guest *guest_collapse_get(struct gmm_pool *p, unsigned int *id);
void guest_collapse_put(struct gmm_guest *g);
/* gmm_pool_destroy(): stop the thread, free its state. */
void khugepaged_fini(struct gmm_pool *p);

/* --- pcp.c: per-thread caches (the hot paths are inline in pcp.h) ------- */
#define NR_PCP_ORDERS (GMM_COSTLY_ORDER + 1)
/* Pageblock-order (THP) lists: unmovable+reclaimable and movable (the kernel's NR_PCP_THP) */
#define NR_PCP_THP 2
#define NR_LOWORDER_PCP_LISTS (MT_PCPTYPES * NR_PCP_ORDERS)
#define NR_PCP_LISTS (NR_LOWORDER_PCP_LISTS + NR_PCP_THP)

/* The kernel's pcp_allowed_order(): orders 0..COSTLY and the pageblock order. */
static inline bool pcp_allowed_order(unsigned int order)
{
	return order <= GMM_COSTLY_ORDER || order == GMM_PAGEBLOCK_ORDER;
}

struct gmm_thread;

int pcp_pool_init(struct gmm_pool *p);
void pcp_pool_destroy(struct gmm_pool *p);
/* Take a block from @t's cache of @z, refilling it from the buddy; GMM_PFN_NONE when
 * the zone is below its watermark. */
uint64_t pcp_alloc(struct gmm_thread *t, struct gmm_zone *z, unsigned int order, int mt,
		   int highest_zoneidx, unsigned int alloc_flags);
/* Up to @n order-0 frames of @mt from @t's cache of @z, refilled per batch; how many. */
size_t pcp_alloc_bulk(struct gmm_thread *t, struct gmm_zone *z, int mt, int hz,
		      unsigned int alloc_flags, size_t n, uint64_t *pfns);
/* Up to @n order-0 frames of @mt from the buddy of @z for a caller without a
 * cache, one zone lock per batch (pcp.c); how many. */
size_t pcp_rmqueue_frames(struct gmm_zone *z, int mt, int hz, unsigned int alloc_flags,
			  size_t n, uint64_t *pfns);
/* Count @n frames gmm_alloc_bulk() got for @t some other way (its fallback). */
void pcp_count_bulk(struct gmm_thread *t, uint64_t n);
/* Frames in all caches of zone @z (for the invariant check); caches stable. */
int pcp_check_zone(struct gmm_zone *z, uint64_t *cached);
void pcp_lock(struct gmm_pool *p);
void pcp_unlock(struct gmm_pool *p);

#endif
