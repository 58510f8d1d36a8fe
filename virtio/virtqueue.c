/* SPDX-License-Identifier: MIT */
/*
 * virtio/virtqueue.c - the split virtqueue walker and used ring (contract
 * in virtqueue.h). The ring layout is VIRTIO 1.2 section 2.7: a descriptor
 * table of 16-byte entries, the available ring (flags, idx, ring[size],
 * used_event) and the used ring (flags, idx, {id, len}[size],
 * avail_event). Every field is read from guest RAM with a bounds-checked
 * copy, so a hostile guest can at worst break its own queue.
 */
#include "virtqueue.h"
#include "devmem.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

#define AVAIL_FLAGS(q)		((q)->avail)
#define AVAIL_IDX(q)		((q)->avail + 2)
#define AVAIL_RING(q, i)	((q)->avail + 4 + 2 * (uint64_t)(i))
#define USED_EVENT(q)		AVAIL_RING(q, (q)->size)
#define USED_IDX(q)		((q)->used + 2)
#define USED_RING(q, i)		((q)->used + 4 + 8 * (uint64_t)(i))
#define AVAIL_EVENT(q)		USED_RING(q, (q)->size)

void vq_reset(struct vq *q, struct guestmem *gm)
{
	memset(q, 0, sizeof(*q));
	q->gm = gm;
}

static int broken(struct vq *q, const char *why)
{
	if (!q->error)
		q->error = why;
	return -EPROTO;
}

static const char *ring_problem(struct vq *q)
{
	uint64_t n = q->size;

	if (!n || n > VQ_MAX_SIZE || (n & (n - 1)))
		return "queue size not a power of two up to the maximum";
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return "misaligned ring address";
	if (!devmem_is_ram(q->gm, q->desc, 16 * n) ||
	    !devmem_is_ram(q->gm, q->avail, 6 + 2 * n) ||
	    !devmem_is_ram(q->gm, q->used, 6 + 8 * n))
		return "ring outside guest RAM";
	return NULL;
}

int vq_check_rings(struct vq *q)
{
	const char *why = ring_problem(q);

	if (!why)
		return 0;
	broken(q, why);
	return -EINVAL;
}

static int read16(struct vq *q, uint64_t gpa, uint16_t *v)
{
	return devmem_read(q->gm, gpa, v, 2) ? broken(q, "ring unreadable") : 0;
}

static int write16(struct vq *q, uint64_t gpa, uint16_t v)
{
	return devmem_write(q->gm, gpa, &v, 2) ? broken(q, "ring unwritable") : 0;
}

unsigned int vq_pending(struct vq *q)
{
	uint16_t idx;

	if (!q->ready || q->error || devmem_read(q->gm, AVAIL_IDX(q), &idx, 2))
		return 0;
	return (uint16_t)(idx - q->last_avail);
}

static int add_seg(struct vq *q, struct vq_elem *e, const struct vring_desc *d)
{
	unsigned int n = e->nr_out + e->nr_in;

	if (!devmem_is_ram(q->gm, d->addr, d->len))
		return broken(q, "buffer outside guest RAM");
	if (n == VQ_MAX_SEGS)
		return broken(q, "chain has too many buffers");
	if (!(d->flags & VRING_DESC_F_WRITE) && e->nr_in)
		return broken(q, "device-readable buffer after a writable one");
	e->segs[n] = (struct vq_seg){ d->addr, d->len };
	if (d->flags & VRING_DESC_F_WRITE) {
		e->nr_in++;
		e->in_bytes += d->len;
	} else {
		e->nr_out++;
		e->out_bytes += d->len;
	}
	return 0;
}

