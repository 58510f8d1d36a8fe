/* SPDX-License-Identifier: MIT */
/*
 * vmm/serial.c - an 8250/16550A register file good enough for Linux's 8250
 * driver to detect a 16550A and for polled consoles: THR, IER, IIR/FCR, LCR,
 * MCR (with loopback), LSR, MSR, SCR, DLL/DLM. Output is line-buffered and
 * handed to the owner; there is no input. THRE interrupts go to irq().
 * It sits on the port bus and describes itself in the device tree.
 */
#include "serial.h"

#include <libfdt.h>

#include <stdio.h>
#include <string.h>

enum {
	UART_RX_TX = 0, UART_IER, UART_IIR_FCR, UART_LCR, UART_MCR, UART_LSR,
	UART_MSR, UART_SCR,
};

#define LCR_DLAB	0x80
#define MCR_LOOP	0x10
#define IER_THRI	0x02
#define IIR_NONE	0xc1
#define IIR_THRI	0xc2
#define LSR_IDLE	0x60

void serial_init(struct serial *s, void (*emit)(void *, const char *, unsigned int),
		 void (*irq)(void *, bool), void *ctx)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->emit = emit;
	s->irq = irq;
	s->ctx = ctx;
	s->mcr = 0x08;
}

static void update_irq(struct serial *s)
{
	if (s->irq)
		s->irq(s->ctx, (s->ier & IER_THRI) && s->iir_thri);
}

static void put_char(struct serial *s, char c)
{
	if (c == '\r')
		return;
	if (c != '\n' && s->len < SERIAL_LINE_MAX - 1) {
		s->line[s->len++] = c;
		return;
	}
	if (c != '\n')
		s->line[s->len++] = c;
	s->line[s->len] = 0;
	s->emit(s->ctx, s->line, s->len);
	s->len = 0;
}

void serial_flush(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	if (s->len)
		put_char(s, '\n');
	pthread_mutex_unlock(&s->lock);
}

static uint8_t loopback_msr(uint8_t mcr)
{
	return ((mcr & 0x02) ? 0x10 : 0) | ((mcr & 0x01) ? 0x20 : 0) |
	       ((mcr & 0x04) ? 0x40 : 0) | ((mcr & 0x08) ? 0x80 : 0);
}

static uint8_t read_reg(struct serial *s, unsigned int reg)
{
	bool dlab = s->lcr & LCR_DLAB;

	switch (reg) {
	case UART_RX_TX:
		return dlab ? s->dll : 0;
	case UART_IER:
		return dlab ? s->dlm : s->ier;
	case UART_IIR_FCR:
		if ((s->ier & IER_THRI) && s->iir_thri) {
			s->iir_thri = 0;
			update_irq(s);
			return IIR_THRI;
		}
		return IIR_NONE;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return LSR_IDLE;
	case UART_MSR:
		return (s->mcr & MCR_LOOP) ? loopback_msr(s->mcr) : 0xb0;
	default:
		return s->scr;
	}
}

static void write_reg(struct serial *s, unsigned int reg, uint8_t val)
{
	bool dlab = s->lcr & LCR_DLAB;

	switch (reg) {
	case UART_RX_TX:
		if (dlab) {
			s->dll = val;
			return;
		}
		if (!(s->mcr & MCR_LOOP))
			put_char(s, (char)val);
		s->iir_thri = 1;
		break;
	case UART_IER:
		if (dlab) {
			s->dlm = val;
			return;
		}
		s->ier = val & 0x0f;
		s->iir_thri = 1;
		break;
	case UART_IIR_FCR:
		s->fcr = val;
		return;
	case UART_LCR:
		s->lcr = val;
		return;
	case UART_MCR:
		s->mcr = val & 0x1f;
		return;
	case UART_SCR:
		s->scr = val;
		return;
	default:
		return;
	}
	update_irq(s);
}

uint8_t serial_read(struct serial *s, unsigned int reg)
{
	uint8_t v;

	pthread_mutex_lock(&s->lock);
	v = read_reg(s, reg & 7);
	pthread_mutex_unlock(&s->lock);
	return v;
}

void serial_write(struct serial *s, unsigned int reg, uint8_t val)
{
	pthread_mutex_lock(&s->lock);
	write_reg(s, reg & 7, val);
	pthread_mutex_unlock(&s->lock);
}

static void serial_in(void *opaque, uint64_t off, void *data, unsigned int len)
{
	uint8_t v = serial_read(opaque, (unsigned int)off);

	memset(data, 0, len);
	*(uint8_t *)data = v;
}

static void serial_out(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	(void)len;
	serial_write(opaque, (unsigned int)off, *(const uint8_t *)data);
}

static const struct bus_ops serial_ops = {
	.read = serial_in,
	.write = serial_out,
};

int serial_attach(struct serial *s, struct bus *pio, uint16_t base)
{
	s->base = base;
	return bus_register(pio, base, 8, &serial_ops, s, "serial");
}

int serial_fdt_node(void *opaque, void *fdt)
{
	struct serial *s = opaque;
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "serial@%x", s->base);
	ret = fdt_begin_node(fdt, name);
	if (!ret)
		ret = fdt_property_string(fdt, "compatible", "ns16550a");
	if (!ret)
		ret = fdt_property_u32(fdt, "ioport", s->base);
	if (!ret)
		ret = fdt_property_u32(fdt, "interrupts", SERIAL_IRQ);
	if (!ret)
		ret = fdt_property_u32(fdt, "clock-frequency", SERIAL_CLOCK_HZ);
	return ret ? ret : fdt_end_node(fdt);
}
