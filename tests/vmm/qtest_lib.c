/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/qtest_lib.c - gmm-vmm's device-level test driver, test side
 * (contract in qtest_lib.h): process and socket, the line protocol, PCI
 * configuration through conf1, and a virtio-pci driver with split rings.
 */
#include "qtest_lib.h"
#include "virtio_pci.h"
#include "vmem.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARGS_MAX	32

static void die(struct qts *q, const char *what, const char *reply)
{
	fprintf(stderr, "FAIL qtest: %s -> %s\n", what, reply ? reply : "(no reply: gmm-vmm died)");
	if (q && q->pid > 0)
		kill(q->pid, SIGKILL);
	exit(1);
}

static int listen_on(struct qts *q)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	strcpy(q->dir, "/tmp/gmm-qtest-XXXXXX");
	if (!mkdtemp(q->dir))
		return -1;
	snprintf(q->path, sizeof(q->path), "%s/sock", q->dir);
	strcpy(sa.sun_path, q->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1))
		return -1;
	return fd;
}

static void spawn(struct qts *q, const char *vmm, const char *args)
{
	char *argv[ARGS_MAX + 4], *copy = strdup(args ? args : ""), *save = NULL;
	int n = 0;

	argv[n++] = (char *)vmm;
	argv[n++] = "--qtest";
	argv[n++] = q->path;
	for (char *t = strtok_r(copy, " ", &save); t && n < ARGS_MAX; t = strtok_r(NULL, " ", &save))
		argv[n++] = t;
	argv[n] = NULL;
	q->pid = fork();
	if (q->pid == 0) {
		execv(vmm, argv);
		_exit(127);
	}
	free(copy);
}

struct qts *qts_start(const char *vmm, const char *args)
{
	struct qts *q = calloc(1, sizeof(*q));
	int lfd = q ? listen_on(q) : -1;

	if (lfd < 0)
		die(q, "listen on a unix socket", strerror(errno));
	spawn(q, vmm, args);
	q->fd = accept(lfd, NULL, NULL);
	close(lfd);
	unlink(q->path);
	rmdir(q->dir);
	if (q->fd < 0)
		die(q, "accept gmm-vmm's connection", strerror(errno));
	q->in = fdopen(q->fd, "r");
	return q;
}

static const char *vcmd(struct qts *q, const char *fmt, va_list ap)
{
	char *cmd = NULL;
	ssize_t n;
	size_t len;

	if (vasprintf(&cmd, fmt, ap) < 0)
		die(q, "format a command", "out of memory");
	len = strlen(cmd);
	cmd = realloc(cmd, len + 2);
	cmd[len] = '\n';
	for (size_t off = 0; off < len + 1; off += (size_t)n) {
		n = write(q->fd, cmd + off, len + 1 - off);
		if (n <= 0)
			die(q, "send a command", NULL);
	}
	free(cmd);
	n = getline(&q->line, &q->cap, q->in);
	if (n <= 0)
		return NULL;
	q->line[strcspn(q->line, "\n")] = 0;
	return q->line;
}

const char *qts_cmd(struct qts *q, const char *fmt, ...)
{
	va_list ap;
	const char *r;

	va_start(ap, fmt);
	r = vcmd(q, fmt, ap);
	va_end(ap);
	if (!r)
		die(q, fmt, NULL);
	return r;
}

/* A command whose reply must start with prefix; fatal otherwise. */
static const char *vexpect(struct qts *q, const char *prefix, const char *fmt, va_list ap)
{
	const char *r = vcmd(q, fmt, ap);

	if (!r || strncmp(r, prefix, strlen(prefix)))
		die(q, fmt, r);
	return r;
}

void qts_ok(struct qts *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vexpect(q, "OK", fmt, ap);
	va_end(ap);
}

uint64_t qts_val(struct qts *q, const char *fmt, ...)
{
	va_list ap;
	const char *r;

	va_start(ap, fmt);
	r = vexpect(q, "OK ", fmt, ap);
	va_end(ap);
	return strtoull(r + 3, NULL, 0);
}

uint64_t qts_kv(struct qts *q, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = q->line; p && (p = strstr(p, key)); p += klen) {
		if ((p == q->line || p[-1] == ' ') && p[klen] == '=')
			return strtoull(p + klen + 1, NULL, 0);
	}
	die(q, key, q->line);
	return 0;
}

