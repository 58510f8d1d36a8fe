/* SPDX-License-Identifier: MIT */
/*
 * tests/sysfs_long.h - read and write one number in a /proc or /sys file
 * (hugepage reservations), for the tests that change and restore them,
 * and the reservation helpers built on them.
 */
#ifndef GMM_TESTS_SYSFS_LONG_H
#define GMM_TESTS_SYSFS_LONG_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define NR_HUGEPAGES_PATH "/proc/sys/vm/nr_hugepages"

/* The 2 MiB pages this process added to the host's reservation. */
static inline long *hugepages_added(void)
{
	static long added;

	return &added;
}

/* Give back what hugepages_reserve() added (relative to the reservation
 * now: other processes may have changed it meanwhile). */
static inline void hugepages_give_back(void)
{
	long now = read_long(NR_HUGEPAGES_PATH), *added = hugepages_added();

	if (*added && now >= 0)
		write_long(NR_HUGEPAGES_PATH, now > *added ? now - *added : 0);
	*added = 0;
}

/*
 * Add @more 2 MiB pages to the host's hugepage reservation for this test,
 * given back at exit or by hugepages_give_back().  Tests that need
 * hugepages run as root and reserve them: 0, or a negative errno (the
 * caller fails the test; it never skips).
 */
static inline int hugepages_reserve(long more)
{
	static int registered;
	long now = read_long(NR_HUGEPAGES_PATH);
	int err;

	if (now < 0)
		return -ENOENT;
	err = write_long(NR_HUGEPAGES_PATH, now + more);
	if (err) {
		fprintf(stderr, "cannot reserve %ld hugepages in %s: %s (tests run as root)\n",
			more, NR_HUGEPAGES_PATH, strerror(-err));
		return err;
	}
	*hugepages_added() += more;
	if (!registered++)
		atexit(hugepages_give_back);
	return 0;
}

#endif
