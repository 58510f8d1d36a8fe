/* SPDX-License-Identifier: MIT */
/*
 * gmm/guest.h - a guest's physical address space over a pool.
 *
 * A guest has RAM regions: guest-physical ranges on pool nodes.  Each region
 * reserves a host-virtual range and is described as a memslot (gpa, size,
 * hva) that the embedder registers with KVM (gmm never calls KVM).  Pages
 * start unbacked (PROT_NONE: a guest access exits to the VMM; or, with a
 * userfaultfd in the config, anonymous placeholders registered for MISSING
 * faults, which the embedder serves with gmm_guest_fault()).  A per-page
 * backing map says which pool frame backs each guest page; backing maps the
 * frame's file range (gmm_backing_ops.frame_fd) into the region with
 * mmap(MAP_FIXED|MAP_SHARED).  Adjacent frames of one file merge into one
 * kernel mapping; a 2 MiB-aligned guest range backed by one aligned order-9
 * block is one mapping the host can map with a PMD.  The guest counts its
 * host mappings and refuses (-ENOSPC, with the reason) to back a page that
 * would take the process beyond vm.max_map_count, so mmap never fails on it.  Allocated frames carry
 * the reverse map (guest id, gfn) in their metadata (gmm_frame_owner()).
 *
 * Entry points:
 *  - gmm_guest_fault(): for a vCPU thread that took an exit on an unbacked
 *    page (KVM_EXIT_MMIO at a RAM address: completes the access; or
 *    KVM_EXIT_MEMORY_FAULT: just backs the page);
 *  - gmm_guest_read/write/ptr(): the only way for VMM threads to touch guest
 *    memory: bounds-checked, backing on demand;
 *  - gmm_guest_discard(): balloon inflate, free page reporting by the guest;
 *  - gmm_guest_populate(): preallocation, virtio-mem plug.
 *
 * Thread safety: each region has a reader/writer lock and a lock per 2 MiB
 * chunk (striped).  Faults, populate and read/write take the region lock
 * shared and back pages one chunk at a time under that chunk's lock, so
 * vCPUs faulting in different chunks proceed in parallel and a page backed
 * meanwhile by another thread is simply used; read/write copy under the
 * shared lock.  Discard and destroy take the region lock exclusively, so a
 * discard never unmaps memory under a copy or a fault.  A thread attached
 * to the pool's caches waits for these locks offline (their holders may be
 * draining the caches).  Map entries are atomic, so lookups
 * (gmm_guest_gpa_to_pfn, statistics) take no lock.  Running vCPUs hold no
 * lock: the host kernel's page tables switch atomically with each mmap.
 * With a userfaultfd, a discarded range is PROT_NONE between its unmapping
 * and its registration: a vCPU touching it then sees -EFAULT from KVM_RUN
 * and should re-enter once the discard is over.
 *
 * Migration (compaction, gmm/migrate.h): a guest is a frame owner.  Moving a
 * page takes its region lock exclusively (try only), marks the page
 * migrating in the backing map, stops its writers (enum gmm_write_stop),
 * copies it, and maps the new frame over it with MAP_FIXED; see
 * gmm_guest_migration_wait() and the pin contract (gmm_guest_pin(); pages
 * reached by gmm_guest_ptr() are never moved).  Collapse
 * (gmm_guest_collapse(), khugepaged) moves whole 2 MiB chunks the same way,
 * with the same write stop; see the end of this file.
 *
 * What accesses see:
 *  - Without a userfaultfd, only a vCPU's access to an unbacked page exits
 *    to the VMM: any host thread that touches a region's host range
 *    directly (through a memslot's hva) where the page is unbacked gets
 *    SIGSEGV (the range is PROT_NONE).  With one (gmm_guest_config.uffd),
 *    such a touch waits until the uffd's handler backs the page.  VMM
 *    threads use gmm_guest_read/write/ptr(), which back the page first.
 *  - A pointer from gmm_guest_ptr() raced by a discard of the same page:
 *    the page goes back to PROT_NONE, so a later access through the
 *    pointer faults (SIGSEGV on a host thread); the caller must keep
 *    discards away from ranges it holds pointers into.  gmm_guest_read()
 *    and gmm_guest_write() racing a discard are serialised with it by the
 *    region lock: they see the old contents (before) or a freshly backed
 *    page that reads as zero (after), never a mix within one page.
 *  - gmm_frame_owner() answers for every frame of a block, each frame with
 *    its own gfn (an order-9 block backing 2 MiB answers 512 gfns).
 */
