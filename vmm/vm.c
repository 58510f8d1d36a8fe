/* SPDX-License-Identifier: MIT */
/*
 * vmm/vm.c - the KVM VM: /dev/kvm, the in-kernel irqchip and PIT, memslots
 * from guestmem, vCPU threads and their exit loop, and stopping the VM
 * (guest power-off, crash, or a signal) with a meaningful exit code.
 */
#include <gmm/guest.h>
#include <gmm/kvm_compat.h>
#include "evloop.h"
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define TSS_ADDR	0xfffbd000ULL
#define IDMAP_ADDR	0xfffbc000ULL

/*
 * Make every running vCPU leave KVM_RUN soon (immediate_exit and a signal).
 * Caller holds pause_lock: vm_run() sets started and thread under it.
 */
static void kick_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (!v->started)
			continue;
		v->run->immediate_exit = 1;
		pthread_kill(v->thread, SIGUSR1);
	}
}

void vm_stop(struct vm *vm, int code, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&vm->stop_lock);
	if (atomic_load(&vm->stopping)) {
		pthread_mutex_unlock(&vm->stop_lock);
		return;
	}
	vm->exit_code = code;
	va_start(ap, fmt);
	vsnprintf(vm->reason, sizeof(vm->reason), fmt, ap);
	va_end(ap);
	atomic_store(&vm->stopping, 1);
	pthread_mutex_unlock(&vm->stop_lock);
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	kick_vcpus(vm);
	pthread_mutex_unlock(&vm->pause_lock);
	if (vm->stop_fd >= 0 && eventfd_write(vm->stop_fd, 1))
		fprintf(stderr, "gmm-vmm: cannot wake the main thread: %s\n", strerror(errno));
}

int vm_wait(struct vm *vm, int fd)
{
	struct pollfd p[3] = { { vm->stop_fd, POLLIN, 0 }, { vm->signal_fd, POLLIN, 0 },
			       { fd, POLLIN, 0 } };
	struct signalfd_siginfo si;

	while (!atomic_load(&vm->stopping)) {
		if (poll(p, fd >= 0 ? 3 : 2, -1) < 0)
			continue;	/* EINTR */
		if (p[1].revents && read(vm->signal_fd, &si, sizeof(si)) == sizeof(si))
			vm_stop(vm, VMM_EXIT_SIGNAL + (int)si.ssi_signo, "stopped by signal %u (%s)",
				si.ssi_signo, strsignal((int)si.ssi_signo));
		if (fd >= 0 && p[2].revents && !atomic_load(&vm->stopping))
			return 1;
	}
	return 0;
}

static void serial_emit(void *ctx, const char *line, unsigned int len)
{
	struct vm *vm = ctx;

	vmm_out(vm, "%.*s\n", (int)len, line);
}

static void serial_irq(void *ctx, bool level)
{
	struct vm *vm = ctx;

	irq_set_line(&vm->dev->irq, SERIAL_IRQ, level);
}

static int open_kvm(struct vm *vm)
{
	int ver;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		fprintf(stderr, "gmm-vmm: cannot open /dev/kvm: %s\n", strerror(errno));
		return -VMM_EXIT_HOST;
	}
	ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		fprintf(stderr, "gmm-vmm: /dev/kvm has API version %d, need %d\n",
			ver, KVM_API_VERSION);
		return -VMM_EXIT_HOST;
	}
	return 0;
}

static int kvm_err(const char *what)
{
	fprintf(stderr, "gmm-vmm: %s: %s\n", what, strerror(errno));
	return -VMM_EXIT_HOST;
}

