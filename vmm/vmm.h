/* SPDX-License-Identifier: MIT */
/*
 * vmm/vmm.h - gmm-vmm's shared types: options, exit codes, the VM and its
 * vCPUs, the guest-physical layout of the boot area and the I/O ports of the
 * host-collection device, and the entry points of each vmm/ file.
 */
#ifndef GMM_VMM_VMM_H
#define GMM_VMM_VMM_H

#include "balloon.h"
#include "balloon_ctl.h"
#include "vmem.h"
#include "devices.h"
#include "guestmem.h"
#include "serial.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Process exit codes (documented in --help and vmm/README.md). */
enum vmm_exit {
	VMM_EXIT_OK = 0,		/* guest powered off, verdict pass */
	VMM_EXIT_GUEST_FAIL = 1,	/* guest reported a failure */
	VMM_EXIT_USAGE = 2,		/* bad command line */
	VMM_EXIT_HOST = 3,		/* host cannot provide what was asked */
	VMM_EXIT_CRASH = 4,		/* guest crashed (exception, triple fault) */
	VMM_EXIT_RESET = 5,		/* guest asked for a reset */
	VMM_EXIT_KVM = 6,		/* KVM failed while running the guest */
	VMM_EXIT_SIGNAL = 128,		/* + signal number: stopped by a signal */
};

#define VMM_MAX_VCPUS		64

/* Guest-physical boot area, below 64 KiB (the benchmark guest loads at 1 MiB). */
#define BOOT_GDT_GPA		0x0500ULL
#define BOOT_PML4_GPA		0x1000ULL
#define BOOT_PDPT_GPA		0x2000ULL
#define BOOT_PD_GPA		0x3000ULL	/* 4 pages: 4 GiB in 2 MiB pages */
#define BOOT_PARAMS_GPA		0x7000ULL
#define BOOT_FDT_GPA		0x8000ULL
#define BOOT_FDT_MAX		0x8000ULL
#define BOOT_AREA_END		0x10000ULL
#define BOOT_CMDLINE_GPA	0x20000ULL
#define BOOT_CMDLINE_MAX	0x10000ULL

/* Host-collection device: ports the benchmark guest uses (also in the FDT). */
#define HOSTDEV_BASE		0x500
#define HOSTDEV_RESULT		0x500	/* outl: GPA of a NUL-terminated JSON line */
#define HOSTDEV_DISCARD		0x504	/* outl: GPA of {u64 gpa, u64 len, u64 status} */
#define HOSTDEV_POWEROFF	0x508	/* outl: guest status, 0 = pass */
#define HOSTDEV_PANIC		0x50c	/* outl: GPA of {vector, error, rip, cr2, cpu} */
#define HOSTDEV_MARKER		0x510	/* outl: boot progress marker */
#define HOSTDEV_BALLOON		0x514	/* outl: GPA of {u64 target, s64 status,
					 * u64 actual, u64 rss_kib, u64 backed} */
#define HOSTDEV_SIZE		0x18
#define SERIAL_BASE		0x3f8

#define RESULT_LINE_MAX		1024

struct vmm_opts {
	struct guestmem_cfg mem;
	uint64_t memory;		/* total bytes */
	unsigned int vcpus;
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	const char *workload;
	const char *guest;		/* benchmark guest ELF, NULL: built-in */
	const char *dump_dtb;
	bool quiet;
	bool x_lose_page;		/* test hook: lose a page the guest wrote */
	/* devices (--balloon) and the device-level test driver (--qtest) */
	bool balloon;
	struct balloon_cfg balloon_cfg;
	uint64_t balloon_target;	/* bytes asked for at boot, 0: all RAM */
	const char *qtest;		/* socket to connect to, no vCPUs */
	unsigned int nr_vmem;		/* --virtio-mem devices */
	struct vmem_cfg vmem[VMEM_MAX_DEVICES];
	uint64_t vmem_pool[VMEM_MAX_DEVICES];	/* pool memory for each */
	bool fault_path_auto;		/* --fault-path auto: vm.c picks mem.faults */
	bool write_stop_given;		/* --write-stop on the command line */
	const char *qmp_path;		/* --qmp: the monitor's unix socket */
	bool paused;			/* -S: vCPUs wait for the monitor's cont */
};

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	struct guestmem_vcpu *gmv;
	uint64_t exits;
	_Atomic int tid;		/* its thread's id, 0 until it runs */
};