#ifndef GMM_GUEST_H
#define GMM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gmm/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** RAM regions per guest. */
#define GMM_GUEST_MAX_REGIONS 32

struct gmm_guest;

/** Options of a guest.  Fill with gmm_guest_config_init(). */
struct gmm_guest_config {
	/* back a fault with an aligned order-9 block when the whole aligned
	 * 2 MiB guest range is unbacked (default true) */
	bool huge_fault;
	/* a userfaultfd (UFFDIO_API done by the caller, no UFFD_USER_MODE_ONLY:
	 * KVM's own accesses must fault), or -1 (default).  With it, unbacked
	 * pages are anonymous placeholders registered in MISSING mode, again
	 * after every discard: for hosts whose KVM returns a bare -EFAULT on
	 * PROT_NONE memory.  The caller reads the faults, calls
	 * gmm_guest_fault() (@len 0) for the page and issues UFFDIO_WAKE; the
	 * fd must stay open while the guest lives. */
	int uffd;
	/* host mappings the guest's regions may have, 0 (default): what
	 * vm.max_map_count leaves to them when the guest is created (re-read
	 * when reached) */
	uint64_t max_mappings;
	/* how a migration stops writers of the pages it moves (enum
	 * gmm_write_stop; default GMM_WSTOP_DEFAULT) */
	int write_stop;
	/* the features UFFDIO_API granted on @uffd (struct uffdio_api.features
	 * after the call); GMM_WSTOP_UFFD_WP needs
	 * UFFD_FEATURE_WP_HUGETLBFS_SHMEM among them */
	uint64_t uffd_features;
};

/**
 * enum gmm_write_stop - how a migration keeps writes off the old frames.
 *
 * A batch of units (4 KiB pages, 2 MiB blocks) is moved in four steps:
 * stop the writers, copy every unit, map every new frame over its unit
 * with MAP_FIXED (and free the old frames), release the writers.  The
 * three ways to stop them:
 * @GMM_WSTOP_DEFAULT:  GMM_WSTOP_UFFD_WP when the config's userfaultfd can
 *                      write-protect the backing (shmem, hugetlbfs), else
 *                      GMM_WSTOP_PAUSE when the embedder registered a
 *                      pause, else GMM_WSTOP_MPROTECT (docs/compaction.md:
 *                      measured; mprotect crashed guests on kvm_pvm);
 * @GMM_WSTOP_MPROTECT: mprotect(PROT_READ) of each unit: every thread's
 *                      write faults (a host thread takes SIGSEGV, see
 *                      gmm_guest_migration_wait(); a vCPU exits, or on
 *                      KVM without an exit KVM_RUN fails with EFAULT); one
 *                      VMA split and merge per unit;
 * @GMM_WSTOP_UFFD_WP:  UFFDIO_WRITEPROTECT of each unit through the
 *                      config's userfaultfd (backed ranges are registered
 *                      in UFFDIO_REGISTER_MODE_WP as they are mapped): a
 *                      writer, vCPU or host thread, sleeps in the kernel
 *                      until the remap and UFFDIO_WAKE; no VMA changes;
 * @GMM_WSTOP_PAUSE:    the embedder's pause of its vCPUs once per batch
 *                      (gmm_guest_set_pause()); the embedder guarantees
 *                      that no other thread writes guest RAM through the
 *                      region mappings (its devices use the accessors or
 *                      pins).  Where pause() refuses, the batch is not
 *                      moved (-EAGAIN, as for a busy owner); without pause
 *                      ops, batches use GMM_WSTOP_MPROTECT.
 * A mode the guest cannot use falls back to GMM_WSTOP_MPROTECT, with the
 * reason in gmm_guest_wstop_stats().
 */
enum gmm_write_stop {
	GMM_WSTOP_DEFAULT = 0,
	GMM_WSTOP_MPROTECT = 1,
	GMM_WSTOP_UFFD_WP = 2,
	GMM_WSTOP_PAUSE = 3,
};

/** The embedder's vCPU pause, for GMM_WSTOP_PAUSE. */
struct gmm_pause_ops {
	/* Stop every vCPU of the guest (out of KVM_RUN, not re-entering) and
	 * return 0; or return a negative errno when that cannot be done now
	 * (called on a vCPU thread or a thread a vCPU waits for, or a timeout):
	 * the batch is then not moved.  Called with no libgmm lock held. */
	int (*pause)(void *ctx);
	/* Let them run again (after a 0 from pause). */
	void (*resume)(void *ctx);
};

