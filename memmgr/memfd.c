/* SPDX-License-Identifier: MIT */
/*
 * memmgr/memfd.c - the memfd backing: one memfd per pool (hugetlbfs or
 * shmem), each memory block mapped shared into the pool and bound to its
 * host node with mbind; host topology and hugepage counts from sysfs;
 * population (MADV_POPULATE_WRITE, fallocate), discard (punch hole), and
 * placement checks (move_pages).
 *
 * NUMA calls are made with syscall(2) and the constants of <numaif.h>:
 * libnuma's wrappers add a link dependency and a sysfs parse at load time
 * for nothing we need (we pass one node mask and query page nodes).
 */
#include <fcntl.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gmm/memfd.h>

#include "internal.h"

#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

struct mf_block {
	uint64_t pfn;
	uint64_t nr;
	void *addr;
	int host_node; /* bound node, -1: none */
};

struct memfd_ctx {
	struct gmm_memfd_config cfg;
	int fd;
	bool hugetlb;
	uint64_t page_size;
	uint64_t file_size;
	uint64_t host_nodes;
	uint64_t misplaced;
	pthread_mutex_t lock;
	struct mf_block *blocks;
	size_t nr_blocks, cap_blocks;
};

/* --- host topology (sysfs) --------------------------------------------- */

static int read_sysfs(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return 0;
}

static uint64_t parse_list(const char *s)
{
	uint64_t mask = 0;

	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s)
			break;
		b = a;
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		for (long i = a; i <= b && i < 64; i++)
			if (i >= 0)
				mask |= 1ull << i;
		s = *end == ',' ? end + 1 : end;
		if (*s == '\n')
			break;
	}
	return mask;
}

uint64_t gmm_host_nodes(void)
{
	char buf[256];
	uint64_t mask;

	if (read_sysfs("/sys/devices/system/node/online", buf, sizeof(buf)))
		return 1;
	mask = parse_list(buf);
	return mask ? mask : 1;
}

static int64_t read_huge(uint64_t page_size, int node, const char *what)
{
	char path[160], buf[64];
	int err;

	if (node < 0)
		snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/%s",
			 (unsigned long long)(page_size >> 10), what);
	else
		snprintf(path, sizeof(path),
			 "/sys/devices/system/node/node%d/hugepages/hugepages-%llukB/%s", node,
			 (unsigned long long)(page_size >> 10), what);
	err = read_sysfs(path, buf, sizeof(buf));
	if (err)
		return err;
	return strtoll(buf, NULL, 10);
}

int64_t gmm_hugepages_free(uint64_t page_size, int host_node)
{
	if (page_size != GMM_HUGEPAGE_2M && page_size != GMM_HUGEPAGE_1G)
		return gmm_set_error(-EINVAL, "hugepage size %llu: must be 2 MiB or 1 GiB",
				     (unsigned long long)page_size);
	return read_huge(page_size, host_node, "free_hugepages");
}

/* A pool node's host node onto an online one: fake nodes fold round robin. */
static int real_node(const struct memfd_ctx *c, int host_node)
{
	int nr = __builtin_popcountll(c->host_nodes), k;
	uint64_t m = c->host_nodes;

	if (host_node < 0)
		return -1;
	if (host_node < 64 && (c->host_nodes >> host_node) & 1)
		return host_node;
	k = host_node % nr;
	while (k--)
		m &= m - 1;
	return __builtin_ctzll(m);
}

/* --- creation ------------------------------------------------------------ */

static int open_memfd(struct memfd_ctx *c)
{
	unsigned int flags = MFD_CLOEXEC;

	if (c->hugetlb)
		flags |= MFD_HUGETLB | ((unsigned int)__builtin_ctzll(c->page_size) << MFD_HUGE_SHIFT);
	c->fd = (int)syscall(SYS_memfd_create, "gmm-pool", flags);
	if (c->fd < 0)
		return -errno;
	return 0;
}

static int choose_kind(struct memfd_ctx *c)
{
	int64_t total;

	if (!c->cfg.page_size) {
		c->page_size = GMM_PAGE_SIZE;
		return 0;
	}
	if (c->cfg.page_size != GMM_HUGEPAGE_2M && c->cfg.page_size != GMM_HUGEPAGE_1G)
		return gmm_set_error(-EINVAL, "memfd backing: page size %llu: must be 0 (shmem), "
				     "2 MiB or 1 GiB", (unsigned long long)c->cfg.page_size);
	total = read_huge(c->cfg.page_size, -1, "nr_hugepages");
	if (total <= 0) {
		if (c->cfg.fallback_shmem) {
			c->page_size = GMM_PAGE_SIZE;
			return 0;
		}
		return gmm_set_error(-ENOMEM, "memfd backing: no %llu kB hugepages reserved on "
				     "the host (/sys/kernel/mm/hugepages/hugepages-%llukB/"
				     "nr_hugepages is %lld)",
				     (unsigned long long)(c->cfg.page_size >> 10),
				     (unsigned long long)(c->cfg.page_size >> 10), (long long)total);
	}
	c->hugetlb = true;
	c->page_size = c->cfg.page_size;
	return 0;
}

