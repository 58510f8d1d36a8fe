/* SPDX-License-Identifier: MIT */
/*
 * vmm/monitor.h - gmm-vmm's QMP monitor: a unix socket served on the event
 * loop, several clients at once, each with its own session (qmp.h), events
 * to every negotiated client.
 *
 * Calling contract (gmm-vmm's main thread):
 *   monitor_create() after vm_create() and before the loop starts or while
 *   it runs; monitor_vm_stopped() once vm_run() has returned (it sends the
 *   SHUTDOWN event, gives clients a bounded time to read what is queued and
 *   closes them); monitor_destroy() after evloop_stop().
 *
 * Limits (docs/monitor.md): MONITOR_CLIENTS_MAX clients (more are closed at
 * once), MONITOR_OUTPUT_MAX bytes queued for a client that does not read
 * (past it the client is dropped), QMP_REQUEST_MAX bytes per request.
 */
#ifndef GMM_VMM_MONITOR_H
#define GMM_VMM_MONITOR_H

#include <stddef.h>

#define MONITOR_CLIENTS_MAX	64
#define MONITOR_OUTPUT_MAX	(1024 * 1024)
/* Bytes read from a client per wake-up: bounds the work one client gets
 * before the others are served. */
#define MONITOR_READ_CHUNK	4096
/* How long monitor_vm_stopped() lets clients read their last replies. */
#define MONITOR_LINGER_MS	1000

struct vm;
struct evloop;
struct monitor;

/* Listen on path (see --qmp); on failure one line of explanation in err. */
struct monitor *monitor_create(struct vm *vm, struct evloop *loop, const char *path,
			       char *err, size_t errlen);

/* The VM stopped with this exit code: SHUTDOWN to every client, close them. */
void monitor_vm_stopped(struct monitor *m, int exit_code);

/* Close the socket and unlink its path.  NULL is fine. */
void monitor_destroy(struct monitor *m);

#endif
