/* SPDX-License-Identifier: MIT */
/*
 * vmm/qmp_cmds.c - the QMP commands of gmm-vmm with QEMU's names and reply
 * shapes (QEMU's QAPI schema: run-state, machine, misc, qom, machine-target,
 * virtio-balloon properties), the balloon through balloon_ctl.h, and gmm's
 * own statistics as x-gmm-* commands.  Arguments are checked against each
 * command's list before it runs: unknown, missing and mistyped ones are
 * GenericErrors as QEMU words them.
 */
#include "qmp.h"
#include "vmm.h"
#include <gmm/compact.h>
#include <gmm/guest.h>
#include <gmm/report.h>
#include <gmm/stats.h>
#include <gmm/thread.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BALLOON_PATH		"/machine/peripheral/balloon0"
#define PROP_STATS		"guest-stats"
#define PROP_INTERVAL		"guest-stats-polling-interval"
/* QEMU's bound on the stats polling interval (it is a uint32 timer value). */
#define STATS_INTERVAL_MAX	4294967295LL

enum arg_type { ARG_INT, ARG_STR, ARG_ANY, ARG_BOOL };

struct qmp_arg {
	const char *name;
	enum arg_type type;
	bool optional;			/* false: required */
};

typedef struct json_object *(*qmp_fn)(struct qmp_ctx *c, struct json_object *args,
				      struct qmp_error *err);

struct qmp_cmd {
	const char *name;
	qmp_fn fn;
	const struct qmp_arg *args;	/* NULL-terminated; NULL: none */
};

static struct json_object *empty(void)
{
	return json_object_new_object();
}

static void add(struct json_object *o, const char *key, struct json_object *val)
{
	json_object_object_add(o, key, val);
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	add(o, key, json_object_new_uint64(v));
}

static void event(struct qmp_ctx *c, const char *name, struct json_object *data)
{
	monitor_event(c->mon, name, data);
}

/* ---- run state ---- */

static const char *status(struct qmp_ctx *c)
{
	if (atomic_load(&c->vm->stopping))
		return "shutdown";
	if (!vm_is_paused(c->vm))
		return "running";
	return c->launched ? "paused" : "prelaunch";
}

static struct json_object *query_status(struct qmp_ctx *c, struct json_object *args,
					struct qmp_error *err)
{
	struct json_object *o = json_object_new_object();
	const char *st = status(c);

	(void)args, (void)err;
	add(o, "status", json_object_new_string(st));
	add(o, "running", json_object_new_boolean(!strcmp(st, "running")));
	return o;
}

/* stop: QEMU emits STOP only when the VM was running (not in prelaunch). */
static struct json_object *stop(struct qmp_ctx *c, struct json_object *args,
				struct qmp_error *err)
{
	(void)args, (void)err;
	if (strcmp(status(c), "running"))
		return empty();
	vm_pause(c->vm);
	event(c, "STOP", NULL);
	return empty();
}

static struct json_object *cont(struct qmp_ctx *c, struct json_object *args,
				struct qmp_error *err)
{
	(void)args;
	if (atomic_load(&c->vm->stopping)) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "The VM is shutting down");
		return NULL;
	}
	if (!vm_is_paused(c->vm))
		return empty();
	c->launched = true;
	vm_resume(c->vm);
	event(c, "RESUME", NULL);
	return empty();
}

static struct json_object *quit(struct qmp_ctx *c, struct json_object *args,
				struct qmp_error *err)
{
	(void)args, (void)err;
	if (!c->shutdown_cause)
		c->shutdown_cause = "host-qmp-quit";
	vm_stop(c->vm, VMM_EXIT_OK, "quit by the monitor");
	return empty();
}

/* No ACPI in gmm-vmm: the event is all a guest could be told, as in QEMU
 * with a guest that ignores the power button. */
static struct json_object *system_powerdown(struct qmp_ctx *c, struct json_object *args,
					    struct qmp_error *err)
{
	(void)args, (void)err;
	event(c, "POWERDOWN", NULL);
	return empty();
}

/* gmm-vmm ends on a reset, as QEMU does with -no-reboot. */
static struct json_object *system_reset(struct qmp_ctx *c, struct json_object *args,
					struct qmp_error *err)
{
	(void)args, (void)err;
	if (!c->shutdown_cause)
		c->shutdown_cause = "host-qmp-system-reset";
	vm_stop(c->vm, VMM_EXIT_RESET, "reset by the monitor (system_reset)");
	return empty();
}

