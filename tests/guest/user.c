/* SPDX-License-Identifier: MIT */
/*
 * tests/guest/user.c - the benchmark guest's user-mode part (CPL3, IOPL 3,
 * native speed; where the host faults user port I/O anyway, head.S's #GP
 * handler performs it): reads the device tree, drives the serial port, runs the
 * workloads named in /chosen/bootargs on every CPU's own slice of RAM, checks
 * every page it wrote, and reports JSON result lines to the host.
 *
 * Workloads, run in order: touch=MiB (write a pattern to the first MiB of
 * RAM, split over the CPUs), churn=MiB (discard that much through the host's
 * discard port, then re-write it; rounds=N times), verify (check every page
 * written: pattern of (gpa, generation), or zero after a discard), iotest
 * (CPU 0 runs every in/out encoding and checks widths and data), quiet;
 * with a virtio-balloon (virtio.c): balloon=PCT (ask the host for a logical
 * size of PCT% of RAM and follow its num_pages), follow=S (follow num_pages
 * for S seconds), free=MiB (give up pages and report them free), stats
 * (answer the device's next request for statistics).
 */
#include "guest.h"

#define GEN_NONE	0
#define GEN_FREE	0xfd	/* given up by a workload (and reported) */
#define GEN_BALLOONED	0xfe	/* in the balloon: never touched */
#define GEN_DISCARDED	0xff
#define ARGS_MAX	256

struct mem_range {
	uint64_t base, size;
	uint32_t node;
};

struct config {
	struct mem_range mem[MAX_MEM];
	int nr_mem;
	uint64_t tsc_hz;
	uint32_t ncpus, nnodes;
	char args[ARGS_MAX];
	uint16_t serial, result, discard, poweroff, balloon, pci;
	int cur_mem;		/* fdt walk state */
};

struct slice {
	uint8_t *gen;		/* one generation byte per data page */
	uint64_t data;		/* first data page's address */
	uint64_t pages;		/* data pages in the slice */
	uint64_t touched;	/* pages [0, touched) hold something */
	uint8_t next_gen;
	uint64_t errors;
	uint64_t first_bad;
	uint64_t ballooned;	/* the slice's top pages are in the balloon */
	char line[512];
	struct {
		uint64_t gpa, len, status;
	} discard_req;
};

static struct config cfg;
static struct slice slices[MAX_CPUS];
static volatile int config_ready;
static volatile uint32_t barrier_count, barrier_gen;
static volatile uint64_t total_errors;
static bool quiet;

/* ---- serial and results ---- */

static void serial_putc(char c)
{
	for (int i = 0; i < 100000 && !(inb(cfg.serial + 5) & 0x20); i++)
		cpu_relax();
	outb(cfg.serial, (uint8_t)c);
}

static void print(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			serial_putc('\r');
		serial_putc(*s);
	}
}

static void serial_init(void)
{
	outb(cfg.serial + 1, 0);	/* no interrupts */
	outb(cfg.serial + 3, 0x80);	/* DLAB */
	outb(cfg.serial + 0, 1);	/* 115200 */
	outb(cfg.serial + 1, 0);
	outb(cfg.serial + 3, 0x03);	/* 8N1 */
	outb(cfg.serial + 4, 0x03);	/* DTR, RTS */
}

static void report(struct slice *s)
{
	outl(cfg.result, (uint32_t)(uintptr_t)s->line);
}

static uint64_t ns_of(uint64_t cycles)
{
	uint64_t hz = cfg.tsc_hz;

	if (!hz)
		return 0;
	return cycles / hz * 1000000000ULL + (cycles % hz) * 1000000000ULL / hz;
}

static struct strbuf line_start(struct slice *s, uint64_t cpu, const char *workload)
{
	struct strbuf sb = { s->line, 0, sizeof(s->line) };

	sb_str(&sb, "{\"vcpu\":");
	sb_u64(&sb, cpu);
	sb_kv_str(&sb, "workload", workload);
	return sb;
}

static void line_end(struct strbuf *sb, uint64_t cycles)
{
	sb_kv_u64(sb, "ns", ns_of(cycles));
	sb_kv_u64(sb, "cycles", cycles);
	sb_str(sb, "}");
}

/* ---- device tree ---- */

