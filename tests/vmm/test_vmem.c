/* SPDX-License-Identifier: MIT */
/*
 * tests/vmm/test_vmem.c - device-level tests of virtio-mem through gmm-vmm
 * --qtest (no vCPU, no /dev/kvm): the test plays Linux's virtio_mem driver
 * (requests on queue 0, the configuration), and the guest's accesses to
 * device memory (vmem-peek/poke). Pool frames and host memory are checked
 * through the `mem` command, the device's state through `vmem-info`.
 * gmm-vmm's path comes in GMM_VMM.
 */
#include "../harness.h"
#include "../sysfs_long.h"
#include "balloon.h"
#include "vmem.h"
#include "qtest_lib.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MIB		(1ULL << 20)
#define CHUNK_FRAMES	512		/* frames of a 2 MiB chunk */

static const char *vmm_path(void)
{
	const char *p = getenv("GMM_VMM");

	return p ? p : "vmm/gmm-vmm";
}

struct dev {
	struct qts *q;
	struct vdev d;
	uint64_t addr, block;
	uint64_t req, resp;		/* the driver's request and response buffers */
};

static uint64_t cfg64(struct dev *v, unsigned int off)
{
	return vd_cfg64(&v->d, off);
}

static uint64_t info(struct dev *v, const char *key)
{
	qts_cmd(v->q, "vmem-info 0");
	return qts_kv(v->q, key);
}

static uint64_t mem_stat(struct qts *q, const char *key)
{
	qts_cmd(q, "mem");
	return qts_kv(q, key);
}

/* Start gmm-vmm with one virtio-mem device and bring its driver up. */
static void up(struct dev *v, const char *args)
{
	memset(v, 0, sizeof(*v));
	v->q = qts_start(vmm_path(), args);
	vd_vmem_up(v->q, &v->d);
	v->addr = cfg64(v, VMEM_CFG_ADDR);
	v->block = cfg64(v, VMEM_CFG_BLOCK_SIZE);
	v->req = vd_alloc(&v->d, VMEM_REQ_SIZE, 8);
	v->resp = vd_alloc(&v->d, 16, 8);
}

static int down(struct dev *v)
{
	return qts_quit(v->q);
}

/* One request; the response type, *state its state. -1: no response. */
static int request(struct dev *v, uint16_t type, uint64_t gpa, uint16_t nb, uint16_t *state)
{
	return vd_vmem_request(&v->d, v->req, v->resp, type, gpa, nb, state);
}

static int plug(struct dev *v, uint64_t off, uint16_t nb)
{
	return request(v, VIRTIO_MEM_REQ_PLUG, v->addr + off, nb, NULL);
}

static int unplug(struct dev *v, uint64_t off, uint16_t nb)
{
	return request(v, VIRTIO_MEM_REQ_UNPLUG, v->addr + off, nb, NULL);
}

static int state(struct dev *v, uint64_t off, uint16_t nb)
{
	uint16_t s = 0xffff;

	if (request(v, VIRTIO_MEM_REQ_STATE, v->addr + off, nb, &s) != VIRTIO_MEM_RESP_ACK)
		return -1;
	return s;
}

static bool peek_fails(struct dev *v, uint64_t off)
{
	return !strncmp(qts_cmd(v->q, "vmem-peek 0 %llu", (unsigned long long)off), "ERR", 3);
}