const char *qmp_shutdown_reason(const struct qmp_ctx *ctx, int exit_code)
{
	if (ctx->shutdown_cause)
		return ctx->shutdown_cause;
	switch (exit_code) {
	case VMM_EXIT_OK:
	case VMM_EXIT_GUEST_FAIL:
		return "guest-shutdown";
	case VMM_EXIT_RESET:
		return "guest-reset";
	case VMM_EXIT_CRASH:
		return "guest-panic";
	default:
		return exit_code > VMM_EXIT_SIGNAL ? "host-signal" : "host-error";
	}
}

/* ---- machine ---- */

static struct json_object *query_version(struct qmp_ctx *c, struct json_object *args,
					 struct qmp_error *err)
{
	(void)c, (void)args, (void)err;
	return qmp_version();
}

static struct json_object *query_kvm(struct qmp_ctx *c, struct json_object *args,
				     struct qmp_error *err)
{
	struct json_object *o = json_object_new_object();

	(void)args, (void)err;
	add(o, "enabled", json_object_new_boolean(c->vm->vm_fd >= 0));
	add(o, "present", json_object_new_boolean(!access("/dev/kvm", R_OK | W_OK)));
	return o;
}

static struct json_object *query_cpus_fast(struct qmp_ctx *c, struct json_object *args,
					   struct qmp_error *err)
{
	struct json_object *list = json_object_new_array();
	char path[64];

	(void)args, (void)err;
	for (unsigned int i = 0; i < c->vm->nr_vcpus; i++) {
		struct json_object *o = json_object_new_object();
		struct json_object *props = json_object_new_object();

		snprintf(path, sizeof(path), "/machine/unattached/device[%u]", i);
		add(o, "cpu-index", json_object_new_int((int)i));
		add(o, "qom-path", json_object_new_string(path));
		add(o, "thread-id", json_object_new_int(atomic_load(&c->vm->vcpus[i].tid)));
		add(props, "core-id", json_object_new_int(0));
		add(props, "thread-id", json_object_new_int(0));
		add(props, "socket-id", json_object_new_int((int)i));
		add(o, "props", props);
		add(o, "target", json_object_new_string("x86_64"));
		json_object_array_add(list, o);
	}
	return list;
}

/* The virtio-mem devices' backings: the pool on their node, their size. */
static void add_vmem_memdevs(struct qmp_ctx *c, struct json_object *list)
{
	const struct vmm_opts *opts = c->vm->opts;

	for (unsigned int i = 0; i < opts->nr_vmem; i++) {
		struct json_object *o = json_object_new_object();
		char id[64];

		snprintf(id, sizeof(id), "%s-mem", opts->vmem[i].id);
		add(o, "id", json_object_new_string(id));
		add_u64(o, "size", opts->vmem[i].size);
		add(o, "merge", json_object_new_boolean(false));
		add(o, "dump", json_object_new_boolean(true));
		add(o, "prealloc", json_object_new_boolean(opts->vmem[i].prealloc));
		add(o, "share", json_object_new_boolean(true));
		add(o, "host-nodes", json_object_new_array());
		add(o, "policy", json_object_new_string("default"));
		add_u64(o, "x-gmm-node", opts->vmem[i].node);
		add_u64(o, "x-gmm-pool-size", opts->vmem_pool[i]);
		json_object_array_add(list, o);
	}
}

/* QEMU's Memdev, one per guest node; x-gmm-* members are gmm's own. */
static struct json_object *query_memdev(struct qmp_ctx *c, struct json_object *args,
					struct qmp_error *err)
{
	const struct guestmem_cfg *m = &c->vm->opts->mem;
	struct json_object *list = json_object_new_array();
	char id[32];

	(void)args, (void)err;
	for (unsigned int i = 0; i < m->nr_nodes; i++) {
		struct json_object *o = json_object_new_object();
		struct json_object *nodes = json_object_new_array();
		int hn = m->nodes[i].host_node;

		snprintf(id, sizeof(id), "ram-node%u", i);
		if (hn >= 0)
			json_object_array_add(nodes, json_object_new_int(hn));
		add(o, "id", json_object_new_string(id));
		add_u64(o, "size", m->nodes[i].size);
		add(o, "merge", json_object_new_boolean(false));
		add(o, "dump", json_object_new_boolean(true));
		add(o, "prealloc", json_object_new_boolean(m->prealloc));
		add(o, "share", json_object_new_boolean(m->mode == GUESTMEM_GMM));
		add(o, "host-nodes", nodes);
		add(o, "policy", json_object_new_string(hn >= 0 ? "bind" : "default"));
		add_u64(o, "x-gmm-page-size", m->page_size);
		add(o, "x-gmm-mode", json_object_new_string(guestmem_mode_name(m->mode)));
		json_object_array_add(list, o);
	}
	add_vmem_memdevs(c, list);
	return list;
}

