/* SPDX-License-Identifier: MIT */
/*
 * tools/gmmctl.c - a command-line client of gmm-vmm's QMP monitor (it
 * speaks plain QMP, so it works against QEMU too for QEMU's commands).
 *
 *   gmmctl SOCKET query-balloon        the guest's logical size
 *   gmmctl SOCKET balloon 512M         ask for this logical size (K/M/G/T,
 *                                      KiB.., a bare number is MiB as in
 *                                      QEMU's HMP balloon)
 *   gmmctl SOCKET memory-devices       the virtio-mem devices: address, node,
 *                                      plugged, requested and maximum sizes
 *   gmmctl SOCKET virtio-mem ID 1G     ask device ID for this plugged size
 *                                      (qom-set of its requested-size)
 *   gmmctl SOCKET stats                a readable summary: run state, guest
 *                                      RAM, pool, reporting, caches, balloon
 *   gmmctl SOCKET raw '{"execute": ...}'   send one request, print the reply
 *   gmmctl SOCKET events               print events as JSON lines until the
 *                                      monitor closes
 *   gmmctl SOCKET COMMAND              any command without arguments; its
 *                                      return value is printed as JSON
 *
 * Exit status: 0 done; 1 the monitor answered with an error (its class and
 * description on stderr); 2 bad usage; 3 no monitor there, or it broke the
 * protocol.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

enum { EXIT_QMP = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };

/* Longest line gmmctl accepts from the monitor. */
#define LINE_MAX_BYTES	(4 * 1024 * 1024)
/* Longest command name or device id (the device path must fit 128 bytes). */
#define ID_MAX_BYTES	64

static const char usage[] =
"Usage: gmmctl SOCKET query-balloon | balloon SIZE | memory-devices |\n"
"              virtio-mem ID SIZE | stats | raw JSON | events | COMMAND\n";

struct conn {
	FILE *in;
	int fd;
	unsigned int next_id;
};

static int die(int code, const char *fmt, const char *arg)
{
	fprintf(stderr, "gmmctl: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return code;
}

/* The next JSON line from the monitor; NULL at the end or on a bad line. */
static struct json_object *read_obj(struct conn *c)
{
	static char *line;
	static size_t cap;
	ssize_t n = getline(&line, &cap, c->in);

	if (n <= 0 || n > LINE_MAX_BYTES)
		return NULL;
	return json_tokener_parse(line);
}

/* One write per request: the monitor may act on it (quit) and close before
 * a second write would arrive. */
static int send_line(struct conn *c, const char *s)
{
	size_t len = strlen(s);
	char *buf = malloc(len + 1);
	const char *p = buf;
	int ret = 0;

	if (!buf)
		return -1;
	memcpy(buf, s, len);
	buf[len++] = '\n';
	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = -1;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	free(buf);
	return ret;
}

/* Send req (consumed) with a fresh id; the reply, skipping events. */
static struct json_object *call(struct conn *c, struct json_object *req)
{
	char id[32];
	int ret;

	snprintf(id, sizeof(id), "gmmctl-%u", c->next_id++);
	json_object_object_add(req, "id", json_object_new_string(id));
	ret = send_line(c, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	if (ret)
		return NULL;
	for (;;) {
		struct json_object *r = read_obj(c), *rid;

		if (!r)
			return NULL;
		if (json_object_object_get_ex(r, "id", &rid) &&
		    !strcmp(json_object_get_string(rid), id))
			return r;
		json_object_put(r);	/* an event, or someone else's */
	}
}

static struct json_object *request(const char *name, struct json_object *args)
{
	struct json_object *req = json_object_new_object();

	json_object_object_add(req, "execute", json_object_new_string(name));
	if (args)
		json_object_object_add(req, "arguments", args);
	return req;
}

/* The reply's return value (borrowed from *reply), or NULL after printing
 * the error; *code gets the exit status. */
static struct json_object *result(struct json_object *reply, int *code)
{
	struct json_object *ret, *err, *cls, *desc;

	if (!reply) {
		*code = die(EXIT_CONN, "the monitor closed the connection%s", "");
		return NULL;
	}
	if (json_object_object_get_ex(reply, "return", &ret)) {
		*code = 0;
		return ret;
	}
	if (json_object_object_get_ex(reply, "error", &err) &&
	    json_object_object_get_ex(err, "class", &cls) &&
	    json_object_object_get_ex(err, "desc", &desc)) {
		fprintf(stderr, "gmmctl: %s: %s\n", json_object_get_string(cls),
			json_object_get_string(desc));
		*code = EXIT_QMP;
		return NULL;
	}
	*code = die(EXIT_CONN, "not a QMP reply: %s", json_object_to_json_string(reply));
	return NULL;
}

static int connect_to(struct conn *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct json_object *g;
	int code;

	if (strlen(path) >= sizeof(sa.sun_path))
		return die(EXIT_USAGE, "socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path));
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)))
		return die(EXIT_CONN, "cannot connect to %s", path);
	c->in = fdopen(dup(c->fd), "r");
	g = c->in ? read_obj(c) : NULL;
	if (!g || !json_object_object_get_ex(g, "QMP", NULL))
		return die(EXIT_CONN, "%s: no QMP greeting", path);
	json_object_put(g);
	g = call(c, request("qmp_capabilities", NULL));
	result(g, &code);
	json_object_put(g);
	return code;
}

