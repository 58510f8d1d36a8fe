/* SPDX-License-Identifier: MIT */
/*
 * virtio/vmem.c - virtio-mem backed by the gmm pool (contract in vmem.h).
 */
#include "vmem.h"
#include "devmem.h"
#include "evloop.h"
#include "util.h"
#include <gmm/pool.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define CHUNK_ORDER		9	/* VMEM_CHUNK in 4 KiB frames */
#define VMEM_QUEUE_MAX		128

struct vmem {
	struct virtio_dev vd;
	struct guestmem *gm;
	struct gmm_pool *pool;
	struct evloop *loop;
	struct vmem_cfg cfg;
	uint64_t addr;
	uint64_t usable;
	uint64_t plugged;
	uint64_t requested;
	uint8_t *hva;
	uint64_t *pfn;			/* per chunk, GMM_PFN_NONE: unplugged */
	uint64_t nr_chunks;
	struct vmem_counters cnt;
	void (*listener)(void *opaque, struct vmem *m, uint64_t plugged);
	void *listener_opaque;
	struct devmem_return ret;	/* unplugged frames' memory, to the host */
	struct vq_elem elem;
};

/* QEMU's rule: usable covers requested plus some room, grows freely, and
 * shrinks only while nothing is plugged. */
static void update_usable(struct vmem *m)
{
	uint64_t want = align_up(m->requested, VMEM_LINUX_BLOCK) + VMEM_USABLE_EXTRA;

	if (want > m->cfg.size)
		want = m->cfg.size;
	if (want > m->usable || m->plugged == 0)
		m->usable = want;
}

static void *chunk_hva(struct vmem *m, uint64_t c)
{
	return m->hva + c * VMEM_CHUNK;
}

