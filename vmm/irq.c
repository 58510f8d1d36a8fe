/* SPDX-License-Identifier: MIT */
/*
 * vmm/irq.c - INTx and MSI injection through KVM, and the record of both
 * that the device-level test driver reads (contract in irq.h).
 */
#include "irq.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

void irq_init(struct irqchip *c, int vm_fd)
{
	memset(c, 0, sizeof(*c));
	c->vm_fd = vm_fd;
}

void irq_set_vm(struct irqchip *c, int vm_fd)
{
	c->vm_fd = vm_fd;
}

int irq_set_line(struct irqchip *c, unsigned int gsi, bool level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = level };

	if (gsi >= IRQ_NR_LINES)
		return -EINVAL;
	if (atomic_exchange(&c->level[gsi], level) != level && level)
		atomic_fetch_add(&c->raised[gsi], 1);
	if (c->vm_fd >= 0 && ioctl(c->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

int irq_msi(struct irqchip *c, uint64_t addr, uint32_t data)
{
	struct kvm_msi m = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};
	unsigned long n = atomic_fetch_add(&c->msis, 1);

	atomic_store(&c->msi_log[n % IRQ_MSI_LOG], (uint64_t)(uint32_t)addr << 32 | data);
	if (c->vm_fd >= 0 && ioctl(c->vm_fd, KVM_SIGNAL_MSI, &m) < 0)
		return -errno;
	return 0;
}

bool irq_line_level(struct irqchip *c, unsigned int gsi)
{
	return gsi < IRQ_NR_LINES && atomic_load(&c->level[gsi]);
}
