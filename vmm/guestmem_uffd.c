/* SPDX-License-Identifier: MIT */
/*
 * vmm/guestmem_uffd.c - lazy backing through userfaultfd, for hosts whose
 * KVM returns a bare -EFAULT from KVM_RUN when the guest touches PROT_NONE
 * memory (upstream x86 KVM on ordinary memslots).  Unbacked guest pages are
 * anonymous placeholders registered in MISSING mode; a touch by a vCPU (in
 * KVM) or by any other thread blocks in the kernel and queues a fault on
 * the userfaultfd.  Handler threads, attached to the memory mode like vCPU
 * threads (gmm: the pool's per-thread page cache), read the faults, back the
 * page through the mode's fault op (gmm maps the chosen pool frame over the
 * placeholder with mmap(MAP_FIXED|MAP_SHARED)) and wake the faulting thread
 * with UFFDIO_WAKE.  UFFD_USER_MODE_ONLY is never used: KVM's own accesses
 * to guest memory are kernel-mode faults.
 */
#include "guestmem_impl.h"
#include <gmm/thread.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * The faulting thread sleeps in the kernel until UFFDIO_WAKE: a handoff
 * ThreadSanitizer cannot see.  TSan builds release the slot's first byte
 * before the wake; a thread that shares guest RAM with the handlers (a
 * test's toucher; vCPUs run in KVM, out of TSan's sight) acquires it.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define handoff(r) __tsan_release((r)->slot.hva)
#else
#define handoff(r) ((void)(r))
#endif

#define MSGS_PER_READ	16
#define DEV_USERFAULTFD	"/dev/userfaultfd"

static int uffd_syscall(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0 || errno != EPERM)
		return fd;
	/* unprivileged: /dev/userfaultfd (5.11+) when its mode allows */
	fd = open(DEV_USERFAULTFD, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		errno = EPERM;
		return -1;
	}
	{
		int u = ioctl(fd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);

		close(fd);
		return u;
	}
}

/* Write-protect of shmem and hugetlbfs (5.19+), when this kernel has it. */
static uint64_t wp_feature(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = uffd_syscall();
	uint64_t f = 0;

	if (fd < 0)
		return 0;
	if (!ioctl(fd, UFFDIO_API, &api))
		f = api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	close(fd);
	return f;
}