struct vm {
	const struct vmm_opts *opts;
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	struct guestmem *gm;
	struct guestmem_cfg mem;	/* opts->mem with the fault path resolved */
	char fault_path[256];		/* which path unbacked pages take, and why */
	struct vcpu vcpus[VMM_MAX_VCPUS];
	unsigned int nr_vcpus;
	struct serial serial;
	pthread_mutex_t out_lock;
	struct devices *dev;		/* devices.c: buses, irqchip, PCI */
	struct evloop *loop;		/* evloop.c: timers, fds */

	bool linux_boot;
	uint64_t entry;
	uint64_t fdt_gpa;
	uint32_t tsc_khz;

	atomic_int stopping;
	int exit_code;
	char reason[256];
	pthread_mutex_t stop_lock;
	int stop_fd;			/* eventfd vm_stop() writes; -1 until created */
	int signal_fd;			/* SIGTERM, SIGINT, SIGHUP (blocked); -1 */

	uint64_t t_start;		/* CLOCK_MONOTONIC ns at main() */
	_Atomic uint64_t t_first_insn;
	_Atomic uint64_t t_user;
	_Atomic uint64_t t_first_result;
	atomic_uint results;
	atomic_uint result_errors;
	int guest_status;		/* from the poweroff port, -1: none */
	atomic_int lost_page;

	/* balloon_ctl.c: the balloon's control ops and the monitor's listener */
	const struct balloon_ctl_ops *_Atomic balloon_ops;
	void *balloon_opaque;
	void (*_Atomic balloon_listener)(void *opaque, uint64_t actual);
	void *balloon_listener_opaque;

	/* vm.c: pausing the vCPUs for the monitor's stop/cont */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;	/* parked vCPUs and vm_pause() wait on it */
	atomic_bool pause_req;
	atomic_uint mig_pauses;		/* gmm's write stop: pauses held (vm_mig_pause) */
	/* held by the monitor's x-gmm-compact; vm_run() takes it once stopping
	 * is set, before guestmem_release() closes the userfaultfd */
	pthread_mutex_t migrate_lock;
	unsigned int parked;		/* vCPU threads waiting in vcpu_park() */

	/* main.c: the event loop thread and the monitor on it */
	struct monitor *mon;
};

/* options.c */
int opts_parse(struct vmm_opts *o, int argc, char **argv);

/* vm.c */
int vm_create(struct vm *vm, const struct vmm_opts *o);
int vm_run(struct vm *vm);
void vm_destroy(struct vm *vm);
void vm_stop(struct vm *vm, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * The main thread's wait (vm_run(), the qtest driver): until vm_stop() was
 * called (0) or, with fd >= 0, fd is readable (1). SIGTERM, SIGINT and
 * SIGHUP arriving meanwhile stop the VM with VMM_EXIT_SIGNAL + the signal.
 */
int vm_wait(struct vm *vm, int fd);
/* The number after "KEY:" in a /proc file such as /proc/self/status (kB
 * there), 0 when absent; any thread. */
uint64_t proc_kib(const char *path, const char *key);
/*
 * Pausing, for the monitor (any thread but a vCPU's): vm_pause() kicks every
 * vCPU out of KVM_RUN (immediate_exit and a signal) and returns once all of
 * them wait on pause_cond, or the VM is stopping; vm_resume() lets them run
 * again.  With -S the vCPUs start paused.  Both are idempotent.
 */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
bool vm_is_paused(struct vm *vm);
/*
 * The pause of libgmm's pause write stop (gmm_pause_ops, registered by
 * vm_create()): like vm_pause(), counted apart from the monitor's, so a
 * migration never resumes a VM the monitor stopped.  Refused (-EDEADLK) on
 * a thread a vCPU may wait for (guestmem_on_fault_thread()), (-ETIMEDOUT)
 * when the vCPUs are not all parked within VM_MIG_PAUSE_WAIT_MS, and
 * (-ECANCELED) when the VM is stopping; libgmm then leaves that batch where
 * it is.
 */
#define VM_MIG_PAUSE_WAIT_MS	100
int vm_mig_pause(void *vm);
void vm_mig_resume(void *vm);

/* cpu.c */
int cpu_setup_boot_tables(struct vm *vm);
int cpu_init(struct vm *vm, struct vcpu *v);
int cpu_handle_internal_error(struct vcpu *v);

/* ports.c */
int ports_attach(struct vm *vm);
void ports_io(struct vcpu *v);

/* qtest.c: the device-level test driver's server; returns the exit code */
int qtest_run(struct vm *vm);

/* loader.c */
int loader_load(struct vm *vm, char *err, size_t errlen);
int loader_finish(struct vm *vm, char *err, size_t errlen);

/* fdt.c */
int fdt_build(struct vm *vm, void *buf, size_t size, char *err, size_t errlen);

/* main.c */
void vmm_out(struct vm *vm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
