/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem_impl.h - inside guestmem: the one region table, the ops
 * table each memory mode implements (guestmem_anon.c: plain and lazy;
 * guestmem_gmm.c: gmm), and the userfaultfd fault server (guestmem_uffd.c).
 * Not for the rest of vmm/, which only knows guestmem.h.
 */
#ifndef GMM_VMM_GUESTMEM_IMPL_H
#define GMM_VMM_GUESTMEM_IMPL_H

#include "guestmem.h"

#include <pthread.h>
#include <stdatomic.h>

#define GUESTMEM_STRIPES	64	/* unit locks of the anonymous modes */

struct guestmem;

/* One memslot and its host range: the one region table, for every mode. */
struct region {
	struct guestmem_slot slot;
	void *base;			/* anonymous modes: reservation */
	size_t reserved;		/* bytes reserved at base */
	int host_node;
	_Atomic uint8_t *state;		/* anonymous modes: per unit, 1 = backed */
	_Atomic uint16_t *pins;		/* per unit: guestmem_pin() count */
	size_t pins_bytes;
};

/*
 * What a memory mode provides.  gpa ranges handed to an op lie in region r.
 * fault: back the unit(s) of [gpa, gpa + max(len, 1)) on a vCPU exit or a
 *        userfaultfd fault; with len, complete the MMIO access in data.
 * copy:  bounds-checked access for VMM threads, backing on demand.
 * discard: whole units of the range (never pinned ones: the caller skips them).
 */
struct guestmem_ops {
	int (*setup)(struct guestmem *gm, char *err, size_t errlen);
	void (*destroy)(struct guestmem *gm);
	int (*fault)(struct guestmem *gm, struct region *r, uint64_t gpa, unsigned int len,
		     bool is_write, void *data);
	int (*populate)(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len);
	int (*copy)(struct guestmem *gm, struct region *r, uint64_t gpa, void *buf, size_t len,
		    bool write);
	int (*discard)(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len);
	/* optional (gmm): back and pin against migration, and unpin */
	int (*pin)(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len);
	void (*unpin)(struct guestmem *gm, struct region *r, uint64_t gpa, uint64_t len);
	void (*stats)(struct guestmem *gm, struct guestmem_stats *st);
	/* a thread that faults or serves faults (gmm: the pool's page cache) */
	int (*attach)(struct guestmem *gm);
	void (*detach)(struct guestmem *gm);
	bool gmm_thread;	/* offline/online/quiescent through gmm_thread_* */
};

extern const struct guestmem_ops guestmem_plain_ops;
extern const struct guestmem_ops guestmem_lazy_ops;
extern const struct guestmem_ops guestmem_gmm_ops;

/*
 * Device RAM (guestmem_devram_add): a device's own memslot, RAM for device
 * access only where the device says it is plugged, per unit of its.
 */
struct devram {
	uint64_t gpa, size, unit;
	uint8_t *hva;
	uint64_t page;			/* host page of the mapping: discard's unit */
	bool *plugged;			/* per unit; under devram_lock */
};

struct guestmem {
	struct guestmem_cfg cfg;
	const struct guestmem_ops *ops;
	uint64_t unit;			/* backing unit of discard and pins */
	unsigned int nr;
	struct region reg[GUESTMEM_MAX_SLOTS];
	void *priv;			/* the mode's own state */
	/* anonymous modes */
	pthread_mutex_t lock[GUESTMEM_STRIPES];
	_Atomic uint64_t faults, backed, discards;
	/* pins against discard */
	pthread_mutex_t pin_lock;
	/* odd while a discard remaps: a vCPU's bare -EFAULT then is a retry */
	_Atomic uint64_t discard_seq;
	/* userfaultfd */
	int uffd;			/* -1 without */
	uint64_t uffd_features;		/* what UFFDIO_API granted */
	int stop_fd;			/* eventfd that ends the handlers */
	unsigned int nr_handlers;
	pthread_t handlers[GUESTMEM_UFFD_MAX_HANDLERS];
	_Atomic uint64_t uffd_faults;
	_Atomic int uffd_err;		/* first failure of a handler, 0 if none */
	/* device RAM: readers access it, writers change what is plugged */
	pthread_rwlock_t devram_lock;
	unsigned int nr_devram;
	struct devram devram[GUESTMEM_MAX_DEVRAM];
	pthread_mutex_t why_lock;	/* guards uffd_why (taken under any other lock) */
	char uffd_why[192];
};

/* The region holding gpa / host address hva, or NULL. */
struct region *guestmem_find(const struct guestmem *gm, uint64_t gpa);
struct region *guestmem_find_hva(const struct guestmem *gm, uintptr_t hva);

/*
 * Device RAM (guestmem_devram.c): for the accessors when a range is in no
 * region. is_ram, copy, discard: -EFAULT (false) unless every unit of the
 * range is plugged device RAM; destroy frees the table.
 */
bool guestmem_devram_is_ram(struct guestmem *gm, uint64_t gpa, uint64_t len);
int guestmem_devram_copy(struct guestmem *gm, uint64_t gpa, void *buf, size_t len, bool write);
int guestmem_devram_discard(struct guestmem *gm, uint64_t gpa, uint64_t len);
void guestmem_devram_destroy(struct guestmem *gm);

static inline void *guestmem_hva(const struct region *r, uint64_t gpa)
{
	return (char *)r->slot.hva + (gpa - r->slot.gpa);
}

/*
 * userfaultfd (guestmem_uffd.c).  open: the fd with UFFD_FEATURE_THREAD_ID,
 * into gm->uffd, or an explanation.  register_range: MISSING mode.
 * placeholder: make a range an unbacked placeholder again (PROT_NONE, then
 * registered, then read-write, so nothing populates it in between).
 * start: the handler threads (after the mode's setup).  release: stop them
 * and close the fd, which lets any thread blocked in a fault go on.
 */
int guestmem_uffd_open(struct guestmem *gm, char *err, size_t errlen);
/* A userfaultfd handler is a thread vCPUs wait for (guestmem_on_fault_thread). */
void guestmem_mark_fault_thread(void);
int guestmem_uffd_register(struct guestmem *gm, void *addr, uint64_t len);
int guestmem_uffd_placeholder(struct guestmem *gm, void *addr, uint64_t len);
int guestmem_uffd_start(struct guestmem *gm, char *err, size_t errlen);
void guestmem_uffd_release(struct guestmem *gm);

#endif
