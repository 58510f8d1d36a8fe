/* SPDX-License-Identifier: MIT */
/*
 * tests/guest/lib.c - the few C library pieces the freestanding guest needs:
 * mem and string functions and a string builder for JSON result lines.
 */
#include "guest.h"

void *memset(void *s, int c, size_t n)
{
	uint8_t *p = s;

	while (n--)
		*p++ = (uint8_t)c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (; n; n--, x++, y++) {
		if (*x != *y)
			return *x - *y;
	}
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (uint8_t)*a - (uint8_t)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

bool str_starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static void sb_char(struct strbuf *sb, char c)
{
	if (sb->len + 1 < sb->cap)
		sb->buf[sb->len++] = c;
	sb->buf[sb->len] = 0;
}

void sb_str(struct strbuf *sb, const char *s)
{
	while (*s)
		sb_char(sb, *s++);
}

void sb_u64(struct strbuf *sb, uint64_t v)
{
	char tmp[21];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		sb_char(sb, tmp[--n]);
}

void sb_hex(struct strbuf *sb, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 60;

	sb_str(sb, "0x");
	while (shift > 0 && !(v >> shift))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		sb_char(sb, digits[(v >> shift) & 15]);
}

void sb_kv_u64(struct strbuf *sb, const char *key, uint64_t v)
{
	sb_str(sb, ",\"");
	sb_str(sb, key);
	sb_str(sb, "\":");
	sb_u64(sb, v);
}

void sb_kv_str(struct strbuf *sb, const char *key, const char *v)
{
	sb_str(sb, ",\"");
	sb_str(sb, key);
	sb_str(sb, "\":\"");
	sb_str(sb, v);
	sb_char(sb, '"');
}
