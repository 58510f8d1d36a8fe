/* SPDX-License-Identifier: MIT */
/*
 * gmm/stats.h - allocator statistics in the kernel's shapes.
 *
 * Structured per-zone figures, the fragmentation indices, and text/JSON
 * renderings shaped like /proc/buddyinfo, /proc/pagetypeinfo,
 * /proc/zoneinfo and debugfs extfrag/{extfrag_index,unusable_index}.
 */
#ifndef GMM_STATS_H
#define GMM_STATS_H

#include <stdint.h>

#include <gmm/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Event counters of a zone (like /proc/vmstat). */
struct gmm_zone_events {
	uint64_t alloc;            /* successful allocations (pgalloc) */
	uint64_t free;             /* frees (pgfree) */
	uint64_t alloc_fail;       /* allocations that failed in this zone */
	uint64_t fallback;         /* allocations served from another type's list */
	uint64_t claim;            /* pageblocks claimed by a fallback */
	uint64_t steal;            /* buddies stolen without claiming the block */
	uint64_t nofragment_retry; /* passes that retried without ALLOC_NOFRAGMENT */
	uint64_t boost;            /* watermark boosts */
	uint64_t highatomic_reserve;
	uint64_t highatomic_unreserve;
	/* defrag mode: fallbacks into part of another type's pageblock, taken as
	 * the last resort after compaction failed to free a whole pageblock */
	uint64_t defrag_fallback;
};

/** A zone's state.  Counts are in frames. */
struct gmm_zone_stats {
	int node;
	enum gmm_zone_type zone;
	uint64_t start_pfn;
	uint64_t spanned;
	uint64_t present;
	uint64_t managed;
	uint64_t free;
	uint64_t free_cma;
	uint64_t free_highatomic;
	uint64_t reserved_highatomic;
	uint64_t wmark_min, wmark_low, wmark_high, wmark_boost;
	uint64_t lowmem_reserve[GMM_NR_ZONES];
	unsigned int max_order;
	/* free blocks per order and migratetype (orders 0..max_order) */
	uint64_t nr_free[GMM_MAX_ORDER_LIMIT + 1][GMM_MT_NR];
	/* pageblocks per migratetype (isolated blocks count as ISOLATE) */
	uint64_t nr_blocks[GMM_MT_NR];
	struct gmm_zone_events events;
};

/** Output formats of the gmm_stat_* renderers. */
enum gmm_stat_format {
	GMM_STAT_TEXT = 0,
	GMM_STAT_JSON = 1,
};

/**
 * gmm_zone_stats() - read a zone's state under its lock.
 * @pool: the pool
 * @node: node number
 * @zone: GMM_ZONE_*
 * @out:  receives the figures
 *
 * Return: 0, or -ENOENT when the zone does not exist or is empty.
 */
int gmm_zone_stats(struct gmm_pool *pool, int node, enum gmm_zone_type zone,
		   struct gmm_zone_stats *out);

/**
 * gmm_fragmentation_index() - the kernel's extfrag index for an order.
 * @st:    a zone's figures
 * @order: the request order
 *
 * Return: in thousandths: -1000 when a request of @order would succeed,
 * else 0 (failure for lack of memory) .. 1000 (failure from fragmentation);
 * 0 and -EINVAL in gmm_errno() for a NULL @st.
 */
int gmm_fragmentation_index(const struct gmm_zone_stats *st, unsigned int order);

/**
 * gmm_unusable_index() - the kernel's unusable free space index.
 * @st:    a zone's figures
 * @order: the request order
 *
 * Return: in thousandths, the share of free memory that cannot serve a
 * request of @order (1000 when nothing is free); 0 and -EINVAL in
 * gmm_errno() for a NULL @st.
 */
int gmm_unusable_index(const struct gmm_zone_stats *st, unsigned int order);

/**
 * gmm_stat_buddyinfo() - render free blocks per order, like /proc/buddyinfo.
 * @pool: the pool
 * @fmt:  GMM_STAT_TEXT or GMM_STAT_JSON
 * @out:  receives a malloc()ed NUL-terminated string; free() it
 *
 * Return: 0, -EINVAL (unknown format) or -ENOMEM.
 */
int gmm_stat_buddyinfo(struct gmm_pool *pool, enum gmm_stat_format fmt, char **out);

/**
 * gmm_stat_pagetypeinfo() - free blocks per order and migratetype and
 * pageblocks per migratetype, like /proc/pagetypeinfo.
 * @pool: the pool
 * @fmt:  GMM_STAT_TEXT or GMM_STAT_JSON
 * @out:  receives a malloc()ed string; free() it
 *
 * Return: 0 or -ENOMEM.
 */
int gmm_stat_pagetypeinfo(struct gmm_pool *pool, enum gmm_stat_format fmt, char **out);

/**
 * gmm_stat_zoneinfo() - per-zone counts, watermarks, reserves and events,
 * like /proc/zoneinfo.
 * @pool: the pool
 * @fmt:  GMM_STAT_TEXT or GMM_STAT_JSON
 * @out:  receives a malloc()ed string; free() it
 *
 * Return: 0 or -ENOMEM.
 */
int gmm_stat_zoneinfo(struct gmm_pool *pool, enum gmm_stat_format fmt, char **out);

/**
 * gmm_stat_extfrag() - the fragmentation index and the unusable free space
 * index per order, like debugfs extfrag/extfrag_index and unusable_index.
 * @pool: the pool
 * @fmt:  GMM_STAT_TEXT or GMM_STAT_JSON
 * @out:  receives a malloc()ed string; free() it
 *
 * Return: 0 or -ENOMEM.
 */
int gmm_stat_extfrag(struct gmm_pool *pool, enum gmm_stat_format fmt, char **out);

/**
 * gmm_metadata_bytes() - bytes of per-frame metadata the pool reserves.
 * @pool: the pool
 *
 * Return: the reserved metadata size (frames x bytes per frame, plus
 * pageblock flags); divide by gmm_pool_nr_pages() for bytes per frame.
 */
uint64_t gmm_metadata_bytes(const struct gmm_pool *pool);

/** Bytes of metadata per frame (constant of this build, pageblock flags excluded). */
unsigned int gmm_metadata_bytes_per_frame(void);

#ifdef __cplusplus
}
#endif
#endif