int qts_quit(struct qts *q)
{
	int st = 0;

	qts_cmd(q, "quit");
	fclose(q->in);
	waitpid(q->pid, &st, 0);
	free(q->line);
	free(q);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char width(unsigned int len)
{
	return len == 1 ? 'b' : len == 2 ? 'w' : len == 4 ? 'l' : 'q';
}

uint32_t qts_in(struct qts *q, unsigned int len, uint16_t port)
{
	return (uint32_t)qts_val(q, "in%c 0x%x", width(len), port);
}

void qts_out(struct qts *q, unsigned int len, uint16_t port, uint32_t val)
{
	qts_ok(q, "out%c 0x%x 0x%x", width(len), port, val);
}

uint64_t qts_readm(struct qts *q, unsigned int len, uint64_t addr)
{
	return qts_val(q, "read%c 0x%llx", width(len), (unsigned long long)addr);
}

void qts_writem(struct qts *q, unsigned int len, uint64_t addr, uint64_t val)
{
	qts_ok(q, "write%c 0x%llx 0x%llx", width(len), (unsigned long long)addr,
	       (unsigned long long)val);
}

void qts_memwrite(struct qts *q, uint64_t gpa, const void *buf, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = buf;
	char *hex = malloc(2 * len + 1);

	for (size_t i = 0; i < len; i++) {
		hex[2 * i] = digits[b[i] >> 4];
		hex[2 * i + 1] = digits[b[i] & 15];
	}
	hex[2 * len] = 0;
	qts_ok(q, "write 0x%llx %zu %s", (unsigned long long)gpa, len, hex);
	free(hex);
}

void qts_memread(struct qts *q, uint64_t gpa, void *buf, size_t len)
{
	const char *r = qts_cmd(q, "read 0x%llx %zu", (unsigned long long)gpa, len);
	uint8_t *b = buf;

	if (strncmp(r, "OK ", 3) || strlen(r + 3) != 2 * len)
		die(q, "read", r);
	for (size_t i = 0; i < len; i++) {
		unsigned int v;

		sscanf(r + 3 + 2 * i, "%2x", &v);
		b[i] = (uint8_t)v;
	}
}

static void pci_addr(struct qts *q, unsigned int devfn, unsigned int off)
{
	qts_out(q, 4, 0xcf8, 0x80000000u | devfn << 8 | (off & 0xfc));
}

uint32_t qts_pci_read(struct qts *q, unsigned int devfn, unsigned int off,
		      unsigned int len)
{
	pci_addr(q, devfn, off);
	return qts_in(q, len, (uint16_t)(0xcfc + (off & 3)));
}

void qts_pci_write(struct qts *q, unsigned int devfn, unsigned int off,
		   unsigned int len, uint32_t val)
{
	pci_addr(q, devfn, off);
	qts_out(q, len, (uint16_t)(0xcfc + (off & 3)), val);
}

/* --- virtio-pci driver --- */

static void read_caps(struct vdev *d)
{
	unsigned int off = qts_pci_read(d->q, d->devfn, PCI_CAPABILITY_LIST, 1);

	for (int guard = 0; off && guard < 48; guard++) {
		unsigned int id = qts_pci_read(d->q, d->devfn, off, 1);
		unsigned int type = qts_pci_read(d->q, d->devfn, off + 3, 1);
		uint64_t where = d->bar + qts_pci_read(d->q, d->devfn, off + 8, 4);

		if (id == PCI_CAP_ID_VNDR && type == VIRTIO_PCI_CAP_COMMON_CFG)
			d->common = where;
		else if (id == PCI_CAP_ID_VNDR && type == VIRTIO_PCI_CAP_ISR_CFG)
			d->isr = where;
		else if (id == PCI_CAP_ID_VNDR && type == VIRTIO_PCI_CAP_DEVICE_CFG)
			d->device = where;
		else if (id == PCI_CAP_ID_VNDR && type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
			d->notify = where;
			d->notify_mult = qts_pci_read(d->q, d->devfn, off + 16, 4);
		}
		off = qts_pci_read(d->q, d->devfn, off + 1, 1);
	}
	if (!d->common || !d->isr || !d->device || !d->notify)
		die(d->q, "virtio capabilities", "common, ISR, device or notify missing");
}

void vd_probe(struct qts *q, struct vdev *d, uint16_t pci_id, uint64_t mem,
	      uint64_t mem_end)
{
	memset(d, 0, sizeof(*d));
	d->q = q;
	d->mem_next = mem;
	d->mem_end = mem_end;
	for (unsigned int devfn = 0; devfn < 256; devfn += 8) {
		uint32_t id = qts_pci_read(q, devfn, 0, 4);

		if (id != ((uint32_t)pci_id << 16 | VIRTIO_PCI_VENDOR))
			continue;
		d->devfn = devfn;
		d->bar = qts_pci_read(q, devfn, PCI_BASE_ADDRESS_0, 4) & ~0xfULL;
		d->gsi = qts_pci_read(q, devfn, PCI_INTERRUPT_LINE, 1);
		qts_pci_write(q, devfn, PCI_COMMAND, 2,
			      PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
		read_caps(d);
		return;
	}
	die(q, "find the virtio device on PCI bus 0", "not found");
}

uint64_t vd_alloc(struct vdev *d, uint64_t size, uint64_t align)
{
	uint64_t at = (d->mem_next + align - 1) & ~(align - 1);

	if (at + size > d->mem_end)
		die(d->q, "vd_alloc", "driver memory exhausted");
	d->mem_next = at + size;
	qts_ok(d->q, "memset 0x%llx %llu 0", (unsigned long long)at, (unsigned long long)size);
	return at;
}

uint64_t vd_device_features(struct vdev *d)
{
	uint64_t f;

	qts_writem(d->q, 4, d->common + VIRTIO_PCI_COMMON_DFSELECT, 0);
	f = qts_readm(d->q, 4, d->common + VIRTIO_PCI_COMMON_DF);
	qts_writem(d->q, 4, d->common + VIRTIO_PCI_COMMON_DFSELECT, 1);
	return f | qts_readm(d->q, 4, d->common + VIRTIO_PCI_COMMON_DF) << 32;
}

uint8_t vd_status(struct vdev *d)
{
	return (uint8_t)qts_readm(d->q, 1, d->common + VIRTIO_PCI_COMMON_STATUS);
}

void vd_set_status(struct vdev *d, uint8_t status)
{
	qts_writem(d->q, 1, d->common + VIRTIO_PCI_COMMON_STATUS, status);
}

bool vd_negotiate(struct vdev *d, uint64_t features)
{
	uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	vd_set_status(d, 0);
	memset(d->vq, 0, sizeof(d->vq));
	vd_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	vd_set_status(d, s);
	qts_writem(d->q, 4, d->common + VIRTIO_PCI_COMMON_GFSELECT, 0);
	qts_writem(d->q, 4, d->common + VIRTIO_PCI_COMMON_GF, (uint32_t)features);
	qts_writem(d->q, 4, d->common + VIRTIO_PCI_COMMON_GFSELECT, 1);
	qts_writem(d->q, 4, d->common + VIRTIO_PCI_COMMON_GF, features >> 32);
	vd_set_status(d, s | VIRTIO_STATUS_FEATURES_OK);
	return vd_status(d) & VIRTIO_STATUS_FEATURES_OK;
}

static void write_addr(struct vdev *d, unsigned int lo, uint64_t a)
{
	qts_writem(d->q, 4, d->common + lo, (uint32_t)a);
	qts_writem(d->q, 4, d->common + lo + 4, a >> 32);
}

void vd_queue(struct vdev *d, unsigned int qi, uint16_t size)
{
	struct vd_queue *v = &d->vq[qi];

	qts_writem(d->q, 2, d->common + VIRTIO_PCI_COMMON_Q_SELECT, qi);
	v->size = size;
	v->desc = vd_alloc(d, 16ULL * size, 16);
	v->avail = vd_alloc(d, 6 + 2ULL * size, 2);
	v->used = vd_alloc(d, 6 + 8ULL * size, 4);
	qts_writem(d->q, 2, d->common + VIRTIO_PCI_COMMON_Q_SIZE, size);
	write_addr(d, VIRTIO_PCI_COMMON_Q_DESCLO, v->desc);
	write_addr(d, VIRTIO_PCI_COMMON_Q_AVAILLO, v->avail);
	write_addr(d, VIRTIO_PCI_COMMON_Q_USEDLO, v->used);
	qts_writem(d->q, 2, d->common + VIRTIO_PCI_COMMON_Q_ENABLE, 1);
}

void vd_driver_ok(struct vdev *d)
{
	vd_set_status(d, vd_status(d) | VIRTIO_STATUS_DRIVER_OK);
}

void vd_write_desc(struct vdev *d, unsigned int qi, uint64_t table,
		   unsigned int idx, uint64_t addr, uint32_t len,
		   uint16_t flags, uint16_t next)
{
	uint8_t desc[16];

	memcpy(desc, &addr, 8);
	memcpy(desc + 8, &len, 4);
	memcpy(desc + 12, &flags, 2);
	memcpy(desc + 14, &next, 2);
	qts_memwrite(d->q, (table ? table : d->vq[qi].desc) + 16ULL * idx, desc, 16);
}

void vd_publish(struct vdev *d, unsigned int qi, uint16_t head)
{
	struct vd_queue *v = &d->vq[qi];

	qts_writem(d->q, 2, v->avail + 4 + 2ULL * (v->avail_idx % v->size), head);
	v->avail_idx++;
	qts_writem(d->q, 2, v->avail + 2, v->avail_idx);
}

void vd_kick(struct vdev *d, unsigned int qi)
{
	qts_writem(d->q, 2, d->notify + (uint64_t)qi * d->notify_mult, qi);
}

uint16_t vd_add(struct vdev *d, unsigned int qi, const struct vd_buf *bufs,
		unsigned int n)
{
	struct vd_queue *v = &d->vq[qi];
	uint16_t head = v->next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % v->size);
		uint16_t flags = (uint16_t)((bufs[i].write ? 2 : 0) | (i + 1 < n ? 1 : 0));

		vd_write_desc(d, qi, 0, idx, bufs[i].gpa, bufs[i].len, flags,
			      (uint16_t)((idx + 1) % v->size));
	}
	v->next_desc = (uint16_t)((head + n) % v->size);
	vd_publish(d, qi, head);
	vd_kick(d, qi);
	return head;
}

