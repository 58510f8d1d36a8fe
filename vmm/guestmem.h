/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem.h - the one interface between gmm-vmm and guest RAM.
 *
 * Everything in vmm/ reaches guest memory through this header: the VM code
 * asks it for memslots, vCPU threads hand it faults on unbacked pages, and
 * device emulation and loaders use the bounds-checked accessors, pinned
 * pointers, discard and populate.  guestmem.c keeps the one region table
 * (layout: nodes, the 32-bit hole) and dispatches to one ops table per
 * memory mode: "gmm" (guestmem_gmm.c, the default: libgmm's pool over a
 * memfd and its guest address space, per-thread page caches, free page
 * reporting), "plain" (guestmem_anon.c: anonymous memory, fully accessible:
 * the benchmark baseline) and "lazy" (guestmem_anon.c: anonymous memory
 * backed a page at a time on fault: the same fault path without libgmm, the
 * control for gmm's own cost).
 *
 * How unbacked pages fault (gmm and lazy): GUESTMEM_FAULTS_EXIT leaves them
 * PROT_NONE and the vCPU hands the exit to guestmem_fault() (KVM_EXIT_MMIO
 * on kvm_pvm, KVM_EXIT_MEMORY_FAULT on guest_memfd-era kernels);
 * GUESTMEM_FAULTS_UFFD makes them userfaultfd placeholders served by
 * guestmem's own handler threads (upstream KVM, which returns a bare
 * -EFAULT from KVM_RUN on PROT_NONE memory).
 */
#ifndef GMM_VMM_GUESTMEM_H
#define GMM_VMM_GUESTMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_run;

#define GUESTMEM_MAX_NODES	8
#define GUESTMEM_MAX_SLOTS	(2 * GUESTMEM_MAX_NODES)
#define GUESTMEM_UFFD_MAX_HANDLERS	8	/* userfaultfd handler threads */
#define GUESTMEM_MAX_DEVRAM	4	/* device RAM regions (virtio-mem) */

/* RAM is laid out from GPA 0 upwards, skipping [HOLE_START, 4 GiB). */
#define GUESTMEM_HOLE_START	0xc0000000ULL
#define GUESTMEM_HOLE_END	0x100000000ULL

enum guestmem_mode {
	GUESTMEM_GMM,		/* libgmm (default) */
	GUESTMEM_PLAIN,
	GUESTMEM_LAZY,
};

enum guestmem_faults {
	GUESTMEM_FAULTS_EXIT,	/* PROT_NONE: the access exits to the vCPU thread */
	GUESTMEM_FAULTS_UFFD,	/* userfaultfd placeholders, handler threads */
};

/* gmm mode: default delay before free page reporting passes (0 = off). */
#define GUESTMEM_REPORT_DELAY_MS	500

struct guestmem_node_cfg {
	uint64_t size;		/* bytes of guest RAM on this guest node */
	int host_node;		/* host NUMA node to bind to, -1: no binding */
};

struct guestmem_cfg {
	enum guestmem_mode mode;
	uint64_t page_size;	/* host backing unit: 4 KiB, 2 MiB or 1 GiB */
	bool prealloc;		/* back everything before the guest starts */
	/* gmm mode: extra pool memory beyond guest RAM, on pool node 0, for
	 * device memory (virtio rings, future device buffers); 0 today */
	uint64_t device_bytes;
	/* gmm mode: extra pool memory on each pool node for virtio-mem
	 * devices (their maximum sizes), on top of device_bytes */
	uint64_t node_device_bytes[GUESTMEM_MAX_NODES];
	unsigned int report_delay_ms;	/* gmm mode: reporting delay, 0 = off */
	enum guestmem_faults faults;	/* gmm, lazy: how unbacked pages fault */
	unsigned int uffd_handlers;	/* handler threads (0: one), at most
					 * GUESTMEM_UFFD_MAX_HANDLERS */
	uint64_t max_mappings;	/* gmm: host mappings allowed, 0: what
				 * vm.max_map_count leaves */
	int write_stop;		/* gmm: enum gmm_write_stop of migrations */
	bool khugepaged;	/* gmm: start the pool's khugepaged (defaults) */
	unsigned int nr_nodes;
	struct guestmem_node_cfg nodes[GUESTMEM_MAX_NODES];
};