/** Write stop figures (gmm_guest_wstop_stats()). */
struct gmm_wstop_stats {
	int requested;        /* enum gmm_write_stop asked for (config) */
	int mode;             /* what is used: never GMM_WSTOP_DEFAULT */
	char why[160];        /* why mode differs from the request, or "" */
	uint64_t batches;     /* write stops (migration batches, collapses) */
	uint64_t units;       /* units moved */
	uint64_t pages;       /* 4 KiB pages moved */
	uint64_t fallbacks;   /* batches done with mprotect: no pause ops */
	uint64_t refused;     /* batches not moved: pause() refused */
	uint64_t stop_ns;     /* writers stopped, summed over batches */
	uint64_t stop_ns_max; /* the longest stop */
};

/** What gmm_guest_migrate() did (units are pages or 2 MiB blocks). */
struct gmm_guest_migrate_result {
	uint64_t units;   /* moved */
	uint64_t pages;   /* 4 KiB pages moved */
	uint64_t pinned;  /* units left alone: pinned */
	uint64_t busy;    /* units left alone: the region was busy or changed */
	uint64_t nomem;   /* units left alone: no target frame */
	uint64_t batches; /* write stops */
};

/** Units per write stop of gmm_guest_migrate() with @batch 0. */
#define GMM_GUEST_MIGRATE_BATCH 32
/** 4 KiB pages copied per write stop at most (one 2 MiB unit): bounds the stop. */
#define GMM_GUEST_MIGRATE_BATCH_PAGES 512

/** A RAM region as KVM wants it (struct kvm_userspace_memory_region). */
struct gmm_memslot {
	uint32_t slot;   /* index of the region in the guest */
	uint64_t gpa;    /* guest_phys_addr */
	uint64_t size;   /* memory_size */
	void *hva;       /* userspace_addr */
	int node;        /* pool node */
};

/** Guest memory figures. */
struct gmm_guest_stats {
	uint64_t ram_bytes;      /* all regions */
	uint64_t backed_pages;   /* guest pages backed by a frame */
	uint64_t huge_bytes;     /* guest RAM on aligned 2 MiB blocks */
	uint64_t mappings;       /* host mappings (runs of file-contiguous pages) */
	uint64_t mappings_per_gib; /* per GiB of backed RAM */
	uint64_t faults;         /* gmm_guest_fault calls that backed memory */
	uint64_t huge_faults;    /* ... of which with a 2 MiB block */
	uint64_t discarded_pages;
	uint64_t host_mappings;  /* kernel mappings of all regions, placeholders too */
	uint64_t host_mappings_max; /* what they may reach below vm.max_map_count */
	/* collapse (gmm_guest_collapse() and khugepaged together) */
	uint64_t thp_collapse_alloc;
	uint64_t thp_collapse_alloc_failed;
	uint64_t pages_collapsed;  /* 2 MiB chunks collapsed */
};

/** gmm_guest_config_init() - the defaults (2 MiB faults on, no userfaultfd). */
void gmm_guest_config_init(struct gmm_guest_config *cfg);

/**
 * gmm_guest_create() - a guest with no RAM yet.
 * @pool: the pool backing it; its backing must provide frame_fd (memfd)
 * @cfg:  options, or NULL for the defaults
 * @out:  receives the guest
 *
 * Return: 0, -EINVAL, -EOPNOTSUPP (backing cannot be mapped twice),
 * -ENOSPC (too many guests on the pool), -ENOMEM.
 */
int gmm_guest_create(struct gmm_pool *pool, const struct gmm_guest_config *cfg,
		     struct gmm_guest **out);

/**
 * gmm_guest_destroy() - unmap every region and free every frame.
 * @guest: the guest, or NULL
 */
void gmm_guest_destroy(struct gmm_guest *guest);

/**
 * gmm_guest_id() - the guest's id in the reverse map (1..255).
 * @guest: the guest
 *
 * Return: the id, or 0 (-EINVAL) for a NULL guest.
 */
unsigned int gmm_guest_id(const struct gmm_guest *guest);