static void cfg_prop(void *ctx, int node, int depth, const char *name,
		     const char *parent, const char *prop, const void *val,
		     uint32_t len)
{
	struct config *c = ctx;

	(void)node;
	if (depth == 2 && str_starts(name, "memory@")) {
		if (!strncmp(prop, "reg", 4) && len == 16 && c->nr_mem < MAX_MEM) {
			c->cur_mem = c->nr_mem++;
			c->mem[c->cur_mem].base = fdt_be64(val);
			c->mem[c->cur_mem].size = fdt_be64((const uint8_t *)val + 8);
		} else if (!strncmp(prop, "numa-node-id", 13) && len == 4 && c->cur_mem >= 0) {
			c->mem[c->cur_mem].node = fdt_be32(val);
			if (fdt_be32(val) + 1 > c->nnodes)
				c->nnodes = fdt_be32(val) + 1;
		}
	} else if (depth == 2 && !strncmp(name, "cpus", 5) &&
		   !strncmp(prop, "timebase-frequency", 19)) {
		c->tsc_hz = len == 8 ? fdt_be64(val) : fdt_be32(val);
	} else if (depth == 3 && !strncmp(parent, "cpus", 5) && !strncmp(prop, "reg", 4)) {
		c->ncpus++;
	} else if (depth == 2 && !strncmp(name, "chosen", 7) && !strncmp(prop, "bootargs", 9)) {
		memcpy(c->args, val, len < ARGS_MAX ? len : ARGS_MAX - 1);
	} else if (depth == 2 && str_starts(name, "serial@") && !strncmp(prop, "ioport", 7)) {
		c->serial = (uint16_t)fdt_be32(val);
	} else if (depth == 2 && str_starts(name, "host@") && len == 4) {
		if (!strncmp(prop, "result-port", 12))
			c->result = (uint16_t)fdt_be32(val);
		else if (!strncmp(prop, "discard-port", 13))
			c->discard = (uint16_t)fdt_be32(val);
		else if (!strncmp(prop, "poweroff-port", 14))
			c->poweroff = (uint16_t)fdt_be32(val);
		else if (!strncmp(prop, "balloon-port", 13))
			c->balloon = (uint16_t)fdt_be32(val);
	} else if (depth == 2 && str_starts(name, "pci@") && !strncmp(prop, "ioport", 7) &&
		   len == 4) {
		c->pci = (uint16_t)fdt_be32(val);
	}
}

static int read_config(const void *fdt)
{
	cfg.serial = 0x3f8;
	cfg.result = PORT_RESULT;
	cfg.discard = PORT_DISCARD;
	cfg.poweroff = PORT_POWEROFF;
	cfg.cur_mem = -1;
	cfg.nnodes = 1;
	return fdt_walk(fdt, cfg_prop, &cfg);
}

/* ---- slices: CPU c works in node (c % nodes), sharing it with its peers ---- */

static struct mem_range *node_range(uint32_t node)
{
	struct mem_range *best = NULL;

	for (int i = 0; i < cfg.nr_mem; i++) {
		if (cfg.mem[i].node == node && (!best || cfg.mem[i].size > best->size))
			best = &cfg.mem[i];
	}
	return best;
}

static void plan_slice(uint64_t cpu)
{
	uint32_t nodes = cfg.nnodes, node = (uint32_t)(cpu % nodes);
	uint32_t peers = (cfg.ncpus - node + nodes - 1) / nodes, idx = (uint32_t)(cpu / nodes);
	struct mem_range *r = node_range(node);
	uint64_t lo, hi, each, meta;
	struct slice *s = &slices[cpu];

	if (!r)
		return;
	lo = r->base;
	hi = r->base + r->size;
	if (lo < (uint64_t)(uintptr_t)__image_end)
		lo = (uint64_t)(uintptr_t)__image_end;
	lo = (lo + (2ULL << 20) - 1) & ~((2ULL << 20) - 1);
	if (hi <= lo)
		return;
	each = ((hi - lo) / peers) & ~(PAGE_SIZE - 1);
	lo += each * idx;
	meta = ((each / PAGE_SIZE) + PAGE_SIZE) & ~(PAGE_SIZE - 1);
	if (each <= meta)
		return;
	s->gen = (uint8_t *)(uintptr_t)lo;
	s->data = lo + meta;
	s->pages = (each - meta) / PAGE_SIZE;
	s->next_gen = 1;
}

