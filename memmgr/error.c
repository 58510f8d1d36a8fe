/* SPDX-License-Identifier: MIT */
/*
 * memmgr/error.c - the per-thread error message behind gmm_last_error().
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_error[256];

const char *gmm_last_error(void)
{
	return last_error;
}

void gmm_clear_error(void)
{
	last_error[0] = '\0';
}

int gmm_set_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}
