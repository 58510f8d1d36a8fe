/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/fuzz_qmp.c - libFuzzer target for the monitor's request parser
 * and dispatcher: the input is a byte stream from one client (its first
 * byte picks a VM with or without the fake balloon, and how the stream is
 * cut into reads), fed to a fresh QMP session in front of a VM without
 * vCPUs whose RAM is a real gmm pool, so every command runs for real; the
 * vCPU side (vm_pause, vm_resume, vm_stop) is replaced by flags.  Every
 * line a session sends must be a JSON object: the greeting, a "return" or
 * an "error" with a known class; anything else aborts.
 *
 * Built and run by fuzz_qmp.sh (clang, -fsanitize=fuzzer,address,undefined).
 */
#include "qmp.h"
#include "vmm.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vmm_test_devices(struct vm *vm);	/* fake_balloon.c */

static struct vmm_opts opts;
static struct vm vms[2];		/* [1] has the fake balloon */

/* ---- the VM side, as flags ---- */

void vm_pause(struct vm *vm)
{
	atomic_store(&vm->pause_req, true);
}

void vm_resume(struct vm *vm)
{
	atomic_store(&vm->pause_req, false);
}

bool vm_is_paused(struct vm *vm)
{
	return atomic_load(&vm->pause_req);
}

void vm_stop(struct vm *vm, int code, const char *fmt, ...)
{
	(void)fmt;
	vm->exit_code = code;
	atomic_store(&vm->stopping, 1);
}

/* ---- what the session sends must be QMP ---- */

static void check_line(const char *json, size_t len, bool event)
{
	struct json_object *o, *v;

	if (len < 2 || memcmp(json + len - 2, "\r\n", 2))
		abort();
	o = json_tokener_parse(json);
	if (!json_object_is_type(o, json_type_object))
		abort();
	if (event && !json_object_object_get_ex(o, "event", NULL))
		abort();
	if (!event && !json_object_object_get_ex(o, "return", NULL) &&
	    !json_object_object_get_ex(o, "QMP", NULL)) {
		if (!json_object_object_get_ex(o, "error", &v) ||
		    !json_object_object_get_ex(v, "class", NULL) ||
		    !json_object_object_get_ex(v, "desc", NULL))
			abort();
	}
	json_object_put(o);
}

static void send_fn(struct qmp_session *s, const char *json, size_t len)
{
	char *copy = malloc(len + 1);

	(void)s;
	memcpy(copy, json, len);
	copy[len] = 0;
	check_line(copy, len, false);
	free(copy);
}

void monitor_event(struct monitor *m, const char *name, struct json_object *data)
{
	size_t len;
	char *line = qmp_event_line(name, data, &len);

	(void)m;
	if (line)
		check_line(line, len, true);
	free(line);
}

/* ---- setup and one input ---- */

static void make_vm(struct vm *vm)
{
	char err[256];

	vm->opts = &opts;
	vm->vm_fd = -1;
	vm->nr_vcpus = 2;
	vm->gm = guestmem_create(&opts.mem, err, sizeof(err));
	if (!vm->gm) {
		fprintf(stderr, "fuzz_qmp: %s\n", err);
		exit(1);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	opts.memory = 16ULL << 20;
	opts.vcpus = 2;
	opts.mem.mode = GUESTMEM_GMM;
	opts.mem.page_size = 4096;
	opts.mem.nr_nodes = 1;
	opts.mem.nodes[0].size = opts.memory;
	opts.mem.nodes[0].host_node = -1;
	make_vm(&vms[0]);
	make_vm(&vms[1]);
	vmm_test_devices(&vms[1]);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp_session s;
	struct qmp_ctx ctx;
	struct vm *vm;
	size_t step;

	if (!size)
		return 0;
	vm = &vms[data[0] & 1];
	step = (data[0] >> 1) ? (data[0] >> 1) : size;	/* bytes per read */
	atomic_store(&vm->stopping, 0);
	atomic_store(&vm->pause_req, false);
	ctx = (struct qmp_ctx){ .vm = vm, .launched = true };
	if (qmp_session_init(&s, &ctx, send_fn, NULL))
		abort();
	qmp_session_greet(&s);
	for (size_t off = 1; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;

		if (qmp_session_input(&s, (const char *)data + off, n))
			break;
	}
	qmp_session_fini(&s);
	return 0;
}
