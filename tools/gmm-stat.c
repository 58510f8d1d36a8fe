/* SPDX-License-Identifier: MIT */
/*
 * tools/gmm-stat.c - show a pool's statistics in the kernel's shapes.
 *
 * Builds a pool as asked (size, fake NUMA nodes, ZONE_MOVABLE, grouping),
 * optionally runs the mixed-mobility fragmentation workload on it, and
 * prints buddyinfo, pagetypeinfo, zoneinfo and the fragmentation indices
 * as text or JSON, the compaction counters (vmstat names) and a picture of
 * the pageblocks (--compact runs the workload with compaction), and
 * khugepaged's counters (--guest SIZE: a guest on the pool, its 2 MiB
 * chunks scattered, then collapsed by khugepaged).  --demo is the allocator demonstration: the same
 * fragmentation run with mobility grouping on and off, before and after.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gmm/compact.h>
#include <gmm/gmm.h>
#include <json-c/json.h>

#include "fragload.h"

#define MIB ((uint64_t)1 << 20)

struct opts {
	uint64_t size, movable, guest;
	unsigned int nodes;
	bool grouping, json, demo, compact;
	uint64_t load;
	unsigned int views;
};

enum { V_BUDDY = 1, V_PAGETYPE = 2, V_ZONE = 4, V_EXTFRAG = 8, V_COMPACT = 16,
       V_PAGEBLOCKS = 32, V_KHUGEPAGED = 64, V_ALL = 127 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gmm-stat [options] [buddyinfo|pagetypeinfo|zoneinfo|extfrag|compact|"
		"pageblocks|khugepaged|all]...\n"
		"Create a gmm pool, optionally fragment it, and print its statistics.\n\n"
		"  --size SIZE      ZONE_NORMAL size of each node (default 1G; K/M/G/T suffixes)\n"
		"  --movable SIZE   ZONE_MOVABLE size of each node (default 0)\n"
		"  --nodes N        fake NUMA nodes (default 1)\n"
		"  --no-grouping    turn mobility grouping off\n"
		"  --load STEPS     run STEPS steps of the mixed-mobility workload first\n"
		"  --compact        ... with its movable memory migratable and kcompactd running\n"
		"  --guest SIZE     a guest of SIZE RAM on the pool (memfd backing), its 2 MiB\n"
		"                   chunks scattered, then khugepaged until two full scans\n"
		"  --json           print one JSON document instead of text (several views:\n"
		"                   an object keyed by view name)\n"
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

static const char *const view_names[] = { "buddyinfo", "pagetypeinfo", "zoneinfo", "extfrag",
					   "compact", "pageblocks", "khugepaged" };

#define PAGEBLOCK_LEGEND "U unmovable, M movable, R reclaimable, H highatomic, C CMA, " \
			 "I isolated; lower case: over half free; '.': free"

/* Add @obj to @root under @name, or print it alone when @root is NULL. */
static void emit_json(json_object *root, const char *name, json_object *obj)
{
	if (root) {
		json_object_object_add(root, name, obj);
		return;
	}
	printf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY));
	json_object_put(obj);
}

/* The compaction counters (the kernel's vmstat names). */
static int compact_view(struct gmm_pool *p, bool json, json_object *root)
{
	struct gmm_compact_events e;
	json_object *o;

	if (!json) {
		gmm_compact_print_stats(p, stdout);
		return 0;
	}
	if (gmm_compact_stats(p, &e))
		return -EIO;
	o = json_object_new_object();
#define ADD(f) json_object_object_add(o, #f, json_object_new_uint64(e.f))
	ADD(compact_migrate_scanned); ADD(compact_free_scanned); ADD(compact_isolated);
	ADD(compact_stall); ADD(compact_fail); ADD(compact_success); ADD(compact_daemon_wake);
	ADD(compact_daemon_migrate_scanned); ADD(compact_daemon_free_scanned);
	ADD(pgmigrate_success); ADD(pgmigrate_fail); ADD(compact_capture); ADD(compact_deferred);
#undef ADD
	emit_json(root, "compact", o);
	return 0;
}

