/* SPDX-License-Identifier: MIT */
/*
 * tests/unit/test_kvm_fault.c - a tiny real-mode guest touches pages of a
 * lazily backed RAM region, which must be backed from the pool and the data
 * must land in the pool's frames.  Two ways an unbacked page reaches us:
 *  - exits: the page is PROT_NONE and the access exits (KVM_EXIT_MMIO on
 *    kvm_pvm, KVM_EXIT_MEMORY_FAULT for guest_memfd memory); the vCPU thread
 *    backs it through gmm_guest_fault().  Run where /sys/module/kvm_pvm
 *    exists: upstream KVM returns a bare -EFAULT there instead.
 *  - userfaultfd: the page is a placeholder registered in MISSING mode; a
 *    handler thread attached to the pool backs it and wakes the vCPU.  Runs
 *    on every KVM.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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
		int ret = ioctl(vcpu, KVM_RUN, 0);

		if (ret && errno == EFAULT && run->exit_reason != KVM_EXIT_MEMORY_FAULT) {
			fprintf(stderr, "KVM_RUN: bare EFAULT (exit %u): this KVM does not exit on "
				"PROT_NONE memory\n", run->exit_reason);
			return -1;
		}
		CHECK(ret == 0 || errno == EFAULT || errno == EINTR);
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

/* The userfaultfd side: a thread attached to the pool serves MISSING faults. */
struct server {
	struct gmm_pool *pool;
	struct gmm_guest *guest;
	struct gmm_memslot slot;
	int uffd;
	int stop;	/* atomic */
	unsigned int faults;
};

static void *serve(void *arg)
{
	struct server *sv = arg;
	struct pollfd pfd = { .fd = sv->uffd, .events = POLLIN };
	struct uffd_msg m;

	CHECK(gmm_thread_attach(sv->pool) == 0);
	while (!__atomic_load_n(&sv->stop, __ATOMIC_ACQUIRE)) {
		uintptr_t hva;
		struct uffdio_range wake = { .len = 4096 };

		if (poll(&pfd, 1, 100) <= 0 || read(sv->uffd, &m, sizeof(m)) != sizeof(m))
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		hva = (uintptr_t)m.arg.pagefault.address & ~(uintptr_t)4095;
		CHECK(m.arg.pagefault.feat.ptid != 0);
		CHECK(gmm_guest_fault(sv->guest, sv->slot.gpa + (hva - (uintptr_t)sv->slot.hva), 0,
				      false, NULL) == 0);
		wake.start = hva;
		CHECK(ioctl(sv->uffd, UFFDIO_WAKE, &wake) == 0);
		sv->faults++;
		gmm_thread_quiescent();
	}
	gmm_thread_detach(sv->pool);
	return NULL;
}

static int open_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_THREAD_ID };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		fprintf(stderr, "userfaultfd: %s (needs root or vm.unprivileged_userfaultfd=1)\n",
			strerror(errno));
		exit(1);
	}
	CHECK(ioctl(fd, UFFDIO_API, &api) == 0);
	return fd;
}

/* One guest run; with @uffd the faults go through a userfaultfd. */
static void run_mode(int kvm, bool uffd)
{
	struct gmm_memfd_config mc = { 0 };
	struct kvm_userspace_memory_region kr;
	struct gmm_guest_config gc;
	struct gmm_pool_config cfg;
	struct gmm_guest_stats st;
	struct server sv = { .uffd = -1 };
	struct gmm_memslot s;
	struct gmm_guest *g;
	struct gmm_pool *p;
	struct kvm_run *run;
	unsigned int mmio = 0;
	pthread_t th;
	int vm, vcpu;
	uint8_t b[2];
	void *ctx;

	CHECK(gmm_memfd_create(&mc, &ctx) == 0);
	gmm_pool_config_init(&cfg, 128 * MIB);
	cfg.backing = &gmm_backing_memfd;
	cfg.backing_ctx = ctx;
	CHECK(gmm_pool_create(&cfg, &p) == 0);
	gmm_guest_config_init(&gc);
	gc.huge_fault = false; /* every page faults on its own */
	if (uffd)
		gc.uffd = sv.uffd = open_uffd();
	CHECK(gmm_guest_create(p, &gc, &g) == 0);
	CHECK(gmm_guest_add_ram(g, 0, 16 * MIB, 0, &s) == 0);
	CHECK(gmm_guest_write(g, 0x1000, code, sizeof(code)) == 0);
	sv.pool = p;
	sv.guest = g;
	sv.slot = s;
	if (uffd)
		CHECK(pthread_create(&th, NULL, serve, &sv) == 0);

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
	if (uffd) {
		__atomic_store_n(&sv.stop, 1, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
	}

	CHECK(gmm_guest_read(g, 0x30001, b, 1) == 0 && b[0] == 7);
	for (int i = 0; i < PAGES; i++) {
		uint64_t gpa = 0x20000 + (uint64_t)i * 4096;
		uint8_t *frame = gmm_pfn_to_host(p, gmm_guest_gpa_to_pfn(g, gpa));

		CHECK(gmm_guest_read(g, gpa, &b[0], 1) == 0);
		CHECK(gmm_guest_read(g, gpa + 0xfff, &b[1], 1) == 0);
		CHECK(b[0] == 0x20 + i && b[1] == 0x20 + i);
		CHECK(((uint8_t *)s.hva)[gpa] == 0x20 + i);
		CHECK(frame && frame[0] == 0x20 + i && frame[0xfff] == 0x20 + i);
	}
	CHECK(gmm_guest_stats(g, &st) == 0);
	printf("%s: guest ran: %u MMIO exits, %u userfaultfd faults, %llu faults, %llu pages backed\n",
	       uffd ? "userfaultfd" : "exits", mmio, sv.faults, (unsigned long long)st.faults,
	       (unsigned long long)st.backed_pages);
	CHECK(st.backed_pages == PAGES + 2); /* code page, the read page, PAGES written */
	CHECK(st.faults >= PAGES + 1);
	CHECK(!uffd || (sv.faults >= PAGES + 1 && mmio == 0));
	CHECK(gmm_pool_check(p) == 0);
	close(vcpu);
	close(vm);
	gmm_guest_destroy(g);
	gmm_pool_destroy(p);
	if (sv.uffd >= 0)
		close(sv.uffd);
}

int main(void)
{
	bool pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (kvm < 0) {
		printf("SKIP: /dev/kvm: %s -- the KVM fault-path test did NOT run\n",
		       strerror(errno));
		return 77;
	}
	if (pvm)
		run_mode(kvm, false);
	else
		printf("exits: not run (upstream KVM returns a bare -EFAULT on PROT_NONE memory)\n");
	run_mode(kvm, true);
	close(kvm);
	printf("PASS\n");
	return 0;
}
