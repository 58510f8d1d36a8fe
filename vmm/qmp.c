/* SPDX-License-Identifier: MIT */
/*
 * vmm/qmp.c - one QMP client's session (contract in qmp.h): the request
 * stream cut into JSON values at their closing bracket (as QEMU's JSON
 * streamer does, so a parse error costs one value, not the connection),
 * each parsed by json-c's tokener (strict JSON plus QEMU's single-quoted
 * strings, UTF-8 checked, QMP_NESTING_MAX deep, QMP_REQUEST_MAX bytes),
 * the checks of
 * a request's members in the order QEMU's qmp_dispatch() makes them,
 * capability negotiation, and the replies: {"return", "id"} or
 * {"error": {"class", "desc"}, "id"}, each a line ending in CRLF.
 */
#include "qmp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#ifndef GMM_VERSION_MAJOR
#error "GMM_VERSION_MAJOR/MINOR/MICRO come from meson (project version)"
#endif

static const char *const class_names[] = {
	[QMP_GENERIC_ERROR] = "GenericError",
	[QMP_COMMAND_NOT_FOUND] = "CommandNotFound",
	[QMP_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
	[QMP_DEVICE_NOT_FOUND] = "DeviceNotFound",
};

void qmp_error_set(struct qmp_error *err, enum qmp_class cls, const char *fmt, ...)
{
	va_list ap;

	if (err->set)
		return;
	err->set = true;
	err->cls = cls;
	va_start(ap, fmt);
	vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
	va_end(ap);
}

int qmp_session_init(struct qmp_session *s, struct qmp_ctx *ctx, qmp_send_fn send,
		     void *opaque)
{
	memset(s, 0, sizeof(*s));
	s->tok = json_tokener_new_ex(QMP_NESTING_MAX);
	if (!s->tok)
		return -ENOMEM;
	json_tokener_set_flags(s->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	s->ctx = ctx;
	s->send = send;
	s->opaque = opaque;
	return 0;
}

void qmp_session_fini(struct qmp_session *s)
{
	if (s->tok)
		json_tokener_free(s->tok);
	s->tok = NULL;
	free(s->req);
	s->req = NULL;
}

/* Send obj as one line and drop the reference. */
static void send_obj(struct qmp_session *s, struct json_object *obj)
{
	size_t len;
	const char *str;
	char *line;

	if (!obj)
		return;
	str = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	line = str ? malloc(len + 2) : NULL;
	if (line) {
		memcpy(line, str, len);
		memcpy(line + len, "\r\n", 2);
		s->send(s, line, len + 2);
		free(line);
	}
	json_object_put(obj);
}

static void add(struct json_object *o, const char *key, struct json_object *val)
{
	json_object_object_add(o, key, val);
}

/* The request's id, echoed whatever its JSON type (null included). */
struct req_id {
	bool present;
	struct json_object *val;
};

static const struct req_id no_id;

static void send_return(struct qmp_session *s, struct json_object *ret, struct req_id id)
{
	struct json_object *o = json_object_new_object();

	add(o, "return", ret);
	if (id.present)
		add(o, "id", json_object_get(id.val));
	send_obj(s, o);
}

static void send_error(struct qmp_session *s, const struct qmp_error *err, struct req_id id)
{
	struct json_object *o = json_object_new_object();
	struct json_object *e = json_object_new_object();

	add(e, "class", json_object_new_string(class_names[err->cls]));
	add(e, "desc", json_object_new_string(err->desc));
	add(o, "error", e);
	if (id.present)
		add(o, "id", json_object_get(id.val));
	send_obj(s, o);
}

struct json_object *qmp_version(void)
{
	struct json_object *ver = json_object_new_object();
	struct json_object *qemu = json_object_new_object();

	add(qemu, "micro", json_object_new_int(GMM_VERSION_MICRO));
	add(qemu, "minor", json_object_new_int(GMM_VERSION_MINOR));
	add(qemu, "major", json_object_new_int(GMM_VERSION_MAJOR));
	add(ver, "qemu", qemu);
	add(ver, "package", json_object_new_string("gmm-vmm"));
	return ver;
}

void qmp_session_greet(struct qmp_session *s)
{
	struct json_object *o = json_object_new_object();
	struct json_object *qmp = json_object_new_object();

	add(qmp, "version", qmp_version());
	add(qmp, "capabilities", json_object_new_array());
	add(o, "QMP", qmp);
	send_obj(s, o);
}

char *qmp_event_line(const char *name, struct json_object *data, size_t *len)
{
	struct json_object *o = json_object_new_object();
	struct json_object *ts = json_object_new_object();
	struct timeval tv;
	const char *str;
	char *line = NULL;

	gettimeofday(&tv, NULL);
	add(o, "event", json_object_new_string(name));
	if (data)
		add(o, "data", data);
	add(ts, "seconds", json_object_new_int64(tv.tv_sec));
	add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
	add(o, "timestamp", ts);
	str = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
	if (str)
		line = malloc(*len + 3);
	if (line) {
		memcpy(line, str, *len);
		memcpy(line + *len, "\r\n", 3);
		*len += 2;
	}
	json_object_put(o);
	return line;
}

/* qmp_capabilities {"enable": [...]}: gmm-vmm offers no capability. */
static void negotiate(struct qmp_session *s, struct json_object *args,
		      struct qmp_error *err)
{
	struct json_object *en = NULL;

	if (s->negotiated) {
		qmp_error_set(err, QMP_COMMAND_NOT_FOUND,
			      "Capabilities negotiation is already complete, command ignored");
		return;
	}
	json_object_object_foreach(args, key, val) {
		if (strcmp(key, "enable")) {
			qmp_error_set(err, QMP_GENERIC_ERROR, "Parameter '%s' is unexpected", key);
			return;
		}
		en = val;
	}
	if (en && !json_object_is_type(en, json_type_array)) {
		qmp_error_set(err, QMP_GENERIC_ERROR,
			      "Invalid parameter type for 'enable', expected: array");
		return;
	}
	if (en && json_object_array_length(en)) {
		struct json_object *c = json_object_array_get_idx(en, 0);

		if (!json_object_is_type(c, json_type_string))
			qmp_error_set(err, QMP_GENERIC_ERROR,
				      "Invalid parameter type for 'enable[0]', expected: string");
		else
			qmp_error_set(err, QMP_GENERIC_ERROR, "Capability '%.64s' not available",
				      json_object_get_string(c));
		return;
	}
	s->negotiated = true;
}

/* The request's members, checked as QEMU's qmp_dispatch_check_obj(). */
static const char *check_request(struct json_object *req, struct json_object **args,
				 struct qmp_error *err)
{
	const char *name = NULL;

	*args = NULL;
	json_object_object_foreach(req, key, val) {
		if (!strcmp(key, "execute")) {
			if (!json_object_is_type(val, json_type_string)) {
				qmp_error_set(err, QMP_GENERIC_ERROR,
					      "QMP input member 'execute' must be a string");
				return NULL;
			}
			name = json_object_get_string(val);
		} else if (!strcmp(key, "arguments")) {
			if (!json_object_is_type(val, json_type_object)) {
				qmp_error_set(err, QMP_GENERIC_ERROR,
					      "QMP input member 'arguments' must be an object");
				return NULL;
			}
			*args = val;
		} else if (strcmp(key, "id")) {
			qmp_error_set(err, QMP_GENERIC_ERROR,
				      "QMP input member '%.64s' is unexpected", key);
			return NULL;
		}
	}
	if (!name)
		qmp_error_set(err, QMP_GENERIC_ERROR, "QMP input lacks member 'execute'");
	return name;
}

static struct json_object *run(struct qmp_session *s, const char *name,
			       struct json_object *args, struct qmp_error *err)
{
	if (!strcmp(name, "qmp_capabilities")) {
		negotiate(s, args, err);
		return err->set ? NULL : json_object_new_object();
	}
	if (!s->negotiated) {
		qmp_error_set(err, QMP_COMMAND_NOT_FOUND,
			      "Expecting capabilities negotiation with 'qmp_capabilities'");
		return NULL;
	}
	if (!qmp_command_exists(name)) {
		qmp_error_set(err, QMP_COMMAND_NOT_FOUND, "The command %.64s has not been found",
			      name);
		return NULL;
	}
	return qmp_dispatch(s->ctx, name, args, err);
}

static void handle_request(struct qmp_session *s, struct json_object *req)
{
	struct qmp_error err = { 0 };
	struct json_object *args, *empty = NULL, *ret = NULL;
	struct req_id id = no_id;
	const char *name;

	if (!json_object_is_type(req, json_type_object)) {
		qmp_error_set(&err, QMP_GENERIC_ERROR, "QMP input must be a JSON object");
		send_error(s, &err, no_id);
		return;
	}
	id.present = json_object_object_get_ex(req, "id", &id.val);
	name = check_request(req, &args, &err);
	if (name) {
		if (!args)
			args = empty = json_object_new_object();
		ret = run(s, name, args, &err);
	}
	if (err.set || !ret) {
		if (!err.set)
			qmp_error_set(&err, QMP_GENERIC_ERROR, "out of memory");
		json_object_put(ret);
		send_error(s, &err, id);
	} else {
		send_return(s, ret, id);
	}
	json_object_put(empty);
}

static void parse_error(struct qmp_session *s, enum json_tokener_error jerr)
{
	struct qmp_error err = { 0 };

	qmp_error_set(&err, QMP_GENERIC_ERROR, "JSON parse error, %s",
		      json_tokener_error_desc(jerr));
	send_error(s, &err, no_id);
}

/* Parse the gathered value on its own and answer it. */
static void complete(struct qmp_session *s)
{
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t len = s->req_len;

	s->req[len] = 0;
	if (s->split == QMP_SPLIT_BARE)
		len++;		/* a number needs its terminator */
	json_tokener_reset(s->tok);
	obj = json_tokener_parse_ex(s->tok, s->req, (int)len);
	jerr = json_tokener_get_error(s->tok);
	s->req_len = 0;
	s->split = QMP_SPLIT_IDLE;
	s->depth = 0;
	s->quote = 0;
	s->escape = false;
	if (jerr != json_tokener_success) {
		parse_error(s, jerr == json_tokener_continue ? json_tokener_error_parse_eof : jerr);
		return;
	}
	handle_request(s, obj);
	json_object_put(obj);
}

static bool append(struct qmp_session *s, char ch)
{
	if (s->req_len + 1 >= s->req_cap) {
		size_t cap = s->req_cap ? 2 * s->req_cap : 256;
		char *p;

		if (cap > QMP_REQUEST_MAX + 1)
			cap = QMP_REQUEST_MAX + 1;
		if (s->req_len + 1 >= cap)
			return false;
		p = realloc(s->req, cap);
		if (!p)
			return false;
		s->req = p;
		s->req_cap = cap;
	}
	s->req[s->req_len++] = ch;
	return true;
}

static bool is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* Quotes and escapes; true when ch closed the string. */
static bool in_string(struct qmp_session *s, char ch)
{
	if (s->escape)
		s->escape = false;
	else if (ch == '\\')
		s->escape = true;
	else if (ch == s->quote)
		s->quote = 0;
	return !s->quote;
}

/*
 * One byte of the stream.  Returns 1 when it completed a value (then
 * complete() runs), 0 when it was taken, -1 when the value is over
 * QMP_REQUEST_MAX.  A bare scalar ends before whitespace or any of {}[]"',
 * which is then looked at again (*again).
 */
static int split(struct qmp_session *s, char ch, bool *again)
{
	*again = false;
	if (s->split == QMP_SPLIT_IDLE) {
		if (is_ws(ch))
			return 0;
		if (ch == '{' || ch == '[')
			s->split = QMP_SPLIT_NESTED;
		else if (ch == '"' || ch == '\'')
			s->split = QMP_SPLIT_STRING;
		else
			s->split = QMP_SPLIT_BARE;
	} else if (s->split == QMP_SPLIT_BARE && (is_ws(ch) || strchr("{}[]\"'", ch))) {
		*again = !is_ws(ch);
		return 1;
	}
	if (!append(s, ch))
		return -1;
	if (s->quote) {
		return in_string(s, ch) && s->split == QMP_SPLIT_STRING;
	}
	if (ch == '"' || ch == '\'') {
		s->quote = ch;
		return 0;
	}
	if (s->split != QMP_SPLIT_NESTED)
		return 0;
	if (ch == '{' || ch == '[')
		s->depth++;
	else if ((ch == '}' || ch == ']') && !--s->depth)
		return 1;
	return 0;
}

static int oversized(struct qmp_session *s)
{
	struct qmp_error err = { 0 };

	qmp_error_set(&err, QMP_GENERIC_ERROR,
		      "request larger than %d bytes, closing the connection", QMP_REQUEST_MAX);
	send_error(s, &err, no_id);
	return -1;
}

int qmp_session_input(struct qmp_session *s, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		bool again;
		int ret = split(s, buf[i], &again);

		if (ret < 0)
			return oversized(s);
		if (ret > 0)
			complete(s);
		if (again)
			i--;
	}
	return 0;
}
