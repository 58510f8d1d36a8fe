/* SPDX-License-Identifier: MIT */
/*
 * tools/gmm-stat.c - show a pool's statistics in the kernel's shapes.
 *
 * Builds a pool as asked (size, fake NUMA nodes, ZONE_MOVABLE, grouping),
 * optionally runs the mixed-mobility fragmentation workload on it, and
 * prints buddyinfo, pagetypeinfo, zoneinfo and the fragmentation indices
 * as text or JSON, the compaction counters (vmstat names) and a picture of
 * the pageblocks (--compact runs the workload with compaction).  --demo is the allocator demonstration: the same
 * fragmentation run with mobility grouping on and off, before and after.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>

#include "fragload.h"

#define MIB ((uint64_t)1 << 20)

struct opts {
	uint64_t size, movable;
	unsigned int nodes;
	bool grouping, json, demo, compact;
	uint64_t load;
	unsigned int views;
};

enum { V_BUDDY = 1, V_PAGETYPE = 2, V_ZONE = 4, V_EXTFRAG = 8, V_COMPACT = 16,
       V_PAGEBLOCKS = 32, V_ALL = 63 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gmm-stat [options] [buddyinfo|pagetypeinfo|zoneinfo|extfrag|compact|"
		"pageblocks|all]...\n"
		"Create a gmm pool, optionally fragment it, and print its statistics.\n\n"
		"  --size SIZE      ZONE_NORMAL size of each node (default 1G; K/M/G/T suffixes)\n"
		"  --movable SIZE   ZONE_MOVABLE size of each node (default 0)\n"
		"  --nodes N        fake NUMA nodes (default 1)\n"
		"  --no-grouping    turn mobility grouping off\n"
		"  --load STEPS     run STEPS steps of the mixed-mobility workload first\n"
		"  --compact        ... with its movable memory migratable and kcompactd running\n"
		"  --json           print JSON instead of text\n"
		"  --demo           fragmentation demo: before/after, grouping on and off\n"
		"  --help           this text\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	int shift = 0;

	switch (*end) {
	case 'T': case 't': shift = 40; break;
	case 'G': case 'g': shift = 30; break;
	case 'M': case 'm': shift = 20; break;
	case 'K': case 'k': shift = 10; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (end == s || (*end && end[1]) || (shift && v >> (64 - shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_view(const char *s)
{
	static const char *const names[] = { "buddyinfo", "pagetypeinfo", "zoneinfo", "extfrag",
					      "compact", "pageblocks" };

	if (!strcmp(s, "all"))
		return V_ALL;
	for (int i = 0; i < 6; i++)
		if (!strcmp(s, names[i]))
			return 1 << i;
	return -EINVAL;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "size", 1, 0, 's' }, { "movable", 1, 0, 'm' }, { "nodes", 1, 0, 'n' },
		{ "no-grouping", 0, 0, 'g' }, { "load", 1, 0, 'l' }, { "json", 0, 0, 'j' },
		{ "demo", 0, 0, 'd' }, { "help", 0, 0, 'h' }, { "compact", 0, 0, 'c' },
		{ 0, 0, 0, 0 },
	};
	int c;

	*o = (struct opts){ .size = 1ull << 30, .nodes = 1, .grouping = true };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end = NULL;

		switch (c) {
		case 's': if (parse_size(optarg, &o->size)) goto bad; break;
		case 'm': if (parse_size(optarg, &o->movable)) goto bad; break;
		case 'n': o->nodes = (unsigned int)strtoul(optarg, &end, 0); if (*end) goto bad; break;
		case 'l': o->load = strtoull(optarg, &end, 0); if (*end) goto bad; break;
		case 'g': o->grouping = false; break;
		case 'j': o->json = true; break;
		case 'd': o->demo = true; break;
		case 'c': o->compact = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	for (int i = optind; i < argc; i++) {
		int v = parse_view(argv[i]);

		if (v < 0) {
			fprintf(stderr, "gmm-stat: unknown view '%s'\n", argv[i]);
			return -EINVAL;
		}
		o->views |= (unsigned int)v;
	}
	if (!o->views)
		o->views = V_BUDDY | V_PAGETYPE;
	return 0;
bad:
	fprintf(stderr, "gmm-stat: bad value '%s'\n", optarg);
	return -EINVAL;
}

static struct gmm_pool *make_pool(const struct opts *o)
{
	struct gmm_pool_config c;
	struct gmm_pool *p;

	gmm_pool_config_init(&c, o->size);
	c.nr_nodes = o->nodes;
	c.mobility_grouping = o->grouping;
	for (unsigned int n = 0; n < o->nodes && n < GMM_MAX_NODES; n++) {
		c.nodes[n].normal_bytes = o->size;
		c.nodes[n].movable_bytes = o->movable;
	}
	if (gmm_pool_create(&c, &p)) {
		fprintf(stderr, "gmm-stat: %s\n", gmm_last_error());
		return NULL;
	}
	return p;
}

static void show(struct gmm_pool *p, unsigned int views, bool json)
{
	static int (*const fn[])(struct gmm_pool *, enum gmm_stat_format, char **) = {
		gmm_stat_buddyinfo, gmm_stat_pagetypeinfo, gmm_stat_zoneinfo, gmm_stat_extfrag,
	};

	for (int i = 0; i < 4; i++) {
		char *s;

		if (!(views & (1u << i)))
			continue;
		if (fn[i](p, json ? GMM_STAT_JSON : GMM_STAT_TEXT, &s)) {
			fprintf(stderr, "gmm-stat: %s\n", gmm_last_error());
			continue;
		}
		printf(json ? "%s\n" : "%s\n", s);
		free(s);
	}
	if (views & V_COMPACT)
		gmm_compact_print_stats(p, stdout);
	if (views & V_PAGEBLOCKS) {
		printf("pageblocks (U unmovable, M movable, R reclaimable, H highatomic, C CMA, "
		       "I isolated; lower case: over half free; '.': free)\n");
		gmm_pageblock_map(p, stdout, 64);
	}
}

/* Free order-9 blocks that could be had right now, as a share of the pool. */
static double order9_share(struct gmm_pool *p)
{
	struct gmm_zone_stats st;
	uint64_t big = 0;

	if (gmm_zone_stats(p, 0, GMM_ZONE_NORMAL, &st))
		return 0;
	for (unsigned int o = GMM_PAGEBLOCK_ORDER; o <= st.max_order; o++)
		for (int mt = 0; mt < GMM_MT_NR; mt++)
			big += st.nr_free[o][mt] << o;
	return (double)big / (double)st.managed;
}

