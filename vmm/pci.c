/* SPDX-License-Identifier: MIT */
/*
 * vmm/pci.c - the PCI host bridge on configuration mechanism 1, type 0
 * configuration spaces, BAR placement and mapping, capabilities and INTx
 * (contract in pci.h).
 */
#include "pci.h"

#include <errno.h>
#include <string.h>

#define CONF1_ENABLE		0x80000000u
#define PCI_CLASS_BRIDGE_HOST	0x060000
#define PCI_BAR_MEM_MASK	0xfffffff0u
/* The host bridge's identifiers: Red Hat's "QEMU PCIe host bridge". */
#define BRIDGE_VENDOR		0x1b36
#define BRIDGE_DEVICE		0x0008

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor,
		  uint16_t device, uint32_t class_code, uint8_t revision,
		  uint16_t subsys_vendor, uint16_t subsys)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	put16(d->cfg + PCI_VENDOR_ID, vendor);
	put16(d->cfg + PCI_DEVICE_ID, device);
	d->cfg[PCI_REVISION_ID] = revision;
	d->cfg[PCI_CLASS_PROG] = class_code & 0xff;
	d->cfg[PCI_CLASS_PROG + 1] = (class_code >> 8) & 0xff;
	d->cfg[PCI_CLASS_PROG + 2] = (class_code >> 16) & 0xff;
	put16(d->cfg + PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor);
	put16(d->cfg + PCI_SUBSYSTEM_ID, subsys);
	put16(d->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
	      PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cfg[PCI_INTERRUPT_PIN] = 1;
	d->cap_next = PCI_CAP_START;
}

int pci_add_cap(struct pci_dev *d, const void *cap, unsigned int len)
{
	unsigned int off = d->cap_next;

	if (len < 2 || off + len > PCI_CFG_SIZE)
		return -ENOSPC;
	memcpy(d->cfg + off, cap, len);
	d->cfg[off + 1] = 0;
	if (d->cap_last)
		d->cfg[d->cap_last + 1] = (uint8_t)off;
	else
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	d->cap_last = (uint8_t)off;
	d->cap_next = (uint8_t)((off + len + 3) & ~3u);
	if (off + len + 3 >= PCI_CFG_SIZE)
		d->cap_next = 0xff;
	return (int)off;
}

void pci_set_bar(struct pci_dev *d, unsigned int bar, uint32_t size,
		 const struct bus_ops *ops, void *opaque)
{
	d->bar_size[bar] = size;
	d->bar_ops[bar] = ops;
	d->bar_opaque[bar] = opaque;
	put32(d->wmask + PCI_BASE_ADDRESS_0 + 4 * bar, ~(size - 1) & PCI_BAR_MEM_MASK);
}

/* Map each BAR where its register points while memory decoding is on. */
static int update_bars(struct pci_dev *d)
{
	bool on = get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_MEMORY;
	int ret = 0;

	for (unsigned int i = 0; i < PCI_NR_BARS; i++) {
		uint32_t want = get32(d->cfg + PCI_BASE_ADDRESS_0 + 4 * i) & PCI_BAR_MEM_MASK;

		if (!d->bar_size[i])
			continue;
		if (!on || want == 0 || (uint64_t)want + d->bar_size[i] > 0xffffffffULL)
			want = 0;
		if (want == d->bar_mapped[i])
			continue;
		if (d->bar_mapped[i])
			bus_unregister(d->host->mmio, d->bar_mapped[i], d->bar_opaque[i]);
		d->bar_mapped[i] = 0;
		if (want && !bus_register(d->host->mmio, want, d->bar_size[i], d->bar_ops[i],
					  d->bar_opaque[i], d->name))
			d->bar_mapped[i] = want;
		else if (want)
			ret = -EEXIST;	/* the guest overlapped two BARs: unmapped */
	}
	return ret;
}

static bool intx_asserted(const struct pci_dev *d)
{
	return d->intx && !d->intx_masked && !d->msix_enabled;
}

/*
 * Under the host's intx_lock.  Devices on slots of the same parity share a
 * GSI (wired-OR, as PCI INTx lines are): the line is up while any of them
 * asserts it.
 */
static void update_intx(struct pci_dev *d)
{
	struct pci_host *h = d->host;
	bool level = false;

	for (unsigned int i = 0; i < PCI_MAX_SLOTS && !level; i++) {
		const struct pci_dev *o = h->dev[i];

		level = o && o->gsi == d->gsi && intx_asserted(o);
	}
	irq_set_line(h->irq, d->gsi, level || intx_asserted(d));
}