int gmm_memfd_create(const struct gmm_memfd_config *cfg, void **ctx)
{
	struct memfd_ctx *c;
	int err;

	if (!ctx)
		return gmm_set_error(-EINVAL, "gmm_memfd_create: NULL ctx");
	c = calloc(1, sizeof(*c));
	if (!c)
		return gmm_set_error(-ENOMEM, "memfd backing: out of memory");
	if (cfg)
		c->cfg = *cfg;
	c->host_nodes = gmm_host_nodes();
	pthread_mutex_init(&c->lock, NULL);
	err = choose_kind(c);
	if (!err) {
		err = open_memfd(c);
		if (err)
			gmm_set_error(err, "memfd backing: memfd_create(%s): %s",
				      c->hugetlb ? "MFD_HUGETLB" : "shmem", strerror(-err));
	}
	if (err) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return err;
	}
	*ctx = c;
	return 0;
}

static void memfd_destroy(void *ctx)
{
	struct memfd_ctx *c = ctx;

	if (!c)
		return;
	close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c->blocks);
	free(c);
}

/* --- blocks ---------------------------------------------------------------- */

static int grow_file(struct memfd_ctx *c, uint64_t end)
{
	if (end <= c->file_size)
		return 0;
	if (ftruncate(c->fd, (off_t)end))
		return gmm_set_error(-errno, "memfd backing: ftruncate to %llu bytes: %s",
				     (unsigned long long)end, strerror(errno));
	c->file_size = end;
	return 0;
}

/* Map @len bytes of the file at @off, aligned to 2 MiB (PMD-mappable). */
static void *map_aligned(struct memfd_ctx *c, uint64_t off, size_t len)
{
	size_t align = c->page_size > (2u << 20) ? c->page_size : 2u << 20;
	char *area, *start;
	void *p;

	area = mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		    -1, 0);
	if (area == MAP_FAILED)
		return MAP_FAILED;
	start = (char *)(((uintptr_t)area + align - 1) & ~(uintptr_t)(align - 1));
	p = mmap(start, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, c->fd, (off_t)off);
	if (p == MAP_FAILED) {
		int e = errno;

		munmap(area, len + align);
		errno = e;
		return MAP_FAILED;
	}
	if (start > area)
		munmap(area, (size_t)(start - area));
	munmap(start + len, (size_t)(area + len + align - (start + len)));
	return p;
}

static int bind_node(void *addr, size_t len, int node)
{
	unsigned long mask[1];

	if (node < 0)
		return 0;
	mask[0] = 1ul << node;
	if (syscall(SYS_mbind, addr, len, MPOL_BIND, mask, 64, 0))
		return gmm_set_error(-errno, "memfd backing: mbind to host node %d: %s", node,
				     strerror(errno));
	return 0;
}

static int check_hugepages(struct memfd_ctx *c, uint64_t len, int node)
{
	int64_t need = (int64_t)(len / c->page_size);
	int64_t free = read_huge(c->page_size, node, "free_hugepages");

	if (free >= 0 && free < need)
		return gmm_set_error(-ENOMEM, "memfd backing: need %lld hugepages of %llu kB, "
				     "the host has %lld free%s", (long long)need,
				     (unsigned long long)(c->page_size >> 10), (long long)free,
				     node < 0 ? "" : " on the bound node");
	return 0;
}

static int remember_block(struct memfd_ctx *c, const struct mf_block *b)
{
	if (c->nr_blocks == c->cap_blocks) {
		size_t cap = c->cap_blocks ? c->cap_blocks * 2 : 16;
		struct mf_block *nb = realloc(c->blocks, cap * sizeof(*nb));

		if (!nb)
			return gmm_set_error(-ENOMEM, "memfd backing: out of memory");
		c->blocks = nb;
		c->cap_blocks = cap;
	}
	c->blocks[c->nr_blocks++] = *b;
	return 0;
}