/* ---- memory devices (virtio-mem) ---- */

#define PERIPHERAL		"/machine/peripheral/"

static struct vmem *vmem_by_path(struct qmp_ctx *c, const char *path)
{
	struct devices *d = c->vm->dev;

	if (strncmp(path, PERIPHERAL, strlen(PERIPHERAL)))
		return NULL;
	for (unsigned int i = 0; d && i < d->nr_vmem; i++)
		if (!strcmp(vmem_config(d->vmem[i])->id, path + strlen(PERIPHERAL)))
			return d->vmem[i];
	return NULL;
}

/* QEMU's VirtioMEMDeviceInfo; the backing is the pool on the device's node. */
static struct json_object *vmem_info(struct vmem *v)
{
	const struct vmem_cfg *cfg = vmem_config(v);
	struct json_object *o = json_object_new_object();
	struct vmem_counters k;
	uint64_t gpa, size;
	char memdev[64];
	void *hva;

	vmem_region(v, &gpa, &size, &hva);
	vmem_counters(v, &k);
	snprintf(memdev, sizeof(memdev), "/objects/%s-mem", cfg->id);
	add(o, "id", json_object_new_string(cfg->id));
	add_u64(o, "memaddr", gpa);
	add_u64(o, "requested-size", k.requested_bytes);
	add_u64(o, "size", k.plugged_bytes);
	add_u64(o, "max-size", size);
	add_u64(o, "block-size", cfg->block_size);
	add_u64(o, "node", cfg->node);
	add(o, "memdev", json_object_new_string(memdev));
	return o;
}

static struct json_object *query_memory_devices(struct qmp_ctx *c, struct json_object *args,
						struct qmp_error *err)
{
	struct json_object *list = json_object_new_array();
	struct devices *d = c->vm->dev;

	(void)args, (void)err;
	for (unsigned int i = 0; d && i < d->nr_vmem; i++) {
		struct json_object *o = json_object_new_object();

		add(o, "type", json_object_new_string("virtio-mem"));
		add(o, "data", vmem_info(d->vmem[i]));
		json_object_array_add(list, o);
	}
	return list;
}

/* qom-get of requested-size, size, block-size. */
static struct json_object *vmem_get(struct vmem *v, const char *prop, struct qmp_error *err)
{
	struct vmem_counters k;

	vmem_counters(v, &k);
	if (!strcmp(prop, "requested-size"))
		return json_object_new_uint64(k.requested_bytes);
	if (!strcmp(prop, "size"))
		return json_object_new_uint64(k.plugged_bytes);
	if (!strcmp(prop, "block-size"))
		return json_object_new_uint64(vmem_config(v)->block_size);
	qmp_error_set(err, QMP_GENERIC_ERROR, "Property 'virtio-mem.%.64s' not found", prop);
	return NULL;
}

/* qom-set of requested-size, QEMU's checks and words. */
static struct json_object *vmem_set(struct vmem *v, const char *prop, struct json_object *val,
				    struct qmp_error *err)
{
	const struct vmem_cfg *cfg = vmem_config(v);
	int64_t bytes;

	if (strcmp(prop, "requested-size")) {
		if (!strcmp(prop, "size") || !strcmp(prop, "block-size"))
			qmp_error_set(err, QMP_GENERIC_ERROR, "Insufficient permission to perform this operation");
		else
			qmp_error_set(err, QMP_GENERIC_ERROR, "Property 'virtio-mem.%.64s' not found", prop);
		return NULL;
	}
	if (!json_object_is_type(val, json_type_int) || (bytes = json_object_get_int64(val)) < 0) {
		qmp_error_set(err, QMP_GENERIC_ERROR,
			      "Invalid parameter type for 'requested-size', expected: size");
		return NULL;
	}
	if ((uint64_t)bytes > cfg->size) {
		qmp_error_set(err, QMP_GENERIC_ERROR,
			      "'requested-size' property exceeds the total size ('size' property)");
		return NULL;
	}
	if ((uint64_t)bytes % cfg->block_size) {
		qmp_error_set(err, QMP_GENERIC_ERROR,
			      "'requested-size' property has to be multiple of 'block-size' (0x%llx)",
			      (unsigned long long)cfg->block_size);
		return NULL;
	}
	vmem_set_requested(v, (uint64_t)bytes);
	return empty();
}

/* ---- balloon ---- */

