/* SPDX-License-Identifier: MIT */
/*
 * tests/kvm_compat.h - KVM UAPI bits newer than Debian 12's linux/kvm.h
 * (6.1) that gmm's tests use; each guarded so the kernel's own wins.
 */
#ifndef GMM_TESTS_KVM_COMPAT_H
#define GMM_TESTS_KVM_COMPAT_H

#include <linux/kvm.h>
#include <stdint.h>

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif

/* run->memory_fault (kernels >= 6.8) overlays the exit union at offset 32. */
struct gmm_test_memory_fault {
	uint64_t flags;
	uint64_t gpa;
	uint64_t size;
};

static inline struct gmm_test_memory_fault *gmm_test_memory_fault(struct kvm_run *run)
{
	return (struct gmm_test_memory_fault *)(void *)&run->mmio;
}

#endif