static int create_machine(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t idmap = IDMAP_ADDR;

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return kvm_err("KVM_CREATE_VM");
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
		return kvm_err("KVM_SET_TSS_ADDR");
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return kvm_err("KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kvm_err("KVM_CREATE_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return kvm_err("KVM_CREATE_PIT2");
	return 0;
}

/* Device memory (virtio-mem), each region in its own slot after RAM's. */
static int register_device_slots(struct vm *vm, unsigned int first)
{
	for (unsigned int i = 0; i < devices_nr_regions(vm); i++) {
		struct kvm_userspace_memory_region r = { .slot = first + i };
		uint64_t gpa, size;
		void *hva;

		devices_region(vm, i, &gpa, &size, &hva);
		r.guest_phys_addr = gpa;
		r.memory_size = size;
		r.userspace_addr = (uint64_t)(uintptr_t)hva;
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return kvm_err("KVM_SET_USER_MEMORY_REGION (device memory)");
	}
	return 0;
}

static int register_memslots(struct vm *vm)
{
	for (unsigned int i = 0; i < guestmem_nr_slots(vm->gm); i++) {
		const struct guestmem_slot *s = guestmem_slot(vm->gm, i);
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.guest_phys_addr = s->gpa,
			.memory_size = s->size,
			.userspace_addr = (uint64_t)(uintptr_t)s->hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return kvm_err("KVM_SET_USER_MEMORY_REGION");
	}
	return register_device_slots(vm, guestmem_nr_slots(vm->gm));
}

static int create_vcpu(struct vm *vm, unsigned int id)
{
	struct vcpu *v = &vm->vcpus[id];

	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return kvm_err("KVM_CREATE_VCPU");
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED)
		return kvm_err("mmap of kvm_run");
	return cpu_init(vm, v);
}

/* Does this KVM fill kvm_run->memory_fault (guest_memfd-era)? -1: no /dev/kvm. */
static int memory_fault_info(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), ret;

	if (fd < 0)
		return -1;
	ret = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_FAULT_INFO);
	close(fd);
	return ret > 0;
}

/*
 * How unbacked guest pages reach us.  Upstream KVM returns a bare -EFAULT
 * from KVM_RUN on a PROT_NONE page (it fills memory_fault only for private
 * guest_memfd memory); kvm_pvm exits with KVM_EXIT_MMIO only for accesses it
 * emulates (guest kernel mode) and also fails with a bare -EFAULT for guest
 * user mode, which it runs natively.  So auto takes userfaultfd on every
 * kernel; --fault-path exits keeps the exit path (kvm_pvm kernel mode,
 * KVM_EXIT_MEMORY_FAULT).
 */
static void pick_fault_path(struct vm *vm, const struct vmm_opts *o)
{
	bool pvm = !access("/sys/module/kvm_pvm", F_OK);
	int info = memory_fault_info();

	vm->mem = o->mem;
	/* one handler per vCPU (measured against one per node: README) */
	vm->mem.uffd_handlers = o->vcpus < GUESTMEM_UFFD_MAX_HANDLERS ? o->vcpus :
				GUESTMEM_UFFD_MAX_HANDLERS;
	if (o->fault_path_auto)
		vm->mem.faults = GUESTMEM_FAULTS_UFFD;
	snprintf(vm->fault_path, sizeof(vm->fault_path), "%s (%s; %s%s)",
		 o->mem.mode == GUESTMEM_PLAIN ? "none, all RAM mapped" :
		 guestmem_faults_name(vm->mem.faults),
		 info < 0 ? "no /dev/kvm" : pvm ?
		 "kvm_pvm: KVM_EXIT_MMIO from guest kernel mode, bare -EFAULT from user mode" :
		 "upstream KVM: bare -EFAULT on unbacked pages",
		 info > 0 ? "KVM_EXIT_MEMORY_FAULT for private memory, " : "",
		 o->fault_path_auto ? "auto" : "--fault-path");
}

static int setup_memory(struct vm *vm, const struct vmm_opts *o)
{
	char err[256];
	int ret;

	pick_fault_path(vm, o);
	vm->gm = guestmem_create(&vm->mem, err, sizeof(err));
	if (!vm->gm || devices_create(vm, err, sizeof(err))) {
		fprintf(stderr, "gmm-vmm: %s\n", err);
		return -VMM_EXIT_HOST;
	}
	if (o->qtest)
		return 0;	/* no guest to load: the test driver plays it */
	ret = cpu_setup_boot_tables(vm);
	if (ret)
		return ret;
	vm->nr_vcpus = o->vcpus;
	/* --dump-dtb works without /dev/kvm (then without a TSC rate). */
	if (loader_load(vm, err, sizeof(err)) ||
	    (o->dump_dtb && loader_finish(vm, err, sizeof(err)))) {
		fprintf(stderr, "gmm-vmm: %s\n", err);
		return -VMM_EXIT_HOST;
	}
	return 0;
}