/*
 * Devices raise INTx from inside their MMIO handlers (MMIO bus lock held
 * shared), while a configuration write holds the host's lock and may wait
 * for the MMIO bus: so INTx has its own lock, taken after the host's.
 */
void pci_set_intx(struct pci_dev *d, bool level)
{
	pthread_mutex_lock(&d->host->intx_lock);
	d->intx = level;
	update_intx(d);
	pthread_mutex_unlock(&d->host->intx_lock);
}

/* Copy the interrupt controls (INTx disable, MSI-X enable and function
 * mask) where pci_set_intx() and pci_msix_state() read them. */
static void irq_controls_written(struct pci_dev *d)
{
	uint16_t ctrl = d->msix_cap ? get16(d->cfg + d->msix_cap + PCI_MSIX_FLAGS) : 0;

	pthread_mutex_lock(&d->host->intx_lock);
	d->intx_masked = get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
	d->msix_enabled = ctrl & PCI_MSIX_FLAGS_ENABLE;
	d->msix_masked = ctrl & PCI_MSIX_FLAGS_MASKALL;
	update_intx(d);
	pthread_mutex_unlock(&d->host->intx_lock);
}

bool pci_msix_state(struct pci_dev *d, bool *masked)
{
	bool on;

	pthread_mutex_lock(&d->host->intx_lock);
	on = d->msix_enabled;
	*masked = d->msix_masked;
	pthread_mutex_unlock(&d->host->intx_lock);
	return on;
}

int pci_add_msix(struct pci_dev *d, unsigned int bar, uint32_t table, uint32_t pba,
		 unsigned int nr_vectors)
{
	uint8_t cap[PCI_MSIX_CAP_SIZE] = { PCI_CAP_ID_MSIX };
	int off;

	put16(cap + PCI_MSIX_FLAGS, (uint16_t)(nr_vectors - 1));
	put32(cap + PCI_MSIX_TABLE, table | bar);
	put32(cap + PCI_MSIX_PBA, pba | bar);
	off = pci_add_cap(d, cap, sizeof(cap));
	if (off < 0)
		return off;
	d->msix_cap = (uint8_t)off;
	d->wmask[off + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	return 0;
}

static uint8_t status_low(struct pci_dev *d)
{
	uint8_t s = d->cfg[PCI_STATUS] & (uint8_t)~PCI_STATUS_INTERRUPT;

	pthread_mutex_lock(&d->host->intx_lock);
	if (d->intx)
		s |= PCI_STATUS_INTERRUPT;
	pthread_mutex_unlock(&d->host->intx_lock);
	return s;
}

static int place_bars(struct pci_host *h, struct pci_dev *d)
{
	for (unsigned int i = 0; i < PCI_NR_BARS; i++) {
		uint64_t size = d->bar_size[i];
		uint64_t at = (h->mmio_next + size - 1) & ~(size - 1);

		if (!size)
			continue;
		if (at + size > PCI_MMIO_END)
			return -ENOSPC;
		put32(d->cfg + PCI_BASE_ADDRESS_0 + 4 * i, (uint32_t)at);
		h->mmio_next = at + size;
	}
	return 0;
}

int pci_host_add(struct pci_host *h, struct pci_dev *d)
{
	int ret;

	pthread_mutex_lock(&h->lock);
	ret = h->nr < PCI_MAX_SLOTS ? place_bars(h, d) : -ENOSPC;
	if (!ret) {
		d->host = h;
		d->slot = h->nr;
		d->gsi = PCI_INTX_GSI_BASE + d->slot % PCI_INTX_GSIS;
		d->cfg[PCI_INTERRUPT_LINE] = (uint8_t)d->gsi;
		put16(d->cfg + PCI_COMMAND, PCI_COMMAND_MEMORY);
		ret = update_bars(d);
	}
	if (!ret)
		h->dev[h->nr++] = d;
	pthread_mutex_unlock(&h->lock);
	return ret;
}

static struct pci_dev *find_dev(struct pci_host *h, unsigned int devfn)
{
	unsigned int slot = devfn >> 3;

	if ((devfn & 7) || slot >= h->nr)
		return NULL;
	return h->dev[slot];
}

/* Devices are never removed, so d stays valid after the host's lock. */
static bool in_window(const struct pci_dev *d, unsigned int off, unsigned int len)
{
	return d->window_len && off >= d->window && off + len <= d->window + d->window_len;
}

uint32_t pci_cfg_read(struct pci_host *h, unsigned int devfn, unsigned int off,
		      unsigned int len)
{
	struct pci_dev *d;
	uint32_t v = 0xffffffffu;

	if (off + len > PCI_CFG_SIZE || (len != 1 && len != 2 && len != 4))
		return v;
	pthread_mutex_lock(&h->lock);
	d = find_dev(h, devfn);
	if (d) {
		uint8_t buf[PCI_CFG_SIZE / 4 * 4 + 4];

		memcpy(buf, d->cfg, PCI_CFG_SIZE);
		buf[PCI_STATUS] = status_low(d);
		v = 0;
		memcpy(&v, buf + off, len);
	}
	pthread_mutex_unlock(&h->lock);
	if (d && in_window(d, off, len))
		v = d->window_read(d->window_opaque, off - d->window, len);
	return v;
}

static void write_bytes(struct pci_dev *d, unsigned int off, unsigned int len,
			uint32_t val)
{
	for (unsigned int i = 0; i < len; i++) {
		uint8_t m = d->wmask[off + i], b = (uint8_t)(val >> (8 * i));

		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | (b & m));
	}
}

