/* SPDX-License-Identifier: MIT */
/*
 * memmgr/stats.c - statistics: per-zone figures, the fragmentation
 * indices, and renderings shaped like the kernel's buddyinfo, pagetypeinfo,
 * zoneinfo and extfrag files, as text or JSON (json-c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"

static const char *const zone_names[GMM_NR_ZONES] = { "Normal", "Movable" };
static const char *const mt_names[GMM_MT_NR] = {
	"Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate",
};

static void fill_stats(struct gmm_zone *z, struct gmm_zone_stats *st)
{
	struct gmm_pool *p = z->pool;

	memset(st, 0, sizeof(*st));
	st->node = z->node;
	st->zone = z->type;
	st->start_pfn = z->start_pfn;
	st->spanned = z->spanned;
	st->present = z->present;
	st->managed = z->managed;
	st->free = z->nr_free;
	st->free_cma = z->nr_free_mt[GMM_MT_CMA];
	st->free_highatomic = z->nr_free_mt[GMM_MT_HIGHATOMIC];
	st->reserved_highatomic = z->nr_reserved_highatomic;
	st->wmark_min = z->wmark[WMARK_MIN];
	st->wmark_low = z->wmark[WMARK_LOW];
	st->wmark_high = z->wmark[WMARK_HIGH];
	st->wmark_boost = z->boost;
	memcpy(st->lowmem_reserve, z->lowmem_reserve, sizeof(st->lowmem_reserve));
	st->max_order = p->max_order;
	for (unsigned int o = 0; o <= p->max_order; o++)
		for (int mt = 0; mt < GMM_MT_NR; mt++)
			st->nr_free[o][mt] = z->area[o][mt].nr;
	for (uint64_t i = 0; i < p->nr_mblocks; i++) {
		uint64_t start = i << p->block_shift;

		if (p->mblocks[i].zone != z)
			continue;
		for (uint64_t b = start; b < start + (1ull << p->block_shift); b += GMM_PAGEBLOCK_PAGES)
			st->nr_blocks[pb_mt(p, b)]++;
	}
	st->events = z->ev;
}

int gmm_zone_stats(struct gmm_pool *p, int node, enum gmm_zone_type zone,
		   struct gmm_zone_stats *out)
{
	struct gmm_zone *z;

	if (!p || !out)
		return gmm_set_error(-EINVAL, "gmm_zone_stats: NULL argument");
	if (node < 0 || node >= (int)p->cfg.nr_nodes || zone >= GMM_NR_ZONES)
		return gmm_set_error(-ENOENT, "no zone %d/%d in the pool", node, zone);
	z = &p->nodes[node].zones[zone];
	if (!z->managed)
		return gmm_set_error(-ENOENT, "zone %d/%s is empty", node, zone_names[zone]);
	pthread_mutex_lock(&z->lock);
	fill_stats(z, out);
	pthread_mutex_unlock(&z->lock);
	return 0;
}

struct contig_info {
	uint64_t free_pages;
	uint64_t free_blocks_total;
	uint64_t free_blocks_suitable;
};

/* The kernel's fill_contig_page_info(). */
static void contig_info(const struct gmm_zone_stats *st, unsigned int order,
			struct contig_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	for (unsigned int o = 0; o <= st->max_order; o++) {
		uint64_t blocks = 0;

		for (int mt = 0; mt < GMM_MT_NR; mt++)
			blocks += st->nr_free[o][mt];
		ci->free_blocks_total += blocks;
		ci->free_pages += blocks << o;
		if (o >= order)
			ci->free_blocks_suitable += blocks << (o - order);
	}
}

int gmm_fragmentation_index(const struct gmm_zone_stats *st, unsigned int order)
{
	struct contig_info ci;

	if (!st) {
		gmm_set_error(-EINVAL, "gmm_fragmentation_index: NULL figures");
		return 0;
	}
	if (order > st->max_order)
		return 0;
	contig_info(st, order, &ci);
	if (!ci.free_blocks_total)
		return 0;
	if (ci.free_blocks_suitable)
		return -1000;
	return (int)(1000 - (1000 + ci.free_pages * 1000 / (1ull << order)) / ci.free_blocks_total);
}

int gmm_unusable_index(const struct gmm_zone_stats *st, unsigned int order)
{
	struct contig_info ci;

	if (!st) {
		gmm_set_error(-EINVAL, "gmm_unusable_index: NULL figures");
		return 0;
	}
	if (order > st->max_order)
		return 1000;
	contig_info(st, order, &ci);
	if (!ci.free_pages)
		return 1000;
	return (int)((ci.free_pages - (ci.free_blocks_suitable << order)) * 1000 / ci.free_pages);
}

/* --- renderers ------------------------------------------------------------ */

typedef void (*zone_text_fn)(FILE *f, const struct gmm_zone_stats *st);
typedef json_object *(*zone_json_fn)(const struct gmm_zone_stats *st);

