/* SPDX-License-Identifier: MIT */
/*
 * vmm/qtest.c - the device-level test driver's server (QEMU's qtest is the
 * model): with --qtest SOCKET gmm-vmm builds guest memory and the devices
 * but no vCPUs (and needs no /dev/kvm), connects to the unix socket SOCKET
 * and answers one command per line, as a guest would act on the machine:
 *
 *   outb|outw|outl PORT VAL        -> OK
 *   inb|inw|inl PORT               -> OK 0xVAL
 *   writeb|writew|writel|writeq ADDR VAL  (MMIO, or RAM)  -> OK
 *   readb|readw|readl|readq ADDR   -> OK 0xVAL
 *   write ADDR LEN HEX             guest RAM -> OK
 *   read ADDR LEN                  guest RAM -> OK HEX
 *   memset ADDR LEN BYTE           guest RAM -> OK
 *   irq GSI                        -> OK LEVEL RAISED (INTx line state)
 *   msi                            -> OK COUNT data=.. addr=.. (the last)
 *   mem                            -> OK key=value ... (host memory: RSS,
 *                                     memfd blocks, guest RAM and pool figures)
 *   balloon-target BYTES | balloon-actual | balloon-stats |
 *   balloon-interval SECONDS | balloon-counters   (balloon_ctl, counters)
 *   vmem-info N                    -> OK addr= region= usable= plugged=
 *                                     requested= block= node= plugs= ... (the
 *                                     N-th --virtio-mem device, counters)
 *   vmem-requested N BYTES         ask for a new plugged size -> OK
 *   vmem-poke N OFF BYTE | vmem-peek N OFF   a guest access to device memory
 *                                     at region offset OFF (ERR unplugged)
 *   quit                           -> OK, and gmm-vmm exits 0 (so does QMP's
 *                                     quit; SIGTERM: 143, as without --qtest)
 *
 * Numbers are decimal or 0x-prefixed hex. A malformed or failing command
 * gets "ERR reason" and changes nothing.
 */
#include "evloop.h"
#include "vmm.h"
#include <gmm/pool.h>
#include <gmm/report.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Largest guest RAM range one read/write/memset command moves. */
#define QTEST_MAX_XFER		(64ULL << 20)
#define QTEST_MAX_ARGS		4
#define QTEST_READ_CHUNK	4096	/* bytes read from the driver at a time */

/* The driver's bytes not yet taken as commands. */
struct linebuf {
	char *buf;
	size_t len, cap;
	size_t skip;		/* the line handed out last: dropped next time */
};

struct qt {
	struct vm *vm;
	int fd;
	FILE *out;
	char *argv[QTEST_MAX_ARGS];
	int argc;
};