/* The device's identity and configuration as Linux's driver reads it. */
static void t_config(void)
{
	struct dev v;
	uint64_t f;

	up(&v, "--memory 64M --virtio-mem id=vm0,size=256M,requested-size=32M");
	f = vd_device_features(&v.d);
	CHECK(f & 1ULL << VIRTIO_F_VERSION_1);
	CHECK(f & 1ULL << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE);
	CHECK(!(f & 1ULL << VIRTIO_MEM_F_ACPI_PXM));
	CHECK_EQ(v.block, 2 * MIB);
	CHECK_EQ(vd_cfg_read(&v.d, VMEM_CFG_NODE_ID, 2), 0);
	CHECK(v.addr >= 4ULL << 30);			/* above RAM and the hole */
	CHECK_EQ(v.addr % (128 * MIB), 0);		/* Linux's memory blocks */
	CHECK_EQ(cfg64(&v, VMEM_CFG_REGION_SIZE), 256 * MIB);
	CHECK_EQ(cfg64(&v, VMEM_CFG_USABLE_SIZE), 256 * MIB);	/* 32M + room, capped */
	CHECK_EQ(cfg64(&v, VMEM_CFG_PLUGGED_SIZE), 0);
	CHECK_EQ(cfg64(&v, VMEM_CFG_REQUESTED_SIZE), 32 * MIB);
	/* the configuration is read-only */
	vd_cfg_write(&v.d, VMEM_CFG_REQUESTED_SIZE, 4, 0x12345678);
	CHECK_EQ(cfg64(&v, VMEM_CFG_REQUESTED_SIZE), 32 * MIB);
	/* the region is not guest RAM */
	CHECK(!strncmp(qts_cmd(v.q, "read %llu 8", (unsigned long long)v.addr), "ERR", 3));
	CHECK_EQ(down(&v), 0);
}

