/* SPDX-License-Identifier: MIT */
/*
 * tests/test-kvm-fault.c - a tiny real-mode guest touches pages of a lazily
 * backed RAM region; every access to an unbacked page exits (KVM_EXIT_MMIO
 * on this host, KVM_EXIT_MEMORY_FAULT on hardware KVM) and the vCPU thread
 * backs it through gmm_guest_fault(); the data must land.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gmm/gmm.h>

#include "../check.h"

#include <gmm/kvm_compat.h>

#define MIB (1ull << 20)
#define PAGES 16

/* Real mode at 0x1000: read 0x30000, store it + 7 at 0x30001, then write
 * the first and last byte of PAGES pages from 0x20000 with 0x20 + i. */
static const uint8_t code[] = {
	0xb8, 0x00, 0x30,       /* mov ax, 0x3000 */
	0x8e, 0xd8,             /* mov ds, ax */
	0xa0, 0x00, 0x00,       /* mov al, [0] */
	0x04, 0x07,             /* add al, 7 */
	0xa2, 0x01, 0x00,       /* mov [1], al */
	0xb8, 0x00, 0x20,       /* mov ax, 0x2000 */
	0xb9, PAGES, 0x00,      /* mov cx, PAGES */
	0x8e, 0xd8,             /* 0x13: mov ds, ax */
	0x88, 0x26, 0x00, 0x00, /* mov [0], ah */
	0x88, 0x26, 0xff, 0x0f, /* mov [0xfff], ah */
	0x05, 0x00, 0x01,       /* add ax, 0x100 */
	0xe2, 0xf1,             /* loop 0x13 */
	0xf4,                   /* hlt */
};

static int run_guest(int vcpu, struct kvm_run *run, struct gmm_guest *g, unsigned int *mmio)
{
	for (int exits = 0; exits < 1000; exits++) {
		CHECK(ioctl(vcpu, KVM_RUN, 0) == 0 || errno == EFAULT || errno == EINTR);
		switch (run->exit_reason) {
		case KVM_EXIT_HLT:
			return 0;
		case KVM_EXIT_MMIO:
			(*mmio)++;
			CHECK(gmm_guest_fault(g, run->mmio.phys_addr, run->mmio.len,
					      run->mmio.is_write, run->mmio.data) == 0);
			break;
		case KVM_EXIT_MEMORY_FAULT:
			CHECK(gmm_guest_fault(g, gmm_kvm_memory_fault(run)->gpa, 0, false,
					      NULL) == 0);
			break;
		default:
			fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
			return -1;
		}
	}
	return -1;
}

static void setup_vcpu(int vcpu)
{
	struct kvm_sregs sr;
	struct kvm_regs r;

	CHECK(ioctl(vcpu, KVM_GET_SREGS, &sr) == 0);
	sr.cs.base = 0;
	sr.cs.selector = 0;
	sr.ds = sr.es = sr.ss = sr.cs;
	sr.ds.type = sr.es.type = sr.ss.type = 3;
	CHECK(ioctl(vcpu, KVM_SET_SREGS, &sr) == 0);
	memset(&r, 0, sizeof(r));
	r.rip = 0x1000;
	r.rflags = 2;
	r.rsp = 0x8000;
	CHECK(ioctl(vcpu, KVM_SET_REGS, &r) == 0);
}

int main(void)
{
	struct gmm_memfd_config mc = { 0 };
	struct kvm_userspace_memory_region kr;
	struct gmm_guest_config gc;
	struct gmm_pool_config cfg;
	struct gmm_guest_stats st;
	struct gmm_memslot s;
	struct gmm_guest *g;
	struct gmm_pool *p;
	struct kvm_run *run;
	unsigned int mmio = 0;
	int kvm, vm, vcpu;
	uint8_t b[2];
	void *ctx;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("SKIP: /dev/kvm: %s -- the KVM fault-path test did NOT run\n",
		       strerror(errno));
		return 77;
	}
	CHECK(gmm_memfd_create(&mc, &ctx) == 0);
	gmm_pool_config_init(&cfg, 128 * MIB);
	cfg.backing = &gmm_backing_memfd;
	cfg.backing_ctx = ctx;
	CHECK(gmm_pool_create(&cfg, &p) == 0);
	gmm_guest_config_init(&gc);
	gc.huge_fault = false; /* every page faults on its own */
	CHECK(gmm_guest_create(p, &gc, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, 16 * MIB, 0, &s) == 0);
	CHECK(gmm_guest_write(g, 0x1000, code, sizeof(code)) == 0);

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	CHECK(vm >= 0);
	ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	kr = (struct kvm_userspace_memory_region){ .slot = s.slot, .guest_phys_addr = s.gpa,
		.memory_size = s.size, .userspace_addr = (uintptr_t)s.hva };
	CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &kr) == 0);
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	CHECK(vcpu >= 0);
	run = mmap(NULL, (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE,
		   MAP_SHARED, vcpu, 0);
	CHECK(run != MAP_FAILED);
	setup_vcpu(vcpu);
	CHECK(run_guest(vcpu, run, g, &mmio) == 0);

	CHECK(gmm_guest_read(g, 0x30001, b, 1) == 0 && b[0] == 7);
	for (int i = 0; i < PAGES; i++) {
		uint64_t gpa = 0x20000 + (uint64_t)i * 4096;

		CHECK(gmm_guest_read(g, gpa, &b[0], 1) == 0);
		CHECK(gmm_guest_read(g, gpa + 0xfff, &b[1], 1) == 0);
		CHECK(b[0] == 0x20 + i && b[1] == 0x20 + i);
		CHECK(((uint8_t *)s.hva)[gpa] == 0x20 + i);
	}
	CHECK(gmm_guest_stats(g, &st) == 0);
	printf("guest ran: %u MMIO exits, %llu faults, %llu pages backed\n", mmio,
	       (unsigned long long)st.faults, (unsigned long long)st.backed_pages);
	CHECK(st.backed_pages == PAGES + 2); /* code page, the read page, PAGES written */
	CHECK(st.faults >= PAGES + 1);
	CHECK(gmm_pool_check(p) == 0);
	close(vcpu);
	close(vm);
	close(kvm);
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	printf("PASS\n");
	return 0;
}