static int reply(struct qt *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int reply(struct qt *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(q->out, fmt, ap);
	va_end(ap);
	fputc('\n', q->out);
	fflush(q->out);
	return 0;
}

/*
 * The guest's own accesses to its RAM (the rings and buffers it shares
 * with devices). They race with device threads by design, as a vCPU's
 * would; TSan runs of the device tests suppress reports in these two
 * functions (tests/vmm/tsan-qtest.supp), and only these.
 */
static __attribute__((noinline)) int qtest_guest_read(struct qt *q, uint64_t gpa, void *buf,
							size_t len)
{
	return guestmem_read(q->vm->gm, gpa, buf, len);
}

static __attribute__((noinline)) int qtest_guest_write(struct qt *q, uint64_t gpa,
							 const void *buf, size_t len)
{
	return guestmem_write(q->vm->gm, gpa, buf, len);
}

static bool num(const char *s, uint64_t *v)
{
	char *end;

	if (!s || !*s)
		return false;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && !*end;
}

static unsigned int width(char c)
{
	return c == 'b' ? 1 : c == 'w' ? 2 : c == 'l' ? 4 : c == 'q' ? 8 : 0;
}

static int cmd_out(struct qt *q, unsigned int len)
{
	uint64_t port, val;

	if (q->argc != 3 || !num(q->argv[1], &port) || !num(q->argv[2], &val) || port > 0xffff)
		return reply(q, "ERR usage: out[bwl] PORT VALUE");
	bus_access(&q->vm->dev->pio, port, &val, len, true);
	return reply(q, "OK");
}

static int cmd_in(struct qt *q, unsigned int len)
{
	uint64_t port, val = 0;

	if (q->argc != 2 || !num(q->argv[1], &port) || port > 0xffff)
		return reply(q, "ERR usage: in[bwl] PORT");
	bus_access(&q->vm->dev->pio, port, &val, len, false);
	return reply(q, "OK 0x%llx", (unsigned long long)val);
}

static int cmd_write(struct qt *q, unsigned int len)
{
	uint64_t addr, val;

	if (q->argc != 3 || !num(q->argv[1], &addr) || !num(q->argv[2], &val))
		return reply(q, "ERR usage: write[bwlq] ADDR VALUE");
	if (guestmem_is_ram(q->vm->gm, addr, len))
		return qtest_guest_write(q, addr, &val, len) ?
		       reply(q, "ERR guest RAM write failed") : reply(q, "OK");
	bus_access(&q->vm->dev->mmio, addr, &val, len, true);
	return reply(q, "OK");
}

static int cmd_read(struct qt *q, unsigned int len)
{
	uint64_t addr, val = 0;

	if (q->argc != 2 || !num(q->argv[1], &addr))
		return reply(q, "ERR usage: read[bwlq] ADDR");
	if (guestmem_is_ram(q->vm->gm, addr, len)) {
		if (qtest_guest_read(q, addr, &val, len))
			return reply(q, "ERR guest RAM read failed");
	} else {
		bus_access(&q->vm->dev->mmio, addr, &val, len, false);
	}
	return reply(q, "OK 0x%llx", (unsigned long long)val);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* addr and len checked: inside RAM and at most QTEST_MAX_XFER. */
static const char *ram_range(struct qt *q, uint64_t *addr, uint64_t *len)
{
	if (!num(q->argv[1], addr) || !num(q->argv[2], len))
		return "ERR bad address or length";
	if (*len > QTEST_MAX_XFER)
		return "ERR length above the 64 MiB a command may move";
	if (!guestmem_is_ram(q->vm->gm, *addr, *len ? *len : 1))
		return "ERR range not in guest RAM";
	return NULL;
}

static int cmd_memwrite(struct qt *q)
{
	uint64_t addr, len;
	const char *bad = q->argc == 4 ? ram_range(q, &addr, &len) : "ERR usage: write ADDR LEN HEX";
	uint8_t *buf;
	int ret = 0;

	if (bad)
		return reply(q, "%s", bad);
	if (strlen(q->argv[3]) != 2 * len)
		return reply(q, "ERR HEX must have 2*LEN digits");
	buf = malloc(len ? len : 1);
	if (!buf)
		return reply(q, "ERR out of memory");
	for (uint64_t i = 0; i < len && !ret; i++) {
		int hi = hexval(q->argv[3][2 * i]), lo = hexval(q->argv[3][2 * i + 1]);

		ret = hi < 0 || lo < 0;
		buf[i] = (uint8_t)(hi << 4 | lo);
	}
	if (!ret)
		ret = qtest_guest_write(q, addr, buf, len);
	free(buf);
	return ret ? reply(q, "ERR bad hex or write failed") : reply(q, "OK");
}

static int cmd_memread(struct qt *q)
{
	static const char digits[] = "0123456789abcdef";
	uint64_t addr, len;
	const char *bad = q->argc == 3 ? ram_range(q, &addr, &len) : "ERR usage: read ADDR LEN";
	uint8_t *buf;
	char *hex;

	if (bad)
		return reply(q, "%s", bad);
	buf = malloc(len + 1);
	hex = malloc(2 * len + 1);
	if (!buf || !hex || qtest_guest_read(q, addr, buf, len)) {
		free(buf);
		free(hex);
		return reply(q, "ERR read failed");
	}
	for (uint64_t i = 0; i < len; i++) {
		hex[2 * i] = digits[buf[i] >> 4];
		hex[2 * i + 1] = digits[buf[i] & 15];
	}
	hex[2 * len] = 0;
	reply(q, "OK %s", hex);
	free(buf);
	free(hex);
	return 0;
}

static int cmd_memset(struct qt *q)
{
	uint64_t addr, len, byte;
	const char *bad = q->argc == 4 ? ram_range(q, &addr, &len) : "ERR usage: memset ADDR LEN BYTE";
	uint8_t *buf;
	int ret;

	if (bad)
		return reply(q, "%s", bad);
	if (!num(q->argv[3], &byte) || byte > 255)
		return reply(q, "ERR bad byte");
	buf = malloc(len ? len : 1);
	if (!buf)
		return reply(q, "ERR out of memory");
	memset(buf, (int)byte, len);
	ret = qtest_guest_write(q, addr, buf, len);
	free(buf);
	return ret ? reply(q, "ERR write failed") : reply(q, "OK");
}

static int cmd_irq(struct qt *q)
{
	uint64_t gsi;
	struct irqchip *c = &q->vm->dev->irq;

	if (q->argc != 2 || !num(q->argv[1], &gsi) || gsi >= IRQ_NR_LINES)
		return reply(q, "ERR usage: irq GSI (below 24)");
	return reply(q, "OK %d %lu", irq_line_level(c, (unsigned int)gsi),
		     atomic_load(&c->raised[gsi]));
}

/* MSIs sent, and the last one's data and address (low 32 bits). */
static int cmd_msi(struct qt *q)
{
	struct irqchip *c = &q->vm->dev->irq;
	unsigned long n = atomic_load(&c->msis);
	uint64_t last = n ? atomic_load(&c->msi_log[(n - 1) % IRQ_MSI_LOG]) : 0;

	return reply(q, "OK %lu data=0x%x addr=0x%x", n, (uint32_t)last, (uint32_t)(last >> 32));
}

#define STATUS	"/proc/self/status"

/* Host memory held by the process's memfds (gmm's pool): their blocks. */
static unsigned long long memfd_kib(void)
{
	unsigned long long kib = 0;
	char path[300], link[128];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	struct stat st;
	ssize_t n;

	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strncmp(link, "/memfd:", 7) && !stat(path, &st))
			kib += (unsigned long long)st.st_blocks / 2;
	}
	if (d)
		closedir(d);
	return kib;
}