/**
 * gmm_guest_add_ram() - add a RAM region, unbacked.
 * @guest: the guest
 * @gpa:   guest-physical start, 2 MiB aligned (host page aligned)
 * @size:  bytes, a multiple of 2 MiB (of the host page)
 * @node:  pool node its frames come from (preferred)
 * @slot:  receives the memslot to register with KVM (may be NULL)
 *
 * Return: 0, -EINVAL (alignment, overlap, bad node), -ENOSPC (too many
 * regions), -ENOMEM (no host address space), or the errno of registering
 * the region with the config's userfaultfd.
 */
int gmm_guest_add_ram(struct gmm_guest *guest, uint64_t gpa, uint64_t size, int node,
		      struct gmm_memslot *slot);

/**
 * gmm_guest_memslots() - the memslots of all regions.
 * @guest: the guest
 * @out:   array of @max entries
 * @max:   its size
 *
 * Return: the number of regions (entries beyond @max are not written).
 */
unsigned int gmm_guest_memslots(const struct gmm_guest *guest, struct gmm_memslot *out,
				unsigned int max);

/**
 * gmm_guest_fault() - back the page of a guest access that exited.
 * @guest:    the guest
 * @gpa:      the guest-physical address of the access
 * @len:      its length (KVM_EXIT_MMIO: run->mmio.len), or 0
 * @is_write: the access writes
 * @data:     KVM_EXIT_MMIO: run->mmio.data; a write is stored into the
 *            newly backed memory, a read is filled from it (return it to
 *            KVM by re-entering).  NULL (with @len 0) for
 *            KVM_EXIT_MEMORY_FAULT: the page is only backed.
 *
 * Call on the vCPU thread.  The frame comes from gmm_alloc(GMM_MOVABLE)
 * (from the thread's cache once per-thread caches exist), an aligned
 * 2 MiB block when the guest's huge_fault option allows.  An access that
 * crosses into the next page backs both.
 *
 * Also the handler of a userfaultfd MISSING fault (see the config's uffd):
 * any thread attached to the pool, @len 0; then wake the faulting thread.
 *
 * Return: 0, -EFAULT when @gpa is not guest RAM (a real MMIO access for the
 * VMM's devices), -EINVAL (len > 8 or data missing), -ENOMEM, -ENOSPC (the
 * page would need a mapping beyond vm.max_map_count; gmm_last_error() says).
 */
int gmm_guest_fault(struct gmm_guest *guest, uint64_t gpa, unsigned int len, bool is_write,
		    void *data);

/**
 * gmm_guest_read() - copy guest memory out, backing it on demand.
 * @guest: the guest
 * @gpa:   start
 * @buf:   destination
 * @len:   bytes; the range must lie in one region
 *
 * Return: 0, -EFAULT (not guest RAM, or crosses a region's end), -ENOMEM.
 */
int gmm_guest_read(struct gmm_guest *guest, uint64_t gpa, void *buf, size_t len);

/**
 * gmm_guest_write() - copy into guest memory, backing it on demand.
 * @guest: the guest
 * @gpa:   start
 * @buf:   source
 * @len:   bytes; the range must lie in one region
 *
 * Return: 0, -EFAULT, -ENOMEM.
 */
int gmm_guest_write(struct gmm_guest *guest, uint64_t gpa, const void *buf, size_t len);

/**
 * gmm_guest_ptr() - a host pointer to a guest range, backed now.
 * @guest: the guest
 * @gpa:   start
 * @len:   bytes; the range must lie in one region
 *
 * The pointer stays valid until the range is discarded; the caller keeps
 * discard of the range away while using it (device rings).
 *
 * Return: the pointer, or NULL with gmm_errno() -EFAULT (not in one
 * region), -ENOMEM or -EINVAL.
 */
void *gmm_guest_ptr(struct gmm_guest *guest, uint64_t gpa, size_t len);

/**
 * gmm_guest_discard() - drop the backing of a guest range.
 * @guest: the guest
 * @gpa:   start, page aligned
 * @size:  bytes, page aligned; the range must lie in one region
 *
 * The range goes back to PROT_NONE (the next access faults and reads
 * zero) and its frames return to the pool; a 2 MiB block partly discarded
 * is split.  On hugetlbfs, only whole host pages inside the range go.
 *
 * Return: 0, -EINVAL (alignment), -EFAULT (not guest RAM), -ENOSPC (a hole
 * would split a mapping beyond the mapping budget: the pages from there on
 * stay backed; gmm_last_error() says).
 */
int gmm_guest_discard(struct gmm_guest *guest, uint64_t gpa, uint64_t size);

