/* SPDX-License-Identifier: MIT */
/*
 * tests/sysfs_long.h - read and write one number in a /proc or /sys file
 * (hugepage reservations), for the tests that change and restore them.
 */
#ifndef GMM_TESTS_SYSFS_LONG_H
#define GMM_TESTS_SYSFS_LONG_H

#include <errno.h>
#include <stdio.h>

/* The number in @path, or -1. */
static inline long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* Write @v to @path: 0 or a negative errno. */
static inline int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "%ld\n", v);
	return fclose(f) ? -errno : 0;
}

#endif
