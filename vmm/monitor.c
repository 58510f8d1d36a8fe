/* SPDX-License-Identifier: MIT */
/*
 * vmm/monitor.c - the QMP socket (contract in monitor.h): listening, clients
 * and their bounded output buffers on the event loop, events to negotiated
 * clients, BALLOON_CHANGE from balloon_ctl, and the SHUTDOWN event when the
 * VM stops.
 *
 * Everything here but monitor_create(), monitor_vm_stopped()'s handshake
 * and the balloon listener runs on the loop thread.  A client found broken
 * (write error, output over MONITOR_OUTPUT_MAX) is only marked dead where it
 * is found and freed by reap() at the end of the loop callback, so no list
 * walk or session ever sees a freed client.
 */
#include "monitor.h"
#include "evloop.h"
#include "qmp.h"
#include "vmm.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG		16

struct client {
	struct monitor *m;
	int fd;
	struct evsource *src;
	struct qmp_session qs;
	char *out;			/* queued output: [out_off, out_len) */
	size_t out_len, out_off, out_cap;
	bool want_out;			/* EPOLLOUT requested */
	bool closing;			/* close once the output is sent */
	bool dead;
	struct client *next;
};

struct monitor {
	struct vm *vm;
	struct evloop *loop;
	int fd;
	struct evsource *src;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct qmp_ctx ctx;
	struct client *clients;
	unsigned int nr_clients;

	atomic_bool balloon_pending;	/* a BALLOON_CHANGE call is queued */
	_Atomic uint64_t balloon_actual;
	atomic_bool vmem_pending;	/* a MEMORY_DEVICE_SIZE_CHANGE call is queued */
	atomic_uint vmem_changed;	/* devices whose plugged size changed */
	_Atomic uint64_t vmem_size[VMEM_MAX_DEVICES];

	pthread_mutex_t lock;		/* monitor_vm_stopped()'s handshake */
	pthread_cond_t cond;
	bool stopped;
	int exit_code;
};

/* ---- clients ---- */

static void client_free(struct client *c)
{
	evloop_del(c->m->loop, c->src);
	close(c->fd);
	qmp_session_fini(&c->qs);
	free(c->out);
	free(c);
}

static void reap(struct monitor *m)
{
	struct client **pp = &m->clients;

	while (*pp) {
		struct client *c = *pp;

		if (!c->dead) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		m->nr_clients--;
		client_free(c);
	}
}

static void want_out(struct client *c, bool on)
{
	uint32_t ev = (c->closing ? 0 : EPOLLIN) | (on ? EPOLLOUT : 0);

	if (on == c->want_out && !c->closing)
		return;
	c->want_out = on;
	if (evloop_mod_fd(c->m->loop, c->src, ev))
		c->dead = true;
}

static void flush(struct client *c)
{
	while (!c->dead && c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			c->dead = true;
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->closing)
			c->dead = true;
	}
	if (!c->dead)
		want_out(c, c->out_off < c->out_len);
}

/* Queue bytes for the client; past MONITOR_OUTPUT_MAX it is dropped. */
static void queue(struct client *c, const char *buf, size_t len)
{
	size_t used = c->out_len - c->out_off;

	if (c->dead)
		return;
	if (used + len > MONITOR_OUTPUT_MAX) {
		c->dead = true;
		return;
	}
	if (c->out_off && c->out_len + len > c->out_cap) {
		memmove(c->out, c->out + c->out_off, used);
		c->out_off = 0;
		c->out_len = used;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < c->out_len + len)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			c->dead = true;
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	flush(c);
}

static void session_send(struct qmp_session *s, const char *json, size_t len)
{
	queue(s->opaque, json, len);
}

static void client_read(struct client *c)
{
	char buf[MONITOR_READ_CHUNK];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n < 0) {
		c->dead = true;
		return;
	}
	if (!n) {
		/* gone, maybe in the middle of a request: send what is queued */
		c->closing = true;
		flush(c);
		return;
	}
	if (qmp_session_input(&c->qs, buf, (size_t)n)) {
		c->closing = true;
		flush(c);
	}
}

static void client_io(void *opaque, uint32_t events)
{
	struct client *c = opaque;
	struct monitor *m = c->m;

	if (events & EPOLLERR)
		c->dead = true;
	if (!c->dead && (events & EPOLLOUT))
		flush(c);
	if (!c->dead && !c->closing && (events & (EPOLLIN | EPOLLHUP)))
		client_read(c);
	else if (!c->dead && (events & EPOLLHUP))
		c->dead = true;
	reap(m);
}