/* Switch the walk to an indirect table; 0 or -EPROTO. */
static int enter_indirect(struct vq *q, const struct vring_desc *d,
			  unsigned int count, uint64_t *table, uint32_t *max)
{
	if (count != 1)
		return broken(q, "indirect descriptor not at the head of its chain");
	if (d->flags & VRING_DESC_F_NEXT)
		return broken(q, "descriptor with both INDIRECT and NEXT");
	if (!d->len || d->len % sizeof(struct vring_desc) ||
	    d->len / sizeof(struct vring_desc) > VQ_MAX_SEGS)
		return broken(q, "indirect table length not a multiple of 16 up to the maximum");
	if (!devmem_is_ram(q->gm, d->addr, d->len) || (d->addr & 15))
		return broken(q, "indirect table outside guest RAM or misaligned");
	*table = d->addr;
	*max = d->len / sizeof(struct vring_desc);
	return 0;
}

static int walk(struct vq *q, struct vq_elem *e, uint16_t head)
{
	uint64_t table = q->desc;
	uint32_t max = q->size, idx = head, count = 0;
	bool indirect = false;
	struct vring_desc d;

	for (;;) {
		if (++count > max)
			return broken(q, "chain longer than its table (a loop?)");
		if (devmem_read(q->gm, table + 16ULL * idx, &d, sizeof(d)))
			return broken(q, "descriptor unreadable");
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (indirect)
				return broken(q, "nested indirect table");
			if (enter_indirect(q, &d, count, &table, &max))
				return -EPROTO;
			indirect = true;
			idx = 0;
			count = 0;
			continue;
		}
		if (add_seg(q, e, &d))
			return -EPROTO;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		idx = d.next;
		if (idx >= max)
			return broken(q, "next index beyond the table");
	}
}

int vq_pop(struct vq *q, struct vq_elem *e)
{
	uint16_t idx, head;

	if (q->error)
		return -EPROTO;
	if (!q->ready)
		return 0;
	if (read16(q, AVAIL_IDX(q), &idx))
		return -EPROTO;
	if ((uint16_t)(idx - q->last_avail) > q->size)
		return broken(q, "available index moved by more than the queue size");
	if (idx == q->last_avail) {
		if (q->event_idx && write16(q, AVAIL_EVENT(q), q->last_avail))
			return -EPROTO;
		return 0;
	}
	atomic_thread_fence(memory_order_acquire);
	if (read16(q, AVAIL_RING(q, q->last_avail % q->size), &head))
		return -EPROTO;
	if (head >= q->size)
		return broken(q, "available head beyond the queue size");
	e->head = head;
	e->nr_out = e->nr_in = 0;
	e->out_bytes = e->in_bytes = 0;
	if (walk(q, e, head))
		return -EPROTO;
	q->last_avail++;
	if (q->event_idx && write16(q, AVAIL_EVENT(q), q->last_avail))
		return -EPROTO;
	return 1;
}

int vq_push(struct vq *q, uint16_t head, uint32_t written)
{
	struct vring_used_elem u = { head, written };

	if (q->error)
		return -EPROTO;
	if (devmem_write(q->gm, USED_RING(q, q->used_idx % q->size), &u, sizeof(u)))
		return broken(q, "used ring unwritable");
	atomic_thread_fence(memory_order_release);
	q->used_idx++;
	return write16(q, USED_IDX(q), q->used_idx);
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vq_should_notify(struct vq *q)
{
	uint16_t old = q->signalled_used, v;
	bool valid = q->signalled_valid;

	atomic_thread_fence(memory_order_seq_cst);
	if (!q->event_idx)
		return !read16(q, AVAIL_FLAGS(q), &v) && !(v & VRING_AVAIL_F_NO_INTERRUPT);
	if (read16(q, USED_EVENT(q), &v))
		return false;
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	return !valid || need_event(v, q->used_idx, old);
}

long vq_elem_read(struct vq *q, const struct vq_elem *e, uint64_t off,
		  void *buf, uint64_t len)
{
	uint8_t *out = buf;
	uint64_t done = 0;

	for (unsigned int i = 0; i < e->nr_out && done < len; i++) {
		const struct vq_seg *s = &e->segs[i];
		uint64_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off < len - done ? s->len - off : len - done;
		if (devmem_read(q->gm, s->gpa + off, out + done, n))
			return -EFAULT;
		done += n;
		off = 0;
	}
	return (long)done;
}