/* Make chunk c inaccessible again and give its frames to the pool. */
static void unplug_chunk(struct vmem *m, uint64_t c)
{
	if (m->pfn[c] == GMM_PFN_NONE)
		return;
	/* other devices stop seeing it as RAM before it goes away */
	guestmem_devram_set(m->gm, m->addr + c * VMEM_CHUNK, VMEM_CHUNK, false);
	/* the guest must lose the frames before the pool may hand them out:
	 * if they cannot be unmapped, they stay this device's (leaked) */
	if (mmap(chunk_hva(m, c), VMEM_CHUNK, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
		fprintf(stderr, "gmm-vmm: virtio-mem: cannot unmap a chunk (%s): its frames stay out of the pool\n",
			strerror(errno));
		m->pfn[c] = GMM_PFN_NONE;
		return;
	}
	gmm_free(m->pool, m->pfn[c], CHUNK_ORDER);
	m->pfn[c] = GMM_PFN_NONE;
}

/* Map frames already held for chunk c; 0 or -errno. */
static int map_chunk(struct vmem *m, uint64_t c)
{
	uint64_t off;
	int fd, ret = guestmem_frame_fd(m->gm, m->pfn[c], &fd, &off);

	if (ret)
		return ret;
	if (mmap(chunk_hva(m, c), VMEM_CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, (off_t)off) == MAP_FAILED)
		return -errno;
	if (m->cfg.prealloc && madvise(chunk_hva(m, c), VMEM_CHUNK, MADV_POPULATE_WRITE))
		return -errno;
	return 0;
}

/* Reserve every frame first, then map: all or nothing. */
static int plug_range(struct vmem *m, uint64_t first, uint64_t n)
{
	uint64_t c;
	int ret = 0;

	for (c = first; c < first + n; c++) {
		m->pfn[c] = gmm_alloc(m->pool, CHUNK_ORDER, GMM_THISNODE, (int)m->cfg.node);
		if (m->pfn[c] == GMM_PFN_NONE) {
			ret = -ENOMEM;
			break;
		}
	}
	for (uint64_t i = first; !ret && i < c; i++)
		ret = map_chunk(m, i);
	if (!ret)
		guestmem_devram_set(m->gm, m->addr + first * VMEM_CHUNK, n * VMEM_CHUNK, true);
	if (ret)
		for (uint64_t i = first; i < c; i++)
			unplug_chunk(m, i);
	return ret;
}

static void set_plugged(struct vmem *m, uint64_t bytes)
{
	if (bytes == m->plugged)
		return;
	m->plugged = bytes;
	m->cnt.plugged_bytes = bytes;
	if (m->listener)
		m->listener(m->listener_opaque, m, bytes);
}

/* The request's range as chunks; false if it is not a valid range. */
static bool range(const struct vmem *m, uint64_t gpa, uint16_t nb, uint64_t *first,
		  uint64_t *n)
{
	uint64_t size;

	if (!nb || gpa < m->addr || (gpa - m->addr) % m->cfg.block_size)
		return false;
	size = (uint64_t)nb * m->cfg.block_size;
	if (gpa - m->addr > m->usable || size > m->usable - (gpa - m->addr))
		return false;
	*first = (gpa - m->addr) / VMEM_CHUNK;
	*n = size / VMEM_CHUNK;
	return true;
}

/* VIRTIO_MEM_STATE_* of the chunks. */
static unsigned int state_of(const struct vmem *m, uint64_t first, uint64_t n)
{
	uint64_t plugged = 0;

	for (uint64_t c = first; c < first + n; c++)
		plugged += m->pfn[c] != GMM_PFN_NONE;
	return plugged == n ? VIRTIO_MEM_STATE_PLUGGED :
	       plugged == 0 ? VIRTIO_MEM_STATE_UNPLUGGED : VIRTIO_MEM_STATE_MIXED;
}

static unsigned int do_plug(struct vmem *m, uint64_t first, uint64_t n)
{
	uint64_t t0 = now_ns();

	if (state_of(m, first, n) != VIRTIO_MEM_STATE_UNPLUGGED)
		return VIRTIO_MEM_RESP_ERROR;
	if (m->plugged + n * VMEM_CHUNK > m->requested || plug_range(m, first, n)) {
		m->cnt.nacks++;
		return VIRTIO_MEM_RESP_NACK;
	}
	set_plugged(m, m->plugged + n * VMEM_CHUNK);
	m->cnt.plugs++;
	m->cnt.plug_ns += now_ns() - t0;
	return VIRTIO_MEM_RESP_ACK;
}

static unsigned int do_unplug(struct vmem *m, uint64_t first, uint64_t n)
{
	uint64_t t0 = now_ns();

	if (state_of(m, first, n) != VIRTIO_MEM_STATE_PLUGGED)
		return VIRTIO_MEM_RESP_ERROR;
	for (uint64_t c = first; c < first + n; c++)
		unplug_chunk(m, c);
	set_plugged(m, m->plugged - n * VMEM_CHUNK);
	devmem_queue_return(&m->ret);
	m->cnt.unplugs++;
	m->cnt.unplug_ns += now_ns() - t0;
	return VIRTIO_MEM_RESP_ACK;
}

static void unplug_all(struct vmem *m)
{
	for (uint64_t c = 0; c < m->nr_chunks; c++)
		unplug_chunk(m, c);
	set_plugged(m, 0);
	update_usable(m);
	devmem_queue_return(&m->ret);
}

/* Answer one request; the response type, *state for STATE. */
static unsigned int handle(struct vmem *m, const uint8_t *req, uint16_t *state)
{
	uint16_t type, nb;
	uint64_t gpa, first, n;

	memcpy(&type, req, 2);
	memcpy(&gpa, req + 8, 8);
	memcpy(&nb, req + 16, 2);
	if (type == VIRTIO_MEM_REQ_UNPLUG_ALL) {
		unplug_all(m);
		m->cnt.unplug_alls++;
		return VIRTIO_MEM_RESP_ACK;
	}
	if (type > VIRTIO_MEM_REQ_STATE || !range(m, gpa, nb, &first, &n))
		return VIRTIO_MEM_RESP_ERROR;
	if (type == VIRTIO_MEM_REQ_PLUG)
		return do_plug(m, first, n);
	if (type == VIRTIO_MEM_REQ_UNPLUG)
		return do_unplug(m, first, n);
	*state = (uint16_t)state_of(m, first, n);
	m->cnt.states++;
	return VIRTIO_MEM_RESP_ACK;
}

/* One element: a request in, a response out; bytes written. */
static uint32_t handle_elem(struct vmem *m, struct vq *q, const struct vq_elem *e)
{
	uint8_t req[VMEM_REQ_SIZE], resp[VMEM_RESP_SIZE] = { 0 };
	uint16_t type = VIRTIO_MEM_RESP_ERROR, state = 0;
	const struct vq_seg *resp_seg = &e->segs[e->nr_out];

	if (!e->nr_in || resp_seg->len < VMEM_RESP_SIZE) {
		m->cnt.errors++;
		return 0;	/* nowhere to answer */
	}
	if (vq_elem_read(q, e, 0, req, sizeof(req)) == (long)sizeof(req))
		type = (uint16_t)handle(m, req, &state);
	if (type == VIRTIO_MEM_RESP_ERROR)
		m->cnt.errors++;
	memcpy(resp, &type, 2);
	memcpy(resp + 8, &state, 2);
	if (devmem_write(m->gm, resp_seg->gpa, resp, sizeof(resp)))
		return 0;
	return sizeof(resp);
}

static void notify_queue(struct virtio_dev *vd, unsigned int qi)
{
	struct vmem *m = vd->priv;
	struct vq *q = &vd->vq[qi];
	int r;

	while ((r = vq_pop(q, &m->elem)) == 1)
		if (vq_push(q, m->elem.head, handle_elem(m, q, &m->elem)))
			break;
	if (q->error) {
		m->cnt.broken++;
		virtio_set_broken(vd, q->error);
		return;
	}
	virtio_notify(vd, qi);
}

static void cfg_fill(const struct vmem *m, uint8_t *cfg)
{
	uint64_t v[] = { m->addr, m->cfg.size, m->usable, m->plugged, m->requested };
	uint16_t node = (uint16_t)m->cfg.node;

	memset(cfg, 0, VMEM_CFG_SIZE);
	memcpy(cfg + VMEM_CFG_BLOCK_SIZE, &m->cfg.block_size, 8);
	memcpy(cfg + VMEM_CFG_NODE_ID, &node, 2);
	memcpy(cfg + VMEM_CFG_ADDR, v, sizeof(v));
}

static void cfg_read(struct virtio_dev *vd, unsigned int off, void *data, unsigned int len)
{
	uint8_t cfg[VMEM_CFG_SIZE];

	cfg_fill(vd->priv, cfg);
	memcpy(data, cfg + off, len);
}

/* The configuration is read-only for the driver. */
static void cfg_write(struct virtio_dev *vd, unsigned int off, const void *data,
		      unsigned int len)
{
	(void)vd, (void)off, (void)data, (void)len;
}

/* A reset keeps the blocks' state (VIRTIO 1.2 5.15.5: the device must not
 * change it during reset). */
static void reset(struct virtio_dev *vd)
{
	(void)vd;
}

static const struct virtio_dev_ops vmem_ops = {
	.reset = reset,
	.notify = notify_queue,
	.cfg_read = cfg_read,
	.cfg_write = cfg_write,
};

int vmem_check_cfg(const struct vmem_cfg *c, uint64_t host_page, char *err, size_t errlen)
{
	const char *why = NULL;

	if (c->block_size < VMEM_CHUNK || (c->block_size & (c->block_size - 1)) ||
	    c->block_size < host_page)
		why = "block-size must be a power of two, at least the pool's 2 MiB pageblock and the host page";
	else if (!c->size || c->size % VMEM_LINUX_BLOCK || c->size % c->block_size)
		why = "size must be a nonzero multiple of 128 MiB (Linux's memory block) and of block-size";
	else if (c->requested_size % c->block_size || c->requested_size > c->size)
		why = "requested-size must be a multiple of block-size up to size";
	if (why)
		snprintf(err, errlen, "--virtio-mem %s: %s", c->id, why);
	return why ? -1 : 0;
}

/* A PROT_NONE reservation of size bytes aligned to VMEM_CHUNK (hugetlbfs
 * chunks can only be mapped at 2 MiB aligned addresses); NULL on failure. */
static uint8_t *reserve_aligned(uint64_t size)
{
	uint8_t *p = mmap(NULL, size + VMEM_CHUNK, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (uint8_t *)align_up((uint64_t)(uintptr_t)p, VMEM_CHUNK);
	if (a > p)
		munmap(p, (size_t)(a - p));
	munmap(a + size, (size_t)(p + VMEM_CHUNK - a));
	return a;
}

static int make_region(struct vmem *m, char *err, size_t errlen)
{
	m->nr_chunks = m->cfg.size / VMEM_CHUNK;
	m->pfn = malloc(m->nr_chunks * sizeof(*m->pfn));
	m->hva = reserve_aligned(m->cfg.size);
	if (!m->pfn || !m->hva) {
		snprintf(err, errlen, "--virtio-mem %s: cannot map its %llu MiB region", m->cfg.id,
			 (unsigned long long)(m->cfg.size >> 20));
		return -1;
	}
	for (uint64_t c = 0; c < m->nr_chunks; c++)
		m->pfn[c] = GMM_PFN_NONE;
	if (guestmem_devram_add(m->gm, m->addr, m->cfg.size, m->hva, VMEM_CHUNK)) {
		snprintf(err, errlen, "--virtio-mem %s: cannot make its region device RAM", m->cfg.id);
		return -1;
	}
	return 0;
}

struct vmem *vmem_create(struct pci_host *h, struct guestmem *gm, struct evloop *loop,
			 uint64_t addr, const struct vmem_cfg *cfg, char *err, size_t errlen)
{
	struct vmem *m;

	if (vmem_check_cfg(cfg, 0, err, errlen))
		return NULL;
	if (addr % VMEM_LINUX_BLOCK) {
		snprintf(err, errlen, "--virtio-mem %s: the region is not aligned to 128 MiB", cfg->id);
		return NULL;
	}
	if (!guestmem_gmm_pool(gm)) {
		snprintf(err, errlen, "--virtio-mem %s: needs --memory-mode gmm (its memory comes from the pool)",
			 cfg->id);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "--virtio-mem: out of memory");
		return NULL;
	}
	*m = (struct vmem){ .gm = gm, .pool = guestmem_gmm_pool(gm), .loop = loop, .cfg = *cfg,
			    .addr = addr, .requested = cfg->requested_size,
			    .ret = { .gm = gm, .loop = loop } };
	update_usable(m);
	m->cnt.requested_bytes = m->requested;
	m->cnt.usable_bytes = m->usable;
	if (make_region(m, err, errlen))
		goto fail;
	if (virtio_pci_init(&m->vd, h, gm, "virtio-mem", VIRTIO_ID_MEM,
			    1ULL << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, 1, VMEM_QUEUE_MAX,
			    VMEM_CFG_SIZE, &vmem_ops, m)) {
		snprintf(err, errlen, "--virtio-mem %s: cannot add it to the PCI bus", cfg->id);
		goto fail;
	}
	return m;
fail:
	free(m->pfn);
	if (m->hva)
		munmap(m->hva, m->cfg.size);
	free(m);
	return NULL;
}

void vmem_destroy(struct vmem *m)
{
	if (!m)
		return;
	for (uint64_t c = 0; c < m->nr_chunks; c++)
		unplug_chunk(m, c);
	munmap(m->hva, m->cfg.size);
	virtio_pci_destroy(&m->vd);
	free(m->pfn);
	free(m);
}

void vmem_region(const struct vmem *m, uint64_t *gpa, uint64_t *size, void **hva)
{
	*gpa = m->addr;
	*size = m->cfg.size;
	*hva = m->hva;
}

const struct vmem_cfg *vmem_config(const struct vmem *m)
{
	return &m->cfg;
}

int vmem_set_requested(struct vmem *m, uint64_t bytes)
{
	if (bytes % m->cfg.block_size || bytes > m->cfg.size)
		return -EINVAL;
	pthread_mutex_lock(&m->vd.lock);
	m->requested = bytes;
	update_usable(m);
	m->cnt.requested_bytes = bytes;
	m->cnt.usable_bytes = m->usable;
	virtio_config_changed(&m->vd);
	pthread_mutex_unlock(&m->vd.lock);
	return 0;
}

void vmem_counters(struct vmem *m, struct vmem_counters *c)
{
	pthread_mutex_lock(&m->vd.lock);
	m->cnt.usable_bytes = m->usable;
	*c = m->cnt;
	pthread_mutex_unlock(&m->vd.lock);
}

void vmem_set_listener(struct vmem *m, void (*fn)(void *opaque, struct vmem *m,
						  uint64_t plugged), void *opaque)
{
	pthread_mutex_lock(&m->vd.lock);
	m->listener = fn;
	m->listener_opaque = opaque;
	pthread_mutex_unlock(&m->vd.lock);
}

int vmem_access(struct vmem *m, uint64_t off, uint8_t *val, bool write)
{
	int ret = -EFAULT;

	pthread_mutex_lock(&m->vd.lock);
	if (off < m->cfg.size && m->pfn[off / VMEM_CHUNK] != GMM_PFN_NONE) {
		if (write)
			m->hva[off] = *val;
		else
			*val = m->hva[off];
		ret = 0;
	}
	pthread_mutex_unlock(&m->vd.lock);
	return ret;
}

struct virtio_dev *vmem_virtio(struct vmem *m)
{
	return &m->vd;
}
