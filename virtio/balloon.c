/* SPDX-License-Identifier: MIT */
/*
 * virtio/balloon.c - virtio-balloon (contract and behaviour in balloon.h).
 */
#include "balloon.h"
#include "balloon_ctl.h"
#include "devmem.h"
#include "evloop.h"
#include "util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_4K			4096ULL
/* PFNs read from an element at a time (buffers allocated once). */
#define PFN_CHUNK		65536
/* Stats entries read from one stats buffer. */
#define STATS_MAX_ENTRIES	64

struct balloon_range {
	uint64_t gpa, len;
};

struct balloon_stat_entry {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

struct balloon {
	struct virtio_dev vd;
	struct vm *vm;
	struct guestmem *gm;
	struct evloop *loop;
	struct evsource *stats_timer;
	struct balloon_cfg cfg;
	uint64_t ram_bytes;
	uint64_t max_pfn;		/* bitmap size: highest RAM address / 4K */
	uint32_t unit_pages;		/* 4 KiB pages per backing unit */

	/* device configuration */
	uint32_t num_pages;
	uint32_t actual;
	uint32_t poison_val;

	/* bookkeeping: one bit per 4 KiB page in the balloon; per unit, how
	 * many of its pages are (unit tracking, unit_pages > 1) */
	uint64_t *inflated;
	uint32_t *unit_count;
	/* element tracking: QEMU's one partially inflated host page */
	uint64_t pbp_unit;		/* UINT64_MAX: none */
	uint64_t *pbp_bits;
	uint32_t pbp_count;		/* bits set in pbp_bits */

	uint32_t *pfns;			/* PFN_CHUNK */
	uint64_t *valid;			/* PFN_CHUNK: the valid PFNs of a chunk */
	struct vq_elem elem[BALLOON_NR_QUEUES];

	/*
	 * The discards a queue's element asked for are recorded under vd.lock
	 * and done after dropping it (a vCPU's MMIO and PIO to the device do
	 * not wait for them); the element is used only afterwards. A queue is
	 * worked by one thread at a time (busy); a kick meanwhile sets again,
	 * so the worker looks at the ring once more: no request is lost.
	 * reset() waits until no discard is in flight and bumps gen, which
	 * tells the worker its element went with the reset.
	 */
	struct balloon_range *todo[BALLOON_NR_QUEUES];	/* PFN_CHUNK each */
	unsigned int nr_todo[BALLOON_NR_QUEUES];
	bool busy[BALLOON_NR_QUEUES], again[BALLOON_NR_QUEUES];
	unsigned int in_flight;		/* workers discarding out of the lock */
	pthread_cond_t idle;		/* in_flight reached 0 (with vd.lock) */
	uint64_t gen;			/* device resets */
	unsigned int cur;		/* the queue whose element records discards */

	struct balloon_stats stats;
	int64_t stats_interval;
	bool stats_held;
	uint16_t stats_head;
	struct balloon_counters cnt;
	struct devmem_return ret;	/* what the guest gave up, to the host */
};

static bool test_bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] & (1ULL << (i % 64));
}

static void set_bit(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ULL << (i % 64);
}

static void clear_bit(uint64_t *map, uint64_t i)
{
	map[i / 64] &= ~(1ULL << (i % 64));
}

/* Record a discard of queue b->cur's element (done by flush()). */
static void discard(struct balloon *b, uint64_t gpa, uint64_t len)
{
	unsigned int qi = b->cur;

	if (!len)
		return;
	b->cnt.discard_calls++;
	b->cnt.discarded_bytes += len;
	if (b->nr_todo[qi] == PFN_CHUNK) {	/* cannot happen: see flush() */
		devmem_discard(b->gm, gpa, len);
		return;
	}
	b->todo[qi][b->nr_todo[qi]++] = (struct balloon_range){ gpa, len };
}

/*
 * Do queue qi's recorded discards with vd.lock dropped (held on entry and
 * on return). Called after each chunk of PFN_CHUNK PFNs and after each
 * reporting element, which record at most PFN_CHUNK discards. False when
 * the device was reset meanwhile: the element is gone with it.
 */
