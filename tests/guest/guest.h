/* SPDX-License-Identifier: MIT */
/*
 * tests/guest/guest.h - shared definitions of the benchmark guest: layout
 * limits, port I/O, the kernel/user entry points and the little library.
 */
#ifndef GMM_GUEST_H
#define GMM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_CPUS	64
#define MAX_MEM		16
#define PAGE_SIZE	4096ULL
#define KSTACK_SIZE	8192
#define USTACK_SIZE	32768

/* Defaults; the device tree's host@500 node says where they really are. */
#define PORT_RESULT	0x500
#define PORT_DISCARD	0x504
#define PORT_POWEROFF	0x508
#define PORT_PANIC	0x50c
#define PORT_MARKER	0x510

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* kernel.c */
extern char __image_end[];
extern volatile int kernel_ready;
_Noreturn void kmain(uint64_t cpu, const void *fdt, uint64_t ncpus);

/* user.c */
_Noreturn void user_main(uint64_t cpu, const void *fdt, uint64_t ncpus);

/*
 * virtio.c: the virtio-balloon driver, called by CPU 0 only. vb_probe()
 * finds the device on PCI conf1 port `conf1`, negotiates `want` & offered,
 * sets up its queues and sets DRIVER_OK: 0, or <0 (no device, no BAR or
 * capabilities, features refused, queue too small). The others need a
 * successful probe; the queue calls wait for the device (-1: it broke the
 * queue or took more than ~10 s).
 */
#define VB_F_MUST_TELL_HOST	(1ULL << 0)
#define VB_F_STATS		(1ULL << 1)
#define VB_F_REPORTING		(1ULL << 5)
#define VB_F_VERSION_1		(1ULL << 32)
#define VB_Q_INFLATE		0
#define VB_Q_DEFLATE		1
#define VB_Q_STATS		2
#define VB_Q_REPORT		3
#define VB_PFNS_MAX		256	/* per request, as Linux sends them */
int vb_probe(uint16_t conf1, uint64_t want);
uint64_t vb_features(void);
uint32_t vb_target(void);			/* num_pages: the host's wish */
void vb_set_actual(uint32_t pages);
int vb_send_pfns(uint16_t q, const uint32_t *pfns, unsigned int n);
int vb_report(const uint64_t *gpa, const uint32_t *len, unsigned int n);
void vb_stats_post(const void *buf, uint32_t len);
bool vb_stats_wanted(void);			/* the device gave the buffer back */

/* fdt.c (also built on the host for tests) */
typedef void (*fdt_prop_fn)(void *ctx, int node, int depth, const char *name,
			    const char *parent, const char *prop,
			    const void *val, uint32_t len);
int fdt_walk(const void *fdt, fdt_prop_fn fn, void *ctx);
uint32_t fdt_be32(const void *p);
uint64_t fdt_be64(const void *p);
uint64_t fdt_ram_end(const void *fdt);

/* lib.c */
void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
bool str_starts(const char *s, const char *prefix);

struct strbuf {
	char *buf;
	size_t len, cap;
};
void sb_str(struct strbuf *sb, const char *s);
void sb_u64(struct strbuf *sb, uint64_t v);
void sb_hex(struct strbuf *sb, uint64_t v);
void sb_kv_u64(struct strbuf *sb, const char *key, uint64_t v);
void sb_kv_str(struct strbuf *sb, const char *key, const char *v);

#endif