bool vd_send(struct vdev *d, unsigned int qi, uint64_t gpa, const void *data, uint32_t len)
{
	struct vd_buf b = { gpa, len, false };
	uint32_t wrote = 1;
	int head;

	qts_memwrite(d->q, gpa, data, len);
	head = vd_add(d, qi, &b, 1);
	return vd_used(d, qi, &wrote) == head && wrote == 0;
}

int vd_used(struct vdev *d, unsigned int qi, uint32_t *len)
{
	struct vd_queue *v = &d->vq[qi];
	uint16_t idx = (uint16_t)qts_readm(d->q, 2, v->used + 2);
	uint32_t e[2];

	if (idx == v->last_used)
		return -1;
	qts_memread(d->q, v->used + 4 + 8ULL * (v->last_used % v->size), e, 8);
	v->last_used++;
	if (len)
		*len = e[1];
	return (int)e[0];
}

uint8_t vd_isr(struct vdev *d)
{
	return (uint8_t)qts_readm(d->q, 1, d->isr);
}

uint32_t vd_cfg_read(struct vdev *d, unsigned int off, unsigned int len)
{
	return (uint32_t)qts_readm(d->q, len, d->device + off);
}

void vd_cfg_write(struct vdev *d, unsigned int off, unsigned int len,
		  uint32_t val)
{
	qts_writem(d->q, len, d->device + off, val);
}

