/* SPDX-License-Identifier: MIT */
/*
 * vmm/serial.h - the 8250/16550A UART model at 0x3f8 (transmit only).
 * serial_init() before the VM runs; the rest from any thread.
 */
#ifndef GMM_VMM_SERIAL_H
#define GMM_VMM_SERIAL_H

#include "bus.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SERIAL_LINE_MAX 512
#define SERIAL_IRQ	4
#define SERIAL_CLOCK_HZ	1843200

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
	uint16_t base;
};

void serial_init(struct serial *s, void (*emit)(void *, const char *, unsigned int),
		 void (*irq)(void *, bool), void *ctx);
void serial_flush(struct serial *s);
uint8_t serial_read(struct serial *s, unsigned int reg);
void serial_write(struct serial *s, unsigned int reg, uint8_t val);

/* Put the UART's 8 registers at base on the port bus; 0 or -errno. */
int serial_attach(struct serial *s, struct bus *pio, uint16_t base);

/* Its device tree node (a devices_add() description); libfdt's result. */
int serial_fdt_node(void *opaque, void *fdt);

#endif