static bool balloon_errno(int ret, struct qmp_error *err)
{
	if (!ret)
		return false;
	if (ret == -ENODEV)
		qmp_error_set(err, QMP_DEVICE_NOT_ACTIVE, "No balloon device has been activated");
	else if (ret == -EINVAL)
		qmp_error_set(err, QMP_GENERIC_ERROR,
			      "Parameter 'value' expects a size from 1 byte to the guest's RAM");
	else
		qmp_error_set(err, QMP_GENERIC_ERROR, "balloon: %s", strerror(-ret));
	return true;
}

static struct json_object *balloon(struct qmp_ctx *c, struct json_object *args,
				   struct qmp_error *err)
{
	struct json_object *v = json_object_object_get(args, "value");

	if (json_object_get_int64(v) <= 0) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "Parameter 'value' expects a size");
		return NULL;
	}
	if (balloon_errno(balloon_ctl_set_target(c->vm, json_object_get_uint64(v)), err))
		return NULL;
	return empty();
}

static struct json_object *query_balloon(struct qmp_ctx *c, struct json_object *args,
					 struct qmp_error *err)
{
	struct json_object *o;
	uint64_t actual;

	(void)args;
	if (balloon_errno(balloon_ctl_get_actual(c->vm, &actual), err))
		return NULL;
	o = json_object_new_object();
	add_u64(o, "actual", actual);
	return o;
}

/* The balloon's QOM path and property, or NULL with the error QEMU gives. */
static const char *balloon_prop(struct qmp_ctx *c, struct json_object *args,
				struct qmp_error *err)
{
	const char *path = json_object_get_string(json_object_object_get(args, "path"));
	const char *prop = json_object_get_string(json_object_object_get(args, "property"));

	if (strcmp(path, BALLOON_PATH)) {
		qmp_error_set(err, QMP_DEVICE_NOT_FOUND, "Device '%.128s' not found", path);
		return NULL;
	}
	if (!balloon_ctl_present(c->vm)) {
		qmp_error_set(err, QMP_DEVICE_NOT_ACTIVE, "No balloon device has been activated");
		return NULL;
	}
	if (strcmp(prop, PROP_STATS) && strcmp(prop, PROP_INTERVAL)) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "Property 'virtio-balloon-device.%.64s' not found",
			      prop);
		return NULL;
	}
	return prop;
}

/* {"stats": {"stat-...": N or -1 when the guest has not reported it},
 *  "last-update": seconds} */
static struct json_object *guest_stats(struct qmp_ctx *c, struct qmp_error *err)
{
	struct balloon_stats st;
	struct json_object *o, *stats;

	if (balloon_errno(balloon_ctl_get_stats(c->vm, &st), err))
		return NULL;
	o = json_object_new_object();
	stats = json_object_new_object();
	for (int i = 0; i < BALLOON_NR_STATS; i++) {
		bool valid = st.valid & (1u << i);

		add(stats, balloon_stat_names[i], valid ? json_object_new_uint64(st.value[i]) :
			   json_object_new_int(-1));
	}
	add(o, "stats", stats);
	add(o, "last-update", json_object_new_int64(st.last_update));
	return o;
}

static struct json_object *qom_get(struct qmp_ctx *c, struct json_object *args,
				   struct qmp_error *err)
{
	struct vmem *v = vmem_by_path(c, json_object_get_string(json_object_object_get(args, "path")));
	const char *prop;
	int64_t secs;

	if (v)
		return vmem_get(v, json_object_get_string(json_object_object_get(args, "property")),
				err);
	prop = balloon_prop(c, args, err);
	if (!prop)
		return NULL;
	if (!strcmp(prop, PROP_STATS))
		return guest_stats(c, err);
	if (balloon_errno(balloon_ctl_get_stats_interval(c->vm, &secs), err))
		return NULL;
	return json_object_new_int64(secs);
}

static struct json_object *qom_set(struct qmp_ctx *c, struct json_object *args,
				   struct qmp_error *err)
{
	struct vmem *m = vmem_by_path(c, json_object_get_string(json_object_object_get(args, "path")));
	struct json_object *v = json_object_object_get(args, "value");
	const char *prop;
	int64_t secs;