static void on_accept(void *opaque, uint32_t events)
{
	struct monitor *m = opaque;
	struct client *c;
	int fd;

	(void)events;
	fd = accept4(m->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	c = m->nr_clients < MONITOR_CLIENTS_MAX ? calloc(1, sizeof(*c)) : NULL;
	if (!c || qmp_session_init(&c->qs, &m->ctx, session_send, c)) {
		free(c);
		close(fd);
		return;
	}
	c->m = m;
	c->fd = fd;
	c->src = evloop_add_fd(m->loop, fd, EPOLLIN, client_io, c);
	if (!c->src) {
		qmp_session_fini(&c->qs);
		free(c);
		close(fd);
		return;
	}
	c->next = m->clients;
	m->clients = c;
	m->nr_clients++;
	qmp_session_greet(&c->qs);
	reap(m);
}

/* ---- events ---- */

void monitor_event(struct monitor *m, const char *name, struct json_object *data)
{
	size_t len;
	char *line;

	if (!m) {
		json_object_put(data);
		return;
	}
	line = qmp_event_line(name, data, &len);
	if (!line)
		return;
	for (struct client *c = m->clients; c; c = c->next) {
		if (c->qs.negotiated && !c->closing)
			queue(c, line, len);
	}
	free(line);
}

static void balloon_event(void *opaque, uint32_t events)
{
	struct monitor *m = opaque;
	struct json_object *data = json_object_new_object();

	(void)events;
	atomic_store(&m->balloon_pending, false);
	json_object_object_add(data, "actual",
			       json_object_new_uint64(atomic_load(&m->balloon_actual)));
	monitor_event(m, "BALLOON_CHANGE", data);
	reap(m);
}

/* balloon_ctl's listener, on any thread: one queued event carries the
 * latest size, however many changes came before it ran. */
static void balloon_changed(void *opaque, uint64_t actual)
{
	struct monitor *m = opaque;

	atomic_store(&m->balloon_actual, actual);
	if (!atomic_exchange(&m->balloon_pending, true) &&
	    evloop_call(m->loop, balloon_event, m))
		atomic_store(&m->balloon_pending, false);
}

static void vmem_event(void *opaque, uint32_t events)
{
	struct monitor *m = opaque;
	unsigned int mask;
	char path[64];

	(void)events;
	atomic_store(&m->vmem_pending, false);
	mask = atomic_exchange(&m->vmem_changed, 0);
	for (unsigned int i = 0; i < m->vm->dev->nr_vmem; i++) {
		const char *id = vmem_config(m->vm->dev->vmem[i])->id;
		struct json_object *data;

		if (!(mask & 1u << i))
			continue;
		data = json_object_new_object();
		snprintf(path, sizeof(path), "/machine/peripheral/%s", id);
		json_object_object_add(data, "id", json_object_new_string(id));
		json_object_object_add(data, "size",
				       json_object_new_uint64(atomic_load(&m->vmem_size[i])));
		json_object_object_add(data, "qom-path", json_object_new_string(path));
		monitor_event(m, "MEMORY_DEVICE_SIZE_CHANGE", data);
	}
	reap(m);
}

/* A virtio-mem device's listener, its lock held: as for the balloon, one
 * queued call reports the latest sizes. */
static void vmem_changed(void *opaque, struct vmem *v, uint64_t plugged)
{
	struct monitor *m = opaque;

	for (unsigned int i = 0; i < m->vm->dev->nr_vmem; i++) {
		if (m->vm->dev->vmem[i] != v)
			continue;
		atomic_store(&m->vmem_size[i], plugged);
		atomic_fetch_or(&m->vmem_changed, 1u << i);
	}
	if (!atomic_exchange(&m->vmem_pending, true) && evloop_call(m->loop, vmem_event, m))
		atomic_store(&m->vmem_pending, false);
}

static void vmem_listen(struct monitor *m, bool on)
{
	for (unsigned int i = 0; m->vm->dev && i < m->vm->dev->nr_vmem; i++)
		vmem_set_listener(m->vm->dev->vmem[i], on ? vmem_changed : NULL, on ? m : NULL);
}

/* ---- the socket ---- */

/* A stale socket at path is removed; anything else there is refused. */
static int prepare_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "--qmp %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "--qmp %s: exists and is not a socket; not replacing it", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "--qmp: socket: %s", strerror(errno));
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (!ret) {
		snprintf(err, errlen, "--qmp %s: a running process listens there; not replacing it",
			 path);
		return -1;
	}
	if (errno != ECONNREFUSED || unlink(path)) {
		snprintf(err, errlen, "--qmp %s: cannot replace the stale socket: %s", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int listen_on(struct monitor *m, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int ret;

	m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->fd < 0) {
		snprintf(err, errlen, "--qmp: socket: %s", strerror(errno));
		return -1;
	}
	memcpy(sa.sun_path, m->path, strlen(m->path));
	old = umask(0177);		/* the socket is born 0600 */
	ret = bind(m->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret || chmod(m->path, 0600) || listen(m->fd, LISTEN_BACKLOG)) {
		snprintf(err, errlen, "--qmp %s: %s", m->path, strerror(errno));
		if (!ret)
			unlink(m->path);
		return -1;
	}
	return 0;
}

struct monitor *monitor_create(struct vm *vm, struct evloop *loop, const char *path,
			       char *err, size_t errlen)
{
	struct monitor *m;

	if (strlen(path) >= sizeof(m->path) || !*path) {
		snprintf(err, errlen, "--qmp: the path must be 1 to %zu bytes long",
			 sizeof(m->path) - 1);
		return NULL;
	}
	if (prepare_path(path, err, errlen))
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "--qmp: out of memory");
		return NULL;
	}
	m->vm = vm;
	m->loop = loop;
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->ctx = (struct qmp_ctx){ .vm = vm, .mon = m, .launched = !vm->opts->paused };
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	if (listen_on(m, err, errlen))
		goto fail;
	m->src = evloop_add_fd(loop, m->fd, EPOLLIN, on_accept, m);
	if (!m->src) {
		snprintf(err, errlen, "--qmp: cannot watch the socket: %s", strerror(errno));
		unlink(m->path);
		goto fail;
	}
	balloon_ctl_listen(vm, balloon_changed, m);
	vmem_listen(m, true);
	return m;
fail:
	if (m->fd >= 0)
		close(m->fd);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
	return NULL;
}