static bool flush(struct balloon *b, unsigned int qi)
{
	uint64_t gen = b->gen;

	if (!b->nr_todo[qi])
		return true;
	b->in_flight++;
	pthread_mutex_unlock(&b->vd.lock);
	for (unsigned int i = 0; i < b->nr_todo[qi]; i++)
		devmem_discard(b->gm, b->todo[qi][i].gpa, b->todo[qi][i].len);
	pthread_mutex_lock(&b->vd.lock);
	b->cur = qi;			/* another queue's worker may have run */
	b->nr_todo[qi] = 0;
	if (!--b->in_flight)
		pthread_cond_broadcast(&b->idle);
	return b->gen == gen;
}

/* Discard a run of 4 KiB pages: one call, or one per page (x-per-page). */
static void discard_pages(struct balloon *b, uint64_t gpa, uint64_t len)
{
	if (!b->cfg.per_page) {
		discard(b, gpa, len);
		return;
	}
	for (uint64_t off = 0; off < len; off += PAGE_4K)
		discard(b, gpa + off, PAGE_4K);
}

/* Unit tracking: count the new pages in each unit; units that become
 * full are discarded, consecutive ones with one call. */
static void inflate_units(struct balloon *b, uint64_t pfn, uint64_t n)
{
	uint64_t u = pfn / b->unit_pages, last = (pfn + n - 1) / b->unit_pages;
	uint64_t run_start = 0, run_len = 0, ubytes = b->cfg.unit_bytes;

	for (; u <= last; u++) {
		uint64_t lo = u * b->unit_pages > pfn ? u * b->unit_pages : pfn;
		uint64_t hi = (u + 1) * b->unit_pages < pfn + n ? (u + 1) * b->unit_pages : pfn + n;
		bool before = b->unit_count[u] == b->unit_pages;

		b->unit_count[u] += (uint32_t)(hi - lo);
		if (before || b->unit_count[u] != b->unit_pages)
			continue;
		if (run_len && run_start + run_len == u * ubytes) {
			run_len += ubytes;
			continue;
		}
		discard(b, run_start, run_len);
		run_start = u * ubytes;
		run_len = ubytes;
	}
	discard(b, run_start, run_len);
}

/* Element tracking (QEMU): one partially inflated unit at a time. */
static void inflate_pbp(struct balloon *b, uint64_t pfn)
{
	uint64_t u = pfn / b->unit_pages, i = pfn % b->unit_pages;

	if (b->pbp_unit != u) {
		memset(b->pbp_bits, 0, (b->unit_pages + 63) / 64 * 8);
		b->pbp_unit = u;
		b->pbp_count = 0;
	}
	if (test_bit(b->pbp_bits, i))
		return;
	set_bit(b->pbp_bits, i);
	if (++b->pbp_count == b->unit_pages) {
		discard(b, u * b->cfg.unit_bytes, b->cfg.unit_bytes);
		b->pbp_unit = UINT64_MAX;
	}
}