/* Plug, state, touch, unplug, unplug all: pool frames follow exactly. */
static void t_plug_unplug(void)
{
	struct dev v;
	uint64_t free0, free1;

	up(&v, "--memory 64M --virtio-mem id=vm0,size=256M,requested-size=64M");
	free0 = mem_stat(v.q, "pool_free");
	CHECK(peek_fails(&v, 0));			/* unplugged: inaccessible */
	CHECK_EQ(plug(&v, 0, 4), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(plug(&v, 16 * MIB, 2), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(mem_stat(v.q, "pool_free"), free0 - 6 * CHUNK_FRAMES);
	CHECK_EQ(cfg64(&v, VMEM_CFG_PLUGGED_SIZE), 12 * MIB);
	CHECK_EQ(info(&v, "plugged"), 12 * MIB);
	CHECK_EQ(state(&v, 0, 4), VIRTIO_MEM_STATE_PLUGGED);
	CHECK_EQ(state(&v, 8 * MIB, 4), VIRTIO_MEM_STATE_UNPLUGGED);
	CHECK_EQ(state(&v, 0, 10), VIRTIO_MEM_STATE_MIXED);
	/* plugged memory holds what the guest writes */
	qts_ok(v.q, "vmem-poke 0 %llu 0x5a", 3 * MIB + 17);
	CHECK_EQ(qts_val(v.q, "vmem-peek 0 %llu", 3 * MIB + 17), 0x5a);
	CHECK(peek_fails(&v, 8 * MIB));
	CHECK_EQ(unplug(&v, 2 * MIB, 2), VIRTIO_MEM_RESP_ACK);
	CHECK(peek_fails(&v, 3 * MIB + 17));		/* inaccessible again */
	CHECK_EQ(mem_stat(v.q, "pool_free"), free0 - 4 * CHUNK_FRAMES);
	CHECK_EQ(state(&v, 0, 4), VIRTIO_MEM_STATE_MIXED);
	CHECK_EQ(request(&v, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(cfg64(&v, VMEM_CFG_PLUGGED_SIZE), 0);
	CHECK_EQ(state(&v, 0, 128), VIRTIO_MEM_STATE_UNPLUGGED);
	CHECK_EQ(mem_stat(v.q, "pool_free"), free0);	/* nothing leaked */
	free1 = info(&v, "plugs");
	CHECK_EQ(free1, 2);
	CHECK_EQ(info(&v, "unplugs"), 1);
	CHECK_EQ(info(&v, "unplug_alls"), 1);
	CHECK_EQ(down(&v), 0);
}

/* Hostile requests: ERROR (or NACK), nothing changes, the device lives. */
static void t_hostile(void)
{
	struct dev v;
	uint64_t free0;
	uint8_t junk[VMEM_REQ_SIZE] = { 0 };
	struct vd_buf shortresp[2];
	uint32_t len = 99;
	int head;

	up(&v, "--memory 64M --virtio-mem id=vm0,size=1G,block-size=4M,requested-size=64M");
	free0 = mem_stat(v.q, "pool_free");
	CHECK_EQ(v.block, 4 * MIB);
	CHECK_EQ(cfg64(&v, VMEM_CFG_USABLE_SIZE), 384 * MIB);	/* 128M + 256M room */
	CHECK_EQ(plug(&v, 2 * MIB, 1), VIRTIO_MEM_RESP_ERROR);	/* unaligned */
	CHECK_EQ(request(&v, VIRTIO_MEM_REQ_PLUG, v.addr - 4 * MIB, 1, NULL),
		 VIRTIO_MEM_RESP_ERROR);			/* below the region */
	CHECK_EQ(request(&v, VIRTIO_MEM_REQ_PLUG, 0, 1, NULL), VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(plug(&v, 0, 0), VIRTIO_MEM_RESP_ERROR);	/* no blocks */
	CHECK_EQ(plug(&v, 380 * MIB, 2), VIRTIO_MEM_RESP_ERROR); /* past usable */
	CHECK_EQ(plug(&v, 1024 * MIB, 1), VIRTIO_MEM_RESP_ERROR); /* past the region */
	CHECK_EQ(plug(&v, 0, 65535), VIRTIO_MEM_RESP_ERROR);	/* 256 GiB */
	CHECK_EQ(request(&v, VIRTIO_MEM_REQ_PLUG, UINT64_MAX - 3 * MIB, 1, NULL),
		 VIRTIO_MEM_RESP_ERROR);			/* wraps */
	CHECK_EQ(state(&v, 380 * MIB, 2), -1);			/* STATE validates too */
	CHECK_EQ(request(&v, 7, v.addr, 1, NULL), VIRTIO_MEM_RESP_ERROR); /* no such type */
	CHECK_EQ(unplug(&v, 0, 1), VIRTIO_MEM_RESP_ERROR);	/* not plugged */
	CHECK_EQ(plug(&v, 0, 17), VIRTIO_MEM_RESP_NACK);	/* past requested (64M) */
	CHECK_EQ(plug(&v, 8 * MIB, 2), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(plug(&v, 4 * MIB, 2), VIRTIO_MEM_RESP_ERROR);	/* overlapping */
	CHECK_EQ(plug(&v, 12 * MIB, 1), VIRTIO_MEM_RESP_ERROR);	/* already plugged */
	CHECK_EQ(unplug(&v, 4 * MIB, 2), VIRTIO_MEM_RESP_ERROR); /* partly plugged */
	CHECK_EQ(info(&v, "plugged"), 8 * MIB);
	/* a response buffer too short for the answer: nothing written */
	shortresp[0] = (struct vd_buf){ v.req, VMEM_REQ_SIZE, false };
	shortresp[1] = (struct vd_buf){ v.resp, 4, true };
	qts_memwrite(v.q, v.req, junk, sizeof(junk));
	head = vd_add(&v.d, 0, shortresp, 2);
	CHECK_EQ(vd_used(&v.d, 0, &len), head);
	CHECK_EQ(len, 0);
	/* a request shorter than a request: ERROR */
	shortresp[0].len = 8;
	shortresp[1].len = VMEM_RESP_SIZE;
	head = vd_add(&v.d, 0, shortresp, 2);
	CHECK_EQ(vd_used(&v.d, 0, &len), head);
	CHECK_EQ(len, VMEM_RESP_SIZE);
	CHECK_EQ(qts_readm(v.q, 2, v.resp), VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(vd_status(&v.d) & VIRTIO_STATUS_NEEDS_RESET, 0);
	CHECK_EQ(info(&v, "broken"), 0);
	CHECK_EQ(mem_stat(v.q, "pool_free"), free0 - 4 * CHUNK_FRAMES);
	/* a driver reset keeps the blocks' state */
	vd_set_status(&v.d, 0);
	CHECK_EQ(info(&v, "plugged"), 8 * MIB);
	CHECK_EQ(down(&v), 0);
}

/* The pool cannot back the plug: NACK, nothing held, the device goes on. */
static void t_pool_short(void)
{
	struct dev v;
	uint64_t free0;

	up(&v, "--memory 64M --virtio-mem id=vm0,size=512M,requested-size=512M,x-pool-size=0");
	free0 = mem_stat(v.q, "pool_free");
	CHECK(free0 < 128 * MIB / 4096);	/* RAM's frames and headroom only */
	CHECK_EQ(plug(&v, 0, 64), VIRTIO_MEM_RESP_NACK);	/* 128 MiB */
	CHECK_EQ(mem_stat(v.q, "pool_free"), free0);	/* all or nothing */
	CHECK_EQ(info(&v, "plugged"), 0);
	CHECK_EQ(info(&v, "nacks"), 1);
	CHECK_EQ(state(&v, 0, 64), VIRTIO_MEM_STATE_UNPLUGGED);
	CHECK_EQ(plug(&v, 0, 4), VIRTIO_MEM_RESP_ACK);	/* what the pool has */
	CHECK_EQ(mem_stat(v.q, "pool_free"), free0 - 4 * CHUNK_FRAMES);
	CHECK_EQ(down(&v), 0);
}

/* requested-size from the host: configuration, interrupt, usable region. */
static void t_requested(void)
{
	struct dev v;
	uint8_t gen;

	up(&v, "--memory 64M --virtio-mem id=vm0,size=1G");
	CHECK_EQ(cfg64(&v, VMEM_CFG_REQUESTED_SIZE), 0);
	CHECK_EQ(cfg64(&v, VMEM_CFG_USABLE_SIZE), 256 * MIB);
	CHECK_EQ(plug(&v, 0, 1), VIRTIO_MEM_RESP_NACK);
	gen = (uint8_t)qts_readm(v.q, 1, v.d.common + VIRTIO_PCI_COMMON_CFGGENERATION);
	vd_isr(&v.d);
	qts_ok(v.q, "vmem-requested 0 %llu", 512 * MIB);
	CHECK(vd_isr(&v.d) & VIRTIO_ISR_CONFIG);
	CHECK(gen != (uint8_t)qts_readm(v.q, 1, v.d.common + VIRTIO_PCI_COMMON_CFGGENERATION));
	CHECK_EQ(cfg64(&v, VMEM_CFG_REQUESTED_SIZE), 512 * MIB);
	CHECK_EQ(cfg64(&v, VMEM_CFG_USABLE_SIZE), 768 * MIB);
	CHECK_EQ(plug(&v, 600 * MIB, 1), VIRTIO_MEM_RESP_ACK);
	/* lowering it shrinks nothing while memory is plugged */
	qts_ok(v.q, "vmem-requested 0 0");
	CHECK_EQ(cfg64(&v, VMEM_CFG_USABLE_SIZE), 768 * MIB);
	CHECK_EQ(request(&v, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(cfg64(&v, VMEM_CFG_USABLE_SIZE), 256 * MIB);
	CHECK(!strncmp(qts_cmd(v.q, "vmem-requested 0 %llu", 3 * MIB), "ERR", 3));
	CHECK(!strncmp(qts_cmd(v.q, "vmem-requested 0 %llu", 2048 * MIB), "ERR", 3));
	CHECK(!strncmp(qts_cmd(v.q, "vmem-requested 1 0"), "ERR", 3));	/* no device 1 */
	CHECK(!strncmp(qts_cmd(v.q, "vmem-poke 0 0 999"), "ERR", 3));
	CHECK_EQ(down(&v), 0);
}

/* Host memory of the memfd after a plug of 64 MiB and after the unplug. */
static void host_memory(const char *prealloc, uint64_t *plugged_kib, uint64_t *after_kib)
{
	char args[160];
	struct dev v;
	uint64_t base;
	int i;

	snprintf(args, sizeof(args), "--memory 64M --virtio-mem id=vm0,size=128M,requested-size=64M,prealloc=%s",
		 prealloc);
	up(&v, args);
	base = mem_stat(v.q, "memfd_kib");
	CHECK_EQ(plug(&v, 0, 32), VIRTIO_MEM_RESP_ACK);
	*plugged_kib = mem_stat(v.q, "memfd_kib") - base;
	CHECK_EQ(unplug(&v, 0, 32), VIRTIO_MEM_RESP_ACK);
	/* the reporting pass the unplug queued hands the memory back */
	for (i = 0; i < 200 && mem_stat(v.q, "memfd_kib") > base + 4096; i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	*after_kib = mem_stat(v.q, "memfd_kib") - base;
	CHECK_EQ(down(&v), 0);
}

static void t_populate(void)
{
	uint64_t lazy, eager, lazy_after, eager_after;

	host_memory("off", &lazy, &lazy_after);
	host_memory("on", &eager, &eager_after);
	printf("  plugged 64 MiB: lazy %llu KiB, eager %llu KiB of host memory; after unplug %llu, %llu KiB\n",
	       (unsigned long long)lazy, (unsigned long long)eager,
	       (unsigned long long)lazy_after, (unsigned long long)eager_after);
	CHECK(lazy < 4096);
	CHECK(eager >= 64 * 1024);
	CHECK(eager_after <= 4096);
}

/* On 2 MiB hugetlbfs pages: chunks map at aligned addresses, hold data,
 * and go back to the host after an unplug. */
static void huge_plug(const char *prealloc)
{
	char args[160];
	uint64_t base, plugged = 0, after = 0;
	struct dev v;

	snprintf(args, sizeof(args), "--memory 64M --hugepages 2M --virtio-mem id=vm0,size=128M,requested-size=16M,prealloc=%s",
		 prealloc);
	up(&v, args);
	base = mem_stat(v.q, "memfd_kib");
	CHECK_EQ(plug(&v, 0, 8), VIRTIO_MEM_RESP_ACK);
	qts_ok(v.q, "vmem-poke 0 %llu 0xa5", 15 * MIB + 1);
	CHECK_EQ(qts_val(v.q, "vmem-peek 0 %llu", 15 * MIB + 1), 0xa5);
	plugged = mem_stat(v.q, "memfd_kib");
	CHECK(plugged >= base + 2048);		/* at least the touched page */
	CHECK_EQ(unplug(&v, 0, 8), VIRTIO_MEM_RESP_ACK);
	for (int i = 0; i < 200 && (after = mem_stat(v.q, "memfd_kib")) > base; i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	CHECK(after <= base);
	CHECK_EQ(down(&v), 0);
}

static void t_hugetlb(void)
{
	const char *nr = "/proc/sys/vm/nr_hugepages";
	long old = read_long(nr), want = 128;

	REQUIRE(old >= 0 && !write_long(nr, old + want));
	if (read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") < want) {
		write_long(nr, old);
		fprintf(stderr, "  cannot reserve %ld hugepages (held by another test?)\n", want);
		CHECK(0);
		return;
	}
	huge_plug("off");
	huge_plug("on");
	write_long(nr, old);
}

/* ---- the monitor: a QMP client ---- */

struct qmp {
	FILE *in, *out;
	int events;			/* MEMORY_DEVICE_SIZE_CHANGE seen */
	uint64_t last_size;
	char last_id[32], last_path[64];
};

static json_object *qmp_read(struct qmp *m)
{
	char line[65536];

	if (!fgets(line, sizeof(line), m->in)) {
		fprintf(stderr, "  the monitor closed the connection\n");
		exit(1);
	}
	return json_tokener_parse(line);
}

static const char *str(json_object *o, const char *key)
{
	return json_object_get_string(json_object_object_get(o, key));
}

static uint64_t u64(json_object *o, const char *key)
{
	return json_object_get_uint64(json_object_object_get(o, key));
}

/* Record an event; whether o was one. */
static bool qmp_event(struct qmp *m, json_object *o)
{
	json_object *data;

	if (!json_object_object_get(o, "event"))
		return false;
	if (!strcmp(str(o, "event"), "MEMORY_DEVICE_SIZE_CHANGE")) {
		data = json_object_object_get(o, "data");
		m->events++;
		m->last_size = u64(data, "size");
		snprintf(m->last_id, sizeof(m->last_id), "%s", str(data, "id"));
		snprintf(m->last_path, sizeof(m->last_path), "%s", str(data, "qom-path"));
	}
	return true;
}

/* Run a command; its reply object (the caller puts it), events recorded. */
static json_object *qmp_cmd(struct qmp *m, const char *json)
{
	json_object *o;

	fprintf(m->out, "%s\n", json);
	fflush(m->out);
	while ((o = qmp_read(m)) && qmp_event(m, o))
		json_object_put(o);
	if (!o) {
		fprintf(stderr, "  bad JSON from the monitor\n");
		exit(1);
	}
	return o;
}

/* Wait up to 5 s for n events in all. */
static bool qmp_wait_events(struct qmp *m, int n)
{
	for (int i = 0; i < 500 && m->events < n; i++) {
		json_object_put(qmp_cmd(m, "{\"execute\":\"query-status\"}"));
		if (m->events < n)
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	return m->events >= n;
}

static void qmp_open(struct qmp *m, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(m, 0, sizeof(*m));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("  connect to the monitor");
		exit(1);
	}
	m->in = fdopen(fd, "r");
	m->out = fdopen(dup(fd), "w");
	json_object_put(qmp_read(m));	/* greeting */
	json_object_put(qmp_cmd(m, "{\"execute\":\"qmp_capabilities\"}"));
}

static void qmp_close(struct qmp *m)
{
	fclose(m->in);
	fclose(m->out);
}

/* The error class of a reply, "" when it succeeded. */
static const char *qmp_error(json_object *r)
{
	json_object *e = json_object_object_get(r, "error");

	return e ? str(e, "desc") : "";
}

static void t_monitor(void)
{
	char dir[] = "/tmp/gmm-vmem-XXXXXX", sock[96], args[256];
	json_object *r, *list, *data;
	struct qmp m;
	struct dev v;

	REQUIRE(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/qmp", dir);
	snprintf(args, sizeof(args), "--memory 64M --qmp %s --virtio-mem id=vm0,size=512M,block-size=4M,requested-size=16M",
		 sock);
	up(&v, args);
	qmp_open(&m, sock);
	r = qmp_cmd(&m, "{\"execute\":\"query-memory-devices\"}");
	list = json_object_object_get(r, "return");
	REQUIRE(list && json_object_array_length(list) == 1);
	CHECK(!strcmp(str(json_object_array_get_idx(list, 0), "type"), "virtio-mem"));
	data = json_object_object_get(json_object_array_get_idx(list, 0), "data");
	CHECK(!strcmp(str(data, "id"), "vm0"));
	CHECK_EQ(u64(data, "memaddr"), v.addr);
	CHECK_EQ(u64(data, "node"), 0);
	CHECK_EQ(u64(data, "requested-size"), 16 * MIB);
	CHECK_EQ(u64(data, "size"), 0);
	CHECK_EQ(u64(data, "max-size"), 512 * MIB);
	CHECK_EQ(u64(data, "block-size"), 4 * MIB);
	CHECK(!strcmp(str(data, "memdev"), "/objects/vm0-mem"));
	json_object_put(r);
	/* the backing is listed with the memdevs */
	r = qmp_cmd(&m, "{\"execute\":\"query-memdev\"}");
	list = json_object_object_get(r, "return");
	REQUIRE(list && json_object_array_length(list) == 2);
	CHECK(!strcmp(str(json_object_array_get_idx(list, 1), "id"), "vm0-mem"));
	CHECK_EQ(u64(json_object_array_get_idx(list, 1), "size"), 512 * MIB);
	json_object_put(r);
	/* qom-set raises requested-size; the driver plugs; the event follows */
	r = qmp_cmd(&m, "{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/machine/peripheral/vm0\",\"property\":\"requested-size\",\"value\":67108864}}");
	CHECK(!strcmp(qmp_error(r), ""));
	json_object_put(r);
	CHECK_EQ(cfg64(&v, VMEM_CFG_REQUESTED_SIZE), 64 * MIB);
	r = qmp_cmd(&m, "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/peripheral/vm0\",\"property\":\"requested-size\"}}");
	CHECK_EQ(u64(r, "return"), 64 * MIB);
	json_object_put(r);
	CHECK_EQ(plug(&v, 0, 16), VIRTIO_MEM_RESP_ACK);
	CHECK(qmp_wait_events(&m, 1));
	CHECK_EQ(m.last_size, 64 * MIB);
	CHECK(!strcmp(m.last_id, "vm0"));
	CHECK(!strcmp(m.last_path, "/machine/peripheral/vm0"));
	r = qmp_cmd(&m, "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/peripheral/vm0\",\"property\":\"size\"}}");
	CHECK_EQ(u64(r, "return"), 64 * MIB);
	json_object_put(r);
	CHECK_EQ(unplug(&v, 0, 8), VIRTIO_MEM_RESP_ACK);
	CHECK(qmp_wait_events(&m, 2));
	CHECK_EQ(m.last_size, 32 * MIB);
	/* QEMU's refusals, nothing changed */
	r = qmp_cmd(&m, "{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/machine/peripheral/vm0\",\"property\":\"requested-size\",\"value\":3145728}}");
	CHECK(strstr(qmp_error(r), "multiple of 'block-size'"));
	json_object_put(r);
	r = qmp_cmd(&m, "{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/machine/peripheral/vm0\",\"property\":\"requested-size\",\"value\":1073741824}}");
	CHECK(strstr(qmp_error(r), "exceeds the total size"));
	json_object_put(r);
	r = qmp_cmd(&m, "{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/machine/peripheral/vm0\",\"property\":\"requested-size\",\"value\":\"lots\"}}");
	CHECK(strstr(qmp_error(r), "expected: size"));
	json_object_put(r);
	r = qmp_cmd(&m, "{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/machine/peripheral/vm0\",\"property\":\"size\",\"value\":0}}");
	CHECK(strstr(qmp_error(r), "permission"));
	json_object_put(r);
	r = qmp_cmd(&m, "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/peripheral/vm0\",\"property\":\"colour\"}}");
	CHECK(strstr(qmp_error(r), "not found"));
	json_object_put(r);
	r = qmp_cmd(&m, "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"/machine/peripheral/vm9\",\"property\":\"size\"}}");
	CHECK(strstr(qmp_error(r), "not found"));
	json_object_put(r);
	CHECK_EQ(cfg64(&v, VMEM_CFG_REQUESTED_SIZE), 64 * MIB);
	qmp_close(&m);
	CHECK_EQ(down(&v), 0);
	unlink(sock);
	rmdir(dir);
}

/* The balloon driver's guest RAM, clear of virtio-mem's driver (1-8 MiB). */
#define BALLOON_DRV_MEM		(16 * MIB)
#define BALLOON_DRV_END		(24 * MIB)
#define PAGE			4096ULL

static uint64_t balloon_counter(struct qts *q, const char *key)
{
	qts_cmd(q, "balloon-counters");
	return qts_kv(q, key);
}

/* PFNs in one element on the inflate queue, the array at gpa; used? */
static bool inflate_at(struct vdev *b, uint64_t gpa, const uint32_t *pfns, unsigned int n)
{
	return vd_send(b, BALLOON_Q_INFLATE, gpa, pfns, 4 * n);
}

/*
 * Plugged virtio-mem memory is RAM to the other devices: the balloon takes
 * its pages (and discards them) and reads a PFN array placed in it; an
 * unplugged block is no RAM to them, before and after its unplug.
 */
static void t_balloon_plugged(void)
{
	uint32_t pfns[8];
	struct vdev b;
	struct dev v;
	uint64_t base;

	up(&v, "--memory 64M --balloon --virtio-mem id=vm0,size=256M,requested-size=64M");
	vd_probe(v.q, &b, VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_BALLOON, BALLOON_DRV_MEM,
		 BALLOON_DRV_END);
	CHECK(vd_negotiate(&b, 1ULL << VIRTIO_F_VERSION_1));
	vd_queue(&b, BALLOON_Q_INFLATE, 64);
	vd_queue(&b, BALLOON_Q_DEFLATE, 64);
	vd_driver_ok(&b);
	CHECK_EQ(plug(&v, 0, 2), VIRTIO_MEM_RESP_ACK);
	base = v.addr / PAGE;
	qts_ok(v.q, "vmem-poke 0 %llu 0x5a", PAGE + 7);
	/* pages of the plugged blocks, and one of an unplugged block */
	for (unsigned int i = 0; i < 4; i++)
		pfns[i] = (uint32_t)(base + i);
	pfns[4] = (uint32_t)(base + 8 * MIB / PAGE);
	CHECK(inflate_at(&b, vd_alloc(&b, sizeof(pfns), 8), pfns, 5));
	CHECK_EQ(balloon_counter(v.q, "inflated_pages"), 4);
	CHECK_EQ(qts_kv(v.q, "bad_pfns"), 1);
	CHECK_EQ(qts_kv(v.q, "discarded_bytes"), 4 * PAGE);
	CHECK_EQ(qts_val(v.q, "vmem-peek 0 %llu", PAGE + 7), 0);	/* discarded */
	/* the PFN array itself in plugged device memory */
	pfns[0] = (uint32_t)(base + 100);
	CHECK(inflate_at(&b, v.addr + 3 * MIB, pfns, 1));
	CHECK_EQ(balloon_counter(v.q, "inflated_pages"), 5);
	CHECK_EQ(qts_kv(v.q, "broken"), 0);
	/* unplugged again: its pages are no RAM to the balloon any more */
	CHECK_EQ(unplug(&v, 2 * MIB, 1), VIRTIO_MEM_RESP_ACK);
	pfns[0] = (uint32_t)(base + 2 * MIB / PAGE + 3);
	CHECK(inflate_at(&b, vd_alloc(&b, 4, 8), pfns, 1));
	CHECK_EQ(balloon_counter(v.q, "inflated_pages"), 5);
	CHECK_EQ(qts_kv(v.q, "bad_pfns"), 2);
	CHECK(!strncmp(qts_cmd(v.q, "read %llu 8", (unsigned long long)(v.addr + 3 * MIB)),
		       "ERR", 3));
	CHECK_EQ(balloon_counter(v.q, "broken"), 0);
	CHECK_EQ(down(&v), 0);
}

TEST_MAIN(T(t_config), T(t_plug_unplug), T(t_hostile), T(t_pool_short), T(t_requested),
	  T(t_populate), T(t_hugetlb), T(t_monitor), T(t_balloon_plugged))