/* ---- the end ---- */

/* Write what is queued, waiting up to MONITOR_LINGER_MS for slow readers. */
static void linger(struct monitor *m)
{
	uint64_t end = now_ns() + MONITOR_LINGER_MS * 1000000ULL;

	for (;;) {
		struct pollfd pfd[MONITOR_CLIENTS_MAX];
		unsigned int n = 0;
		uint64_t now = now_ns();

		for (struct client *c = m->clients; c && n < MONITOR_CLIENTS_MAX; c = c->next) {
			if (!c->dead && c->out_off < c->out_len)
				pfd[n++] = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
		}
		if (!n || now >= end)
			return;
		if (poll(pfd, n, (int)((end - now) / 1000000ULL) + 1) <= 0)
			return;
		for (struct client *c = m->clients; c; c = c->next)
			flush(c);
	}
}

static void vm_stopped(void *opaque, uint32_t events)
{
	struct monitor *m = opaque;
	const char *reason = qmp_shutdown_reason(&m->ctx, m->exit_code);
	struct json_object *data = json_object_new_object();

	(void)events;
	json_object_object_add(data, "guest", json_object_new_boolean(!strncmp(reason, "guest", 5)));
	json_object_object_add(data, "reason", json_object_new_string(reason));
	monitor_event(m, "SHUTDOWN", data);
	linger(m);
	for (struct client *c = m->clients; c; c = c->next)
		c->dead = true;
	reap(m);
	evloop_del(m->loop, m->src);
	m->src = NULL;
	pthread_mutex_lock(&m->lock);
	m->stopped = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

void monitor_vm_stopped(struct monitor *m, int exit_code)
{
	if (!m)
		return;
	m->exit_code = exit_code;
	if (evloop_call(m->loop, vm_stopped, m))
		return;
	pthread_mutex_lock(&m->lock);
	while (!m->stopped)
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
}

void monitor_destroy(struct monitor *m)
{
	if (!m)
		return;
	balloon_ctl_listen(m->vm, NULL, NULL);
	vmem_listen(m, false);
	while (m->clients) {
		struct client *c = m->clients;

		m->clients = c->next;
		client_free(c);
	}
	if (m->src)
		evloop_del(m->loop, m->src);
	close(m->fd);
	unlink(m->path);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}
