/* SPDX-License-Identifier: MIT */
/*
 * memmgr/error.c - the per-thread error code and message behind
 * gmm_errno() and gmm_last_error().
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[256];
static _Thread_local int last_errno;

const char *gmm_last_error(void)
{
	return last_error;
}

int gmm_errno(void)
{
	return last_errno;
}

void gmm_clear_error(void)
{
	last_error[0] = '\0';
	last_errno = 0;
}

/*
 * The arguments may quote the current message (gmm_last_error() wrapped
 * with more context): format into a scratch buffer, then copy.
 */
int gmm_set_error(int err, const char *fmt, ...)
{
	char msg[sizeof(last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt ? fmt : "(no message)", ap);
	va_end(ap);
	memcpy(last_error, msg, sizeof(msg));
	last_errno = err;
	return err;
}