	if (m)
		return vmem_set(m, json_object_get_string(json_object_object_get(args, "property")),
				v, err);
	prop = balloon_prop(c, args, err);
	if (!prop)
		return NULL;
	if (!strcmp(prop, PROP_STATS)) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "Insufficient permission to perform this operation");
		return NULL;
	}
	if (!json_object_is_type(v, json_type_int)) {
		qmp_error_set(err, QMP_GENERIC_ERROR,
			      "Invalid parameter type for '" PROP_INTERVAL "', expected: integer");
		return NULL;
	}
	secs = json_object_get_int64(v);	/* INT64_MAX for larger values */
	if (secs < 0) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "timer value must be greater than zero");
		return NULL;
	}
	if (secs > STATS_INTERVAL_MAX) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "timer value is too big");
		return NULL;
	}
	if (balloon_errno(balloon_ctl_set_stats_interval(c->vm, secs), err))
		return NULL;
	return empty();
}

/* ---- gmm's statistics ---- */

static struct gmm_pool *pool_of(struct qmp_ctx *c, struct qmp_error *err)
{
	struct gmm_pool *pool = guestmem_gmm_pool(c->vm->gm);

	if (!pool)
		qmp_error_set(err, QMP_GENERIC_ERROR, "guest RAM is not on gmm (--memory-mode %s)",
			      guestmem_mode_name(c->vm->opts->mem.mode));
	return pool;
}

typedef int (*gmm_render_fn)(struct gmm_pool *, enum gmm_stat_format, char **);

/* A gmm_stat_* JSON rendering as one object. */
static struct json_object *rendered(struct qmp_ctx *c, gmm_render_fn fn,
				    struct qmp_error *err)
{
	struct gmm_pool *pool = pool_of(c, err);
	struct json_object *o;
	char *text = NULL;
	int ret;

	if (!pool)
		return NULL;
	ret = fn(pool, GMM_STAT_JSON, &text);
	if (ret) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "gmm statistics: %s", strerror(-ret));
		return NULL;
	}
	o = json_tokener_parse(text);
	free(text);
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		qmp_error_set(err, QMP_GENERIC_ERROR, "gmm statistics: not a JSON object");
		return NULL;
	}
	return o;
}

#define RENDERED(fn_name, render)							\
static struct json_object *fn_name(struct qmp_ctx *c, struct json_object *args,	\
				   struct qmp_error *err)			\
{											\
	(void)args;									\
	return rendered(c, render, err);						\
}

RENDERED(x_buddyinfo, gmm_stat_buddyinfo)
RENDERED(x_pagetypeinfo, gmm_stat_pagetypeinfo)
RENDERED(x_zoneinfo, gmm_stat_zoneinfo)
RENDERED(x_extfrag, gmm_stat_extfrag)

static struct json_object *x_pcp_stats(struct qmp_ctx *c, struct json_object *args,
				       struct qmp_error *err)
{
	struct gmm_pool *pool = pool_of(c, err);
	struct gmm_pcp_stats st;
	struct json_object *o;

	(void)args;
	if (!pool)
		return NULL;	/* pool_of() said why */
	if (gmm_pcp_stats(pool, &st)) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "%s", gmm_last_error());
		return NULL;
	}
	o = json_object_new_object();
	add_u64(o, "threads", st.threads);
	add_u64(o, "cached", st.cached);
	add_u64(o, "alloc-hit", st.alloc_hit);
	add_u64(o, "alloc-miss", st.alloc_miss);
	add_u64(o, "alloc-fail", st.alloc_fail);
	add_u64(o, "free", st.free);
	add_u64(o, "refill", st.refill);
	add_u64(o, "refill-frames", st.refill_frames);
	add_u64(o, "drain", st.drain);
	add_u64(o, "drain-frames", st.drain_frames);
	add_u64(o, "remote-drain", st.remote_drain);
	add_u64(o, "remote-frames", st.remote_frames);
	add_u64(o, "drain-all", st.drain_all);
	add_u64(o, "bulk-alloc", st.bulk_alloc);
	add_u64(o, "hit-permille", st.hit_permille);
	return o;
}

static struct json_object *x_report_stats(struct qmp_ctx *c, struct json_object *args,
					  struct qmp_error *err)
{
	struct gmm_pool *pool = pool_of(c, err);
	struct gmm_report_stats st;
	struct json_object *o;

	(void)args;
	if (!pool)
		return NULL;	/* pool_of() said why */
	if (gmm_report_stats(pool, &st)) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "%s", gmm_last_error());
		return NULL;
	}
	o = json_object_new_object();
	add_u64(o, "free-reported", st.free_reported);
	add_u64(o, "free-unreported", st.free_unreported);
	add_u64(o, "reported-bytes", st.reported_bytes);
	add_u64(o, "reported-blocks", st.reported_blocks);
	add_u64(o, "passes", st.passes);
	add_u64(o, "errors", st.errors);
	add(o, "order", json_object_new_int((int)st.order));
	add(o, "running", json_object_new_boolean(st.running));
	return o;
}