static int cmd_mem(struct qt *q)
{
	struct gmm_pool *pool = guestmem_gmm_pool(q->vm->gm);
	struct gmm_report_stats rs = { 0 };
	struct guestmem_stats st;
	unsigned long long pfree = 0, ptotal = 0, rss, shmem, hugetlb;

	guestmem_get_stats(q->vm->gm, &st);
	rss = proc_kib(STATUS, "VmRSS");
	shmem = proc_kib(STATUS, "RssShmem");
	hugetlb = proc_kib(STATUS, "HugetlbPages");
	if (pool) {
		pfree = gmm_pool_nr_free(pool);
		ptotal = gmm_pool_nr_pages(pool);
		gmm_report_stats(pool, &rs);
	}
	return reply(q, "OK rss_kib=%llu shmem_kib=%llu hugetlb_kib=%llu memfd_kib=%llu backed=%llu discards=%llu page_size=%llu pool_free=%llu pool_pages=%llu free_reported=%llu reported_bytes=%llu",
		     rss, shmem, hugetlb, memfd_kib(),
		     (unsigned long long)st.backed, (unsigned long long)st.discards,
		     (unsigned long long)st.page_size, pfree, ptotal,
		     (unsigned long long)rs.free_reported, (unsigned long long)rs.reported_bytes);
}

static int ctl_result(struct qt *q, int ret)
{
	return ret ? reply(q, "ERR %s", strerror(-ret)) : reply(q, "OK");
}

static int cmd_balloon_stats(struct qt *q)
{
	struct balloon_stats st;
	char buf[1024];
	int n = 0, ret = balloon_ctl_get_stats(q->vm, &st);

	if (ret)
		return ctl_result(q, ret);
	for (int i = 0; i < BALLOON_NR_STATS; i++) {
		if (st.valid & (1u << i))
			n += snprintf(buf + n, sizeof(buf) - (size_t)n, " %s=%llu",
				      balloon_stat_names[i], (unsigned long long)st.value[i]);
	}
	buf[n] = 0;
	return reply(q, "OK last-update=%lld%s", (long long)st.last_update, buf);
}

static int cmd_balloon_counters(struct qt *q)
{
	struct balloon_counters c;

	if (!q->vm->dev->balloon)
		return reply(q, "ERR no balloon");
	balloon_counters(q->vm->dev->balloon, &c);
	return reply(q, "OK inflated_pages=%llu inflate_pfns=%llu deflate_pfns=%llu bad_pfns=%llu discard_calls=%llu discarded_bytes=%llu reported_bytes=%llu report_skipped=%llu stats_updates=%llu inflate_ns=%llu broken=%lu",
		     (unsigned long long)c.inflated_pages, (unsigned long long)c.inflate_pfns,
		     (unsigned long long)c.deflate_pfns, (unsigned long long)c.bad_pfns,
		     (unsigned long long)c.discard_calls, (unsigned long long)c.discarded_bytes,
		     (unsigned long long)c.reported_bytes, (unsigned long long)c.report_skipped,
		     (unsigned long long)c.stats_updates, (unsigned long long)c.inflate_ns, c.broken);
}