/* ---- patterns ---- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ULL;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dULL;
	return x ^ (x >> 33);
}

static void fill_page(uint64_t gpa, uint8_t gen)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)gpa;
	uint64_t h = mix(gpa ^ ((uint64_t)gen << 56));

	for (int i = 0; i < 512; i++)
		p[i] = h ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL);
}

static bool check_page(uint64_t gpa, uint8_t gen)
{
	const volatile uint64_t *p = (const volatile uint64_t *)(uintptr_t)gpa;
	uint64_t h = mix(gpa ^ ((uint64_t)gen << 56));

	for (int i = 0; i < 512; i++) {
		uint64_t want = gen == GEN_DISCARDED ? 0 : h ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL);

		if (p[i] != want)
			return false;
	}
	return true;
}

/* ---- workloads ---- */

static uint64_t share(uint64_t cpu, uint64_t mib)
{
	uint64_t pages = mib * 256, n = pages / cfg.ncpus;

	if (cpu < pages % cfg.ncpus)
		n++;
	return n;
}

static void note_error(struct slice *s, const char *why, uint64_t gpa)
{
	if (!s->errors++)
		s->first_bad = gpa;
	(void)why;
}

/* Pages in the balloon are skipped: the guest must not touch them. */
static void write_pages(struct slice *s, uint64_t n)
{
	uint8_t gen = s->next_gen;

	for (uint64_t i = 0; i < n; i++) {
		if (s->gen[i] == GEN_BALLOONED)
			continue;
		fill_page(s->data + i * PAGE_SIZE, gen);
		s->gen[i] = gen;
	}
	if (n > s->touched)
		s->touched = n;
	s->next_gen = gen + 1 == GEN_FREE ? 1 : gen + 1;
}

static uint64_t clamp_pages(struct slice *s, uint64_t n)
{
	if (n <= s->pages)
		return n;
	note_error(s, "slice too small", s->data);
	return s->pages;
}

static void do_touch(uint64_t cpu, struct slice *s, uint64_t mib)
{
	uint64_t n = clamp_pages(s, share(cpu, mib)), t = rdtsc();
	struct strbuf sb;

	write_pages(s, n);
	t = rdtsc() - t;
	sb = line_start(s, cpu, "touch");
	sb_kv_u64(&sb, "mib", n * PAGE_SIZE >> 20);
	sb_kv_u64(&sb, "pages", n);
	sb_kv_u64(&sb, "gpa", s->data);
	sb_kv_u64(&sb, "node", cpu % cfg.nnodes);
	sb_kv_u64(&sb, "errors", s->errors);
	line_end(&sb, t);
	report(s);
}

static uint64_t discard(struct slice *s, uint64_t gpa, uint64_t len)
{
	s->discard_req.gpa = gpa;
	s->discard_req.len = len;
	s->discard_req.status = ~0ULL;
	outl(cfg.discard, (uint32_t)(uintptr_t)&s->discard_req);
	return s->discard_req.status;
}

static void do_churn(uint64_t cpu, struct slice *s, uint64_t mib, uint64_t rounds)
{
	uint64_t n = clamp_pages(s, share(cpu, mib)), td = 0, tw = 0;
	struct strbuf sb;

	for (uint64_t r = 0; r < rounds; r++) {
		uint64_t t = rdtsc();

		if (discard(s, s->data, n * PAGE_SIZE))
			note_error(s, "discard refused", s->data);
		for (uint64_t i = 0; i < n; i++) {
			if (s->gen[i] != GEN_BALLOONED)
				s->gen[i] = GEN_DISCARDED;
		}
		td += rdtsc() - t;
		t = rdtsc();
		write_pages(s, n);
		tw += rdtsc() - t;
	}
	sb = line_start(s, cpu, "churn");
	sb_kv_u64(&sb, "mib", n * PAGE_SIZE >> 20);
	sb_kv_u64(&sb, "pages", n);
	sb_kv_u64(&sb, "rounds", rounds);
	sb_kv_u64(&sb, "discard_ns", ns_of(td));
	sb_kv_u64(&sb, "errors", s->errors);
	line_end(&sb, tw);
	report(s);
}

