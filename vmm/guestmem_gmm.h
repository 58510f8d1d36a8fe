/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem_gmm.h - guestmem.c's view of the gmm mode (guestmem_gmm.c):
 * libgmm's pool, guest address space and reporter behind one guest's RAM.
 * Not for the rest of vmm/, which only knows guestmem.h.
 */
#ifndef GMM_VMM_GUESTMEM_GMM_H
#define GMM_VMM_GUESTMEM_GMM_H

#include "guestmem.h"

struct gmm_ram;

/* Pool and guest for cfg; one line in err on failure. */
struct gmm_ram *gmm_ram_create(const struct guestmem_cfg *cfg, char *err, size_t errlen);
/* Add slot as a RAM region; fills in slot->hva. */
int gmm_ram_add(struct gmm_ram *gr, struct guestmem_slot *slot, char *err, size_t errlen);
/* Back all RAM now (pool populate on all CPUs, then map), with progress. */
int gmm_ram_prealloc(struct gmm_ram *gr, char *err, size_t errlen);
/* Start free page reporting (after the guest's RAM is set up). */
int gmm_ram_start_reporting(struct gmm_ram *gr, unsigned int delay_ms, char *err,
			    size_t errlen);
void gmm_ram_destroy(struct gmm_ram *gr);

struct gmm_pool *gmm_ram_pool(const struct gmm_ram *gr);
struct gmm_guest *gmm_ram_guest(const struct gmm_ram *gr);

/* An exit at a RAM address: back it; len/data as in gmm_guest_fault(). */
int gmm_ram_fault(struct gmm_ram *gr, uint64_t gpa, unsigned int len, bool is_write,
		  void *data);
/* KVM_EXIT_MEMORY_FAULT over [gpa, gpa + size): back every page of it. */
int gmm_ram_back(struct gmm_ram *gr, uint64_t gpa, uint64_t size);
int gmm_ram_copy(struct gmm_ram *gr, uint64_t gpa, void *buf, size_t len, bool write);
int gmm_ram_discard(struct gmm_ram *gr, uint64_t gpa, uint64_t len);
void gmm_ram_stats(struct gmm_ram *gr, struct guestmem_stats *st);

int gmm_ram_thread_attach(struct gmm_ram *gr);
void gmm_ram_thread_detach(struct gmm_ram *gr);

#endif