static struct json_object *khugepaged_info(struct qmp_ctx *c, struct gmm_pool *pool,
					   struct qmp_error *err);

/* Guest RAM figures in every mode; the 2 MiB share of the backed RAM; gmm: khugepaged's. */
static struct json_object *x_guest_stats(struct qmp_ctx *c, struct json_object *args,
					 struct qmp_error *err)
{
	struct json_object *o = json_object_new_object();
	struct guestmem_stats st;
	uint64_t backed;

	(void)args, (void)err;
	guestmem_get_stats(c->vm->gm, &st);
	backed = st.backed * st.page_size;
	add(o, "mode", json_object_new_string(guestmem_mode_name(c->vm->opts->mem.mode)));
	add_u64(o, "ram-bytes", c->vm->opts->memory);
	add_u64(o, "backed-bytes", backed);
	add_u64(o, "faults", st.faults);
	add_u64(o, "discards", st.discards);
	add_u64(o, "page-size", st.page_size);
	add_u64(o, "huge-faults", st.huge_faults);
	add_u64(o, "huge-bytes", st.huge_bytes);
	add_u64(o, "huge-permille", backed ? st.huge_bytes * 1000 / backed : 0);
	if (guestmem_gmm_pool(c->vm->gm))
		add(o, "khugepaged", khugepaged_info(c, guestmem_gmm_pool(c->vm->gm), err));
	return o;
}

/* Migrate every unpinned guest page now, then compact every zone. */
static struct json_object *x_compact(struct qmp_ctx *c, struct json_object *args,
				     struct qmp_error *err)
{
	struct gmm_pool *pool = pool_of(c, err);
	struct gmm_guest *g = guestmem_gmm_guest(c->vm->gm);
	struct gmm_compact_events mid, after;
	struct gmm_guest_migrate_result mr;
	struct gmm_wstop_stats ws;
	struct json_object *o;
	uint64_t t0 = now_ns();

	(void)args;
	if (!pool)
		return NULL;	/* pool_of() said why */
	pthread_mutex_lock(&c->vm->migrate_lock);
	if (atomic_load(&c->vm->stopping)) {
		pthread_mutex_unlock(&c->vm->migrate_lock);
		qmp_error_set(err, QMP_GENERIC_ERROR, "the VM is stopping: nothing is migrated");
		return NULL;
	}
	if (gmm_guest_migrate(g, 0, UINT64_MAX, 0, &mr) ||
	    gmm_compact_stats(pool, &mid) || gmm_compact_pool(pool) ||
	    gmm_compact_stats(pool, &after) || gmm_guest_wstop_stats(g, &ws)) {
		pthread_mutex_unlock(&c->vm->migrate_lock);
		qmp_error_set(err, QMP_GENERIC_ERROR, "%s", gmm_last_error());
		return NULL;
	}
	pthread_mutex_unlock(&c->vm->migrate_lock);
	o = json_object_new_object();
	add_u64(o, "migrated-pages", mr.pages);
	add_u64(o, "migrated-units", mr.units);
	add_u64(o, "pinned", mr.pinned);
	add_u64(o, "busy", mr.busy);
	add_u64(o, "no-target", mr.nomem);
	add_u64(o, "compacted-pages", after.pgmigrate_success - mid.pgmigrate_success);
	add_u64(o, "pgmigrate-success", after.pgmigrate_success);
	add_u64(o, "pgmigrate-fail", after.pgmigrate_fail);
	add(o, "write-stop", json_object_new_string(gmm_write_stop_name(ws.mode)));
	add(o, "write-stop-reason", json_object_new_string(ws.why));
	add_u64(o, "stop-batches", ws.batches);
	add_u64(o, "stop-fallbacks", ws.fallbacks);
	add_u64(o, "stop-refused", ws.refused);
	add_u64(o, "stop-ns-mean", ws.batches ? ws.stop_ns / ws.batches : 0);
	add_u64(o, "stop-ns-max", ws.stop_ns_max);
	add_u64(o, "ns", now_ns() - t0);
	add(o, "khugepaged", khugepaged_info(c, pool, err));
	return o;
}

/* The pool's khugepaged counters and controls (x-gmm-khugepaged, x-gmm-guest-stats). */
static struct json_object *khugepaged_info(struct qmp_ctx *c, struct gmm_pool *pool,
					   struct qmp_error *err)
{
	struct gmm_khugepaged_config kc;
	struct gmm_collapse_stats st;
	struct json_object *o;

