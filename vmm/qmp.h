/* SPDX-License-Identifier: MIT */
/*
 * vmm/qmp.h - QMP as QEMU speaks it (docs/interop/qmp-spec in QEMU's tree):
 * one client's session (the request stream parsed with json-c, capability
 * negotiation, dispatch, replies and errors) in qmp.c, and the commands in
 * qmp_cmds.c.  No sockets here: monitor.c feeds a session the bytes a
 * client sent and sends what the session hands to its send function, so
 * the fuzzer drives the same code without any.
 *
 * Calling contract: a session and the commands run on one thread at a time
 * (the event loop thread in gmm-vmm); commands may block only briefly
 * (stop waits for the vCPUs to leave KVM_RUN).
 */
#ifndef GMM_VMM_QMP_H
#define GMM_VMM_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Bytes one request may take, whitespace before it included; a larger one
 * gets a GenericError and the connection is closed. */
#define QMP_REQUEST_MAX		(64 * 1024)
/* Nesting of arrays and objects in one request. */
#define QMP_NESTING_MAX		32
/* Longest error description. */
#define QMP_DESC_MAX		256

/* QMP error classes, as QEMU's QapiErrorClass names them. */
enum qmp_class {
	QMP_GENERIC_ERROR,
	QMP_COMMAND_NOT_FOUND,
	QMP_DEVICE_NOT_ACTIVE,
	QMP_DEVICE_NOT_FOUND,
};

struct qmp_error {
	bool set;
	enum qmp_class cls;
	char desc[QMP_DESC_MAX];
};

struct vm;
struct monitor;

/* What commands act on: the VM, and the monitor for events (NULL in tests). */
struct qmp_ctx {
	struct vm *vm;
	struct monitor *mon;
	bool launched;			/* a cont after -S, or no -S */
	const char *shutdown_cause;	/* set by quit and system_reset */
};

struct qmp_session;
typedef void (*qmp_send_fn)(struct qmp_session *s, const char *json, size_t len);

/* Where the splitter is in the value being gathered. */
enum qmp_split {
	QMP_SPLIT_IDLE,			/* between values */
	QMP_SPLIT_NESTED,		/* inside an object or array */
	QMP_SPLIT_STRING,		/* a top-level string */
	QMP_SPLIT_BARE,			/* a top-level number or keyword */
};

struct qmp_session {
	struct qmp_ctx *ctx;
	struct json_tokener *tok;
	bool negotiated;
	/* the request stream cut at value boundaries, as QEMU's JSON streamer
	 * does, then each value parsed on its own (strict) */
	char *req;			/* the value gathered so far */
	size_t req_len, req_cap;
	enum qmp_split split;
	unsigned int depth;
	char quote;			/* inside a string: its quote, else 0 */
	bool escape;
	qmp_send_fn send;
	void *opaque;			/* the send function's */
};

/* Set up a session; 0 or -ENOMEM.  Nothing is sent yet. */
int qmp_session_init(struct qmp_session *s, struct qmp_ctx *ctx, qmp_send_fn send,
		     void *opaque);
void qmp_session_fini(struct qmp_session *s);

/* Send the greeting {"QMP": {"version": ..., "capabilities": []}}. */
void qmp_session_greet(struct qmp_session *s);

/*
 * Bytes from the client: every complete request in them is answered through
 * send(), in order.  0, or -1 when the client must be closed (a request over
 * QMP_REQUEST_MAX; its error was sent).
 */
int qmp_session_input(struct qmp_session *s, const char *buf, size_t len);

/* {"qemu": {"micro", "minor", "major"}, "package"}: gmm's own version. */
struct json_object *qmp_version(void);

/* An event as a line: {"event", "data" (omitted when NULL), "timestamp"}.
 * Takes data's reference; the caller free()s the string; NULL on ENOMEM. */
char *qmp_event_line(const char *name, struct json_object *data, size_t *len);

/* Set err (first error wins). */
void qmp_error_set(struct qmp_error *err, enum qmp_class cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* qmp_cmds.c: run a command whose name and arguments passed the checks of
 * qmp.c (arguments is an object, possibly empty).  Returns the "return"
 * value (a new reference; an empty object for none), or NULL with err set. */
struct json_object *qmp_dispatch(struct qmp_ctx *ctx, const char *name,
				 struct json_object *args, struct qmp_error *err);

/* qmp_cmds.c: whether a command of that name exists. */
bool qmp_command_exists(const char *name);

/* qmp_cmds.c: the reason QEMU's SHUTDOWN event gives for how the VM stopped. */
const char *qmp_shutdown_reason(const struct qmp_ctx *ctx, int exit_code);

/* monitor.c (a stub in the fuzzer): send an event to every negotiated
 * client; takes data's reference (may be NULL).  Loop thread only. */
void monitor_event(struct monitor *m, const char *name, struct json_object *data);

#endif