static void do_verify(uint64_t cpu, struct slice *s)
{
	uint64_t checked = 0, bad = 0, t = rdtsc();
	struct strbuf sb;

	for (uint64_t i = 0; i < s->touched; i++) {
		uint8_t gen = s->gen[i];

		if (gen == GEN_NONE || gen == GEN_FREE || gen == GEN_BALLOONED)
			continue;
		checked++;
		if (!check_page(s->data + i * PAGE_SIZE, gen)) {
			bad++;
			note_error(s, "bad page", s->data + i * PAGE_SIZE);
		}
	}
	t = rdtsc() - t;
	sb = line_start(s, cpu, "verify");
	sb_kv_u64(&sb, "pages", checked);
	sb_kv_u64(&sb, "bad", bad);
	if (bad) {
		sb_str(&sb, ",\"first_bad\":\"");
		sb_hex(&sb, s->first_bad);
		sb_str(&sb, "\"");
	}
	sb_kv_u64(&sb, "errors", s->errors);
	line_end(&sb, t);
	report(s);
}

/* ---- port I/O encodings (performed by head.S's #GP handler on kvm_pvm) ---- */

#define PORT_UNCLAIMED	0x80	/* no device: reads all ones, writes dropped */
#define PORT_PIC2_IMR	0xa1	/* in-kernel PIC: the slave's interrupt mask */
#define IO_FILL		0x1122334455667788ULL

static void io_check(struct slice *s, uint64_t *checks, uint64_t got, uint64_t want)
{
	(*checks)++;
	if (got != want)
		note_error(s, "port I/O result", *checks);
}

/* Reads: each width keeps (8, 16 bits) or clears (32 bits) the rest of rax. */
static void io_reads(struct slice *s, uint64_t *n)
{
	uint64_t a;
	uint16_t dx = PORT_UNCLAIMED;

	a = IO_FILL;
	__asm__ volatile("inb %%dx, %%al" : "+a"(a) : "d"(dx));
	io_check(s, n, a, 0x11223344556677ffULL);
	a = IO_FILL;
	__asm__ volatile("inw %%dx, %%ax" : "+a"(a) : "d"(dx));
	io_check(s, n, a, 0x112233445566ffffULL);
	a = IO_FILL;
	__asm__ volatile("inl %%dx, %%eax" : "+a"(a) : "d"(dx));
	io_check(s, n, a, 0xffffffffULL);
	a = IO_FILL;
	__asm__ volatile("inb %1, %%al" : "+a"(a) : "i"(PORT_UNCLAIMED));
	io_check(s, n, a, 0x11223344556677ffULL);
	a = IO_FILL;
	__asm__ volatile("inw %1, %%ax" : "+a"(a) : "i"(PORT_UNCLAIMED));
	io_check(s, n, a, 0x112233445566ffffULL);
	a = IO_FILL;
	__asm__ volatile("inl %1, %%eax" : "+a"(a) : "i"(PORT_UNCLAIMED));
	io_check(s, n, a, 0xffffffffULL);
}

/* Writes: every width is stepped over; bytes read back from real registers. */
static void io_writes(struct slice *s, uint64_t *n)
{
	uint16_t dx = PORT_UNCLAIMED, scr = (uint16_t)(cfg.serial + 7);
	uint64_t a = IO_FILL;
	uint8_t mask = inb(PORT_PIC2_IMR);

	__asm__ volatile("outb %%al, %%dx\n\toutw %%ax, %%dx\n\toutl %%eax, %%dx\n\t"
			 "outb %%al, %1\n\toutw %%ax, %1\n\toutl %%eax, %1"
			 : : "a"(a), "i"(PORT_UNCLAIMED), "d"(dx));
	io_check(s, n, a, IO_FILL);
	outb(scr, 0x5a);
	io_check(s, n, inb(scr), 0x5a);
	__asm__ volatile("outb %%al, %1" : : "a"((uint8_t)0xa5), "i"(PORT_PIC2_IMR));
	io_check(s, n, inb(PORT_PIC2_IMR), 0xa5);
	outb(PORT_PIC2_IMR, mask);
}

static void do_iotest(uint64_t cpu, struct slice *s)
{
	uint64_t checks = 0, t = rdtsc();
	struct strbuf sb;

	if (cpu)
		return;
	io_reads(s, &checks);
	io_writes(s, &checks);
	t = rdtsc() - t;
	sb = line_start(s, cpu, "iotest");
	sb_kv_u64(&sb, "checks", checks);
	sb_kv_u64(&sb, "errors", s->errors);
	line_end(&sb, t);
	report(s);
}