	if (gmm_khugepaged_stats(pool, &st, &kc)) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "%s", gmm_last_error());
		return NULL;
	}
	o = json_object_new_object();
	add(o, "running", json_object_new_boolean(guestmem_khugepaged_running(c->vm->gm)));
	add_u64(o, "pages_to_scan", kc.pages_to_scan);
	add_u64(o, "scan_sleep_millisecs", kc.scan_sleep_millisecs);
	add_u64(o, "alloc_sleep_millisecs", kc.alloc_sleep_millisecs);
	add_u64(o, "max_ptes_none", kc.max_ptes_none);
	add_u64(o, "pages_scanned", st.pages_scanned);
	add_u64(o, "full_scans", st.full_scans);
	add_u64(o, "thp_collapse_alloc", st.thp_collapse_alloc);
	add_u64(o, "thp_collapse_alloc_failed", st.thp_collapse_alloc_failed);
	add_u64(o, "pages_collapsed", st.pages_collapsed);
	add_u64(o, "pages_added", st.pages_added);
	return o;
}

/* One control of x-gmm-khugepaged, if given: false on a bad value. */
static bool khugepaged_control(struct json_object *args, const char *name, unsigned int *to,
			       bool *given, struct qmp_error *err)
{
	struct json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(args, name, &v))
		return true;
	x = json_object_get_int64(v);
	if (x < 0 || x > UINT32_MAX) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "Parameter '%s' expects 0 to %u", name,
			      UINT32_MAX);
		return false;
	}
	*to = (unsigned int)x;
	*given = true;
	return true;
}

/*
 * Start (enable true), change (controls given) or stop (enable false) the
 * pool's khugepaged; the reply is its state and counters either way.
 */
static struct json_object *x_khugepaged(struct qmp_ctx *c, struct json_object *args,
					struct qmp_error *err)
{
	struct gmm_pool *pool = pool_of(c, err);
	struct gmm_khugepaged_config kc;
	struct gmm_collapse_stats st;
	struct json_object *en = NULL;
	bool given = false, ok;
	int ret = 0;

	if (!pool)
		return NULL;	/* pool_of() said why */
	json_object_object_get_ex(args, "enable", &en);
	pthread_mutex_lock(&c->vm->migrate_lock);
	gmm_khugepaged_config_init(&kc);
	if (guestmem_khugepaged_running(c->vm->gm))
		gmm_khugepaged_stats(pool, &st, &kc);
	ok = khugepaged_control(args, "pages_to_scan", &kc.pages_to_scan, &given, err) &&
	     khugepaged_control(args, "scan_sleep_millisecs", &kc.scan_sleep_millisecs, &given,
				err) &&
	     khugepaged_control(args, "alloc_sleep_millisecs", &kc.alloc_sleep_millisecs,
				&given, err) &&
	     khugepaged_control(args, "max_ptes_none", &kc.max_ptes_none, &given, err);
	if (ok && atomic_load(&c->vm->stopping) && (en || given)) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "the VM is stopping");
		ok = false;
	} else if (ok && en && !json_object_get_boolean(en) && given) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "controls given with enable false");
		ok = false;
	} else if (ok && !en && given && !guestmem_khugepaged_running(c->vm->gm)) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "khugepaged is not running (enable true starts it)");
		ok = false;
	}
	if (ok && (en || given))
		ret = guestmem_khugepaged(c->vm->gm, en ? json_object_get_boolean(en) : true, &kc);
	pthread_mutex_unlock(&c->vm->migrate_lock);
	if (ok && ret) {
		qmp_error_set(err, QMP_GENERIC_ERROR, "%s", gmm_last_error());
		ok = false;
	}
	return ok ? khugepaged_info(c, pool, err) : NULL;
}

/* ---- the table ---- */

static const struct qmp_arg balloon_args[] = { { "value", ARG_INT, false }, { NULL, 0, false } };
static const struct qmp_arg khugepaged_args[] = {
	{ "enable", ARG_BOOL, true }, { "pages_to_scan", ARG_INT, true },
	{ "scan_sleep_millisecs", ARG_INT, true }, { "alloc_sleep_millisecs", ARG_INT, true },
	{ "max_ptes_none", ARG_INT, true }, { NULL, 0, false },
};
static const struct qmp_arg qom_get_args[] = {
	{ "path", ARG_STR, false }, { "property", ARG_STR, false }, { NULL, 0, false },
};
static const struct qmp_arg qom_set_args[] = {
	{ "path", ARG_STR, false }, { "property", ARG_STR, false }, { "value", ARG_ANY, false }, { NULL, 0, false },
};

