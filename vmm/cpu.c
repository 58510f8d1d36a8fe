/* SPDX-License-Identifier: MIT */
/*
 * vmm/cpu.c - vCPU state: the boot GDT and identity page tables, 64-bit
 * long-mode registers at the guest entry, CPUID from KVM's supported list,
 * and the emulator failures this host's KVM needs help with (int3, fwait,
 * clac, stac).
 */
#include <gmm/kvm_compat.h>
#include "vmm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define CR0_PE		(1ULL << 0)
#define CR0_MP		(1ULL << 1)
#define CR0_ET		(1ULL << 4)
#define CR0_NE		(1ULL << 5)
#define CR0_WP		(1ULL << 16)
#define CR0_PG		(1ULL << 31)
#define CR4_PAE		(1ULL << 5)
#define EFER_LME	(1ULL << 8)
#define EFER_LMA	(1ULL << 10)
#define RFLAGS_AC	(1ULL << 18)
/*
 * CPUID leaf 1 ECX bit 31: "running under a hypervisor".  KVM's supported
 * list leaves it clear; without it Linux never reads KVM's own leaves
 * (0x40000000...) and gets no kvm-clock, hence no TSC frequency, and stalls
 * calibrating against a PIT/HPET the VMM does not have.
 */
#define CPUID_1_ECX_HYPERVISOR	(1U << 31)
#define PTE_P		1ULL
#define PTE_RW		2ULL
#define PTE_PS		0x80ULL

#define SEL_CODE	0x10
#define SEL_DATA	0x18

/* GDT: null, null, code64 (0x10), data (0x18). */
static const uint64_t boot_gdt[4] = {
	0, 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL,
};