/**
 * gmm_guest_populate() - back a guest range now.
 * @guest: the guest
 * @gpa:   start (rounded down to the page)
 * @size:  bytes; the range must lie in one region
 *
 * Aligned 2 MiB parts get order-9 blocks when free, the rest 4 KiB frames;
 * new memory reads as zero.
 *
 * Return: 0, -EFAULT, -ENOMEM (what was backed stays backed).
 */
int gmm_guest_populate(struct gmm_guest *guest, uint64_t gpa, uint64_t size);

/**
 * gmm_guest_gpa_to_pfn() - the pool frame backing a guest page.
 * @guest: the guest
 * @gpa:   an address in the page
 *
 * Return: the pfn, or GMM_PFN_NONE with gmm_errno() -ENOENT when the page
 * is unbacked, -EFAULT when @gpa is not guest RAM.
 */
uint64_t gmm_guest_gpa_to_pfn(struct gmm_guest *guest, uint64_t gpa);

/**
 * gmm_guest_stats() - guest memory figures.
 * @guest: the guest
 * @st:    receives them
 *
 * Walks the backing maps (lock-free): not for hot paths.
 *
 * Return: 0 or -EINVAL.
 */
int gmm_guest_stats(struct gmm_guest *guest, struct gmm_guest_stats *st);

/**
 * gmm_frame_owner() - the reverse map of an allocated frame.
 * @pool:     the pool
 * @pfn:      a frame
 * @guest_id: receives the owning guest's id
 * @gfn:      receives the guest frame number it backs
 *
 * Return: 0, -ENOENT when the frame backs no guest page, -EINVAL.
 */
int gmm_frame_owner(struct gmm_pool *pool, uint64_t pfn, unsigned int *guest_id,
		    uint64_t *gfn);

/**
 * gmm_guest_pin() - keep a guest range on its frames (no migration).
 * @guest: the guest
 * @gpa:   start
 * @len:   bytes; the range must lie in one region
 *
 * For a device or thread that writes the range through a host pointer
 * (gmm_guest_ptr() pins for good instead): compaction will not move these
 * pages, so no write through the pointer is lost.  Backs the range first.
 * Pins count (up to 65535 per page); a discard drops them.
 *
 * Return: 0, -EFAULT, -ENOMEM, -EOVERFLOW.
 */
int gmm_guest_pin(struct gmm_guest *guest, uint64_t gpa, uint64_t len);

/**
 * gmm_guest_unpin() - drop one pin of each page of a range.
 * @guest: the guest
 * @gpa:   start
 * @len:   bytes
 *
 * Return: 0, -EFAULT, -EINVAL (a page was not pinned: nothing changed).
 */
int gmm_guest_unpin(struct gmm_guest *guest, uint64_t gpa, uint64_t len);

/**
 * gmm_guest_migration_wait() - wait while the page at a host address moves.
 * @guest: the guest
 * @addr:  an address in a region's host range (a fault address)
 *
 * A page being migrated is write-protected for a few microseconds.  With
 * the mprotect write stop (enum gmm_write_stop), a host thread writing
 * guest RAM through the region mapping takes SIGSEGV: its handler calls
 * this and, when it returns 0 or 1, returns to retry the write.  With
 * uffd-wp the writer sleeps in the kernel until the page is back instead;
 * with the pause, only paused vCPUs may write there.  Async-signal-safe (atomics and futex only).  vCPU exits need not
 * call it: gmm_guest_fault() waits for a migration in progress.
 *
 * Return: 1 (waited for a migration), 0 (the page is not migrating),
 * -EFAULT (@addr is not in guest RAM), -EINVAL.
 */
int gmm_guest_migration_wait(struct gmm_guest *guest, const void *addr);

/**
 * gmm_guest_set_pause() - the embedder's vCPU pause for GMM_WSTOP_PAUSE.
 * @guest: the guest
 * @ops:   pause and resume (NULL: none; GMM_WSTOP_PAUSE then falls back to
 *         mprotect); must outlive the guest
 * @ctx:   passed to them
 *
 * Call before vCPUs run, or at any time when no migration runs.
 *
 * Return: 0 or -EINVAL.
 */
int gmm_guest_set_pause(struct gmm_guest *guest, const struct gmm_pause_ops *ops, void *ctx);