static struct json_object *query_commands(struct qmp_ctx *c, struct json_object *args,
					  struct qmp_error *err);

static const struct qmp_cmd commands[] = {
	{ "qmp_capabilities", NULL, NULL },	/* qmp.c answers it */
	{ "query-status", query_status, NULL },
	{ "stop", stop, NULL },
	{ "cont", cont, NULL },
	{ "quit", quit, NULL },
	{ "system_powerdown", system_powerdown, NULL },
	{ "system_reset", system_reset, NULL },
	{ "query-version", query_version, NULL },
	{ "query-commands", query_commands, NULL },
	{ "query-kvm", query_kvm, NULL },
	{ "query-cpus-fast", query_cpus_fast, NULL },
	{ "query-memdev", query_memdev, NULL },
	{ "query-memory-devices", query_memory_devices, NULL },
	{ "balloon", balloon, balloon_args },
	{ "query-balloon", query_balloon, NULL },
	{ "qom-get", qom_get, qom_get_args },
	{ "qom-set", qom_set, qom_set_args },
	{ "x-gmm-buddyinfo", x_buddyinfo, NULL },
	{ "x-gmm-pagetypeinfo", x_pagetypeinfo, NULL },
	{ "x-gmm-zoneinfo", x_zoneinfo, NULL },
	{ "x-gmm-extfrag", x_extfrag, NULL },
	{ "x-gmm-pcp-stats", x_pcp_stats, NULL },
	{ "x-gmm-report-stats", x_report_stats, NULL },
	{ "x-gmm-guest-stats", x_guest_stats, NULL },
	{ "x-gmm-compact", x_compact, NULL },
	{ "x-gmm-khugepaged", x_khugepaged, khugepaged_args },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static struct json_object *query_commands(struct qmp_ctx *c, struct json_object *args,
					  struct qmp_error *err)
{
	struct json_object *list = json_object_new_array();

	(void)c, (void)args, (void)err;
	for (size_t i = 0; i < NR_COMMANDS; i++) {
		struct json_object *o = json_object_new_object();

		add(o, "name", json_object_new_string(commands[i].name));
		json_object_array_add(list, o);
	}
	return list;
}

static const struct qmp_cmd *find(const char *name)
{
	for (size_t i = 0; i < NR_COMMANDS; i++) {
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	}
	return NULL;
}

bool qmp_command_exists(const char *name)
{
	return find(name) != NULL;
}

static const struct qmp_arg *find_arg(const struct qmp_arg *a, const char *name)
{
	for (; a && a->name; a++) {
		if (!strcmp(a->name, name))
			return a;
	}
	return NULL;
}

static const char *const type_names[] = {
	[ARG_INT] = "integer", [ARG_STR] = "string", [ARG_BOOL] = "boolean",
};

/* Unknown, mistyped and missing arguments, as QEMU's visitors word them. */
static bool check_args(const struct qmp_cmd *cmd, struct json_object *args,
		       struct qmp_error *err)
{
	json_object_object_foreach(args, key, val) {
		const struct qmp_arg *a = find_arg(cmd->args, key);
		bool ok;

		if (!a) {
			qmp_error_set(err, QMP_GENERIC_ERROR, "Parameter '%.64s' is unexpected", key);
			return false;
		}
		ok = a->type == ARG_ANY ||
		     (a->type == ARG_INT && json_object_is_type(val, json_type_int)) ||
		     (a->type == ARG_STR && json_object_is_type(val, json_type_string)) ||
		     (a->type == ARG_BOOL && json_object_is_type(val, json_type_boolean));
		if (!ok) {
			qmp_error_set(err, QMP_GENERIC_ERROR,
				      "Invalid parameter type for '%s', expected: %s",
				      a->name, type_names[a->type]);
			return false;
		}
	}
	for (const struct qmp_arg *a = cmd->args; a && a->name; a++) {
		if (!a->optional && !json_object_object_get_ex(args, a->name, NULL)) {
			qmp_error_set(err, QMP_GENERIC_ERROR, "Parameter '%s' is missing", a->name);
			return false;
		}
	}
	return true;
}

struct json_object *qmp_dispatch(struct qmp_ctx *ctx, const char *name,
				 struct json_object *args, struct qmp_error *err)
{
	const struct qmp_cmd *cmd = find(name);

	if (!cmd || !cmd->fn) {
		qmp_error_set(err, QMP_COMMAND_NOT_FOUND, "The command %.64s has not been found",
			      name);
		return NULL;
	}
	if (!check_args(cmd, args, err))
		return NULL;
	return cmd->fn(ctx, args, err);
}