static int map_block(struct memfd_ctx *c, struct mf_block *b)
{
	uint64_t off = b->pfn << GMM_PAGE_SHIFT, len = b->nr << GMM_PAGE_SHIFT;
	int err;

	if (c->hugetlb && ((off | len) & (c->page_size - 1)))
		return gmm_set_error(-EINVAL, "memfd backing: memory block of %llu bytes is not "
				     "made of whole %llu kB hugepages", (unsigned long long)len,
				     (unsigned long long)(c->page_size >> 10));
	if (c->hugetlb) {
		err = check_hugepages(c, len, b->host_node);
		if (err)
			return err;
	}
	err = grow_file(c, off + len);
	if (err)
		return err;
	b->addr = map_aligned(c, off, len);
	if (b->addr == MAP_FAILED)
		return gmm_set_error(-ENOMEM, "memfd backing: cannot map %llu bytes%s: %s",
				     (unsigned long long)len,
				     c->hugetlb ? " (hugepage reservation failed?)" : "",
				     strerror(errno));
	if (!c->hugetlb)
		madvise(b->addr, len, MADV_HUGEPAGE);
	err = bind_node(b->addr, len, b->host_node);
	if (err)
		munmap(b->addr, len);
	return err;
}

static int memfd_block_add(void *ctx, uint64_t first_pfn, uint64_t nr_pages, int host_node,
			   void **addr)
{
	struct memfd_ctx *c = ctx;
	struct mf_block b = { .pfn = first_pfn, .nr = nr_pages };
	int err;

	if (!c)
		return gmm_set_error(-EINVAL, "memfd backing: no context (gmm_memfd_create)");
	b.host_node = real_node(c, host_node);
	pthread_mutex_lock(&c->lock);
	err = map_block(c, &b);
	if (!err) {
		err = remember_block(c, &b);
		if (err)
			munmap(b.addr, nr_pages << GMM_PAGE_SHIFT);
	}
	pthread_mutex_unlock(&c->lock);
	if (!err)
		*addr = b.addr;
	return err;
}