/* One KVM memslot: a GPA range on one guest node and where it is mapped. */
struct guestmem_slot {
	uint64_t gpa;
	uint64_t size;
	void *hva;
	unsigned int node;
};

struct guestmem_stats {
	uint64_t faults;	/* plain/lazy: units mapped on a fault; gmm: fault
				 * calls that backed memory (one may back 2 MiB) */
	uint64_t backed;	/* units backed now (lazy, plain: ever mapped) */
	uint64_t discards;	/* units given back on request */
	uint64_t page_size;	/* the unit: the host page; gmm: 4 KiB */
	uint64_t huge_faults;	/* gmm: faults backed with an aligned 2 MiB block */
	uint64_t huge_bytes;	/* gmm: guest RAM on aligned 2 MiB blocks */
	uint64_t mappings;	/* gmm: host mappings of guest RAM now */
	uint64_t mappings_per_gib; /* gmm: runs of backed frames per GiB backed */
	uint64_t mappings_max;	/* gmm: the most it may reach (vm.max_map_count) */
	uint64_t uffd_faults;	/* userfaultfd faults served */
};

struct guestmem;		/* one guest's RAM */
struct gmm_pool;
struct gmm_guest;
struct guestmem_vcpu;		/* one vCPU thread's context */

/* Set up RAM as cfg says; on failure, one line of explanation in err. */
struct guestmem *guestmem_create(const struct guestmem_cfg *cfg,
				 char *err, size_t errlen);
void guestmem_destroy(struct guestmem *gm);

unsigned int guestmem_nr_slots(const struct guestmem *gm);
const struct guestmem_slot *guestmem_slot(const struct guestmem *gm,
					  unsigned int i);
const char *guestmem_mode_name(enum guestmem_mode mode);
const char *guestmem_faults_name(enum guestmem_faults faults);

/*
 * gmm mode: the VMM's vCPU pause for the pause write stop of migrations
 * (gmm_guest_set_pause(); ops NULL: none).  -EOPNOTSUPP in other modes.
 */
struct gmm_pause_ops;
int guestmem_set_pause(struct guestmem *gm, const struct gmm_pause_ops *ops, void *ctx);

/*
 * Is the calling thread one a vCPU may wait for inside KVM_RUN (a vCPU
 * thread, attached with guestmem_vcpu_attach(), or a userfaultfd handler)?
 * Such a thread must not wait for the vCPUs to pause.
 */
bool guestmem_on_fault_thread(void);

/*
 * gmm mode: start the pool's khugepaged with @cfg (NULL: the defaults) or
 * change the running one's controls (@enable), or stop it; 0 or -errno
 * (-EOPNOTSUPP in other modes).  Main thread before the vCPUs start, the
 * monitor under vm->migrate_lock while not stopping, and the release.
 */
struct gmm_khugepaged_config;
int guestmem_khugepaged(struct guestmem *gm, bool enable, const struct gmm_khugepaged_config *cfg);
/* gmm mode: is khugepaged running (same callers)? */
bool guestmem_khugepaged_running(const struct guestmem *gm);

/* gmm mode: libgmm's pool and guest (statistics, tests); NULL otherwise. */
struct gmm_pool *guestmem_gmm_pool(const struct guestmem *gm);
struct gmm_guest *guestmem_gmm_guest(const struct guestmem *gm);

/*
 * gmm mode: where pool frame pfn lives in the pool's memfd, so that a
 * device (virtio-mem) can map frames it allocated from the pool a second
 * time: *fd (owned by the pool) and the byte offset *off. Any thread.
 * Only for frames the caller holds. 0 or -EOPNOTSUPP in the other modes.
 */
int guestmem_frame_fd(const struct guestmem *gm, uint64_t pfn, int *fd, uint64_t *off);

/*
 * vCPU thread hooks. gmm mode: attach gives the thread a page cache of the
 * pool (gmm_thread_attach), offline/online bracket KVM_RUN, quiescent runs
 * after every exit; attach returns NULL when that fails. No-ops otherwise.
 */
struct guestmem_vcpu *guestmem_vcpu_attach(struct guestmem *gm,
					   unsigned int cpu);