/* Mark [pfn, pfn + n) inflated; returns how many were not already. */
static uint64_t mark_range(struct balloon *b, uint64_t pfn, uint64_t n, bool inflate)
{
	uint64_t changed = 0;

	for (uint64_t p = pfn; p < pfn + n; p++) {
		if (test_bit(b->inflated, p) == inflate)
			continue;
		changed++;
		if (inflate) {
			set_bit(b->inflated, p);
		} else {
			clear_bit(b->inflated, p);
			if (b->unit_pages > 1 && b->unit_count[p / b->unit_pages])
				b->unit_count[p / b->unit_pages]--;
		}
	}
	return changed;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Only pages not yet inflated count toward the units (a page inflated
 * twice would otherwise fill its unit early). */
static void inflate_run(struct balloon *b, uint64_t pfn, uint64_t n)
{
	uint64_t start = pfn;

	for (uint64_t p = pfn; p <= pfn + n; p++) {
		bool fresh = p < pfn + n && !test_bit(b->inflated, p);

		if (fresh)
			continue;
		if (p > start) {
			mark_range(b, start, p - start, true);
			b->cnt.inflated_pages += p - start;
			if (b->unit_pages > 1)
				inflate_units(b, start, p - start);
			else
				discard_pages(b, start * PAGE_4K, (p - start) * PAGE_4K);
		}
		start = p + 1;
	}
}

static void apply_run(struct balloon *b, uint64_t pfn, uint64_t n, bool inflate)
{
	if (inflate) {
		inflate_run(b, pfn, n);
		return;
	}
	b->cnt.inflated_pages -= mark_range(b, pfn, n, false);
}

/* Sorted, coalesced: one call per run of consecutive PFNs. */
static void apply_sorted(struct balloon *b, unsigned int n, bool inflate)
{
	unsigned int i = 0;

	qsort(b->valid, n, sizeof(b->valid[0]), cmp_u64);
	while (i < n) {
		unsigned int j = i + 1;

		while (j < n && b->valid[j] <= b->valid[j - 1] + 1)
			j++;
		apply_run(b, b->valid[i], b->valid[j - 1] - b->valid[i] + 1, inflate);
		i = j;
	}
}

/* Element tracking: in the guest's order, as QEMU does. */
static void apply_in_order(struct balloon *b, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t p = b->valid[i];

		if (test_bit(b->inflated, p))
			continue;
		set_bit(b->inflated, p);
		b->cnt.inflated_pages++;
		if (b->unit_pages > 1)
			inflate_pbp(b, p);
		else
			discard_pages(b, p * PAGE_4K, PAGE_4K);
	}
}

/* Keep the valid PFNs of a chunk in b->valid; how many. */
static unsigned int valid_pfns(struct balloon *b, unsigned int n)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t p = b->pfns[i];

		if (p >= b->max_pfn || !devmem_is_ram(b->gm, p * PAGE_4K, PAGE_4K)) {
			b->cnt.bad_pfns++;
			continue;
		}
		b->valid[k++] = p;
	}
	return k;
}

/* False when the device was reset while discards were done. */
static bool handle_pfns(struct balloon *b, unsigned int qi, const struct vq_elem *e)
{
	bool inflate = qi == BALLOON_Q_INFLATE;
	uint64_t total = e->out_bytes / 4, t0 = now_ns();

	for (uint64_t off = 0; off < total; off += PFN_CHUNK) {
		uint64_t n = total - off < PFN_CHUNK ? total - off : PFN_CHUNK;
		unsigned int k;

		if (vq_elem_read(&b->vd.vq[qi], e, off * 4, b->pfns, n * 4) != (long)(n * 4))
			return true;
		if (inflate)
			b->cnt.inflate_pfns += n;
		else
			b->cnt.deflate_pfns += n;
		k = valid_pfns(b, (unsigned int)n);
		if (inflate && b->cfg.track == BALLOON_TRACK_ELEMENT)
			apply_in_order(b, k);
		else
			apply_sorted(b, k, inflate);
		if (!flush(b, qi))
			return false;
	}
	b->pbp_unit = UINT64_MAX;	/* QEMU forgets it with the element */
	if (inflate)
		b->cnt.inflate_ns += now_ns() - t0;
	return true;
}

static void handle_report(struct balloon *b, const struct vq_elem *e)
{
	bool keep = virtio_has_feature(&b->vd, VIRTIO_BALLOON_F_PAGE_POISON) && b->poison_val;

	for (unsigned int i = 0; i < e->nr_out + e->nr_in; i++) {
		const struct vq_seg *s = &e->segs[i];

		if (keep) {
			b->cnt.report_skipped += s->len;
			continue;
		}
		b->cnt.reported_bytes += s->len;
		discard(b, s->gpa, s->len);
	}
}

