/* SPDX-License-Identifier: MIT */
/*
 * vmm/ports.c - the host-collection device of the benchmark guest (result
 * lines, discard hypercall, power-off, panic report, boot markers) and the
 * keyboard controller's reset line, on the port bus; and the vCPU's port
 * I/O exit, dispatched through that bus.
 */
#include "balloon_ctl.h"
#include "devices.h"
#include "vmm.h"

#include <libfdt.h>
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

/*
 * The guest's request to the balloon's control interface (what the monitor
 * does with QMP's `balloon`): a new target (logical bytes, 0: leave it),
 * answered with the status, the balloon's `actual` and host memory.
 */
struct balloon_req {
	uint64_t target;
	int64_t status;
	uint64_t actual;
	uint64_t rss_kib;
	uint64_t backed;	/* guestmem units backed now (see guestmem.h) */
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

static void result_line(struct vm *vm, uint32_t gpa)
{
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

static void discard(struct vm *vm, uint32_t gpa)
{
	struct discard_req req;

	if (guestmem_read(vm->gm, gpa, &req, sizeof(req)))
		return;
	req.status = (uint64_t)-guestmem_discard(vm->gm, req.gpa, req.len);
	guestmem_write(vm->gm, gpa + offsetof(struct discard_req, status),
		       &req.status, sizeof(req.status));
}

static void balloon_request(struct vm *vm, uint32_t gpa)
{
	struct balloon_req req;
	struct guestmem_stats st;
	int ret = 0;

	if (guestmem_read(vm->gm, gpa, &req, sizeof(req)))
		return;
	if (req.target)
		ret = balloon_ctl_set_target(vm, req.target);
	if (!ret)
		ret = balloon_ctl_get_actual(vm, &req.actual);
	guestmem_get_stats(vm->gm, &st);
	req.status = ret;
	req.rss_kib = proc_kib("/proc/self/status", "VmRSS");
	req.backed = st.backed * (st.page_size / 4096);
	guestmem_write(vm->gm, gpa, &req, sizeof(req));
}

static void panic_report(struct vm *vm, uint32_t gpa)
{
	struct panic_info p = { 0 };

	guestmem_read(vm->gm, gpa, &p, sizeof(p));
	vm_stop(vm, VMM_EXIT_CRASH,
		"guest cpu %llu: exception %llu (error 0x%llx) at rip 0x%llx, cr2 0x%llx",
		(unsigned long long)p.cpu, (unsigned long long)p.vector,
		(unsigned long long)p.error, (unsigned long long)p.rip,
		(unsigned long long)p.cr2);
}

static void poweroff(struct vm *vm, uint32_t status)
{
	vm->guest_status = (int)status;
	if (status)
		vm_stop(vm, VMM_EXIT_GUEST_FAIL, "guest powered off with status %u", status);
	else
		vm_stop(vm, VMM_EXIT_OK, "guest powered off with status 0");
}

static void marker(struct vm *vm, uint32_t what)
{
	if (what == 0)
		set_first(&vm->t_first_insn);
	else
		set_first(&vm->t_user);
}

static void hostdev_write(struct vm *vm, uint16_t port, uint32_t val)
{
	switch (port) {
	case HOSTDEV_RESULT:
		result_line(vm, val);
		return;
	case HOSTDEV_DISCARD:
		discard(vm, val);
		return;
	case HOSTDEV_POWEROFF:
		poweroff(vm, val);
		return;
	case HOSTDEV_PANIC:
		panic_report(vm, val);
		return;
	case HOSTDEV_MARKER:
		marker(vm, val);
		return;
	case HOSTDEV_BALLOON:
		balloon_request(vm, val);
		return;
	}
}

static void hostdev_out(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	hostdev_write(opaque, (uint16_t)(HOSTDEV_BASE + off), io_value(data, len));
}

static void hostdev_in(void *opaque, uint64_t off, void *data, unsigned int len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
}

static const struct bus_ops hostdev_ops = {
	.read = hostdev_in,
	.write = hostdev_out,
};

static void kbd_out(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	(void)off;
	(void)len;
	if (*(const uint8_t *)data == KBD_RESET)
		vm_stop(opaque, VMM_EXIT_RESET, "guest reset through the keyboard controller");
}

static const struct bus_ops kbd_ops = {
	.write = kbd_out,
};

#define CHECK(x) do { int _r = (x); if (_r < 0) return _r; } while (0)

static int hostdev_fdt(void *opaque, void *fdt)
{
	(void)opaque;
	CHECK(fdt_begin_node(fdt, "host@500"));
	CHECK(fdt_property_string(fdt, "compatible", "gmm,host-ports"));
	CHECK(fdt_property_u32(fdt, "ioport", HOSTDEV_BASE));
	CHECK(fdt_property_u32(fdt, "result-port", HOSTDEV_RESULT));
	CHECK(fdt_property_u32(fdt, "discard-port", HOSTDEV_DISCARD));
	CHECK(fdt_property_u32(fdt, "poweroff-port", HOSTDEV_POWEROFF));
	CHECK(fdt_property_u32(fdt, "panic-port", HOSTDEV_PANIC));
	CHECK(fdt_property_u32(fdt, "marker-port", HOSTDEV_MARKER));
	CHECK(fdt_property_u32(fdt, "balloon-port", HOSTDEV_BALLOON));
	return fdt_end_node(fdt);
}

int ports_attach(struct vm *vm)
{
	struct devices *d = vm->dev;

	CHECK(bus_register(&d->pio, HOSTDEV_BASE, HOSTDEV_SIZE, &hostdev_ops, vm, "host-ports"));
	CHECK(bus_register(&d->pio, KBD_CMD, 1, &kbd_ops, vm, "kbd-reset"));
	return devices_add(d, "host-ports", hostdev_fdt, vm);
}

void ports_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++)
		bus_access(&v->vm->dev->pio, run->io.port, data + i * run->io.size,
			   run->io.size, out);
}