/* The pageblock map: text, or JSON {"legend", "rows": [...]} of the same. */
static int pageblock_view(struct gmm_pool *p, bool json, json_object *root)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	json_object *o, *rows;
	FILE *f;

	if (!json) {
		printf("pageblocks (" PAGEBLOCK_LEGEND ")\n");
		gmm_pageblock_map(p, stdout, 64);
		return 0;
	}
	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	gmm_pageblock_map(p, f, 64);
	fclose(f);
	o = json_object_new_object();
	rows = json_object_new_array();
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		json_object_array_add(rows, json_object_new_string(line));
	free(buf);
	json_object_object_add(o, "legend", json_object_new_string(PAGEBLOCK_LEGEND));
	json_object_object_add(o, "rows", rows);
	emit_json(root, "pageblocks", o);
	return 0;
}

/* khugepaged's counters and controls, and the guest's share on 2 MiB blocks. */
static int khugepaged_view(struct gmm_pool *p, struct gmm_guest *g, bool json,
			   json_object *root)
{
	struct gmm_khugepaged_config c;
	struct gmm_collapse_stats k;
	struct gmm_guest_stats st = { 0 };
	json_object *o;

	if ((g && gmm_guest_stats(g, &st)) || gmm_khugepaged_stats(p, &k, &c))
		return -EIO;
	if (!json) {
		gmm_khugepaged_print_stats(p, stdout);
		if (g)
			printf("guest: %" PRIu64 " of %" PRIu64 " MiB on aligned 2 MiB blocks, "
			       "%" PRIu64 " host mappings\n", st.huge_bytes / MIB,
			       st.ram_bytes / MIB, st.host_mappings);
		return 0;
	}
	o = json_object_new_object();
#define ADD(f, v) json_object_object_add(o, f, json_object_new_uint64(v))
	ADD("thp_collapse_alloc", k.thp_collapse_alloc);
	ADD("thp_collapse_alloc_failed", k.thp_collapse_alloc_failed);
	ADD("pages_collapsed", k.pages_collapsed); ADD("full_scans", k.full_scans);
	ADD("pages_scanned", k.pages_scanned); ADD("pages_added", k.pages_added);
	ADD("pages_to_scan", c.pages_to_scan); ADD("scan_sleep_millisecs", c.scan_sleep_millisecs);
	ADD("alloc_sleep_millisecs", c.alloc_sleep_millisecs);
	ADD("max_ptes_none", c.max_ptes_none);
	ADD("guest_ram_bytes", st.ram_bytes); ADD("guest_huge_bytes", st.huge_bytes);
	ADD("guest_host_mappings", st.host_mappings);
#undef ADD
	emit_json(root, "khugepaged", o);
	return 0;
}

/*
 * --guest: a guest with 4 KiB faults, every 7th page discarded and backed
 * again in a shuffled order (onto other frames), then khugepaged (10 ms
 * sleeps) until two full scans are done.
 */
static struct gmm_guest *guest_run(struct gmm_pool *p, uint64_t ram)
{
	const uint64_t step = 7 * 4096, n = (ram + step - 1) / step, k = n % 37 ? 37 : 41;
	struct gmm_khugepaged_config kc;
	struct gmm_collapse_stats ks;
	struct gmm_guest_config gc;
	struct gmm_guest *g = NULL;

	gmm_guest_config_init(&gc);
	gc.huge_fault = false;
	if (gmm_guest_create(p, &gc, &g) || gmm_guest_add_ram(g, 0, ram, 0, NULL) ||
	    gmm_guest_populate(g, 0, ram))
		goto fail;
	for (uint64_t i = 0; i < n; i++)
		if (gmm_guest_discard(g, i * step, 4096))
			goto fail;
	for (uint64_t i = 0; i < n; i++)
		if (gmm_guest_populate(g, i * k % n * step, 4096))
			goto fail;
	gmm_khugepaged_config_init(&kc);
	kc.scan_sleep_millisecs = 10;
	if (gmm_khugepaged_start(p, &kc))
		goto fail;
	do {
		usleep(10000);
		gmm_khugepaged_stats(p, &ks, NULL);
	} while (ks.full_scans < 2);
	gmm_khugepaged_stop(p);
	return g;
fail:
	fprintf(stderr, "gmm-stat: guest: %s\n", gmm_last_error());
	gmm_guest_destroy(g);
	return NULL;
}