static int demo_one(struct opts *o, bool grouping, double *share)
{
	struct gmm_pool *p;
	struct fragload f;

	o->grouping = grouping;
	p = make_pool(o);
	if (!p || fragload_init(&f, p, 42))
		return 1;
	printf("\n### mobility grouping %s: %" PRIu64 " MiB pool, before\n", grouping ? "ON" : "OFF",
	       o->size / MIB);
	show(p, V_BUDDY, false);
	fragload_run(&f, o->load ? o->load : 400000);
	printf("### after the mixed-mobility churn (%" PRIu64 " MiB unmovable, %" PRIu64
	       " MiB reclaimable, %" PRIu64 " MiB movable in use)\n",
	       f.frames[FRAG_UNMOVABLE] * 4096 / MIB, f.frames[FRAG_RECLAIMABLE] * 4096 / MIB,
	       f.frames[FRAG_MOVABLE] * 4096 / MIB);
	show(p, V_BUDDY | V_PAGETYPE | V_EXTFRAG, false);
	fragload_free_mobility(&f, FRAG_MOVABLE);
	*share = order9_share(p);
	printf("### all movable memory freed: %.1f%% of the pool is free as 2 MiB blocks\n",
	       100 * *share);
	show(p, V_BUDDY, false);
	if (gmm_pool_check(p)) {
		fprintf(stderr, "gmm-stat: invariant check failed: %s\n", gmm_last_error());
		return 1;
	}
	fragload_release(&f);
	gmm_pool_destroy(p);
	return 0;
}

static int demo(struct opts *o)
{
	double on, off;

	if (o->size > (4ull << 30))
		o->size = 4ull << 30;
	if (demo_one(o, true, &on) || demo_one(o, false, &off))
		return 1;
	printf("\n== 2 MiB blocks available after the churn: %.1f%% with grouping, %.1f%% "
	       "without (%.1fx)\n", 100 * on, 100 * off, off > 0 ? on / off : 0.0);
	return 0;
}

int main(int argc, char **argv)
{
	struct gmm_pool *p;
	struct fragload f;
	struct opts o;

	if (parse(argc, argv, &o))
		return 2;
	if (o.demo)
		return demo(&o);
	p = make_pool(&o);
	if (!p)
		return 1;
	if (o.load) {
		if (fragload_init(&f, p, 42))
			return 1;
		if (o.compact && (fragload_own(&f) || gmm_kcompactd_start(p, 20))) {
			fprintf(stderr, "gmm-stat: %s\n", gmm_last_error());
			return 1;
		}
		fragload_run(&f, o.load);
		gmm_kcompactd_stop(p);
	}
	show(p, o.views, o.json);
	if (o.load)
		fragload_release(&f);
	gmm_pool_destroy(p);
	return 0;
}
