/* SPDX-License-Identifier: MIT */
/*
 * tests/guest/fdt.c - a small reader of flattened device trees: walks the
 * structure block and hands every property, with its node, to a callback.
 * Freestanding, so the host tests build it too.
 */
#include "guest.h"

#define FDT_MAGIC	0xd00dfeed
#define FDT_BEGIN_NODE	1
#define FDT_END_NODE	2
#define FDT_PROP	3
#define FDT_NOP		4
#define FDT_END		9
#define MAX_DEPTH	8

uint32_t fdt_be32(const void *p)
{
	const uint8_t *b = p;

	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
	       ((uint32_t)b[2] << 8) | b[3];
}

uint64_t fdt_be64(const void *p)
{
	return ((uint64_t)fdt_be32(p) << 32) | fdt_be32((const uint8_t *)p + 4);
}

static size_t name_len(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

struct walk {
	const uint8_t *fdt;
	const char *strings;
	uint32_t off, end, strings_size;
	const char *names[MAX_DEPTH];
	int depth, node;
};

static int walk_prop(struct walk *w, fdt_prop_fn fn, void *ctx)
{
	uint32_t len, nameoff;

	if (w->off + 8 > w->end)
		return -1;
	len = fdt_be32(w->fdt + w->off);
	nameoff = fdt_be32(w->fdt + w->off + 4);
	w->off += 8;
	if (len > w->end - w->off || nameoff >= w->strings_size || w->depth < 1)
		return -1;
	fn(ctx, w->node, w->depth, w->names[w->depth - 1],
	   w->depth > 1 ? w->names[w->depth - 2] : "", w->strings + nameoff,
	   w->fdt + w->off, len);
	w->off += (len + 3) & ~3U;
	return 0;
}

static int walk_begin(struct walk *w)
{
	const char *name = (const char *)w->fdt + w->off;
	size_t n = name_len(name, w->end - w->off);

	if (n == w->end - w->off || w->depth == MAX_DEPTH)
		return -1;
	w->names[w->depth++] = name;
	w->node++;
	w->off += (uint32_t)((n + 1 + 3) & ~3UL);
	return 0;
}

/* Returns 0 when the whole tree was walked, -1 on a malformed blob. */
int fdt_walk(const void *fdt, fdt_prop_fn fn, void *ctx)
{
	const uint8_t *h = fdt;
	struct walk w = { .fdt = fdt, .node = -1 };
	uint32_t total;

	if (fdt_be32(h) != FDT_MAGIC)
		return -1;
	total = fdt_be32(h + 4);
	w.off = fdt_be32(h + 8);
	w.end = w.off + fdt_be32(h + 36);
	w.strings = (const char *)h + fdt_be32(h + 12);
	w.strings_size = fdt_be32(h + 32);
	if (w.end > total || fdt_be32(h + 12) + w.strings_size > total)
		return -1;
	while (w.off + 4 <= w.end) {
		uint32_t tok = fdt_be32(w.fdt + w.off);

		w.off += 4;
		if (tok == FDT_BEGIN_NODE && walk_begin(&w))
			return -1;
		else if (tok == FDT_END_NODE && --w.depth < 0)
			return -1;
		else if (tok == FDT_PROP && walk_prop(&w, fn, ctx))
			return -1;
		else if (tok == FDT_END)
			return w.depth ? -1 : 0;
		else if (tok != FDT_BEGIN_NODE && tok != FDT_END_NODE &&
			 tok != FDT_PROP && tok != FDT_NOP)
			return -1;
	}
	return -1;
}

static void ram_end_prop(void *ctx, int node, int depth, const char *name,
			 const char *parent, const char *prop, const void *val,
			 uint32_t len)
{
	uint64_t *end = ctx, e;

	(void)node;
	(void)parent;
	if (depth != 2 || !str_starts(name, "memory@") || len != 16 ||
	    strncmp(prop, "reg", 4))
		return;
	e = fdt_be64(val) + fdt_be64((const uint8_t *)val + 8);
	if (e > *end)
		*end = e;
}

/* Highest end of a /memory@ node's reg (2 address cells, 2 size cells). */
uint64_t fdt_ram_end(const void *fdt)
{
	uint64_t end = 0;

	if (fdt_walk(fdt, ram_end_prop, &end))
		return 0;
	return end;
}
