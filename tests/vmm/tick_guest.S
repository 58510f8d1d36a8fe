/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/tick_guest.S - the smallest guest that shows progress: in
 * kernel mode, with interrupts off, it writes the GPA of the result line
 * {"tick":1} to the host-collection port 0x500 every TICK_CYCLES TSC
 * cycles, forever.  The monitor tests count its lines to see stop and cont
 * pause and resume the vCPU.  gmm-vmm starts it in 64-bit mode at _start
 * with the boot identity map (vmm/README.md, "Boot state").
 */
#define HOSTDEV_RESULT	0x500
#define TICK_CYCLES	20000000	/* ~10 ms at 2 GHz */

	.code64
	.text
	.globl _start
_start:
	mov	$HOSTDEV_RESULT, %dx
1:	mov	$line, %eax
	out	%eax, (%dx)
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	mov	%rax, %rbx
2:	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	sub	%rbx, %rax
	cmp	$TICK_CYCLES, %rax
	jb	2b
	mov	$HOSTDEV_RESULT, %dx
	jmp	1b

line:	.asciz	"{\"tick\":1}"
	.section .note.GNU-stack, "", @progbits
