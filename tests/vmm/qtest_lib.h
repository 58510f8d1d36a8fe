/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/qtest_lib.h - the test side of gmm-vmm's device-level test
 * driver (vmm/qtest.c): start gmm-vmm --qtest on a private unix socket,
 * send it commands, and play a guest's PCI and virtio-pci driver through
 * the port, MMIO and guest RAM commands.
 *
 * Every helper is fatal on a protocol failure (no reply: gmm-vmm died; an
 * unexpected ERR): it prints the command and the reply and exits 1, so a
 * crash of the device model can never pass as a result.
 */
#ifndef GMM_TESTS_QTEST_LIB_H
#define GMM_TESTS_QTEST_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qts {
	pid_t pid;
	int fd;
	void *in;			/* FILE * of the connection */
	char *line;
	size_t cap;
	char dir[64];
	char path[128];
};

/* Start vmm with --qtest and args (space-separated); fatal on failure. */
struct qts *qts_start(const char *vmm, const char *args);

/* Send quit; the process's exit status (its wait status decoded: exit
 * code, or 128 + signal). */
int qts_quit(struct qts *q);

/* Send one command; the reply line (valid until the next command). */
const char *qts_cmd(struct qts *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A command that must answer OK; fatal otherwise. */
void qts_ok(struct qts *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A command that must answer "OK VALUE"; the value. */
uint64_t qts_val(struct qts *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* key=value from the last reply line; fatal if absent. */
uint64_t qts_kv(struct qts *q, const char *key);

/* Port I/O, MMIO (or RAM) of len bytes, and guest RAM copies, as the
 * guest would do them. */
uint32_t qts_in(struct qts *q, unsigned int len, uint16_t port);
void qts_out(struct qts *q, unsigned int len, uint16_t port, uint32_t val);
uint64_t qts_readm(struct qts *q, unsigned int len, uint64_t addr);
void qts_writem(struct qts *q, unsigned int len, uint64_t addr, uint64_t val);
void qts_memread(struct qts *q, uint64_t gpa, void *buf, size_t len);
void qts_memwrite(struct qts *q, uint64_t gpa, const void *buf, size_t len);

/* PCI configuration space of bus 0 through ports 0xcf8/0xcfc. */
uint32_t qts_pci_read(struct qts *q, unsigned int devfn, unsigned int off,
		      unsigned int len);
void qts_pci_write(struct qts *q, unsigned int devfn, unsigned int off,
		   unsigned int len, uint32_t val);

/* --- a virtio-pci driver --- */

#define VD_MAX_QUEUES	8

struct vd_queue {
	uint16_t size;
	uint64_t desc, avail, used;
	uint16_t avail_idx;
	uint16_t last_used;
	uint16_t next_desc;
};

struct vd_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;			/* device-writable */
};

struct vdev {
	struct qts *q;
	unsigned int devfn;
	uint64_t bar;
	uint64_t common, isr, device, notify;
	uint32_t notify_mult;
	unsigned int gsi;
	uint64_t mem_next, mem_end;	/* guest RAM the driver allocates from */
	struct vd_queue vq[VD_MAX_QUEUES];
};

/* Find PCI device 1af4:pci_id, read its capabilities; guest RAM
 * [mem, mem_end) is the driver's (rings, buffers). Fatal if absent. */
void vd_probe(struct qts *q, struct vdev *d, uint16_t pci_id, uint64_t mem,
	      uint64_t mem_end);

/* A zeroed, aligned piece of the driver's guest RAM. */
uint64_t vd_alloc(struct vdev *d, uint64_t size, uint64_t align);

uint64_t vd_device_features(struct vdev *d);
uint8_t vd_status(struct vdev *d);
void vd_set_status(struct vdev *d, uint8_t status);
/* Reset, ACKNOWLEDGE, DRIVER, write features, FEATURES_OK; whether the
 * device kept FEATURES_OK. */
bool vd_negotiate(struct vdev *d, uint64_t features);
/* Set up queue qi with size entries (rings from vd_alloc()), enable it. */
void vd_queue(struct vdev *d, unsigned int qi, uint16_t size);
void vd_driver_ok(struct vdev *d);

/* Put a chain of bufs on queue qi (descriptors from a cursor), publish it
 * in the available ring, and notify; its head. */
uint16_t vd_add(struct vdev *d, unsigned int qi, const struct vd_buf *bufs,
		unsigned int n);
void vd_kick(struct vdev *d, unsigned int qi);
/* Write len bytes of data at gpa, put them on queue qi as one
 * device-readable buffer and kick; whether the device used it, writing
 * nothing back (the balloon's PFN arrays). */
bool vd_send(struct vdev *d, unsigned int qi, uint64_t gpa, const void *data, uint32_t len);
/* The next used entry: head, or -1 when none; *len its written length. */
int vd_used(struct vdev *d, unsigned int qi, uint32_t *len);

/* Raw ring writes for hostile tests. */
void vd_write_desc(struct vdev *d, unsigned int qi, uint64_t table,
		   unsigned int idx, uint64_t addr, uint32_t len,
		   uint16_t flags, uint16_t next);
void vd_publish(struct vdev *d, unsigned int qi, uint16_t head);

uint8_t vd_isr(struct vdev *d);
uint32_t vd_cfg_read(struct vdev *d, unsigned int off, unsigned int len);
void vd_cfg_write(struct vdev *d, unsigned int off, unsigned int len,
		  uint32_t val);

/* --- virtio-mem's driver (virtio/vmem.h) --- */
/* Probe the first virtio-mem device, negotiate VERSION_1 and
 * UNPLUGGED_INACCESSIBLE, set up its queue; fatal on failure. */
void vd_vmem_up(struct qts *q, struct vdev *d);
/* One request (VIRTIO_MEM_REQ_*) through buffers at req and resp (from
 * vd_alloc()); the response type, *state its state (may be NULL); -1 when
 * the device answered nothing. */
int vd_vmem_request(struct vdev *d, uint64_t req, uint64_t resp, uint16_t type,
		    uint64_t addr, uint16_t nb_blocks, uint16_t *state);
/* A 64-bit field of the device configuration. */
uint64_t vd_cfg64(struct vdev *d, unsigned int off);
#endif