static int parse_view(const char *s)
{
	if (!strcmp(s, "all"))
		return V_ALL;
	for (int i = 0; i < 7; i++)
		if (!strcmp(s, view_names[i]))
			return 1 << i;
	return -EINVAL;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "size", 1, 0, 's' }, { "movable", 1, 0, 'm' }, { "nodes", 1, 0, 'n' },
		{ "no-grouping", 0, 0, 'g' }, { "load", 1, 0, 'l' }, { "json", 0, 0, 'j' },
		{ "demo", 0, 0, 'd' }, { "help", 0, 0, 'h' }, { "compact", 0, 0, 'c' },
		{ "guest", 1, 0, 'G' },
		{ 0, 0, 0, 0 },
	};
	int c;

	*o = (struct opts){ .size = 1ull << 30, .nodes = 1, .grouping = true };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end = NULL;

		switch (c) {
		case 's': if (parse_size(optarg, &o->size)) goto bad; break;
		case 'm': if (parse_size(optarg, &o->movable)) goto bad; break;
		case 'G': if (parse_size(optarg, &o->guest) || o->guest % (2 * MIB)) goto bad; break;
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
	if (o->guest) {
		if (gmm_memfd_create(NULL, &c.backing_ctx)) {
			fprintf(stderr, "gmm-stat: %s\n", gmm_last_error());
			return NULL;
		}
		c.backing = &gmm_backing_memfd;
	}
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

/*
 * Print the views: text one after the other; JSON as one document (the
 * view's own document for one view, an object keyed by view name for more).
 */
static int show(struct gmm_pool *p, struct gmm_guest *g, unsigned int views, bool json)
{
	static int (*const fn[])(struct gmm_pool *, enum gmm_stat_format, char **) = {
		gmm_stat_buddyinfo, gmm_stat_pagetypeinfo, gmm_stat_zoneinfo, gmm_stat_extfrag,
	};
	json_object *root = json_object_new_object();
	bool several = views & (views - 1);
	int err = 0;

	for (int i = 0; i < 4; i++) {
		char *s;

		if (!(views & (1u << i)))
			continue;
		if (fn[i](p, json ? GMM_STAT_JSON : GMM_STAT_TEXT, &s)) {
			fprintf(stderr, "gmm-stat: %s\n", gmm_last_error());
			err = -EIO;
			continue;
		}
		if (json && several)
			json_object_object_add(root, view_names[i], json_tokener_parse(s));
		else
			printf("%s\n", s);
		free(s);
	}
	if (views & V_COMPACT)
		err |= compact_view(p, json, several ? root : NULL);
	if (views & V_PAGEBLOCKS)
		err |= pageblock_view(p, json, several ? root : NULL);
	if (views & V_KHUGEPAGED)
		err |= khugepaged_view(p, g, json, several ? root : NULL);
	if (json && several)
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
	return err;
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
	show(p, NULL, V_BUDDY, false);
	fragload_run(&f, o->load ? o->load : 400000);
	printf("### after the mixed-mobility churn (%" PRIu64 " MiB unmovable, %" PRIu64
	       " MiB reclaimable, %" PRIu64 " MiB movable in use)\n",
	       f.frames[FRAG_UNMOVABLE] * 4096 / MIB, f.frames[FRAG_RECLAIMABLE] * 4096 / MIB,
	       f.frames[FRAG_MOVABLE] * 4096 / MIB);
	show(p, NULL, V_BUDDY | V_PAGETYPE | V_EXTFRAG, false);
	fragload_free_mobility(&f, FRAG_MOVABLE);
	*share = order9_share(p);
	printf("### all movable memory freed: %.1f%% of the pool is free as 2 MiB blocks\n",
	       100 * *share);
	show(p, NULL, V_BUDDY, false);
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
	struct gmm_guest *g = NULL;
	struct gmm_pool *p;
	struct fragload f;
	struct opts o;
	int err;

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
	if (o.guest && !(g = guest_run(p, o.guest)))
		return 1;
	err = show(p, g, o.views, o.json);
	gmm_guest_destroy(g);
	if (o.load)
		fragload_release(&f);
	gmm_pool_destroy(p);
	return err ? 1 : 0;
}