void pci_cfg_write(struct pci_host *h, unsigned int devfn, unsigned int off,
		   unsigned int len, uint32_t val)
{
	struct pci_dev *d;

	if (off + len > PCI_CFG_SIZE || (len != 1 && len != 2 && len != 4))
		return;
	pthread_mutex_lock(&h->lock);
	d = find_dev(h, devfn);
	if (d && in_window(d, off, len)) {
		pthread_mutex_unlock(&h->lock);
		d->window_write(d->window_opaque, off - d->window, len, val);
		return;
	}
	if (d) {
		write_bytes(d, off, len, val);
		if (off < PCI_BASE_ADDRESS_0 + 4 * PCI_NR_BARS && off + len > PCI_COMMAND)
			update_bars(d);
		irq_controls_written(d);
	}
	pthread_mutex_unlock(&h->lock);
	/* outside the host's lock: the device takes its own */
	if (d && d->msix_cap && d->msix_written && off < d->msix_cap + (unsigned int)PCI_MSIX_CAP_SIZE &&
	    off + len > d->msix_cap)
		d->msix_written(d->msix_opaque);
}

/* The conf1 ports: the address latch at 0xcf8 (dword), data at 0xcfc-0xcff. */
static void conf1_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct pci_host *h = opaque;
	uint32_t v = 0xffffffffu, addr;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&h->lock);
		v = h->addr;
		pthread_mutex_unlock(&h->lock);
	} else if (off >= 4) {
		pthread_mutex_lock(&h->lock);
		addr = h->addr;
		pthread_mutex_unlock(&h->lock);
		if ((addr & CONF1_ENABLE) && !(addr & 0x00ff0000))
			v = pci_cfg_read(h, (addr >> 8) & 0xff, (addr & 0xfc) + (unsigned int)(off - 4), len);
	}
	memcpy(data, &v, len > 4 ? 4 : len);
}

static void conf1_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct pci_host *h = opaque;
	uint32_t v = 0, addr;

	memcpy(&v, data, len > 4 ? 4 : len);
	if (off == 0 && len == 4) {
		pthread_mutex_lock(&h->lock);
		h->addr = v & 0x80fffffcu;
		pthread_mutex_unlock(&h->lock);
		return;
	}
	if (off < 4)
		return;
	pthread_mutex_lock(&h->lock);
	addr = h->addr;
	pthread_mutex_unlock(&h->lock);
	if ((addr & CONF1_ENABLE) && !(addr & 0x00ff0000))
		pci_cfg_write(h, (addr >> 8) & 0xff, (addr & 0xfc) + (unsigned int)(off - 4), len, v);
}

static const struct bus_ops conf1_ops = {
	.read = conf1_read,
	.write = conf1_write,
};

int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio,
		  struct irqchip *irq)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->intx_lock, NULL);
	h->mmio = mmio;
	h->irq = irq;
	h->mmio_next = PCI_MMIO_BASE;
	pci_dev_init(&h->bridge, "pci-host", BRIDGE_VENDOR, BRIDGE_DEVICE,
		     PCI_CLASS_BRIDGE_HOST, 0, 0, 0);
	h->bridge.cfg[PCI_INTERRUPT_PIN] = 0;
	pci_host_add(h, &h->bridge);
	return bus_register(pio, PCI_CONF1_PORT, PCI_CONF1_LEN, &conf1_ops, h, "pci-conf1");
}

void pci_host_destroy(struct pci_host *h, struct bus *pio)
{
	bus_unregister(pio, PCI_CONF1_PORT, h);
	pthread_mutex_destroy(&h->intx_lock);
	pthread_mutex_destroy(&h->lock);
}