/*
 * ---- the balloon (virtio.c drives the device; CPU 0 does all of it) ----
 *
 * balloon=PCT asks the host, through its balloon port (what the monitor's
 * `balloon` command does), for a logical size of PCT% of RAM, then follows
 * the device's num_pages: inflating takes pages from the top of the slices
 * (their data is given up; they are never touched again while ballooned),
 * deflating gives them back empty. follow=S follows num_pages for S seconds
 * (targets set by the host alone). free=MiB gives up the first MiB of the
 * slices (split like touch) and reports them free. stats waits until the
 * device asks for fresh statistics once and answers.
 */
struct balloon_req {
	uint64_t target;
	int64_t status;
	uint64_t actual, rss_kib, backed;
};

struct vb_stat {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

enum { STAT_SWAP_IN = 0, STAT_SWAP_OUT = 1, STAT_MEMFREE = 4, STAT_MEMTOT = 5,
       STAT_AVAIL = 6, NR_GUEST_STATS = 5 };

#define REPORT_RUN_MAX	(4ULL << 20)	/* bytes per reported buffer */
#define REPORT_BUFS	32		/* buffers per report request */
#define POLL_NS		2000000000ULL	/* how long a step waits for the device */

static struct {
	int probed;			/* 0 not yet, 1 ok, <0 probe error */
	uint64_t pages;			/* in the balloon */
	uint32_t pfns[VB_PFNS_MAX];
	struct vb_stat stats[NR_GUEST_STATS];
	uint64_t stats_updates;
	struct balloon_req req;
	uint64_t rep_gpa[REPORT_BUFS];
	uint32_t rep_len[REPORT_BUFS];
} vb;

static uint64_t ram_bytes(void)
{
	uint64_t ram = 0;

	for (int i = 0; i < cfg.nr_mem; i++)
		ram += cfg.mem[i].size;
	return ram;
}

static uint64_t cycles_of_ns(uint64_t ns)
{
	return cfg.tsc_hz ? ns / 1000 * (cfg.tsc_hz / 1000000) : ns * 3;
}

/* Ask the host's balloon port (target 0: only query). */
static struct balloon_req *host_balloon(uint64_t target)
{
	vb.req.target = target;
	vb.req.status = -1;
	outl(cfg.balloon, (uint32_t)(uintptr_t)&vb.req);
	return &vb.req;
}

static uint64_t free_bytes(void)
{
	uint64_t n = 0;

	for (uint32_t c = 0; c < cfg.ncpus; c++) {
		for (uint64_t i = 0; i < slices[c].pages; i++)
			n += slices[c].gen[i] == GEN_NONE || slices[c].gen[i] == GEN_FREE;
	}
	return n * PAGE_SIZE;
}

static void fill_stats(void)
{
	static const uint16_t tags[NR_GUEST_STATS] = {
		STAT_SWAP_IN, STAT_SWAP_OUT, STAT_MEMFREE, STAT_MEMTOT, STAT_AVAIL,
	};
	uint64_t fr = free_bytes();
	uint64_t val[NR_GUEST_STATS] = { 0, 0, fr, ram_bytes(), fr };

	for (int i = 0; i < NR_GUEST_STATS; i++) {
		vb.stats[i].tag = tags[i];
		vb.stats[i].val = val[i];
	}
	vb.stats_updates++;
	vb_stats_post(vb.stats, sizeof(vb.stats));
}

static bool balloon_ready(struct slice *s)
{
	if (!vb.probed) {
		vb.probed = vb_probe(cfg.pci, VB_F_VERSION_1 | VB_F_MUST_TELL_HOST |
				     VB_F_STATS | VB_F_REPORTING);
		if (!vb.probed) {
			vb.probed = 1;
			if (vb_features() & VB_F_STATS)
				fill_stats();
		}
	}
	if (vb.probed < 0)
		note_error(s, "no balloon", (uint64_t)-vb.probed);
	return vb.probed > 0;
}

/* The slice with the most pages left outside (in) the balloon. */
static struct slice *pick_slice(bool inflate)
{
	struct slice *best = NULL;
	uint64_t most = 0;