static int cmd_balloon(struct qt *q, const char *what)
{
	uint64_t v;
	int64_t s;
	int ret;

	if (!strcmp(what, "target"))
		return q->argc == 2 && num(q->argv[1], &v) ?
		       ctl_result(q, balloon_ctl_set_target(q->vm, v)) :
		       reply(q, "ERR usage: balloon-target BYTES");
	if (!strcmp(what, "interval"))
		return q->argc == 2 && num(q->argv[1], &v) ?
		       ctl_result(q, balloon_ctl_set_stats_interval(q->vm, (int64_t)v)) :
		       reply(q, "ERR usage: balloon-interval SECONDS");
	if (!strcmp(what, "actual")) {
		ret = balloon_ctl_get_actual(q->vm, &v);
		return ret ? ctl_result(q, ret) : reply(q, "OK %llu", (unsigned long long)v);
	}
	if (!strcmp(what, "get-interval")) {
		ret = balloon_ctl_get_stats_interval(q->vm, &s);
		return ret ? ctl_result(q, ret) : reply(q, "OK %lld", (long long)s);
	}
	if (!strcmp(what, "stats"))
		return cmd_balloon_stats(q);
	if (!strcmp(what, "counters"))
		return cmd_balloon_counters(q);
	return reply(q, "ERR unknown balloon command");
}

static int cmd_vmem_info(struct qt *q, struct vmem *m)
{
	const struct vmem_cfg *c = vmem_config(m);
	struct vmem_counters k;
	uint64_t gpa, size;
	void *hva;

	vmem_region(m, &gpa, &size, &hva);
	vmem_counters(m, &k);
	return reply(q, "OK addr=%llu region=%llu usable=%llu plugged=%llu requested=%llu block=%llu node=%u plugs=%llu unplugs=%llu unplug_alls=%llu states=%llu nacks=%llu errors=%llu broken=%lu plug_ns=%llu unplug_ns=%llu",
		     (unsigned long long)gpa, (unsigned long long)size,
		     (unsigned long long)k.usable_bytes, (unsigned long long)k.plugged_bytes,
		     (unsigned long long)k.requested_bytes, (unsigned long long)c->block_size,
		     c->node, (unsigned long long)k.plugs, (unsigned long long)k.unplugs,
		     (unsigned long long)k.unplug_alls, (unsigned long long)k.states,
		     (unsigned long long)k.nacks, (unsigned long long)k.errors, k.broken,
		     (unsigned long long)k.plug_ns, (unsigned long long)k.unplug_ns);
}

static int cmd_vmem(struct qt *q, const char *what)
{
	uint64_t n, v, off;
	struct vmem *m;
	uint8_t b;

	if (q->argc < 2 || !num(q->argv[1], &n) || n >= q->vm->dev->nr_vmem)
		return reply(q, "ERR usage: vmem-%s N ... (N: a --virtio-mem device)", what);
	m = q->vm->dev->vmem[n];
	if (!strcmp(what, "info") && q->argc == 2)
		return cmd_vmem_info(q, m);
	if (!strcmp(what, "requested") && q->argc == 3 && num(q->argv[2], &v))
		return ctl_result(q, vmem_set_requested(m, v));
	if (!strcmp(what, "peek") && q->argc == 3 && num(q->argv[2], &off))
		return vmem_access(m, off, &b, false) ? reply(q, "ERR unplugged") :
		       reply(q, "OK 0x%x", b);
	if (!strcmp(what, "poke") && q->argc == 4 && num(q->argv[2], &off) &&
	    num(q->argv[3], &v) && v < 256) {
		b = (uint8_t)v;
		return vmem_access(m, off, &b, true) ? reply(q, "ERR unplugged") : reply(q, "OK");
	}
	return reply(q, "ERR bad vmem command or arguments");
}

