/* SPDX-License-Identifier: MIT */
/*
 * vmm/loader.c - putting the guest into RAM: ELF PT_LOAD segments (the
 * benchmark guest, or a vmlinux), a bzImage's protected-mode part, the Linux
 * boot_params zero page (setup header, e820 from guestmem's slots, command
 * line, initrd at the top of low RAM) and the benchmark guest's device tree.
 */
#include "vmm.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern const unsigned char gmm_guest_elf[];
extern const size_t gmm_guest_elf_size;

/* boot_params offsets (Documentation/arch/x86/zero-page.rst, boot.rst) */
#define BP_E820_ENTRIES		0x1e8
#define BP_SETUP_SECTS		0x1f1
#define BP_BOOT_FLAG		0x1fe
#define BP_JUMP			0x200
#define BP_HEADER		0x202
#define BP_VERSION		0x206
#define BP_TYPE_OF_LOADER	0x210
#define BP_LOADFLAGS		0x211
#define BP_RAMDISK_IMAGE	0x218
#define BP_RAMDISK_SIZE		0x21c
#define BP_HEAP_END_PTR		0x224
#define BP_CMD_LINE_PTR		0x228
#define BP_INITRD_ADDR_MAX	0x22c
#define BP_KERNEL_ALIGNMENT	0x230
#define BP_XLOADFLAGS		0x236
#define BP_CMDLINE_SIZE		0x238
#define BP_PREF_ADDRESS		0x258
#define BP_E820_TABLE		0x2d0
#define E820_MAX		128
#define HDRS_MAGIC		0x53726448	/* "HdrS" */
#define XLF_KERNEL_64		1
#define LOADED_HIGH		0x01
#define CAN_USE_HEAP		0x80
#define E820_RAM		1
#define E820_RESERVED		2
#define VMLINUX_LOAD		0x1000000ULL

struct image {
	const uint8_t *data;
	size_t size;
	void *map;
};