	for (uint32_t c = 0; c < cfg.ncpus; c++) {
		struct slice *s = &slices[c];
		uint64_t n = inflate ? s->pages - s->ballooned : s->ballooned;

		if (n > most) {
			most = n;
			best = s;
		}
	}
	return best;
}

/* One request of at most VB_PFNS_MAX pages; 0 when nothing is left. */
static uint64_t balloon_step(struct slice *err, uint64_t want, bool inflate)
{
	struct slice *s = pick_slice(inflate);
	uint64_t n = want < VB_PFNS_MAX ? want : VB_PFNS_MAX, first;

	if (!s)
		return 0;
	if (n > (inflate ? s->pages - s->ballooned : s->ballooned))
		n = inflate ? s->pages - s->ballooned : s->ballooned;
	first = inflate ? s->pages - s->ballooned - n : s->pages - s->ballooned;
	for (uint64_t i = 0; i < n; i++) {
		vb.pfns[i] = (uint32_t)((s->data >> 12) + first + i);
		if (inflate)
			s->gen[first + i] = GEN_BALLOONED;
	}
	if (vb_send_pfns(inflate ? VB_Q_INFLATE : VB_Q_DEFLATE, vb.pfns, (unsigned int)n)) {
		note_error(err, "balloon queue", n);
		return 0;
	}
	for (uint64_t i = 0; !inflate && i < n; i++)
		s->gen[first + i] = GEN_NONE;	/* empty again: contents undefined */
	s->ballooned += inflate ? n : -n;
	vb.pages += inflate ? n : -n;
	return n;
}

/* Move the balloon to the device's num_pages; pages inflated and deflated. */
static void balloon_adjust(struct slice *err, uint64_t *in, uint64_t *out)
{
	uint64_t target = vb_target(), n = 1;

	while (vb.pages != target && n) {
		bool inflate = vb.pages < target;

		n = balloon_step(err, inflate ? target - vb.pages : vb.pages - target, inflate);
		*(inflate ? in : out) += n;
		vb_set_actual((uint32_t)vb.pages);
	}
	if (vb.pages != target)
		note_error(err, "balloon short of its target", target);
}

static void serve_stats(void)
{
	if (vb_stats_wanted())
		fill_stats();
}

static void balloon_line(struct slice *s, const char *wl, uint64_t in, uint64_t out,
			 uint64_t rss0, uint64_t backed0, uint64_t t)
{
	struct balloon_req *r = host_balloon(0);
	struct strbuf sb = line_start(s, 0, wl);

	sb_kv_u64(&sb, "target_pages", vb_target());
	sb_kv_u64(&sb, "balloon_pages", vb.pages);
	sb_kv_u64(&sb, "inflated", in);
	sb_kv_u64(&sb, "deflated", out);
	sb_kv_u64(&sb, "ram", ram_bytes());
	sb_kv_u64(&sb, "host_actual", r->status ? 0 : r->actual);
	sb_kv_u64(&sb, "host_rss_kib_before", rss0);
	sb_kv_u64(&sb, "host_rss_kib", r->rss_kib);
	sb_kv_u64(&sb, "host_backed_before", backed0);
	sb_kv_u64(&sb, "host_backed", r->backed);
	sb_kv_u64(&sb, "features", vb_features());
	sb_kv_u64(&sb, "errors", s->errors);
	line_end(&sb, t);
	report(s);
}

static void do_balloon(uint64_t cpu, uint64_t pct)
{
	struct slice *s = &slices[cpu];
	uint64_t in = 0, out = 0, rss0, backed0, t = rdtsc(), old, want;
	struct balloon_req *r;

	if (cpu || !balloon_ready(s))
		return;
	if (!pct || pct > 100) {
		note_error(s, "balloon= takes 1 to 100 (% of RAM)", pct);
		return;
	}
	old = vb_target();
	want = (ram_bytes() - ram_bytes() * pct / 100) / PAGE_SIZE;
	r = host_balloon(0);
	rss0 = r->rss_kib;
	backed0 = r->backed;
	r = host_balloon(ram_bytes() / 100 * pct);
	if (r->status)
		note_error(s, "host refused the target", (uint64_t)r->status);
	/* The host's word comes back as a configuration change: poll for it. */
	while (vb_target() == old && old != want && rdtsc() - t < cycles_of_ns(POLL_NS))
		cpu_relax();
	balloon_adjust(s, &in, &out);
	serve_stats();
	balloon_line(s, "balloon", in, out, rss0, backed0, rdtsc() - t);
}

static void do_follow(uint64_t cpu, uint64_t seconds)
{
	struct slice *s = &slices[cpu];
	uint64_t in = 0, out = 0, rss0, backed0, t = rdtsc();

	if (cpu || !balloon_ready(s))
		return;
	rss0 = host_balloon(0)->rss_kib;
	backed0 = vb.req.backed;
	while (rdtsc() - t < cycles_of_ns(seconds * 1000000000ULL)) {
		if (vb_target() != vb.pages)
			balloon_adjust(s, &in, &out);
		serve_stats();
		cpu_relax();
	}
	balloon_line(s, "follow", in, out, rss0, backed0, rdtsc() - t);
}

static void do_stats(uint64_t cpu)
{
	struct slice *s = &slices[cpu];
	uint64_t t = rdtsc(), before;
	struct strbuf sb;

	if (cpu || !balloon_ready(s))
		return;
	before = vb.stats_updates;
	while (vb.stats_updates == before && rdtsc() - t < cycles_of_ns(5 * POLL_NS))
		serve_stats();
	if (vb.stats_updates == before)
		note_error(s, "the device never asked for stats", 0);
	sb = line_start(s, 0, "stats");
	sb_kv_u64(&sb, "updates", vb.stats_updates);
	sb_kv_u64(&sb, "free", free_bytes());
	sb_kv_u64(&sb, "errors", s->errors);
	line_end(&sb, rdtsc() - t);
	report(s);
}

/* Give up pages [0, n) of a slice; report them in runs of contiguous pages. */
static uint64_t free_slice(struct slice *err, struct slice *s, uint64_t n, unsigned int *bufs)
{
	uint64_t reported = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t gpa = s->data + i * PAGE_SIZE;
		unsigned int b = *bufs;

		if (s->gen[i] == GEN_BALLOONED)
			continue;
		s->gen[i] = GEN_FREE;
		if (b && vb.rep_gpa[b - 1] + vb.rep_len[b - 1] == gpa &&
		    vb.rep_len[b - 1] < REPORT_RUN_MAX) {
			vb.rep_len[b - 1] += PAGE_SIZE;
		} else {
			if (b == REPORT_BUFS) {
				if (vb_report(vb.rep_gpa, vb.rep_len, b))
					note_error(err, "report queue", gpa);
				b = 0;
			}
			vb.rep_gpa[b] = gpa;
			vb.rep_len[b++] = PAGE_SIZE;
		}
		*bufs = b;
		reported += PAGE_SIZE;
	}
	return reported;
}