/* --- virtio-mem --- */

#define VMEM_QSIZE	64

void vd_vmem_up(struct qts *q, struct vdev *d)
{
	vd_probe(q, d, VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_MEM, 1 << 20, 8 << 20);
	if (!vd_negotiate(d, 1ULL << VIRTIO_F_VERSION_1 |
			  1ULL << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE))
		die(q, "virtio-mem feature negotiation", "refused");
	vd_queue(d, 0, VMEM_QSIZE);
	vd_driver_ok(d);
}

int vd_vmem_request(struct vdev *d, uint64_t req, uint64_t resp, uint16_t type,
		    uint64_t addr, uint16_t nb_blocks, uint16_t *state)
{
	uint8_t r[VMEM_REQ_SIZE] = { 0 }, a[VMEM_RESP_SIZE];
	struct vd_buf b[2] = { { req, VMEM_REQ_SIZE, false }, { resp, VMEM_RESP_SIZE, true } };
	uint32_t len = 0;
	uint16_t t, s;
	int head;

	memcpy(r, &type, 2);
	memcpy(r + 8, &addr, 8);
	memcpy(r + 16, &nb_blocks, 2);
	qts_memwrite(d->q, req, r, sizeof(r));
	head = vd_add(d, 0, b, 2);
	if (vd_used(d, 0, &len) != head || len != VMEM_RESP_SIZE)
		return -1;
	qts_memread(d->q, resp, a, sizeof(a));
	memcpy(&t, a, 2);
	memcpy(&s, a + 8, 2);
	if (state)
		*state = s;
	return t;
}

uint64_t vd_cfg64(struct vdev *d, unsigned int off)
{
	return vd_cfg_read(d, off, 4) | (uint64_t)vd_cfg_read(d, off + 4, 4) << 32;
}