static int map_file(const char *path, struct image *img, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	img->size = (size_t)st.st_size;
	img->map = img->size ? mmap(NULL, img->size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
	close(fd);
	if (img->map == MAP_FAILED || !img->size) {
		snprintf(err, errlen, "cannot read %s: %s", path,
			 img->size ? strerror(errno) : "empty file");
		img->map = NULL;
		return -1;
	}
	img->data = img->map;
	return 0;
}

static void unmap_file(struct image *img)
{
	if (img->map)
		munmap(img->map, img->size);
}

static int check_elf(const struct image *img, const char *name, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = (const void *)img->data;

	if (img->size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_type != ET_EXEC || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff > img->size ||
	    (img->size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum) {
		snprintf(err, errlen, "%s is not a 64-bit x86 executable ELF", name);
		return -1;
	}
	return 0;
}

static int load_segment(struct vm *vm, const struct image *img, const Elf64_Phdr *ph,
			const char *name, char *err, size_t errlen)
{
	uint64_t pa = ph->p_paddr;

	if (ph->p_filesz > ph->p_memsz || ph->p_offset > img->size ||
	    img->size - ph->p_offset < ph->p_filesz) {
		snprintf(err, errlen, "%s: segment at 0x%llx lies outside the file", name,
			 (unsigned long long)pa);
		return -1;
	}
	if (pa < BOOT_AREA_END || !guestmem_is_ram(vm->gm, pa, ph->p_memsz)) {
		snprintf(err, errlen, "%s: segment 0x%llx+0x%llx does not fit guest RAM above 64 KiB",
			 name, (unsigned long long)pa, (unsigned long long)ph->p_memsz);
		return -1;
	}
	/* Fresh guest RAM reads as zero: only the file part is written. */
	if (guestmem_write(vm->gm, pa, img->data + ph->p_offset, ph->p_filesz)) {
		snprintf(err, errlen, "%s: cannot write segment at 0x%llx", name,
			 (unsigned long long)pa);
		return -1;
	}
	return 0;
}

static int load_elf(struct vm *vm, const struct image *img, const char *name, char *err,
		    size_t errlen)
{
	const Elf64_Ehdr *eh = (const void *)img->data;
	const Elf64_Phdr *ph = (const void *)(img->data + eh->e_phoff);
	int loaded = 0;

	if (check_elf(img, name, err, errlen))
		return -1;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD || !ph[i].p_memsz)
			continue;
		if (load_segment(vm, img, &ph[i], name, err, errlen))
			return -1;
		loaded++;
	}
	if (!loaded) {
		snprintf(err, errlen, "%s has no loadable segment", name);
		return -1;
	}
	vm->entry = eh->e_entry;
	return 0;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static bool is_bzimage(const struct image *img)
{
	return img->size > 0x300 && rd32(img->data + BP_HEADER) == HDRS_MAGIC;
}

static int add_e820(uint8_t *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t n = bp[BP_E820_ENTRIES];
	uint8_t *e = bp + BP_E820_TABLE + 20 * n;

	if (n == E820_MAX)
		return -1;
	memcpy(e, &addr, 8);
	memcpy(e + 8, &size, 8);
	memcpy(e + 16, &type, 4);
	bp[BP_E820_ENTRIES] = n + 1;
	return 0;
}

static void fill_e820(struct vm *vm, uint8_t *bp)
{
	for (unsigned int i = 0; i < guestmem_nr_slots(vm->gm); i++) {
		const struct guestmem_slot *s = guestmem_slot(vm->gm, i);

		if (s->gpa == 0 && s->size > 0x100000) {
			add_e820(bp, 0, 0x9fc00, E820_RAM);
			add_e820(bp, 0x9fc00, 0x400, E820_RESERVED);
			add_e820(bp, 0xf0000, 0x10000, E820_RESERVED);
			add_e820(bp, 0x100000, s->size - 0x100000, E820_RAM);
			continue;
		}
		add_e820(bp, s->gpa, s->size, E820_RAM);
	}
}

/* Load a bzImage's protected-mode part; returns the 64-bit entry. */
static int load_bzimage(struct vm *vm, const struct image *img, uint8_t *bp, char *err,
			size_t errlen)
{
	unsigned int setup = img->data[BP_SETUP_SECTS] ? img->data[BP_SETUP_SECTS] : 4;
	size_t off = (setup + 1) * 512ULL;
	uint64_t load = rd32(img->data + BP_PREF_ADDRESS);
	uint16_t version;

	memcpy(&version, img->data + BP_VERSION, 2);
	if (version < 0x20c || !(img->data[BP_XLOADFLAGS] & XLF_KERNEL_64) || off >= img->size) {
		snprintf(err, errlen, "%s: bzImage has no 64-bit entry (boot protocol 2.%02x)",
			 vm->opts->kernel, version & 0xff);
		return -1;
	}
	if (!load || !guestmem_is_ram(vm->gm, load, img->size - off))
		load = VMLINUX_LOAD;
	if (guestmem_write(vm->gm, load, img->data + off, img->size - off)) {
		snprintf(err, errlen, "%s: kernel does not fit in guest RAM", vm->opts->kernel);
		return -1;
	}
	memcpy(bp + BP_SETUP_SECTS, img->data + BP_SETUP_SECTS,
	       BP_JUMP + 2 + img->data[BP_JUMP + 1] - BP_SETUP_SECTS);
	vm->entry = load + 0x200;
	return 0;
}

static void minimal_header(uint8_t *bp)
{
	uint16_t flag = 0xaa55, version = 0x20c;

	memcpy(bp + BP_BOOT_FLAG, &flag, 2);
	wr32(bp + BP_HEADER, HDRS_MAGIC);
	memcpy(bp + BP_VERSION, &version, 2);
	wr32(bp + BP_KERNEL_ALIGNMENT, 0x200000);
	wr32(bp + BP_INITRD_ADDR_MAX, 0x7fffffff);
	wr32(bp + BP_CMDLINE_SIZE, BOOT_CMDLINE_MAX - 1);
}

static int load_initrd(struct vm *vm, uint8_t *bp, char *err, size_t errlen)
{
	const struct guestmem_slot *s = guestmem_slot(vm->gm, 0);
	uint64_t max = rd32(bp + BP_INITRD_ADDR_MAX), top = s->gpa + s->size, at;
	struct image img;

	if (!vm->opts->initrd)
		return 0;
	if (map_file(vm->opts->initrd, &img, err, errlen))
		return -1;
	if (max && top > max + 1)
		top = max + 1;
	at = (top - img.size) & ~0xfffULL;
	if (img.size >= top || at < VMLINUX_LOAD + (64ULL << 20) ||
	    guestmem_write(vm->gm, at, img.data, img.size)) {
		snprintf(err, errlen, "%s: initrd of %zu MiB does not fit in low guest RAM",
			 vm->opts->initrd, img.size >> 20);
		unmap_file(&img);
		return -1;
	}
	wr32(bp + BP_RAMDISK_IMAGE, (uint32_t)at);
	wr32(bp + BP_RAMDISK_SIZE, (uint32_t)img.size);
	unmap_file(&img);
	return 0;
}

static int write_cmdline(struct vm *vm, uint8_t *bp, char *err, size_t errlen)
{
	const char *cmd = vm->opts->cmdline ? vm->opts->cmdline : "console=ttyS0";
	size_t len = strlen(cmd) + 1;
	uint32_t max = rd32(bp + BP_CMDLINE_SIZE);

	if (len > BOOT_CMDLINE_MAX || (max && len > max + 1)) {
		snprintf(err, errlen, "--cmdline is longer than the kernel's %u bytes", max);
		return -1;
	}
	guestmem_write(vm->gm, BOOT_CMDLINE_GPA, cmd, len);
	wr32(bp + BP_CMD_LINE_PTR, BOOT_CMDLINE_GPA);
	return 0;
}

static int load_linux(struct vm *vm, char *err, size_t errlen)
{
	static uint8_t bp[4096];
	struct image img;
	int ret;

	memset(bp, 0, sizeof(bp));
	if (map_file(vm->opts->kernel, &img, err, errlen))
		return -1;
	if (is_bzimage(&img)) {
		ret = load_bzimage(vm, &img, bp, err, errlen);
	} else if (img.size >= SELFMAG && !memcmp(img.data, ELFMAG, SELFMAG)) {
		minimal_header(bp);
		ret = load_elf(vm, &img, vm->opts->kernel, err, errlen);
	} else {
		snprintf(err, errlen, "%s is not a kernel (neither a vmlinux ELF nor a bzImage)",
			 vm->opts->kernel);
		ret = -1;
	}
	unmap_file(&img);
	if (ret)
		return -1;
	bp[BP_TYPE_OF_LOADER] = 0xff;
	bp[BP_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	bp[BP_HEAP_END_PTR] = 0x00;
	bp[BP_HEAP_END_PTR + 1] = 0xfe;
	fill_e820(vm, bp);
	if (write_cmdline(vm, bp, err, errlen) || load_initrd(vm, bp, err, errlen))
		return -1;
	return guestmem_write(vm->gm, BOOT_PARAMS_GPA, bp, sizeof(bp)) ? -1 : 0;
}

/* After the vCPUs exist: the device tree (it names them and the TSC rate). */
int loader_finish(struct vm *vm, char *err, size_t errlen)
{
	static uint8_t buf[BOOT_FDT_MAX];
	int size;
	FILE *f;

	if (vm->linux_boot)
		return 0;
	size = fdt_build(vm, buf, sizeof(buf), err, errlen);

	if (size < 0)
		return -1;
	if (guestmem_write(vm->gm, BOOT_FDT_GPA, buf, (size_t)size)) {
		snprintf(err, errlen, "cannot write the device tree into guest RAM");
		return -1;
	}
	if (!vm->opts->dump_dtb)
		return 0;
	f = fopen(vm->opts->dump_dtb, "wb");
	if (!f || fwrite(buf, 1, (size_t)size, f) != (size_t)size || fclose(f)) {
		snprintf(err, errlen, "cannot write %s: %s", vm->opts->dump_dtb, strerror(errno));
		return -1;
	}
	return 0;
}

static int load_guest(struct vm *vm, char *err, size_t errlen)
{
	struct image img = { .data = gmm_guest_elf, .size = gmm_guest_elf_size };
	const char *name = vm->opts->guest ? vm->opts->guest : "built-in guest";
	int ret;

	if (vm->opts->guest && map_file(vm->opts->guest, &img, err, errlen))
		return -1;
	ret = load_elf(vm, &img, name, err, errlen);
	unmap_file(&img);
	vm->fdt_gpa = BOOT_FDT_GPA;
	return ret;
}

int loader_load(struct vm *vm, char *err, size_t errlen)
{
	if (vm->linux_boot)
		return load_linux(vm, err, errlen);
	return load_guest(vm, err, errlen);
}
