/* SPDX-License-Identifier: MIT */
/*
 * tests/guest/kernel.c - everything the benchmark guest does in kernel mode,
 * kept minimal because CPL0 is emulated on this host: identity page tables
 * with user access (2 MiB pages up to the end of RAM and at least the first
 * 4 GiB, so user mode reaches the PCI BARs in the 32-bit hole), GDT with per-CPU
 * TSSs, an IDT whose handlers report to the host and stop (except a #GP on
 * user mode's port I/O, which head.S performs and resumes), and the iretq to
 * user mode with IOPL 3.
 */
#include "guest.h"

#define SEL_KCODE	0x08
#define SEL_KDATA	0x10
#define SEL_UDATA	0x18
#define SEL_UCODE	0x20
#define SEL_TSS		0x28
#define NR_VECTORS	22
#define MAX_PD		64	/* 64 GiB of RAM */
#define PTE_FLAGS	0x87ULL	/* present, writable, user, 2 MiB */
#define MAP_MIN		(4ULL << 30)	/* the 32-bit hole's PCI BARs too */

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap;
} __attribute__((packed));

struct idt_entry {
	uint16_t off_lo, sel;
	uint8_t ist, attr;
	uint16_t off_mid;
	uint32_t off_hi, zero;
};

struct dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

struct panic_info {
	uint64_t vector, error, rip, cr2, cpu;
};

extern const uint64_t isr_table[NR_VECTORS];

char kstacks[MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(16)));
static char ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(16)));
static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[MAX_PD][512] __attribute__((aligned(4096)));
static uint64_t gdt[5 + 2 * MAX_CPUS] __attribute__((aligned(16)));
static struct tss tss[MAX_CPUS] __attribute__((aligned(16)));
static struct idt_entry idt[NR_VECTORS] __attribute__((aligned(16)));
static struct panic_info panic_info[MAX_CPUS];
volatile int kernel_ready;

static void build_page_tables(const void *fdt)
{
	uint64_t end = fdt_ram_end(fdt) > MAP_MIN ? fdt_ram_end(fdt) : MAP_MIN;
	uint64_t n2m = (end + (2ULL << 20) - 1) >> 21;

	if (!n2m || n2m > MAX_PD * 512ULL)
		n2m = MAX_PD * 512ULL;
	for (uint64_t i = 0; i < n2m; i++)
		pd[i / 512][i % 512] = (i << 21) | PTE_FLAGS;
	for (uint64_t i = 0; i < (n2m + 511) / 512; i++)
		pdpt[i] = (uint64_t)(uintptr_t)pd[i] | 7;
	pml4[0] = (uint64_t)(uintptr_t)pdpt | 7;
}

static void build_gdt(uint64_t ncpus)
{
	gdt[1] = 0x00af9a000000ffffULL;
	gdt[2] = 0x00cf92000000ffffULL;
	gdt[3] = 0x00cff2000000ffffULL;
	gdt[4] = 0x00affa000000ffffULL;
	for (uint64_t c = 0; c < ncpus && c < MAX_CPUS; c++) {
		uint64_t base = (uint64_t)(uintptr_t)&tss[c];
		uint64_t limit = sizeof(struct tss) - 1;

		tss[c].rsp[0] = (uint64_t)(uintptr_t)kstacks[c] + KSTACK_SIZE;
		tss[c].iomap = sizeof(struct tss);
		gdt[5 + 2 * c] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
				 (0x89ULL << 40) | (((limit >> 16) & 0xf) << 48) |
				 (((base >> 24) & 0xff) << 56);
		gdt[6 + 2 * c] = base >> 32;
	}
}

static void build_idt(void)
{
	for (int v = 0; v < NR_VECTORS; v++) {
		uint64_t a = isr_table[v];

		idt[v].off_lo = (uint16_t)a;
		idt[v].sel = SEL_KCODE;
		idt[v].attr = 0x8e;
		idt[v].off_mid = (uint16_t)(a >> 16);
		idt[v].off_hi = (uint32_t)(a >> 32);
	}
}

static void load_cpu_state(uint64_t cpu)
{
	struct dtr g = { sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt };
	struct dtr i = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	uint16_t tr = (uint16_t)(SEL_TSS + 16 * cpu);

	__asm__ volatile("mov %0, %%cr3" : : "r"((uint64_t)(uintptr_t)pml4) : "memory");
	__asm__ volatile("lgdt %0" : : "m"(g));
	__asm__ volatile("lidt %0" : : "m"(i));
	__asm__ volatile("mov %0, %%ds\n\tmov %0, %%es\n\tmov %0, %%ss"
			 : : "r"((uint16_t)SEL_KDATA));
	__asm__ volatile("pushq %0\n\tlea 1f(%%rip), %%rax\n\tpushq %%rax\n\t"
			 "lretq\n1:" : : "i"(SEL_KCODE) : "rax", "memory");
	__asm__ volatile("ltr %0" : : "r"(tr));
}

static _Noreturn void enter_user(uint64_t cpu, const void *fdt, uint64_t ncpus)
{
	uint64_t sp = (uint64_t)(uintptr_t)ustacks[cpu] + USTACK_SIZE - 8;

	__asm__ volatile("mov %[ud], %%ds\n\tmov %[ud], %%es\n\t"
			 "pushq %[ss]\n\tpushq %[sp]\n\tpushq $0x3002\n\t"
			 "pushq %[cs]\n\tpushq %[ip]\n\tiretq"
			 : : [ud] "r"((uint16_t)(SEL_UDATA | 3)),
			   [ss] "i"(SEL_UDATA | 3), [sp] "r"(sp),
			   [cs] "i"(SEL_UCODE | 3), [ip] "r"((uint64_t)(uintptr_t)user_main),
			   "D"(cpu), "S"(fdt), "d"(ncpus)
			 : "memory");
	__builtin_unreachable();
}

_Noreturn void kmain(uint64_t cpu, const void *fdt, uint64_t ncpus)
{
	if (cpu >= MAX_CPUS)
		for (;;)
			__asm__ volatile("hlt");
	if (cpu == 0) {
		build_page_tables(fdt);
		build_gdt(ncpus);
		build_idt();
		kernel_ready = 1;
	} else {
		while (!kernel_ready)
			cpu_relax();
	}
	load_cpu_state(cpu);
	enter_user(cpu, fdt, ncpus);
}

/* Exception: frame = {vector, error, rip, cs, rflags, rsp, ss}. */
_Noreturn void trap(const uint64_t *frame)
{
	uint16_t tr;
	uint64_t cr2, cpu;

	__asm__ volatile("str %0" : "=r"(tr));
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	cpu = tr >= SEL_TSS ? (uint64_t)(tr - SEL_TSS) / 16 : 0;
	if (cpu >= MAX_CPUS)
		cpu = 0;
	panic_info[cpu].vector = frame[0];
	panic_info[cpu].error = frame[1];
	panic_info[cpu].rip = frame[2];
	panic_info[cpu].cr2 = cr2;
	panic_info[cpu].cpu = cpu;
	outl(PORT_PANIC, (uint32_t)(uintptr_t)&panic_info[cpu]);
	for (;;)
		__asm__ volatile("hlt");
}
