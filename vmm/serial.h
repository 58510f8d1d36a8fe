/* SPDX-License-Identifier: MIT */
/*
 * vmm/serial.h - the 8250/16550A UART model at 0x3f8 (transmit only).
 */
#ifndef GMM_VMM_SERIAL_H
#define GMM_VMM_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SERIAL_LINE_MAX 512

struct serial {
	pthread_mutex_t lock;
	uint8_t ier, iir_thri, lcr, mcr, scr, dll, dlm, fcr;
	char line[SERIAL_LINE_MAX];
	unsigned int len;
	/* Called with each complete line (without the newline). */
	void (*emit)(void *ctx, const char *line, unsigned int len);
	/* Called to set the interrupt line level. */
	void (*irq)(void *ctx, bool level);
	void *ctx;
};

void serial_init(struct serial *s, void (*emit)(void *, const char *, unsigned int),
		 void (*irq)(void *, bool), void *ctx);
void serial_flush(struct serial *s);
uint8_t serial_read(struct serial *s, unsigned int reg);
void serial_write(struct serial *s, unsigned int reg, uint8_t val);

#endif