/**
 * gmm_guest_migrate() - move every unpinned backed unit of a range elsewhere.
 * @guest: the guest
 * @gpa:   start
 * @size:  bytes (ranges outside RAM are ignored)
 * @batch: units per write stop, 0 for GMM_GUEST_MIGRATE_BATCH
 * @res:   receives what was done (may be NULL)
 *
 * Each unit (a 4 KiB page, an unsplit 2 MiB block, a hugetlbfs page) gets
 * a new block of its order from gmm_alloc(GMM_MOVABLE) on its node
 * (allocated before the region lock is taken; a 2 MiB block may compact),
 * and moves as in compaction, @batch units per write stop but at most
 * GMM_GUEST_MIGRATE_BATCH_PAGES pages (a 2 MiB unit is a batch of its own).  For tests,
 * benchmarks and an embedder's "migrate now" command; compaction moves
 * pages through the owner callback instead.  Counted in
 * gmm_guest_migrated() and the pool's pgmigrate_success.  Call from a
 * thread that holds no region lock of this guest and is not one the pause
 * ops wait for.
 *
 * Return: 0, -EINVAL.
 */
int gmm_guest_migrate(struct gmm_guest *guest, uint64_t gpa, uint64_t size, unsigned int batch,
		      struct gmm_guest_migrate_result *res);

/**
 * gmm_guest_wstop_stats() - the write stop in use and its figures.
 * @guest: the guest
 * @st:    receives them
 *
 * Return: 0 or -EINVAL.
 */
int gmm_guest_wstop_stats(struct gmm_guest *guest, struct gmm_wstop_stats *st);

/**
 * gmm_write_stop_name() - "default", "mprotect", "uffd-wp", "pause".
 * @mode: enum gmm_write_stop
 *
 * Return: the name, or "?" for an unknown mode.
 */
const char *gmm_write_stop_name(int mode);

/**
 * gmm_write_stop_parse() - the mode of a name from gmm_write_stop_name().
 * @name: the name
 *
 * Return: the mode, or -EINVAL.
 */
int gmm_write_stop_parse(const char *name);

/**
 * gmm_guest_migrated() - guest pages moved by migration so far.
 * @guest: the guest
 */
uint64_t gmm_guest_migrated(const struct gmm_guest *guest);

/* --- collapse onto 2 MiB blocks (khugepaged) --------------------------------
 *
 * A 2 MiB-aligned guest chunk backed by scattered 4 KiB frames (after
 * discards, balloon deflates, 4 KiB faults when no block was free) is one
 * host mapping per run of file-contiguous frames and cannot be mapped by the
 * host with one PMD.  Collapse copies such a chunk onto one aligned order-9
 * block (gmm_alloc(GMM_MOVABLE): direct compaction makes the block when
 * none is free) and maps it in one piece; the old frames are freed.  Writers
 * are stopped as for a migration batch, with the guest's write stop (enum
 * gmm_write_stop: the pause, uffd-wp or mprotect; see
 * gmm_guest_migration_wait()); a collapse counts as one batch of one unit in
 * gmm_guest_wstop_stats(), and a refused pause leaves the chunk for later.
 * Chunks with a pinned page (gmm_guest_pin(), gmm_guest_ptr()), a page under
 * migration, or a page of a 2 MiB block are left alone.  On hugetlbfs every
 * unit is a host huge page already: nothing to do.
 *
 * gmm_guest_collapse() is one pass the embedder calls; gmm_khugepaged_start()
 * runs the kernel's khugepaged: one thread per pool, which scans every guest
 * of the pool in turn at a bounded rate.  One thread per pool, not per guest:
 * its CPU cost and the order-9 blocks it takes are the pool's, whatever the
 * number of guests (the kernel runs one khugepaged for the whole system).
 */

/** What collapse did (the kernel's vmstat and khugepaged sysfs names). */
struct gmm_collapse_stats {
	uint64_t pages_scanned;             /* guest pages looked at (512 per chunk) */
	uint64_t thp_collapse_alloc;        /* order-9 blocks allocated for a collapse */
	uint64_t thp_collapse_alloc_failed; /* ... that could not be had */
	uint64_t pages_collapsed;           /* chunks now on one block (the kernel
					     * counts huge pages too) */
	uint64_t pages_added;               /* unbacked pages backed (max_ptes_none) */
	uint64_t full_scans;                /* khugepaged: passes over every guest */
};