static void block_signals(sigset_t *waitset);

/* libgmm's pause write stop pauses these vCPUs (vm_mig_pause below). */
static const struct gmm_pause_ops mig_pause_ops = { vm_mig_pause, vm_mig_resume };

int vm_create(struct vm *vm, const struct vmm_opts *o)
{
	sigset_t waitset;
	char err[256];
	int ret, sz;

	vm->opts = o;
	vm->guest_status = -1;
	/* before any thread exists (gmm's reporting worker, the event loop):
	 * they inherit the mask, so SIGTERM reaches the main thread's
	 * signalfd and no other thread */
	block_signals(&waitset);
	vm->signal_fd = signalfd(-1, &waitset, SFD_CLOEXEC);
	vm->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (vm->signal_fd < 0 || vm->stop_fd < 0) {
		fprintf(stderr, "gmm-vmm: cannot create the stop eventfd or signalfd: %s\n",
			strerror(errno));
		return -VMM_EXIT_HOST;
	}
	vm->linux_boot = o->kernel != NULL;
	vm->kvm_fd = vm->vm_fd = -1;
	pthread_mutex_init(&vm->out_lock, NULL);
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_mutex_init(&vm->migrate_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	atomic_store(&vm->pause_req, o->paused);
	serial_init(&vm->serial, serial_emit, serial_irq, vm);
	ret = evloop_create(&vm->loop);
	if (ret) {
		fprintf(stderr, "gmm-vmm: cannot create the event loop: %s\n", strerror(-ret));
		return -VMM_EXIT_HOST;
	}
	ret = setup_memory(vm, o);
	if (!ret && o->qtest)
		return 0;
	if (!ret)
		ret = open_kvm(vm);
	if (ret)
		return ret;
	sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return kvm_err("KVM_GET_VCPU_MMAP_SIZE");
	vm->run_size = (size_t)sz;
	ret = create_machine(vm);
	if (!ret)
		ret = register_memslots(vm);
	if (!ret)
		irq_set_vm(&vm->dev->irq, vm->vm_fd);
	vm->nr_vcpus = o->vcpus;
	for (unsigned int i = 0; i < o->vcpus && !ret; i++)
		ret = create_vcpu(vm, i);
	if (ret)
		return ret;
	if (loader_finish(vm, err, sizeof(err))) {
		fprintf(stderr, "gmm-vmm: %s\n", err);
		return -VMM_EXIT_HOST;
	}
	if (o->mem.mode == GUESTMEM_GMM)
		guestmem_set_pause(vm->gm, &mig_pause_ops, vm);
	return 0;
}

/* An MMIO or memory-fault exit that guestmem_fault() did not back (ret <= 0). */
static void memory_exit(struct vcpu *v, int ret)
{
	struct kvm_run *run = v->run;
	uint64_t gpa = run->exit_reason == KVM_EXIT_MMIO ? run->mmio.phys_addr :
		       gmm_kvm_memory_fault(run)->gpa;

	if (ret < 0) {
		vm_stop(v->vm, VMM_EXIT_KVM, "vcpu%u: cannot back guest page at 0x%llx: %s",
			v->id, (unsigned long long)gpa,
			guestmem_strerror(v->vm->gm, ret));
		return;
	}
	if (run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
		vm_stop(v->vm, VMM_EXIT_KVM, "vcpu%u: memory fault at 0x%llx (flags 0x%llx) not in guest RAM",
			v->id, (unsigned long long)gpa,
			(unsigned long long)gmm_kvm_memory_fault(run)->flags);
		return;
	}
	/* A device's, or nothing (reads see all-ones, writes are dropped). */
	bus_access(&v->vm->dev->mmio, run->mmio.phys_addr, run->mmio.data,
		   run->mmio.len, run->mmio.is_write);
}

static void handle_system_event(struct vcpu *v)
{
	if (v->run->system_event.type == KVM_SYSTEM_EVENT_RESET)
		vm_stop(v->vm, VMM_EXIT_RESET, "guest reset");
	else
		vm_stop(v->vm, VMM_EXIT_OK, "guest powered off");
}

static void handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	int ret;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		ports_io(v);
		return;
	case KVM_EXIT_MMIO:
	case KVM_EXIT_MEMORY_FAULT:
		ret = guestmem_fault(v->gmv, run);	/* backs guest RAM */
		if (ret <= 0)
			memory_exit(v, ret);
		return;
	case KVM_EXIT_INTR:
		return;
	case KVM_EXIT_HLT:
		vm_stop(v->vm, VMM_EXIT_OK, "guest halted");
		return;
	case KVM_EXIT_SHUTDOWN:
		vm_stop(v->vm, VMM_EXIT_CRASH, "vcpu%u: guest triple fault (shutdown)", v->id);
		return;
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(v);
		return;
	case KVM_EXIT_INTERNAL_ERROR:
		if (cpu_handle_internal_error(v))
			vm_stop(v->vm, VMM_EXIT_CRASH, "vcpu%u: KVM internal error, suberror %u",
				v->id, run->internal.suberror);
		return;
	case KVM_EXIT_FAIL_ENTRY:
		vm_stop(v->vm, VMM_EXIT_KVM, "vcpu%u: VM entry failed, reason 0x%llx", v->id,
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return;
	default:
		vm_stop(v->vm, VMM_EXIT_KVM, "vcpu%u: unhandled exit reason %u", v->id,
			run->exit_reason);
	}
}