static void memfd_block_remove(void *ctx, uint64_t first_pfn, uint64_t nr_pages, void *addr)
{
	struct memfd_ctx *c = ctx;

	munmap(addr, nr_pages << GMM_PAGE_SHIFT);
	fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)(first_pfn << GMM_PAGE_SHIFT), (off_t)(nr_pages << GMM_PAGE_SHIFT));
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->nr_blocks; i++) {
		if (c->blocks[i].pfn == first_pfn) {
			c->blocks[i] = c->blocks[--c->nr_blocks];
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

static int memfd_discard(void *ctx, uint64_t pfn, uint64_t nr_pages, void *addr)
{
	struct memfd_ctx *c = ctx;

	(void)addr;
	if (fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(pfn << GMM_PAGE_SHIFT), (off_t)(nr_pages << GMM_PAGE_SHIFT)))
		return gmm_set_error(-errno, "memfd backing: punch hole at pfn %llu: %s",
				     (unsigned long long)pfn, strerror(errno));
	return 0;
}

static int memfd_frame_fd(void *ctx, uint64_t pfn, int *fd, uint64_t *offset)
{
	struct memfd_ctx *c = ctx;

	*fd = c->fd;
	*offset = pfn << GMM_PAGE_SHIFT;
	return 0;
}

/* Sample a few pages of a populated range: are they on the bound node? */
static void verify_placement(struct memfd_ctx *c, uint64_t pfn, uint64_t nr, char *addr)
{
	void *pages[3];
	int status[3], node = -1;

	for (size_t i = 0; i < c->nr_blocks; i++)
		if (pfn >= c->blocks[i].pfn && pfn < c->blocks[i].pfn + c->blocks[i].nr)
			node = c->blocks[i].host_node;
	if (node < 0 || c->cfg.no_verify)
		return;
	pages[0] = addr;
	pages[1] = addr + ((nr / 2) << GMM_PAGE_SHIFT);
	pages[2] = addr + ((nr - 1) << GMM_PAGE_SHIFT);
	if (syscall(SYS_move_pages, 0, 3ul, pages, NULL, status, 0))
		return;
	for (int i = 0; i < 3; i++)
		if (status[i] >= 0 && status[i] != node)
			__atomic_fetch_add(&c->misplaced, 1, __ATOMIC_RELAXED);
}

static int memfd_populate(void *ctx, uint64_t pfn, uint64_t nr_pages, void *addr)
{
	struct memfd_ctx *c = ctx;
	size_t len = nr_pages << GMM_PAGE_SHIFT;

	if (madvise(addr, len, MADV_POPULATE_WRITE) == 0) {
		verify_placement(c, pfn, nr_pages, addr);
		return 0;
	}
	if (errno != EINVAL)
		return gmm_set_error(-ENOMEM, "memfd backing: populating %zu bytes at pfn %llu: "
				     "%s%s", len, (unsigned long long)pfn, strerror(errno),
				     c->hugetlb ? " (no free hugepages?)" : "");
	/* kernels before 5.14: fallocate allocates as cleanly */
	if (fallocate(c->fd, 0, (off_t)(pfn << GMM_PAGE_SHIFT), (off_t)len))
		return gmm_set_error(-ENOMEM, "memfd backing: fallocate of %zu bytes: %s", len,
				     strerror(errno));
	return 0;
}

static int memfd_repopulate(void *ctx, uint64_t pfn, uint64_t nr_pages, void *addr)
{
	struct memfd_ctx *c = ctx;
	uint64_t mask = (c->page_size >> GMM_PAGE_SHIFT) - 1;
	uint64_t start = pfn & ~mask, end = (pfn + nr_pages + mask) & ~mask;

	(void)addr;
	if (!c->hugetlb)
		return 0;
	if (fallocate(c->fd, 0, (off_t)(start << GMM_PAGE_SHIFT),
		      (off_t)((end - start) << GMM_PAGE_SHIFT)))
		return gmm_set_error(-ENOMEM, "memfd backing: no hugepage for pfn %llu: %s",
				     (unsigned long long)pfn, strerror(errno));
	return 0;
}

static unsigned int memfd_page_order(void *ctx)
{
	struct memfd_ctx *c = ctx;

	return (unsigned int)__builtin_ctzll(c->page_size) - GMM_PAGE_SHIFT;
}

const struct gmm_backing_ops gmm_backing_memfd = {
	.name = "memfd",
	.block_add = memfd_block_add,
	.block_remove = memfd_block_remove,
	.discard = memfd_discard,
	.destroy = memfd_destroy,
	.frame_fd = memfd_frame_fd,
	.populate = memfd_populate,
	.repopulate = memfd_repopulate,
	.page_order = memfd_page_order,
};

/* --- statistics ------------------------------------------------------------ */

#define SAMPLE_MAX 1024

/* Resident pages of a block by host node: mincore, then move_pages on a sample. */
static void block_node_usage(struct memfd_ctx *c, const struct mf_block *b,
			     struct gmm_memfd_stats *st)
{
	size_t len = b->nr << GMM_PAGE_SHIFT, nres = 0, ns = 0;
	unsigned char *vec = malloc(b->nr);
	void *pages[SAMPLE_MAX];
	int status[SAMPLE_MAX];
	uint64_t stride;

	if (!vec || mincore(b->addr, len, vec)) {
		free(vec);
		return;
	}
	for (uint64_t i = 0; i < b->nr; i++)
		nres += vec[i] & 1;
	stride = nres > SAMPLE_MAX ? (nres + SAMPLE_MAX - 1) / SAMPLE_MAX : 1;
	for (uint64_t i = 0, k = 0; i < b->nr && ns < SAMPLE_MAX; i++)
		if ((vec[i] & 1) && k++ % stride == 0)
			pages[ns++] = (char *)b->addr + (i << GMM_PAGE_SHIFT);
	free(vec);
	if (!ns || syscall(SYS_move_pages, 0, ns, pages, NULL, status, 0))
		return;
	for (size_t i = 0; i < ns; i++) {
		int node = status[i] >= 0 ? status[i] : b->host_node;

		if (node < 0)
			node = 0;
		if (node < 64)
			st->node_bytes[node] += (nres * GMM_PAGE_SIZE) / ns;
		if (status[i] >= 0 && b->host_node >= 0 && status[i] != b->host_node)
			st->misplaced_pages++;
	}
	(void)c;
}

int gmm_memfd_stats(void *ctx, struct gmm_memfd_stats *st)
{
	struct memfd_ctx *c = ctx;
	struct stat sb;

	if (!c || !st)
		return gmm_set_error(-EINVAL, "gmm_memfd_stats: NULL argument");
	memset(st, 0, sizeof(*st));
	st->page_size = c->page_size;
	st->hugetlb = c->hugetlb;
	st->nr_host_nodes = (unsigned int)__builtin_popcountll(c->host_nodes);
	if (fstat(c->fd, &sb) == 0)
		st->allocated_bytes = (uint64_t)sb.st_blocks * 512;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->nr_blocks; i++) {
		st->mapped_bytes += c->blocks[i].nr << GMM_PAGE_SHIFT;
		if (!c->hugetlb)
			block_node_usage(c, &c->blocks[i], st);
	}
	pthread_mutex_unlock(&c->lock);
	st->misplaced_pages += __atomic_load_n(&c->misplaced, __ATOMIC_RELAXED);
	for (int n = 0; c->hugetlb && n < 64; n++) {
		if (!((c->host_nodes >> n) & 1))
			continue;
		st->node_huge_total[n] = (uint64_t)read_huge(c->page_size, n, "nr_hugepages");
		st->node_huge_free[n] = (uint64_t)read_huge(c->page_size, n, "free_hugepages");
		st->node_bytes[n] = (st->node_huge_total[n] - st->node_huge_free[n]) * c->page_size;
	}
	return 0;
}