static void print_json(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* "512M", "1G", "2GiB", "4096K", bare = MiB; 0 on error. */
static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;
	int shift = 20;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return 0;
	switch (*end) {
	case 'b': case 'B': shift = 0; break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	case 0: return v > (~0ULL >> 20) ? 0 : v << 20;
	default: return 0;
	}
	end++;
	if (shift && !strcmp(end, "iB"))
		end += 2;
	else if (shift && (*end == 'B' || *end == 'b'))
		end++;
	if (*end || v > (~0ULL >> shift))
		return 0;
	return (uint64_t)v << shift;
}

static int simple(struct conn *c, const char *name, struct json_object *args)
{
	struct json_object *r = call(c, request(name, args)), *ret;
	int code;

	ret = result(r, &code);
	if (ret && !(json_object_is_type(ret, json_type_object) &&
		     !json_object_object_length(ret)))
		print_json(ret);		/* {} says nothing */
	json_object_put(r);
	return code;
}

static int query_balloon(struct conn *c)
{
	struct json_object *r = call(c, request("query-balloon", NULL)), *ret, *a;
	int code;

	ret = result(r, &code);
	if (ret && json_object_object_get_ex(ret, "actual", &a))
		printf("actual %llu bytes (%llu MiB)\n",
		       (unsigned long long)json_object_get_uint64(a),
		       (unsigned long long)(json_object_get_uint64(a) >> 20));
	json_object_put(r);
	return code;
}

static int balloon(struct conn *c, uint64_t bytes)
{
	struct json_object *args = json_object_new_object();

	json_object_object_add(args, "value", json_object_new_uint64(bytes));
	return simple(c, "balloon", args);
}

static int memory_devices(struct conn *c)
{
	struct json_object *r = call(c, request("query-memory-devices", NULL)), *ret;
	int code;

	ret = result(r, &code);
	for (size_t i = 0; ret && i < json_object_array_length(ret); i++) {
		struct json_object *e = json_object_array_get_idx(ret, i), *d;

		if (!json_object_object_get_ex(e, "data", &d))
			continue;
		printf("%s: %s at 0x%llx, node %llu, plugged %llu MiB, requested %llu MiB, max %llu MiB, blocks of %llu KiB\n",
		       json_object_get_string(json_object_object_get(d, "id")),
		       json_object_get_string(json_object_object_get(e, "type")),
		       (unsigned long long)json_object_get_uint64(json_object_object_get(d, "memaddr")),
		       (unsigned long long)json_object_get_uint64(json_object_object_get(d, "node")),
		       (unsigned long long)(json_object_get_uint64(json_object_object_get(d, "size")) >> 20),
		       (unsigned long long)(json_object_get_uint64(json_object_object_get(d, "requested-size")) >> 20),
		       (unsigned long long)(json_object_get_uint64(json_object_object_get(d, "max-size")) >> 20),
		       (unsigned long long)(json_object_get_uint64(json_object_object_get(d, "block-size")) >> 10));
	}
	json_object_put(r);
	return code;
}