void guestmem_vcpu_detach(struct guestmem_vcpu *v);
void guestmem_vcpu_offline(struct guestmem_vcpu *v);	/* before KVM_RUN */
void guestmem_vcpu_online(struct guestmem_vcpu *v);	/* after KVM_RUN */
void guestmem_vcpu_quiescent(struct guestmem_vcpu *v);	/* at every exit */

/*
 * Fault entry point, for KVM_EXIT_MMIO and KVM_EXIT_MEMORY_FAULT. Backs the
 * page and, for MMIO, completes the access in run. Returns 1 when handled,
 * 0 when the address is not RAM (a device's), negative errno on failure.
 */
int guestmem_fault(struct guestmem_vcpu *v, struct kvm_run *run);

/*
 * KVM_RUN failed with EFAULT on vCPU v. Returns 1 when re-entering is right
 * (with userfaultfd, a discard was remapping the page the vCPU touched), 0
 * when it is fatal, with the reason in why.
 */
int guestmem_efault(struct guestmem_vcpu *v, char *why, size_t whylen);

/*
 * Stop serving userfaultfd faults: the handlers end and any thread blocked
 * in a fault (and any later one) goes on over ordinary anonymous memory.
 * For stopping the VM before joining its vCPUs; no-op without userfaultfd.
 */
void guestmem_release(struct guestmem *gm);

/* Accessors: whole range must be RAM (-EFAULT otherwise); writes back it. */
int guestmem_read(struct guestmem *gm, uint64_t gpa, void *buf, size_t len);
int guestmem_write(struct guestmem *gm, uint64_t gpa, const void *buf,
		   size_t len);
bool guestmem_is_ram(const struct guestmem *gm, uint64_t gpa, uint64_t len);

/*
 * Device RAM: a device's own memslot outside the region table (virtio-mem)
 * whose units the device plugs and unplugs while the guest runs. The
 * accessors, guestmem_is_ram() and guestmem_discard() treat its plugged
 * units as RAM and the others as no RAM; pins and populate do not reach it.
 *
 * devram_add: before any device uses guestmem (while the VM is set up); the
 * range [gpa, gpa + size) mapped at hva, in units of unit bytes (a power
 * of two dividing size, mapped with the host pages of guest RAM); all
 * unplugged. 0, or
 * -ENOSPC (GUESTMEM_MAX_DEVRAM reached) / -EINVAL (overlaps RAM, bad unit).
 * devram_set: the device's plug or unplug of the units of [gpa, gpa + len),
 * any thread: map a unit before setting it plugged; after setting it
 * unplugged no access to it is in flight, so the device may unmap it.
 */
int guestmem_devram_add(struct guestmem *gm, uint64_t gpa, uint64_t size, void *hva,
			uint64_t unit);
void guestmem_devram_set(struct guestmem *gm, uint64_t gpa, uint64_t len, bool plugged);

/* The end of the highest guest physical address that is or may become
 * RAM (regions and device RAM). Any thread. */
uint64_t guestmem_end(const struct guestmem *gm);

/*
 * Give back the host memory of the whole backing units in the range; the
 * next touch faults and reads zero. Pinned units are kept: -EBUSY then
 * (the others are discarded). -EFAULT unless the range is RAM.
 */
int guestmem_discard(struct guestmem *gm, uint64_t gpa, uint64_t len);

/* Back the range now (prealloc of a part, virtio-mem plug). */
int guestmem_populate(struct guestmem *gm, uint64_t gpa, uint64_t len);

/*
 * A host pointer to [gpa, gpa + len), backed now and pinned: its units are
 * never discarded (nor, once frames move, moved) until guestmem_unpin()
 * with the same range. For device rings and buffers. The range must lie in
 * one memslot. NULL with errno (EFAULT: not RAM; EBUSY: pinned 65535 times;
 * ENOMEM) on failure. Any thread; pins nest.
 */
void *guestmem_pin(struct guestmem *gm, uint64_t gpa, size_t len);
void guestmem_unpin(struct guestmem *gm, uint64_t gpa, size_t len);

void guestmem_get_stats(struct guestmem *gm, struct guestmem_stats *st);

/*
 * The reason for err, a negative errno a guestmem call just returned on
 * this thread: libgmm's own message in gmm mode (e.g. the mapping limit),
 * else strerror().
 */
const char *guestmem_strerror(const struct guestmem *gm, int err);

#endif
