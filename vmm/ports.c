/* SPDX-License-Identifier: MIT */
/*
 * vmm/ports.c - port I/O dispatch: the serial port, the host-collection
 * device of the benchmark guest (result lines, discard hypercall, power-off,
 * panic report, boot markers) and the keyboard controller's reset line.
 */
#include "vmm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#define KBD_CMD		0x64
#define KBD_RESET	0xfe

struct discard_req {
	uint64_t gpa;
	uint64_t len;
	uint64_t status;
};

struct panic_info {
	uint64_t vector;
	uint64_t error;
	uint64_t rip;
	uint64_t cr2;
	uint64_t cpu;
};

static uint32_t io_value(const uint8_t *data, unsigned int size)
{
	uint32_t v = 0;

	memcpy(&v, data, size > 4 ? 4 : size);
	return v;
}

static void set_first(_Atomic uint64_t *t)
{
	uint64_t zero = 0;

	atomic_compare_exchange_strong(t, &zero, now_ns());
}

/* Test hook: discard a page inside the first touch report's range. */
static void lose_page(struct vm *vm, const char *line)
{
	const char *g = strstr(line, "\"gpa\":");
	int zero = 0;

	if (!vm->opts->x_lose_page || !strstr(line, "\"workload\":\"touch\"") || !g ||
	    !strstr(line, "\"pages\":") || atoll(strstr(line, "\"pages\":") + 8) < 8)
		return;
	if (!atomic_compare_exchange_strong(&vm->lost_page, &zero, 1))
		return;
	guestmem_discard(vm->gm, strtoull(g + 6, NULL, 10) + 5 * 4096, 4096);
}

static void result_line(struct vcpu *v, uint32_t gpa)
{
	struct vm *vm = v->vm;
	char line[RESULT_LINE_MAX];

	if (guestmem_read(vm->gm, gpa, line, sizeof(line) - 1) &&
	    guestmem_read(vm->gm, gpa, line, 256)) {
		atomic_fetch_add(&vm->result_errors, 1);
		return;
	}
	line[sizeof(line) - 1] = 0;
	line[strcspn(line, "\n")] = 0;
	set_first(&vm->t_first_result);
	atomic_fetch_add(&vm->results, 1);
	vmm_out(vm, "%s\n", line);
	lose_page(vm, line);
}

static void discard(struct vcpu *v, uint32_t gpa)
{
	struct discard_req req;

	if (guestmem_read(v->vm->gm, gpa, &req, sizeof(req)))
		return;
	req.status = (uint64_t)-guestmem_discard(v->vm->gm, req.gpa, req.len);
	guestmem_write(v->vm->gm, gpa + offsetof(struct discard_req, status),
		       &req.status, sizeof(req.status));
}

static void panic_report(struct vcpu *v, uint32_t gpa)
{
	struct panic_info p = { 0 };

	guestmem_read(v->vm->gm, gpa, &p, sizeof(p));
	vm_stop(v->vm, VMM_EXIT_CRASH,
		"guest cpu %llu: exception %llu (error 0x%llx) at rip 0x%llx, cr2 0x%llx",
		(unsigned long long)p.cpu, (unsigned long long)p.vector,
		(unsigned long long)p.error, (unsigned long long)p.rip,
		(unsigned long long)p.cr2);
}

static void poweroff(struct vcpu *v, uint32_t status)
{
	v->vm->guest_status = (int)status;
	if (status)
		vm_stop(v->vm, VMM_EXIT_GUEST_FAIL, "guest powered off with status %u", status);
	else
		vm_stop(v->vm, VMM_EXIT_OK, "guest powered off with status 0");
}

static void marker(struct vcpu *v, uint32_t what)
{
	if (what == 0)
		set_first(&v->vm->t_first_insn);
	else
		set_first(&v->vm->t_user);
}

static void hostdev_write(struct vcpu *v, uint16_t port, uint32_t val)
{
	switch (port) {
	case HOSTDEV_RESULT:
		result_line(v, val);
		return;
	case HOSTDEV_DISCARD:
		discard(v, val);
		return;
	case HOSTDEV_POWEROFF:
		poweroff(v, val);
		return;
	case HOSTDEV_PANIC:
		panic_report(v, val);
		return;
	case HOSTDEV_MARKER:
		marker(v, val);
		return;
	}
}

static void io_one(struct vcpu *v, uint16_t port, uint8_t *data, unsigned int size,
		   bool out)
{
	struct vm *vm = v->vm;

	if (port >= SERIAL_BASE && port < SERIAL_BASE + 8) {
		if (out)
			serial_write(&vm->serial, port - SERIAL_BASE, data[0]);
		else
			data[0] = serial_read(&vm->serial, port - SERIAL_BASE);
		return;
	}
	if (port >= HOSTDEV_BASE && port < HOSTDEV_BASE + HOSTDEV_SIZE) {
		if (out)
			hostdev_write(v, port, io_value(data, size));
		else
			memset(data, 0, size);
		return;
	}
	if (out && port == KBD_CMD && data[0] == KBD_RESET) {
		vm_stop(vm, VMM_EXIT_RESET, "guest reset through the keyboard controller");
		return;
	}
	if (!out)
		memset(data, 0xff, size);
}

void ports_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++)
		io_one(v, run->io.port, data + i * run->io.size, run->io.size, out);
}
