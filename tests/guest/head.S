/* SPDX-License-Identifier: MIT */
/*
 * tests/guest/head.S - the benchmark guest's first instructions and its
 * exception stubs. gmm-vmm starts every vCPU here in 64-bit mode with
 * rdi = cpu index, rsi = device tree, rdx = number of CPUs.
 */
#define KSTACK_SIZE 8192
#define PORT_MARKER 0x510

	.section .text.entry, "ax"
	.globl _start
_start:
	mov	%rdx, %r8
	test	%edi, %edi
	jnz	1f
	mov	$PORT_MARKER, %dx	/* tell the host: first instruction */
	xor	%eax, %eax
	out	%eax, %dx
1:	mov	%r8, %rdx
	mov	%rdi, %rax
	inc	%rax
	shl	$13, %rax		/* (cpu + 1) * KSTACK_SIZE */
	lea	kstacks(%rip), %rsp
	add	%rax, %rsp
	call	kmain
2:	hlt
	jmp	2b

	.text
	.macro	stub n, err
	.globl	isr\n
isr\n:
	.if	\err == 0
	push	$0
	.endif
	push	$\n
	jmp	isr_common
	.endm

	stub 0,0;  stub 1,0;  stub 2,0;  stub 3,0;  stub 4,0;  stub 5,0
	stub 6,0;  stub 7,0;  stub 8,1;  stub 9,0;  stub 10,1; stub 11,1
	stub 12,1; stub 13,1; stub 14,1; stub 15,0; stub 16,0; stub 17,1
	stub 18,0; stub 19,0; stub 20,0; stub 21,1

isr_common:
	mov	%rsp, %rdi
	and	$-16, %rsp
	call	trap
3:	hlt
	jmp	3b

	.section .rodata
	.globl	isr_table
isr_table:
	.quad isr0, isr1, isr2, isr3, isr4, isr5, isr6, isr7, isr8, isr9
	.quad isr10, isr11, isr12, isr13, isr14, isr15, isr16, isr17, isr18
	.quad isr19, isr20, isr21