/* One command; 1 after quit. */
static int dispatch(struct qt *q)
{
	const char *c = q->argv[0];
	size_t n = strlen(c);

	if (!strcmp(c, "quit"))
		return reply(q, "OK"), 1;
	if (n == 4 && !strncmp(c, "out", 3) && width(c[3]) && width(c[3]) < 8)
		return cmd_out(q, width(c[3]));
	if (n == 3 && !strncmp(c, "in", 2) && width(c[2]) && width(c[2]) < 8)
		return cmd_in(q, width(c[2]));
	if (n == 6 && !strncmp(c, "write", 5) && width(c[5]))
		return cmd_write(q, width(c[5]));
	if (n == 5 && !strncmp(c, "read", 4) && width(c[4]))
		return cmd_read(q, width(c[4]));
	if (!strcmp(c, "write"))
		return cmd_memwrite(q);
	if (!strcmp(c, "read"))
		return cmd_memread(q);
	if (!strcmp(c, "memset"))
		return cmd_memset(q);
	if (!strcmp(c, "irq"))
		return cmd_irq(q);
	if (!strcmp(c, "msi"))
		return cmd_msi(q);
	if (!strcmp(c, "mem"))
		return cmd_mem(q);
	if (!strncmp(c, "balloon-", 8))
		return cmd_balloon(q, c + 8);
	if (!strncmp(c, "vmem-", 5))
		return cmd_vmem(q, c + 5);
	return reply(q, "ERR unknown command '%.40s'", c);
}

static void split(struct qt *q, char *line)
{
	char *save = NULL, *tok;

	q->argc = 0;
	for (tok = strtok_r(line, " \t\r\n", &save); tok && q->argc < QTEST_MAX_ARGS;
	     tok = strtok_r(NULL, " \t\r\n", &save))
		q->argv[q->argc++] = tok;
	if (tok)
		q->argc = QTEST_MAX_ARGS + 1;	/* too many: every command refuses */
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* One command line from fd into *line (growing it); 1, or 0 at the end of
 * the connection or when the VM stopped (QMP quit, a signal) meanwhile. */
static int next_line(struct qt *q, int fd, struct linebuf *b)
{
	char *nl;

	if (b->skip) {			/* drop the line handed out last time */
		memmove(b->buf, b->buf + b->skip, b->len - b->skip);
		b->len -= b->skip;
		b->skip = 0;
	}
	while (!b->len || !(nl = memchr(b->buf, '\n', b->len))) {
		ssize_t n;

		if (b->len + QTEST_READ_CHUNK + 1 > b->cap) {
			char *p = realloc(b->buf, b->cap * 2 + QTEST_READ_CHUNK + 1);

			if (!p)
				return 0;
			b->buf = p;
			b->cap = b->cap * 2 + QTEST_READ_CHUNK + 1;
		}
		if (!vm_wait(q->vm, fd))
			return 0;
		n = read(fd, b->buf + b->len, QTEST_READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		b->len += (size_t)n;
	}
	*nl = '\0';
	b->skip = (size_t)(nl - b->buf) + 1;
	return 1;
}

/* Commands until quit (exit 0), the VM stopping (its exit code) or the
 * connection's end (VMM_EXIT_SIGNAL: the driver went away). */
static int serve(struct qt *q, int fd)
{
	struct linebuf b = { 0 };
	int done = 0;

	while (!done && next_line(q, fd, &b)) {
		split(q, b.buf);
		if (q->argc == 0)
			reply(q, "ERR empty command");
		else if (q->argc > QTEST_MAX_ARGS)
			reply(q, "ERR too many arguments");
		else
			done = dispatch(q);
	}
	free(b.buf);
	if (done)
		return VMM_EXIT_OK;
	return atomic_load(&q->vm->stopping) ? q->vm->exit_code : VMM_EXIT_SIGNAL;
}

int qtest_run(struct vm *vm)
{
	struct qt q = { .vm = vm };
	int fd, ret;

	fd = connect_to(vm->opts->qtest);
	if (fd < 0) {
		fprintf(stderr, "gmm-vmm: --qtest %s: cannot connect: %s\n", vm->opts->qtest,
			strerror(-fd));
		return VMM_EXIT_HOST;
	}
	q.out = fdopen(dup(fd), "w");
	if (!q.out || evloop_start(vm->loop)) {
		fprintf(stderr, "gmm-vmm: --qtest: cannot set up the connection\n");
		close(fd);
		if (q.out)
			fclose(q.out);
		return VMM_EXIT_HOST;
	}
	ret = serve(&q, fd);
	close(fd);
	fclose(q.out);
	return ret;
}
