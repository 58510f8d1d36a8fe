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
 * (CPU 0 runs every in/out encoding and checks widths and data), quiet.
 */
#include "guest.h"

#define GEN_NONE	0
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
	uint16_t serial, result, discard, poweroff;
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

static void write_pages(struct slice *s, uint64_t n)
{
	uint8_t gen = s->next_gen;

	for (uint64_t i = 0; i < n; i++) {
		fill_page(s->data + i * PAGE_SIZE, gen);
		s->gen[i] = gen;
	}
	if (n > s->touched)
		s->touched = n;
	s->next_gen = gen + 1 == GEN_DISCARDED ? 1 : gen + 1;
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
		for (uint64_t i = 0; i < n; i++)
			s->gen[i] = GEN_DISCARDED;
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

		if (gen == GEN_NONE)
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