static void do_free(uint64_t cpu, uint64_t mib)
{
	struct slice *s = &slices[cpu];
	uint64_t t = rdtsc(), rss0, backed0, bytes = 0;
	unsigned int bufs = 0;
	struct balloon_req *r;
	struct strbuf sb;

	if (cpu || !balloon_ready(s))
		return;
	if (!(vb_features() & VB_F_REPORTING))
		note_error(s, "no free page reporting", 0);
	r = host_balloon(0);
	rss0 = r->rss_kib;
	backed0 = r->backed;
	for (uint32_t c = 0; c < cfg.ncpus && vb_features() & VB_F_REPORTING; c++)
		bytes += free_slice(s, &slices[c], clamp_pages(&slices[c], share(c, mib)), &bufs);
	if (bufs && vb_report(vb.rep_gpa, vb.rep_len, bufs))
		note_error(s, "report queue", 0);
	t = rdtsc() - t;
	r = host_balloon(0);
	sb = line_start(s, 0, "free");
	sb_kv_u64(&sb, "reported", bytes);
	sb_kv_u64(&sb, "host_rss_kib_before", rss0);
	sb_kv_u64(&sb, "host_rss_kib", r->rss_kib);
	sb_kv_u64(&sb, "host_backed_before", backed0);
	sb_kv_u64(&sb, "host_backed", r->backed);
	sb_kv_u64(&sb, "errors", s->errors);
	line_end(&sb, t);
	report(s);
}

/* ---- command line ---- */

static const char *next_token(const char *p, char *tok, size_t max)
{
	size_t n = 0;

	while (*p == ' ')
		p++;
	while (*p && *p != ' ') {
		if (n + 1 < max)
			tok[n++] = *p;
		p++;
	}
	tok[n] = 0;
	return n ? p : NULL;
}

static uint64_t number(const char *s)
{
	uint64_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	return v;
}

static void barrier(void)
{
	uint32_t gen = barrier_gen;

	if (__atomic_add_fetch(&barrier_count, 1, __ATOMIC_SEQ_CST) == cfg.ncpus) {
		barrier_count = 0;
		__atomic_store_n(&barrier_gen, gen + 1, __ATOMIC_SEQ_CST);
		return;
	}
	while (__atomic_load_n(&barrier_gen, __ATOMIC_SEQ_CST) == gen)
		cpu_relax();
}

