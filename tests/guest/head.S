/* SPDX-License-Identifier: MIT */
/*
 * tests/guest/head.S - the benchmark guest's first instructions, its
 * exception stubs and the #GP handler that performs user mode's port I/O.
 * gmm-vmm starts every vCPU here in 64-bit mode with rdi = cpu index,
 * rsi = device tree, rdx = number of CPUs.
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
	stub 12,1; stub 14,1; stub 15,0; stub 16,0; stub 17,1
	stub 18,0; stub 19,0; stub 20,0; stub 21,1

/*
 * #GP: user mode runs with IOPL 3, which lets it do port I/O itself on
 * hardware KVM. Where the host ignores IOPL for user mode (kvm_pvm runs user
 * mode natively and every user port access raises #GP), do the access here
 * at CPL0 with the user's own rax and rdx and step over the instruction.
 * Decoded: in/out with the port in dx (ec-ef) or an imm8 (e4-e7), byte or
 * dword, word with a 0x66 prefix. Anything else (including ins/outs, which
 * the guest does not use) is a real #GP: report it like every exception.
 * Kernel mode may be emulated at about 1 us per instruction there, so the
 * path is short and in assembly: 3 saved registers and a jump table.
 */
isr13:
	testb	$3, 16(%rsp)		/* frame: error, rip, cs, ... */
	jz	gp_fault
	push	%rcx
	push	%rdx
	push	%rsi			/* now rip is at 32(%rsp) */
	mov	32(%rsp), %rsi
	movzbl	(%rsi), %ecx
	inc	%rsi
	cmp	$0x66, %cl
	jne	1f
	movzbl	(%rsi), %ecx
	inc	%rsi
	or	$0x100, %ecx		/* ch bit 0: 16-bit operand */
1:	cmp	$0xe4, %cl
	jb	gp_other
	cmp	$0xe8, %cl
	jae	2f
	movzbl	(%rsi), %edx		/* e4-e7: imm8 port, then as ec-ef */
	inc	%rsi
	add	$8, %cl
2:	sub	$0xec, %cl
	cmp	$3, %cl
	ja	gp_other
	shl	$2, %ch
	or	%ch, %cl
	movzbl	%cl, %ecx		/* (16-bit << 2) | (out << 1) | wide */
	mov	%rsi, 32(%rsp)		/* resume after the instruction */
	jmp	*gp_io_ops(, %rcx, 8)
gp_in8:
	in	(%dx), %al
	jmp	gp_done
gp_in16:
	in	(%dx), %ax
	jmp	gp_done
gp_in32:
	in	(%dx), %eax
	jmp	gp_done
gp_out8:
	out	%al, (%dx)
	jmp	gp_done
gp_out16:
	out	%ax, (%dx)
	jmp	gp_done
gp_out32:
	out	%eax, (%dx)
gp_done:
	pop	%rsi
	pop	%rdx			/* the imm8 forms borrowed dx */
	pop	%rcx
	add	$8, %rsp		/* error code */
	iretq
gp_other:
	pop	%rsi
	pop	%rdx
	pop	%rcx
gp_fault:
	push	$13
	jmp	isr_common

isr_common:
	mov	%rsp, %rdi
	and	$-16, %rsp
	call	trap
3:	hlt
	jmp	3b

	.section .rodata
	.balign	8
gp_io_ops:
	.quad gp_in8, gp_in32, gp_out8, gp_out32	/* ec, ed, ee, ef */
	.quad gp_in8, gp_in16, gp_out8, gp_out16	/* 66 ec .. 66 ef */

	.globl	isr_table
isr_table:
	.quad isr0, isr1, isr2, isr3, isr4, isr5, isr6, isr7, isr8, isr9
	.quad isr10, isr11, isr12, isr13, isr14, isr15, isr16, isr17, isr18
	.quad isr19, isr20, isr21
