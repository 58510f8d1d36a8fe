/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/guestmem_test.h - what the guestmem tests share: the EXPECT
 * check and simulated kvm_run exits (KVM_EXIT_MMIO, KVM_EXIT_MEMORY_FAULT)
 * handed to guestmem_fault() the way a vCPU thread hands them.
 */
#ifndef GMM_TESTS_GUESTMEM_TEST_H
#define GMM_TESTS_GUESTMEM_TEST_H

#include "guestmem.h"
#include <gmm/kvm_compat.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define EXPECT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

/* A KVM_EXIT_MMIO of len bytes at gpa; a read's data lands in *out. */
static inline int mmio(struct guestmem_vcpu *v, uint64_t gpa, bool write, uint64_t val,
		       uint32_t len, uint64_t *out)
{
	struct kvm_run run;
	int ret;

	memset(&run, 0, sizeof(run));
	run.exit_reason = KVM_EXIT_MMIO;
	run.mmio.phys_addr = gpa;
	run.mmio.len = len;
	run.mmio.is_write = write;
	memcpy(run.mmio.data, &val, len);
	ret = guestmem_fault(v, &run);
	if (out) {
		*out = 0;
		memcpy(out, run.mmio.data, len);
	}
	return ret;
}

/* A KVM_EXIT_MEMORY_FAULT over [gpa, gpa + size) with flags. */
static inline int memory_fault(struct guestmem_vcpu *v, uint64_t gpa, uint64_t size,
			       uint64_t flags)
{
	struct kvm_run run;

	memset(&run, 0, sizeof(run));
	run.exit_reason = KVM_EXIT_MEMORY_FAULT;
	gmm_kvm_memory_fault(&run)->gpa = gpa;
	gmm_kvm_memory_fault(&run)->size = size;
	gmm_kvm_memory_fault(&run)->flags = flags;
	return guestmem_fault(v, &run);
}

/* Run fn(arg0) and fn(arg1) on two threads at once; wait for both. */
static inline void run_two(void *(*fn)(void *), void *arg0, void *arg1)
{
	pthread_t t[2];

	pthread_create(&t[0], NULL, fn, arg0);
	pthread_create(&t[1], NULL, fn, arg1);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
}

/* The exit status of a test: 1 and the count when something failed. */
static inline int report(const char *name)
{
	if (failures) {
		fprintf(stderr, "%s: %d failures\n", name, failures);
		return 1;
	}
	printf("%s: all checks passed\n", name);
	return 0;
}

#endif