static void handle_stats(struct balloon *b, const struct vq_elem *e)
{
	struct balloon_stat_entry ent[STATS_MAX_ENTRIES];
	long got = vq_elem_read(&b->vd.vq[BALLOON_Q_STATS], e, 0, ent, sizeof(ent));

	for (long i = 0; got > 0 && i < got / (long)sizeof(ent[0]); i++) {
		if (ent[i].tag >= BALLOON_NR_STATS)
			continue;
		b->stats.value[ent[i].tag] = ent[i].val;
		b->stats.valid |= 1u << ent[i].tag;
	}
	b->stats.last_update = (int64_t)time(NULL);
	b->cnt.stats_updates++;
}

/* Give the held stats buffer back: the driver refills it. Lock held. */
static void stats_request(struct balloon *b)
{
	if (!b->stats_held || !virtio_running(&b->vd))
		return;
	b->stats_held = false;
	if (vq_push(&b->vd.vq[BALLOON_Q_STATS], b->stats_head, 0))
		virtio_set_broken(&b->vd, b->vd.vq[BALLOON_Q_STATS].error);
	else
		virtio_notify(&b->vd, BALLOON_Q_STATS);
}

static void stats_timer(void *opaque, uint32_t events)
{
	struct balloon *b = opaque;

	(void)events;
	pthread_mutex_lock(&b->vd.lock);
	stats_request(b);
	pthread_mutex_unlock(&b->vd.lock);
}

/* Handle queue qi's available elements (vd.lock held, dropped for discards). */
static void run_queue(struct balloon *b, unsigned int qi)
{
	struct vq *q = &b->vd.vq[qi];
	struct vq_elem *e = &b->elem[qi];
	int r;

	while ((r = vq_pop(q, e)) == 1) {
		if (qi == BALLOON_Q_STATS) {
			if (b->stats_held && vq_push(q, b->stats_head, 0))
				break;
			handle_stats(b, e);
			b->stats_held = true;
			b->stats_head = e->head;
			continue;
		}
		b->cur = qi;
		if (qi == BALLOON_Q_REPORTING)
			handle_report(b, e);
		else if (!handle_pfns(b, qi, e))
			return;
		if (!flush(b, qi))
			return;
		if (vq_push(q, e->head, 0))
			break;
	}
	if (q->error) {
		virtio_set_broken(&b->vd, q->error);
		return;
	}
	virtio_notify(&b->vd, qi);
}

static void notify_queue(struct virtio_dev *vd, unsigned int qi)
{
	struct balloon *b = vd->priv;
	uint64_t discarded = b->cnt.discarded_bytes;

	if (b->busy[qi]) {		/* its worker looks again before it ends */
		b->again[qi] = true;
		return;
	}
	b->busy[qi] = true;
	do {
		b->again[qi] = false;
		run_queue(b, qi);
	} while (b->again[qi]);
	b->busy[qi] = false;
	if (b->cnt.discarded_bytes != discarded)
		devmem_queue_return(&b->ret);	/* now, not after the reporting delay */
}

static void cfg_read(struct virtio_dev *vd, unsigned int off, void *data, unsigned int len)
{
	struct balloon *b = vd->priv;
	uint32_t cfg[BALLOON_CFG_SIZE / 4] = { b->num_pages, b->actual, 0, b->poison_val };

	memcpy(data, (uint8_t *)cfg + off, len);
}

static uint64_t logical(const struct balloon *b)
{
	return b->ram_bytes - (uint64_t)b->actual * PAGE_4K;
}

static void cfg_write(struct virtio_dev *vd, unsigned int off, const void *data, unsigned int len)
{
	struct balloon *b = vd->priv;
	uint32_t cfg[BALLOON_CFG_SIZE / 4] = { b->num_pages, b->actual, 0, b->poison_val };
	uint32_t old = b->actual;

	memcpy((uint8_t *)cfg + off, data, len);
	b->actual = cfg[BALLOON_CFG_ACTUAL / 4];
	if ((uint64_t)b->actual * PAGE_4K > b->ram_bytes)	/* a guest's claim, bounded */
		b->actual = (uint32_t)(b->ram_bytes / PAGE_4K);
	if (b->vd.host_features & (1ULL << VIRTIO_BALLOON_F_PAGE_POISON))
		b->poison_val = cfg[BALLOON_CFG_POISON / 4];
	if (b->actual != old)
		balloon_ctl_changed(b->vm, logical(b));
}