static void run_token(uint64_t cpu, struct slice *s, const char *tok, uint64_t *rounds)
{
	if (str_starts(tok, "touch="))
		do_touch(cpu, s, number(tok + 6));
	else if (str_starts(tok, "churn="))
		do_churn(cpu, s, number(tok + 6), *rounds);
	else if (str_starts(tok, "rounds="))
		*rounds = number(tok + 7) ? number(tok + 7) : 1;
	else if (!strncmp(tok, "verify", 7))
		do_verify(cpu, s);
	else if (!strncmp(tok, "iotest", 7))
		do_iotest(cpu, s);
	else if (!strncmp(tok, "quiet", 6))
		quiet = true;
	else if (str_starts(tok, "balloon="))
		do_balloon(cpu, number(tok + 8));
	else if (str_starts(tok, "follow="))
		do_follow(cpu, number(tok + 7));
	else if (str_starts(tok, "free="))
		do_free(cpu, number(tok + 5));
	else if (!strncmp(tok, "stats", 6))
		do_stats(cpu);
	else if (cpu == 0) {
		print("gmm-guest: unknown workload '");
		print(tok);
		print("'\n");
		note_error(s, "unknown workload", 0);
	}
}

static void run_workloads(uint64_t cpu)
{
	struct slice *s = &slices[cpu];
	const char *p = cfg.args;
	uint64_t rounds = 1;
	char tok[64];

	if (!s->pages)
		note_error(s, "no memory for this cpu", 0);
	while ((p = next_token(p, tok, sizeof(tok)))) {
		if (s->pages)
			run_token(cpu, s, tok, &rounds);
		barrier();
	}
	__atomic_add_fetch(&total_errors, s->errors, __ATOMIC_SEQ_CST);
	barrier();
}

static void banner(void)
{
	struct strbuf sb = { slices[0].line, 0, sizeof(slices[0].line) };
	uint64_t ram = 0;

	for (int i = 0; i < cfg.nr_mem; i++)
		ram += cfg.mem[i].size;
	sb_str(&sb, "gmm-guest: ");
	sb_u64(&sb, cfg.ncpus);
	sb_str(&sb, " cpus, ");
	sb_u64(&sb, ram >> 20);
	sb_str(&sb, " MiB in ");
	sb_u64(&sb, cfg.nnodes);
	sb_str(&sb, " nodes, workload: ");
	sb_str(&sb, cfg.args);
	sb_str(&sb, "\n");
	print(sb.buf);
}

static _Noreturn void finish(void)
{
	struct slice *s = &slices[0];
	struct strbuf sb = line_start(s, 0, "verdict");
	uint64_t errors = total_errors;

	s->line[0] = 0;
	sb.len = 0;
	sb_str(&sb, "{\"vcpu\":\"all\",\"workload\":\"verdict\"");
	sb_kv_u64(&sb, "cpus", cfg.ncpus);
	sb_kv_u64(&sb, "errors", errors);
	sb_kv_str(&sb, "result", errors ? "fail" : "pass");
	sb_str(&sb, "}");
	report(s);
	if (!quiet)
		print(errors ? "gmm-guest: verdict fail\n" : "gmm-guest: verdict pass\n");
	outl(cfg.poweroff, errors ? 1 : 0);
	for (;;)
		cpu_relax();
}

_Noreturn void user_main(uint64_t cpu, const void *fdt, uint64_t ncpus)
{
	if (cpu == 0) {
		outl(PORT_MARKER, 1);
		if (read_config(fdt) || !cfg.ncpus)
			outl(PORT_POWEROFF, 2);
		if (cfg.ncpus != ncpus)
			cfg.ncpus = (uint32_t)ncpus;
		serial_init();
		banner();
		for (uint64_t c = 0; c < cfg.ncpus && c < MAX_CPUS; c++)
			plan_slice(c);
		__atomic_store_n(&config_ready, 1, __ATOMIC_SEQ_CST);
	} else {
		while (!__atomic_load_n(&config_ready, __ATOMIC_SEQ_CST))
			cpu_relax();
	}
	run_workloads(cpu);
	if (cpu == 0)
		finish();
	for (;;)
		cpu_relax();
}