static json_object *u64_array(const uint64_t *v, unsigned int n, size_t stride)
{
	json_object *a = json_object_new_array_ext((int)n);

	for (unsigned int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_uint64(v[i * stride]));
	return a;
}

static json_object *zone_head(const struct gmm_zone_stats *st)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "node", json_object_new_int(st->node));
	json_object_object_add(o, "zone", json_object_new_string(zone_names[st->zone]));
	return o;
}

/* Render every populated zone with @tf / @jf; @text_header starts the text. */
static int render(struct gmm_pool *p, enum gmm_stat_format fmt, const char *text_header,
		  zone_text_fn tf, zone_json_fn jf, char **out)
{
	json_object *zones, *root;
	struct gmm_zone_stats *st;
	size_t len = 0;
	FILE *f;

	if (!p || !out)
		return gmm_set_error(-EINVAL, "statistics: NULL argument");
	if (fmt != GMM_STAT_TEXT && fmt != GMM_STAT_JSON)
		return gmm_set_error(-EINVAL, "statistics: unknown format %d", (int)fmt);
	zones = json_object_new_array();
	root = json_object_new_object();
	st = malloc(sizeof(*st));
	f = open_memstream(out, &len);
	if (!f || !st || !zones || !root) {
		free(st);
		if (f)
			fclose(f);
		json_object_put(zones);
		json_object_put(root);
		return gmm_set_error(-ENOMEM, "out of memory rendering statistics");
	}
	json_object_object_add(root, "pageblock_order", json_object_new_int(GMM_PAGEBLOCK_ORDER));
	json_object_object_add(root, "max_order", json_object_new_int((int)p->max_order));
	if (fmt == GMM_STAT_TEXT && text_header)
		fputs(text_header, f);
	for_each_zone(p, z) {
		if (gmm_zone_stats(p, z->node, z->type, st))
			continue;
		if (fmt == GMM_STAT_TEXT)
			tf(f, st);
		else
			json_object_array_add(zones, jf(st));
	}
	json_object_object_add(root, "zones", zones);
	if (fmt == GMM_STAT_JSON)
		fputs(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), f);
	json_object_put(root);
	free(st);
	gmm_clear_error();
	return fclose(f) ? gmm_set_error(-ENOMEM, "out of memory rendering statistics") : 0;
}

static void buddy_text(FILE *f, const struct gmm_zone_stats *st)
{
	fprintf(f, "Node %d, zone %8s ", st->node, zone_names[st->zone]);
	for (unsigned int o = 0; o <= st->max_order; o++) {
		uint64_t n = 0;

		for (int mt = 0; mt < GMM_MT_NR; mt++)
			n += st->nr_free[o][mt];
		fprintf(f, "%6llu ", (unsigned long long)n);
	}
	fputc('\n', f);
}

static json_object *buddy_json(const struct gmm_zone_stats *st)
{
	json_object *o = zone_head(st);
	uint64_t n[GMM_MAX_ORDER_LIMIT + 1] = { 0 };

	for (unsigned int i = 0; i <= st->max_order; i++)
		for (int mt = 0; mt < GMM_MT_NR; mt++)
			n[i] += st->nr_free[i][mt];
	json_object_object_add(o, "free", u64_array(n, st->max_order + 1, 1));
	return o;
}

int gmm_stat_buddyinfo(struct gmm_pool *p, enum gmm_stat_format fmt, char **out)
{
	return render(p, fmt, NULL, buddy_text, buddy_json, out);
}

static void pagetype_text(FILE *f, const struct gmm_zone_stats *st)
{
	for (int mt = 0; mt < GMM_MT_NR; mt++) {
		fprintf(f, "Node %4d, zone %8s, type %12s ", st->node, zone_names[st->zone],
			mt_names[mt]);
		for (unsigned int o = 0; o <= st->max_order; o++)
			fprintf(f, "%6llu ", (unsigned long long)st->nr_free[o][mt]);
		fputc('\n', f);
	}
	fprintf(f, "Number of blocks type ");
	for (int mt = 0; mt < GMM_MT_NR; mt++)
		fprintf(f, "%12s ", mt_names[mt]);
	fprintf(f, "\nNode %d, zone %8s ", st->node, zone_names[st->zone]);
	for (int mt = 0; mt < GMM_MT_NR; mt++)
		fprintf(f, "%12llu ", (unsigned long long)st->nr_blocks[mt]);
	fputs("\n\n", f);
}

static json_object *pagetype_json(const struct gmm_zone_stats *st)
{
	json_object *o = zone_head(st), *fr = json_object_new_object();
	json_object *bl = json_object_new_object();

	for (int mt = 0; mt < GMM_MT_NR; mt++) {
		json_object_object_add(fr, mt_names[mt],
				       u64_array(&st->nr_free[0][mt], st->max_order + 1, GMM_MT_NR));
		json_object_object_add(bl, mt_names[mt], json_object_new_uint64(st->nr_blocks[mt]));
	}
	json_object_object_add(o, "free", fr);
	json_object_object_add(o, "blocks", bl);
	return o;
}