static void reset(struct virtio_dev *vd)
{
	struct balloon *b = vd->priv;
	bool changed;

	while (b->in_flight)		/* no discard lands after the reset */
		pthread_cond_wait(&b->idle, &b->vd.lock);
	b->gen++;
	changed = b->actual != 0;
	b->stats_held = false;
	b->actual = 0;
	b->poison_val = 0;
	/* the driver starts over with an empty balloon; discarded pages are
	 * backed again when touched */
	memset(b->inflated, 0, (b->max_pfn + 63) / 64 * 8);
	if (b->unit_pages > 1)
		memset(b->unit_count, 0, (b->max_pfn + b->unit_pages - 1) / b->unit_pages *
		       sizeof(b->unit_count[0]));
	b->cnt.inflated_pages = 0;
	b->pbp_unit = UINT64_MAX;
	if (changed)
		balloon_ctl_changed(b->vm, b->ram_bytes);
}

static const struct virtio_dev_ops balloon_ops = {
	.reset = reset,
	.notify = notify_queue,
	.cfg_read = cfg_read,
	.cfg_write = cfg_write,
};

static int set_target(void *opaque, uint64_t bytes)
{
	struct balloon *b = opaque;

	if (!bytes || bytes > b->ram_bytes)
		return -EINVAL;
	pthread_mutex_lock(&b->vd.lock);
	b->num_pages = (uint32_t)((b->ram_bytes - bytes) / PAGE_4K);
	virtio_config_changed(&b->vd);
	pthread_mutex_unlock(&b->vd.lock);
	return 0;
}

static int get_actual(void *opaque, uint64_t *bytes)
{
	struct balloon *b = opaque;

	pthread_mutex_lock(&b->vd.lock);
	*bytes = logical(b);
	pthread_mutex_unlock(&b->vd.lock);
	return 0;
}

static int get_stats(void *opaque, struct balloon_stats *st)
{
	struct balloon *b = opaque;

	pthread_mutex_lock(&b->vd.lock);
	*st = b->stats;
	pthread_mutex_unlock(&b->vd.lock);
	return 0;
}

static int get_interval(void *opaque, int64_t *seconds)
{
	struct balloon *b = opaque;

	pthread_mutex_lock(&b->vd.lock);
	*seconds = b->stats_interval;
	pthread_mutex_unlock(&b->vd.lock);
	return 0;
}

static int set_interval(void *opaque, int64_t seconds)
{
	struct balloon *b = opaque;
	uint64_t ns = (uint64_t)seconds * NSEC_PER_SEC;
	int ret;

	if (seconds < 0 || seconds > UINT32_MAX)
		return -EINVAL;
	if (!b->stats_timer)
		return -ENOTSUP;
	pthread_mutex_lock(&b->vd.lock);
	b->stats_interval = seconds;
	ret = evloop_timer_set(b->loop, b->stats_timer, ns, ns);
	pthread_mutex_unlock(&b->vd.lock);
	return ret;
}

static const struct balloon_ctl_ops ctl_ops = {
	.set_target = set_target,
	.get_actual = get_actual,
	.get_stats = get_stats,
	.get_stats_interval = get_interval,
	.set_stats_interval = set_interval,
};

static uint64_t features(const struct balloon_cfg *cfg)
{
	uint64_t f = 1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST |
		     1ULL << VIRTIO_BALLOON_F_STATS_VQ |
		     1ULL << VIRTIO_BALLOON_F_PAGE_POISON;

	if (cfg->deflate_on_oom)
		f |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (cfg->free_page_reporting)
		f |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
	return f;
}