static int virtio_mem(struct conn *c, const char *id, uint64_t bytes)
{
	struct json_object *args;
	char path[128];

	snprintf(path, sizeof(path), "/machine/peripheral/%s", id);
	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string(path));
	json_object_object_add(args, "property", json_object_new_string("requested-size"));
	json_object_object_add(args, "value", json_object_new_uint64(bytes));
	return simple(c, "qom-set", args);
}

static int raw(struct conn *c, struct json_object *req)
{
	struct json_object *r = call(c, req);
	int code;

	if (result(r, &code) || code == EXIT_QMP)
		puts(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(r);
	return code;
}

static int events(struct conn *c)
{
	struct json_object *e;

	while ((e = read_obj(c))) {
		if (json_object_object_get_ex(e, "event", NULL)) {
			puts(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN));
			fflush(stdout);
		}
		json_object_put(e);
	}
	return 0;
}

static uint64_t u64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

/* Run a command for the summary; NULL (quietly) when it fails. */
static struct json_object *fetch(struct conn *c, const char *name)
{
	struct json_object *r = call(c, request(name, NULL)), *ret;

	if (!r || !json_object_object_get_ex(r, "return", &ret)) {
		json_object_put(r);
		return NULL;
	}
	json_object_get(ret);
	json_object_put(r);
	return ret;
}

#define MIB(x) ((unsigned long long)((x) >> 20))

static void stats_guest(struct json_object *st, struct json_object *g)
{
	struct json_object *v;

	printf("state:      %s\n", json_object_object_get_ex(st, "status", &v) ?
	       json_object_get_string(v) : "?");
	if (!g)
		return;
	printf("guest RAM:  %llu MiB (%s), %llu MiB backed, %llu MiB on 2 MiB blocks (%.1f%%)\n",
	       MIB(u64(g, "ram-bytes")), json_object_object_get_ex(g, "mode", &v) ?
	       json_object_get_string(v) : "?", MIB(u64(g, "backed-bytes")),
	       MIB(u64(g, "huge-bytes")), u64(g, "huge-permille") / 10.0);
	printf("faults:     %llu (%llu with a 2 MiB block), %llu pages discarded\n",
	       (unsigned long long)u64(g, "faults"), (unsigned long long)u64(g, "huge-faults"),
	       (unsigned long long)u64(g, "discards"));
}

static void stats_pool(struct json_object *rep, struct json_object *pcp, struct json_object *bi)
{
	if (rep)
		printf("reporting:  %s, %llu MiB free reported, %llu MiB free unreported, %llu MiB in %llu passes\n",
		       u64(rep, "running") ? "on" : "off", MIB(u64(rep, "free-reported")),
		       MIB(u64(rep, "free-unreported")), MIB(u64(rep, "reported-bytes")),
		       (unsigned long long)u64(rep, "passes"));
	if (pcp)
		printf("caches:     %llu threads, %llu frames cached, hit rate %.1f%%, %llu refills, %llu drains\n",
		       (unsigned long long)u64(pcp, "threads"), (unsigned long long)u64(pcp, "cached"),
		       u64(pcp, "hit-permille") / 10.0, (unsigned long long)u64(pcp, "refill"),
		       (unsigned long long)u64(pcp, "drain"));
	if (bi)
		printf("buddyinfo:  %s\n", json_object_to_json_string_ext(bi, JSON_C_TO_STRING_PLAIN));
}

