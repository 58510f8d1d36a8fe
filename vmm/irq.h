/* SPDX-License-Identifier: MIT */
/*
 * vmm/irq.h - the interrupt helper devices use: INTx lines on the in-kernel
 * irqchip (KVM_IRQ_LINE) and MSI messages (KVM_SIGNAL_MSI).
 *
 * Without a VM (vm_fd < 0: the device-level test driver) nothing is
 * injected; the helper only records each line's level and counts MSIs, and
 * the test driver reads them back. With a VM the levels are recorded too.
 *
 * Calling contract: irq_init() before the VM's devices are created,
 * irq_set_vm() before vCPUs run; every other function from any thread.
 */
#ifndef GMM_VMM_IRQ_H
#define GMM_VMM_IRQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* GSIs of the in-kernel PIC/IOAPIC pair. */
#define IRQ_NR_LINES		24
/* MSI messages remembered for the test driver. */
#define IRQ_MSI_LOG		16

struct irq_msi_msg {
	uint64_t addr;
	uint32_t data;
};

struct irqchip {
	int vm_fd;				/* -1: record only */
	atomic_uchar level[IRQ_NR_LINES];
	atomic_ulong raised[IRQ_NR_LINES];	/* low-to-high transitions */
	atomic_ulong msis;
	_Atomic uint64_t msi_log[IRQ_MSI_LOG];	/* addr low 32 bits << 32 | data */
};

/* Levels low, nothing sent; vm_fd -1 records only. */
void irq_init(struct irqchip *c, int vm_fd);

/* From now on inject into this VM (before any vCPU runs). */
void irq_set_vm(struct irqchip *c, int vm_fd);

/* Set line gsi to level; -EINVAL for a line out of range, -errno of KVM. */
int irq_set_line(struct irqchip *c, unsigned int gsi, bool level);

/* Send one MSI message; 0 or -errno. */
int irq_msi(struct irqchip *c, uint64_t addr, uint32_t data);

/* The recorded level of line gsi (false out of range). */
bool irq_line_level(struct irqchip *c, unsigned int gsi);

#endif