static int alloc_maps(struct balloon *b, uint64_t ram_end)
{
	uint64_t units;

	b->max_pfn = ram_end / PAGE_4K;
	b->unit_pages = (uint32_t)(b->cfg.unit_bytes / PAGE_4K);
	units = (b->max_pfn + b->unit_pages - 1) / b->unit_pages;
	b->inflated = calloc((b->max_pfn + 63) / 64, 8);
	b->unit_count = calloc(units, sizeof(b->unit_count[0]));
	b->pbp_bits = calloc((b->unit_pages + 63) / 64, 8);
	b->pfns = malloc(PFN_CHUNK * sizeof(b->pfns[0]));
	b->valid = malloc(PFN_CHUNK * sizeof(b->valid[0]));
	b->todo[BALLOON_Q_INFLATE] = malloc(PFN_CHUNK * sizeof(struct balloon_range));
	b->todo[BALLOON_Q_REPORTING] = malloc(PFN_CHUNK * sizeof(struct balloon_range));
	b->pbp_unit = UINT64_MAX;
	return b->inflated && b->unit_count && b->pbp_bits && b->pfns && b->valid &&
	       b->todo[BALLOON_Q_INFLATE] && b->todo[BALLOON_Q_REPORTING] ? 0 : -ENOMEM;
}

static int start_stats(struct balloon *b)
{
	uint64_t ns = (uint64_t)b->cfg.stats_period * NSEC_PER_SEC;

	b->stats_interval = b->cfg.stats_period;
	if (!b->loop)
		return 0;
	b->stats_timer = evloop_add_timer(b->loop, ns, ns, stats_timer, b);
	return b->stats_timer ? 0 : -errno;
}

struct balloon *balloon_create(struct vm *vm, struct pci_host *h,
			       struct guestmem *gm, struct evloop *loop,
			       uint64_t ram_bytes, const struct balloon_cfg *cfg,
			       char *err, size_t errlen)
{
	struct balloon *b = calloc(1, sizeof(*b));
	int ret = -ENOMEM;

	if (b) {
		b->vm = vm;
		b->gm = gm;
		b->ret = (struct devmem_return){ .gm = gm, .loop = loop };
		pthread_cond_init(&b->idle, NULL);
		b->loop = loop;
		b->cfg = *cfg;
		b->ram_bytes = ram_bytes;
		if (b->cfg.unit_bytes < PAGE_4K)
			b->cfg.unit_bytes = PAGE_4K;
		ret = alloc_maps(b, guestmem_end(gm));
	}
	if (!ret)
		ret = virtio_pci_init(&b->vd, h, gm, "virtio-balloon", VIRTIO_ID_BALLOON,
				      features(cfg), BALLOON_NR_QUEUES, VQ_MAX_SIZE,
				      BALLOON_CFG_SIZE, &balloon_ops, b);
	if (!ret)
		ret = start_stats(b);
	if (ret) {
		snprintf(err, errlen, "cannot create the virtio-balloon: %s", strerror(-ret));
		balloon_destroy(b);
		return NULL;
	}
	balloon_ctl_register(vm, &ctl_ops, b);
	return b;
}

void balloon_destroy(struct balloon *b)
{
	if (!b)
		return;
	if (b->stats_timer)
		evloop_del(b->loop, b->stats_timer);
	virtio_pci_destroy(&b->vd);
	free(b->inflated);
	free(b->unit_count);
	free(b->pbp_bits);
	free(b->pfns);
	free(b->valid);
	for (unsigned int i = 0; i < BALLOON_NR_QUEUES; i++)
		free(b->todo[i]);
	pthread_cond_destroy(&b->idle);
	free(b);
}

void balloon_counters(struct balloon *b, struct balloon_counters *c)
{
	pthread_mutex_lock(&b->vd.lock);
	*c = b->cnt;
	c->broken = b->vd.nr_broken;
	pthread_mutex_unlock(&b->vd.lock);
}

struct virtio_dev *balloon_virtio(struct balloon *b)
{
	return &b->vd;
}