static int stats(struct conn *c)
{
	struct json_object *st = fetch(c, "query-status");
	struct json_object *g = fetch(c, "x-gmm-guest-stats");
	struct json_object *rep = fetch(c, "x-gmm-report-stats");
	struct json_object *pcp = fetch(c, "x-gmm-pcp-stats");
	struct json_object *bi = fetch(c, "x-gmm-buddyinfo");
	struct json_object *bal = fetch(c, "query-balloon");

	if (!st)
		return die(EXIT_CONN, "query-status failed%s", "");
	stats_guest(st, g);
	stats_pool(rep, pcp, bi);
	if (bal)
		printf("balloon:    actual %llu MiB\n", MIB(u64(bal, "actual")));
	else
		printf("balloon:    none active\n");
	json_object_put(st);
	json_object_put(g);
	json_object_put(rep);
	json_object_put(pcp);
	json_object_put(bi);
	json_object_put(bal);
	return 0;
}

/* A command's arguments, checked before connecting to anything. */
struct args {
	uint64_t bytes;			/* balloon, virtio-mem */
	struct json_object *req;	/* raw */
};

/* QMP names: letters, digits, '-' and '_' (also device ids). */
static bool qmp_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789-_") == n;
}

/* 0, or EXIT_USAGE with the reason on stderr. */
static int check_args(const char *cmd, char **argv, struct args *a)
{
	if (!strcmp(cmd, "balloon")) {
		a->bytes = parse_size(argv[3]);
		return a->bytes ? 0 : die(EXIT_USAGE, "balloon: bad size '%s' (try 512M or 2G)",
					  argv[3]);
	}
	if (!strcmp(cmd, "virtio-mem")) {
		if (!qmp_name(argv[3], ID_MAX_BYTES))
			return die(EXIT_USAGE, "virtio-mem: bad device id '%s'", argv[3]);
		a->bytes = parse_size(argv[4]);
		if (!a->bytes && strcmp(argv[4], "0"))
			return die(EXIT_USAGE, "virtio-mem: bad size '%s' (try 512M or 2G)", argv[4]);
		return 0;
	}
	if (!strcmp(cmd, "raw")) {
		a->req = json_tokener_parse(argv[3]);
		if (json_object_is_type(a->req, json_type_object))
			return 0;
		json_object_put(a->req);
		a->req = NULL;
		return die(EXIT_USAGE, "raw: not a JSON object: %s", argv[3]);
	}
	return qmp_name(cmd, ID_MAX_BYTES) ? 0 : die(EXIT_USAGE, "bad command name '%s'", cmd);
}

int main(int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	struct args a = { 0 };
	const char *cmd;
	int code;

	if (argc < 3 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 3 ? stderr : stdout);
		return argc < 3 ? EXIT_USAGE : 0;
	}
	cmd = argv[2];
	if (argc != (!strcmp(cmd, "virtio-mem") ? 5 :
		     !strcmp(cmd, "balloon") || !strcmp(cmd, "raw") ? 4 : 3)) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	code = check_args(cmd, argv, &a);
	if (!code)
		code = connect_to(&c, argv[1]);
	if (code) {
		json_object_put(a.req);
		return code;
	}
	if (!strcmp(cmd, "query-balloon"))
		return query_balloon(&c);
	if (!strcmp(cmd, "balloon"))
		return balloon(&c, a.bytes);
	if (!strcmp(cmd, "raw"))
		return raw(&c, a.req);
	if (!strcmp(cmd, "memory-devices"))
		return memory_devices(&c);
	if (!strcmp(cmd, "virtio-mem"))
		return virtio_mem(&c, argv[3], a.bytes);
	if (!strcmp(cmd, "events"))
		return events(&c);
	if (!strcmp(cmd, "stats"))
		return stats(&c);
	return simple(&c, cmd, NULL);
}