int guestmem_uffd_open(struct guestmem *gm, char *err, size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_THREAD_ID };
	int fd;

	api.features |= wp_feature();
	fd = uffd_syscall();

	if (fd < 0) {
		snprintf(err, errlen, "userfaultfd: %s%s", strerror(errno), errno == EPERM ?
			 " (lazy guest RAM on this KVM needs root, CAP_SYS_PTRACE, "
			 "sysctl vm.unprivileged_userfaultfd=1 or read-write access to "
			 DEV_USERFAULTFD "; or use --memory-mode plain)" : "");
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		snprintf(err, errlen, "userfaultfd: UFFDIO_API: %s", strerror(errno));
		close(fd);
		return -1;
	}
	gm->uffd = fd;
	gm->uffd_features = api.features;
	gm->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (gm->stop_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* One line for the first failure; the vCPU that hits it reads it. */
static int fail(struct guestmem *gm, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct guestmem *gm, int ret, const char *fmt, ...)
{
	int none = 0;
	va_list ap;

	/* why_lock, not pin_lock: a discard holding pin_lock may fail here */
	pthread_mutex_lock(&gm->why_lock);
	if (atomic_compare_exchange_strong(&gm->uffd_err, &none, ret)) {
		va_start(ap, fmt);
		vsnprintf(gm->uffd_why, sizeof(gm->uffd_why), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&gm->why_lock);
	return ret;
}

int guestmem_uffd_register(struct guestmem *gm, void *addr, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(gm->uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	return 0;
}

int guestmem_uffd_placeholder(struct guestmem *gm, void *addr, uint64_t len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
	int ret;

	if (mmap(addr, len, PROT_NONE, flags, -1, 0) == MAP_FAILED)
		return fail(gm, -errno, "placeholder at %p: mmap: %s", addr, strerror(errno));
	ret = guestmem_uffd_register(gm, addr, len);
	if (ret)
		return fail(gm, ret, "userfaultfd: UFFDIO_REGISTER of %p +0x%llx: %s", addr,
			    (unsigned long long)len, strerror(-ret));
	if (mprotect(addr, len, PROT_READ | PROT_WRITE))
		return fail(gm, -errno, "placeholder at %p: mprotect: %s", addr, strerror(errno));
	return 0;
}

/*
 * Back the page of one fault and wake whoever waits on its unit.  When it
 * cannot be backed, the unit becomes PROT_NONE outside the userfaultfd: the
 * vCPU's KVM_RUN fails with EFAULT and guestmem_efault() gives the reason.
 */
static void serve(struct guestmem *gm, const struct uffd_msg *m)
{
	uintptr_t addr = (uintptr_t)m->arg.pagefault.address;
	uint64_t unit = gm->cfg.page_size > 4096 ? gm->cfg.page_size : 4096;
	struct uffdio_range wake = { .start = addr & ~(unit - 1), .len = unit };
	struct region *r = guestmem_find_hva(gm, addr);
	uint64_t gpa = r ? r->slot.gpa + (addr - (uintptr_t)r->slot.hva) : 0;
	int ret = r ? gm->ops->fault(gm, r, gpa, 0, false, NULL) : -EFAULT;

	if (ret) {
		fail(gm, ret, "thread %u faulted at guest address 0x%llx (host %p): %s",
		     m->arg.pagefault.feat.ptid, (unsigned long long)gpa, (void *)addr,
		     guestmem_strerror(gm, ret));
		mmap((void *)wake.start, unit, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	} else {
		atomic_fetch_add(&gm->uffd_faults, 1);
		handoff(r);
	}
	ioctl(gm->uffd, UFFDIO_WAKE, &wake);
}

/* Wait for faults or the stop event (offline: the thread holds no frames). */
static bool wait_faults(struct guestmem *gm)
{
	struct pollfd p[2] = { { gm->uffd, POLLIN, 0 }, { gm->stop_fd, POLLIN, 0 } };

	if (gm->ops->gmm_thread)
		gmm_thread_offline();
	while (poll(p, 2, -1) < 0 && errno == EINTR)
		;
	if (gm->ops->gmm_thread)
		gmm_thread_online();
	return !(p[1].revents & POLLIN);
}

static void *handler(void *arg)
{
	struct guestmem *gm = arg;
	struct uffd_msg msgs[MSGS_PER_READ];

	guestmem_mark_fault_thread();
	if (gm->ops->attach(gm)) {
		fail(gm, -ENOMEM, "userfaultfd handler: cannot attach to the pool");
		return NULL;
	}
	while (wait_faults(gm)) {
		ssize_t n = read(gm->uffd, msgs, sizeof(msgs));

		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				serve(gm, &msgs[i]);
		}
		if (gm->ops->gmm_thread)
			gmm_thread_quiescent();
	}
	gm->ops->detach(gm);
	return NULL;
}

int guestmem_uffd_start(struct guestmem *gm, char *err, size_t errlen)
{
	unsigned int want = gm->cfg.uffd_handlers ? gm->cfg.uffd_handlers : 1;

	for (; gm->nr_handlers < want; gm->nr_handlers++) {
		int ret = pthread_create(&gm->handlers[gm->nr_handlers], NULL, handler, gm);

		if (ret) {
			snprintf(err, errlen, "cannot start a userfaultfd handler: %s",
				 strerror(ret));
			return -1;
		}
	}
	return 0;
}

void guestmem_uffd_release(struct guestmem *gm)
{
	uint64_t one = 1;

	if (gm->stop_fd >= 0 && write(gm->stop_fd, &one, sizeof(one)) != sizeof(one))
		perror("gmm-vmm: stopping the userfaultfd handlers");
	for (unsigned int i = 0; i < gm->nr_handlers; i++)
		pthread_join(gm->handlers[i], NULL);
	gm->nr_handlers = 0;
	/* the last reference: the kernel unregisters every range and wakes
	 * every blocked thread, which then faults in ordinary memory */
	if (gm->uffd >= 0)
		close(gm->uffd);
	if (gm->stop_fd >= 0)
		close(gm->stop_fd);
	gm->uffd = gm->stop_fd = -1;
}