/* Identity-map the first 4 GiB with 2 MiB pages; GDT in the boot area. */
int cpu_setup_boot_tables(struct vm *vm)
{
	uint64_t pml4 = BOOT_PDPT_GPA | PTE_P | PTE_RW;
	uint64_t pdpt[4], pd[512];
	int ret;

	ret = guestmem_write(vm->gm, BOOT_GDT_GPA, boot_gdt, sizeof(boot_gdt));
	ret = ret ? ret : guestmem_write(vm->gm, BOOT_PML4_GPA, &pml4, sizeof(pml4));
	for (int i = 0; i < 4 && !ret; i++) {
		pdpt[i] = (BOOT_PD_GPA + 4096ULL * i) | PTE_P | PTE_RW;
		for (int j = 0; j < 512; j++)
			pd[j] = (((uint64_t)i << 30) + ((uint64_t)j << 21)) |
				PTE_P | PTE_RW | PTE_PS;
		ret = guestmem_write(vm->gm, BOOT_PD_GPA + 4096ULL * i, pd, sizeof(pd));
	}
	ret = ret ? ret : guestmem_write(vm->gm, BOOT_PDPT_GPA, pdpt, sizeof(pdpt));
	if (ret) {
		fprintf(stderr, "gmm-vmm: cannot write boot page tables: %s\n",
			guestmem_strerror(vm->gm, ret));
		return -VMM_EXIT_HOST;
	}
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = code ? 0xb : 0x3;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

static int set_sregs(struct vcpu *v)
{
	struct kvm_sregs s;

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	flat_segment(&s.cs, SEL_CODE, true);
	flat_segment(&s.ds, SEL_DATA, false);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.gdt.base = BOOT_GDT_GPA;
	s.gdt.limit = sizeof(boot_gdt) - 1;
	s.tr.type = 11;
	s.tr.present = 1;
	s.tr.limit = 0x67;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s.cr3 = BOOT_PML4_GPA;
	s.cr4 = CR4_PAE;
	s.efer = EFER_LME | EFER_LMA;
	return ioctl(v->fd, KVM_SET_SREGS, &s) < 0 ? -errno : 0;
}

static int set_regs(struct vm *vm, struct vcpu *v)
{
	struct kvm_regs r = { .rflags = 2, .rip = vm->entry };

	if (vm->linux_boot) {
		r.rsi = BOOT_PARAMS_GPA;
	} else {
		r.rdi = v->id;
		r.rsi = vm->fdt_gpa;
		r.rdx = vm->nr_vcpus;
	}
	return ioctl(v->fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}

static int set_fpu(struct vcpu *v)
{
	struct kvm_fpu f = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	return ioctl(v->fd, KVM_SET_FPU, &f) < 0 ? -errno : 0;
}

static struct kvm_cpuid2 *get_cpuid(struct vm *vm)
{
	for (int n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return NULL;
}

static int set_cpuid(struct vm *vm, struct vcpu *v)
{
	struct kvm_cpuid2 *c = get_cpuid(vm);
	int ret = 0;

	if (!c)
		return -errno;
	for (unsigned int i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 1) {
			e->ebx = (e->ebx & 0x00ffffff) | (v->id << 24);
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
		}
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = v->id;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		ret = -errno;
	free(c);
	return ret;
}

/* Secondary vCPUs start running at the entry too, not waiting for SIPI. */
static int set_runnable(struct vcpu *v)
{
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };

	if (v->id == 0)
		return 0;
	return ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0 ? -errno : 0;
}

int cpu_init(struct vm *vm, struct vcpu *v)
{
	int ret;

	if (v->id == 0 && ioctl(v->fd, KVM_GET_TSC_KHZ, 0) > 0)
		vm->tsc_khz = (uint32_t)ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	ret = set_cpuid(vm, v);
	if (!ret)
		ret = set_sregs(v);
	if (!ret)
		ret = set_regs(vm, v);
	if (!ret)
		ret = set_fpu(v);
	if (!ret)
		ret = set_runnable(v);
	if (ret) {
		fprintf(stderr, "gmm-vmm: cannot set up vCPU %u: %s\n", v->id, strerror(-ret));
		return -VMM_EXIT_HOST;
	}
	return 0;
}

/* The instruction bytes at RIP: from KVM's report, or read through the MMU. */
static int insn_bytes(struct vcpu *v, const struct kvm_regs *r, uint8_t *b)
{
	struct kvm_run *run = v->run;
	struct kvm_translation t = { .linear_address = r->rip };

	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size >= 3) {
		memcpy(b, run->emulation_failure.insn_bytes, 3);
		return 0;
	}
	if (ioctl(v->fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
		return -1;
	return guestmem_read(v->vm->gm, t.physical_address, b, 3);
}

static int inject_bp(struct vcpu *v)
{
	struct kvm_vcpu_events ev;

	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -1;
	ev.exception.injected = 1;
	ev.exception.nr = 3;
	ev.exception.has_error_code = 0;
	ev.flags = 0;
	return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ? -1 : 0;
}

/* Step over instructions KVM's emulator lacks. 0: handled, -1: fatal. */
int cpu_handle_internal_error(struct vcpu *v)
{
	struct kvm_regs r;
	uint8_t b[3] = { 0 };
	int bp = 0;

	if (v->run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
		return -1;
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || insn_bytes(v, &r, b))
		return -1;
	if (b[0] == 0xcc) {
		r.rip += 1;
		bp = 1;
	} else if (b[0] == 0x9b) {
		r.rip += 1;
	} else if (b[0] == 0x0f && b[1] == 0x01 && (b[2] == 0xca || b[2] == 0xcb)) {
		r.rflags = b[2] == 0xca ? r.rflags & ~RFLAGS_AC : r.rflags | RFLAGS_AC;
		r.rip += 3;
	} else {
		fprintf(stderr, "gmm-vmm: vcpu%u: cannot emulate %02x %02x %02x at rip 0x%llx\n",
			v->id, b[0], b[1], b[2], (unsigned long long)r.rip);
		return -1;
	}
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return -1;
	return bp ? inject_bp(v) : 0;
}