int gmm_stat_pagetypeinfo(struct gmm_pool *p, enum gmm_stat_format fmt, char **out)
{
	static const char hdr[] = "Page block order: 9\nPages per block:  512\n\n";

	return render(p, fmt, hdr, pagetype_text, pagetype_json, out);
}

#define ZONE_FIELDS(X)                                   \
	X("pages_free", st->free)                        \
	X("boost", st->wmark_boost)                      \
	X("min", st->wmark_min)                          \
	X("low", st->wmark_low)                          \
	X("high", st->wmark_high)                        \
	X("spanned", st->spanned)                        \
	X("present", st->present)                        \
	X("managed", st->managed)                        \
	X("start_pfn", st->start_pfn)                    \
	X("nr_free_cma", st->free_cma)                   \
	X("nr_free_highatomic", st->free_highatomic)     \
	X("nr_reserved_highatomic", st->reserved_highatomic)

#define EVENT_FIELDS(X)                                       \
	X("pgalloc", st->events.alloc)                        \
	X("pgfree", st->events.free)                          \
	X("alloc_fail", st->events.alloc_fail)                \
	X("extfrag_fallback", st->events.fallback)            \
	X("fallback_claim", st->events.claim)                 \
	X("fallback_steal", st->events.steal)                 \
	X("nofragment_retry", st->events.nofragment_retry)    \
	X("watermark_boost", st->events.boost)                \
	X("highatomic_reserve", st->events.highatomic_reserve) \
	X("highatomic_unreserve", st->events.highatomic_unreserve) \
	X("defrag_fallback", st->events.defrag_fallback)

static void zoneinfo_text(FILE *f, const struct gmm_zone_stats *st)
{
	fprintf(f, "Node %d, zone %8s\n", st->node, zone_names[st->zone]);
#define X(name, v) fprintf(f, "  %-24s %llu\n", name, (unsigned long long)(v));
	ZONE_FIELDS(X)
	fprintf(f, "  %-24s (%llu, %llu)\n", "protection",
		(unsigned long long)st->lowmem_reserve[0], (unsigned long long)st->lowmem_reserve[1]);
	EVENT_FIELDS(X)
#undef X
}

static json_object *zoneinfo_json(const struct gmm_zone_stats *st)
{
	json_object *o = zone_head(st), *ev = json_object_new_object();

#define X(name, v) json_object_object_add(o, name, json_object_new_uint64(v));
	ZONE_FIELDS(X)
#undef X
	json_object_object_add(o, "protection", u64_array(st->lowmem_reserve, GMM_NR_ZONES, 1));
#define X(name, v) json_object_object_add(ev, name, json_object_new_uint64(v));
	EVENT_FIELDS(X)
#undef X
	json_object_object_add(o, "events", ev);
	return o;
}

int gmm_stat_zoneinfo(struct gmm_pool *p, enum gmm_stat_format fmt, char **out)
{
	return render(p, fmt, NULL, zoneinfo_text, zoneinfo_json, out);
}

static void index_text(FILE *f, const struct gmm_zone_stats *st, const char *what,
		       int (*fn)(const struct gmm_zone_stats *, unsigned int))
{
	fprintf(f, "%-15s Node %d, zone %8s ", what, st->node, zone_names[st->zone]);
	for (unsigned int o = 0; o <= st->max_order; o++) {
		int v = fn(st, o);

		fprintf(f, "%s%d.%03d ", v < 0 ? "-" : "", abs(v) / 1000, abs(v) % 1000);
	}
	fputc('\n', f);
}

static void extfrag_text(FILE *f, const struct gmm_zone_stats *st)
{
	index_text(f, st, "extfrag_index", gmm_fragmentation_index);
	index_text(f, st, "unusable_index", gmm_unusable_index);
}

static json_object *index_json(const struct gmm_zone_stats *st,
			       int (*fn)(const struct gmm_zone_stats *, unsigned int))
{
	json_object *a = json_object_new_array();

	for (unsigned int o = 0; o <= st->max_order; o++)
		json_object_array_add(a, json_object_new_double(fn(st, o) / 1000.0));
	return a;
}

static json_object *extfrag_json(const struct gmm_zone_stats *st)
{
	json_object *o = zone_head(st);

	json_object_object_add(o, "extfrag_index", index_json(st, gmm_fragmentation_index));
	json_object_object_add(o, "unusable_index", index_json(st, gmm_unusable_index));
	return o;
}

int gmm_stat_extfrag(struct gmm_pool *p, enum gmm_stat_format fmt, char **out)
{
	return render(p, fmt, NULL, extfrag_text, extfrag_json, out);
}
