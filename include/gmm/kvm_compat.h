/* SPDX-License-Identifier: MIT */
/*
 * gmm/kvm_compat.h - the only place that fills in KVM UAPI bits newer than
 * the installed linux/kvm.h (Debian 12 ships 6.1 headers), for gmm-vmm, the
 * tests and embedders (libgmm itself never calls KVM). Every definition
 * is guarded so the kernel's own wins when present.
 */
#ifndef GMM_KVM_COMPAT_H
#define GMM_KVM_COMPAT_H

#include <linux/kvm.h>
#include <stdint.h>

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif

#ifndef KVM_MEMORY_EXIT_FLAG_PRIVATE
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
#endif

/*
 * run->memory_fault overlays the exit union (offset 32 of struct kvm_run)
 * in kernels >= 6.8; 6.1 headers lack the member, so read it through this.
 */
struct gmm_kvm_memory_fault {
	uint64_t flags;
	uint64_t gpa;
	uint64_t size;
};

static inline struct gmm_kvm_memory_fault *
gmm_kvm_memory_fault(struct kvm_run *run)
{
	return (struct gmm_kvm_memory_fault *)(void *)&run->mmio;
}

#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO 232
#endif

#endif