/*
 * KVM_RUN failed with a bare EFAULT that guestmem_efault() could not explain
 * away (why: its reason). Upstream x86 KVM, and kvm_pvm for an access from
 * guest user mode (which it runs natively), do this when the guest touches
 * host memory that is not mapped, and name no guest address: say where the
 * guest was, the best lead there is.
 */
static void stop_on_efault(struct vcpu *v, const char *why)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) || ioctl(v->fd, KVM_GET_SREGS, &sregs)) {
		vm_stop(v->vm, VMM_EXIT_KVM, "vcpu%u: KVM_RUN: %s: %s", v->id, strerror(EFAULT),
			why);
		return;
	}
	vm_stop(v->vm, VMM_EXIT_KVM, "vcpu%u: KVM_RUN: %s at guest rip 0x%llx (CPL %u): %s",
		v->id, strerror(EFAULT), (unsigned long long)regs.rip, sregs.cs.selector & 3, why);
}

static int run_once(struct vcpu *v)
{
	char why[256];
	int ret;

	guestmem_vcpu_offline(v->gmv);
	ret = ioctl(v->fd, KVM_RUN, 0);
	guestmem_vcpu_online(v->gmv);
	guestmem_vcpu_quiescent(v->gmv);
	if (ret == 0)
		return 0;
	if (errno == EINTR || errno == EAGAIN)
		return 1;
	if (errno == EFAULT && v->run->exit_reason == KVM_EXIT_MEMORY_FAULT)
		return 0;
	if (errno != EFAULT) {
		vm_stop(v->vm, VMM_EXIT_KVM, "vcpu%u: KVM_RUN: %s", v->id, strerror(errno));
		return -1;
	}
	if (guestmem_efault(v->gmv, why, sizeof(why)))
		return 1;
	stop_on_efault(v, why);
	return -1;
}

/* ---- pausing (the monitor's stop and cont, -S; gmm's write stop) ---- */

static bool pause_wanted(struct vm *vm)
{
	return atomic_load(&vm->pause_req) || atomic_load(&vm->mig_pauses);
}

/* A vCPU thread waits here while a pause is asked for (or until stopping). */
static void vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (pause_wanted(vm) && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	if (!atomic_load(&vm->stopping))
		v->run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_req, true);
	kick_vcpus(vm);
	while (vm->parked < vm->nr_vcpus && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

bool vm_is_paused(struct vm *vm)
{
	return atomic_load(&vm->pause_req);
}

static unsigned int started_vcpus(const struct vm *vm)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		n += vm->vcpus[i].started;
	return n;
}