/**
 * gmm_guest_collapse() - one collapse pass over a guest.
 * @guest:      the guest
 * @max_chunks: stop after collapsing this many
 * @st:         receives what was done (pages_scanned, thp_collapse_alloc,
 *              thp_collapse_alloc_failed, pages_collapsed)
 *
 * Every chunk backed entirely (max_ptes_none 0: no memory added) by 4 KiB
 * frames, none pinned, is collapsed as described above.  Call from a
 * thread that holds no region lock of this guest; it may run beside
 * khugepaged (each chunk is collapsed under the region lock).  With the
 * pause write stop, a call from a thread the embedder's pause refuses (a
 * vCPU's) collapses nothing.
 *
 * Return: 0 or -EINVAL.
 */
int gmm_guest_collapse(struct gmm_guest *guest, uint64_t max_chunks,
		       struct gmm_collapse_stats *st);

/** khugepaged's controls (the kernel's /sys/kernel/mm/transparent_hugepage/khugepaged/). */
struct gmm_khugepaged_config {
	/* guest pages scanned per wake-up (default 4096, the kernel's: 8 chunks) */
	unsigned int pages_to_scan;
	/* sleep between wake-ups (default 10000, the kernel's) */
	unsigned int scan_sleep_millisecs;
	/* sleep after an order-9 block could not be had (default 60000) */
	unsigned int alloc_sleep_millisecs;
	/* unbacked pages a chunk may have and still be collapsed: they are
	 * backed with zeroed memory (0..511).  Default 0, not the kernel's 511:
	 * a guest's unbacked pages are mostly memory it gave back (balloon,
	 * free page reporting, never touched); backing them would take memory
	 * from the host for an idle guest and undo the guest's own reports.
	 * Chunks wholly unbacked are never collapsed. */
	unsigned int max_ptes_none;
};

/** gmm_khugepaged_config_init() - the defaults above. */
void gmm_khugepaged_config_init(struct gmm_khugepaged_config *cfg);

/**
 * gmm_khugepaged_start() - start the pool's collapse thread.
 * @pool: the pool (any thread; not from inside a gmm callback)
 * @cfg:  its controls, or NULL for the defaults
 *
 * The thread wakes every scan_sleep_millisecs and looks at pages_to_scan
 * guest pages, resuming where it stopped, going over each guest of the
 * pool in turn (guests created later are included).  Stopped by
 * gmm_khugepaged_stop() or gmm_pool_destroy(); gmm_guest_destroy() waits
 * for the thread to leave the guest.  The counters keep counting across a
 * stop and a start.
 *
 * Return: 0, -EINVAL (NULL pool, pages_to_scan 0, max_ptes_none > 511),
 * -EBUSY (running already), -ENOMEM (no thread).
 */
int gmm_khugepaged_start(struct gmm_pool *pool, const struct gmm_khugepaged_config *cfg);

/**
 * gmm_khugepaged_stop() - stop the collapse thread and wait for it.
 * @pool: the pool, or NULL
 *
 * Returns once the thread has exited (a collapse in progress is finished
 * first, never left half done).  Nothing happens when it is not running;
 * a second stop racing the first returns at once.
 */
void gmm_khugepaged_stop(struct gmm_pool *pool);

/**
 * gmm_khugepaged_configure() - change the controls of the (running) thread.
 * @pool: the pool
 * @cfg:  the new controls (checked as for gmm_khugepaged_start())
 *
 * Takes effect at the next wake-up; a sleeping thread is woken.
 *
 * Return: 0, -EINVAL, -ESRCH (khugepaged was never started on @pool).
 */
int gmm_khugepaged_configure(struct gmm_pool *pool, const struct gmm_khugepaged_config *cfg);

/**
 * gmm_khugepaged_stats() - khugepaged's counters and controls.
 * @pool: the pool
 * @st:   receives the counters (zero when it never ran)
 * @cfg:  receives the controls (may be NULL)
 *
 * Return: 0, -EINVAL.  The counters of one guest (from khugepaged and
 * gmm_guest_collapse() together) are in gmm_guest_stats().
 */
int gmm_khugepaged_stats(struct gmm_pool *pool, struct gmm_collapse_stats *st,
			 struct gmm_khugepaged_config *cfg);

/**
 * gmm_khugepaged_print_stats() - the counters as the kernel names them.
 * @pool: the pool
 * @f:    where to
 *
 * Return: 0, -EINVAL.
 */
int gmm_khugepaged_print_stats(struct gmm_pool *pool, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
