/* SPDX-License-Identifier: MIT */
/*
 * virtio/virtqueue.h - split virtqueues (VIRTIO 1.2 section 2.7) from the
 * device's side: taking available descriptor chains, validated, and
 * returning them through the used ring, with event index suppression.
 *
 * Every descriptor the guest hands over is checked before a device sees
 * it: the head and every `next` index below the queue size, each buffer
 * inside guest RAM, chains no longer than the queue (which also ends any
 * loop), indirect tables in guest RAM with a length a multiple of 16 and
 * neither nested nor combined with NEXT, and device-readable buffers
 * before device-writable ones. A violation makes vq_pop() return -EPROTO
 * with a reason; the transport then sets DEVICE_NEEDS_RESET. Guest RAM is
 * only read and written through virtio/devmem.h.
 *
 * Calling contract: one thread at a time per queue (the device's lock).
 */
#ifndef GMM_VIRTIO_VIRTQUEUE_H
#define GMM_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>

struct guestmem;

/* Largest queue a device offers (queue_size is a power of two up to it). */
#define VQ_MAX_SIZE		256
/* Buffers in one chain, indirect tables included. */
#define VQ_MAX_SEGS		VQ_MAX_SIZE

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vq_seg {
	uint64_t gpa;
	uint32_t len;
};

/* One chain: segs[0, nr_out) device-readable, then nr_in device-writable. */
struct vq_elem {
	uint16_t head;
	unsigned int nr_out;
	unsigned int nr_in;
	uint64_t out_bytes;
	uint64_t in_bytes;
	struct vq_seg segs[VQ_MAX_SEGS];
};

struct vq {
	uint16_t size;			/* 0: not set up */
	bool ready;
	bool event_idx;			/* VIRTIO_F_EVENT_IDX negotiated */
	uint64_t desc, avail, used;	/* ring addresses */
	uint16_t last_avail;		/* next available entry to take */
	uint16_t used_idx;		/* next used entry to fill */
	uint16_t signalled_used;	/* used_idx at the last interrupt */
	bool signalled_valid;
	struct guestmem *gm;
	const char *error;		/* why the ring is broken, NULL: fine */
};

/* Reset to the "not set up" state. */
void vq_reset(struct vq *q, struct guestmem *gm);

/* Check the ring addresses (alignment, inside RAM) before enabling the
 * queue; 0 or -EINVAL with q->error set. */
int vq_check_rings(struct vq *q);

/*
 * Take the next available chain into e. 1: taken; 0: the ring is empty;
 * -EPROTO: the guest broke the ring (q->error says how; the queue stays
 * broken until reset).
 */
int vq_pop(struct vq *q, struct vq_elem *e);

/* Return chain head with written bytes to the used ring; 0 or -EPROTO. */
int vq_push(struct vq *q, uint16_t head, uint32_t written);

/* Whether the driver wants an interrupt for what was pushed (event index
 * or VRING_AVAIL_F_NO_INTERRUPT); records the interrupt as sent. */
bool vq_should_notify(struct vq *q);

/* Available chains not yet taken (0 when the ring is unreadable). */
unsigned int vq_pending(struct vq *q);

/* Copy up to len bytes of e's device-readable part from offset off;
 * bytes copied, or -EFAULT. */
long vq_elem_read(struct vq *q, const struct vq_elem *e, uint64_t off,
		  void *buf, uint64_t len);

#endif