int vm_mig_pause(void *arg)
{
	struct vm *vm = arg;
	struct timespec until;
	int ret = 0;

	if (guestmem_on_fault_thread())
		return -EDEADLK;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += VM_MIG_PAUSE_WAIT_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&vm->pause_lock);
	atomic_fetch_add(&vm->mig_pauses, 1);
	kick_vcpus(vm);
	while (!ret && vm->parked < started_vcpus(vm)) {
		if (atomic_load(&vm->stopping))
			ret = ECANCELED;	/* the vCPUs leave without parking */
		else
			ret = pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &until);
	}
	if (ret) {
		atomic_fetch_sub(&vm->mig_pauses, 1);
		pthread_cond_broadcast(&vm->pause_cond);
	}
	pthread_mutex_unlock(&vm->pause_lock);
	return -ret;
}

void vm_mig_resume(void *arg)
{
	struct vm *vm = arg;

	pthread_mutex_lock(&vm->pause_lock);
	atomic_fetch_sub(&vm->mig_pauses, 1);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

/* ---- end of pausing ---- */

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	v->gmv = guestmem_vcpu_attach(v->vm->gm, v->id);
	if (!v->gmv) {
		vm_stop(v->vm, VMM_EXIT_HOST, "vcpu%u: cannot set up its guest memory context (gmm page cache)",
			v->id);
		return NULL;
	}
	atomic_store(&v->tid, (int)gettid());
	while (!atomic_load(&v->vm->stopping)) {
		int ret;

		if (pause_wanted(v->vm)) {
			vcpu_park(v);
			continue;
		}
		ret = run_once(v);

		if (ret < 0)
			break;
		if (ret == 0) {
			v->exits++;
			handle_exit(v);
		}
	}
	guestmem_vcpu_detach(v->gmv);
	return NULL;
}

static void kick(int sig)
{
	(void)sig;
}

static void block_signals(sigset_t *waitset)
{
	struct sigaction sa = { .sa_handler = kick };
	sigset_t all;

	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(waitset);
	sigaddset(waitset, SIGTERM);
	sigaddset(waitset, SIGINT);
	sigaddset(waitset, SIGHUP);
	all = *waitset;
	sigaddset(&all, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* Run the vCPUs until the guest or a signal stops the VM; returns exit code. */
int vm_run(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);	/* vm_pause() reads started */
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (pthread_create(&v->thread, NULL, vcpu_thread, v)) {
			pthread_mutex_unlock(&vm->pause_lock);
			vm_stop(vm, VMM_EXIT_HOST, "cannot start vCPU thread %u", i);
			pthread_mutex_lock(&vm->pause_lock);
			break;
		}
		v->started = true;
	}
	pthread_mutex_unlock(&vm->pause_lock);
	vm_wait(vm, -1);
	/* no migration uses the userfaultfd from now on (x-gmm-compact sees
	 * stopping), and no vCPU stays blocked in a userfaultfd fault */
	pthread_mutex_lock(&vm->migrate_lock);
	pthread_mutex_unlock(&vm->migrate_lock);
	guestmem_release(vm->gm);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	}
	serial_flush(&vm->serial);
	return vm->exit_code;
}

void vm_destroy(struct vm *vm)
{
	if (vm->loop)
		evloop_stop(vm->loop);
	devices_destroy(vm);
	if (vm->loop)
		evloop_destroy(vm->loop);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->run && v->run != MAP_FAILED)
			munmap(v->run, vm->run_size);
		if (v->fd > 0)
			close(v->fd);
	}
	if (vm->vm_fd > 0)
		close(vm->vm_fd);
	if (vm->kvm_fd > 0)
		close(vm->kvm_fd);
	guestmem_destroy(vm->gm);
	if (vm->stop_fd > 0)
		close(vm->stop_fd);
	if (vm->signal_fd > 0)
		close(vm->signal_fd);
}
