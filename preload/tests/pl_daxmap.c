/* pl_daxmap DIR EXPECT: a program that maps with dax_map and then calls plain msync.
 * EXPECT=1: the preload is loaded and turns msync into dax_sync (seen in dax_get_stats
 * and in the preload's counters; munmap/mremap/madvise keep the registry true);
 * EXPECT=0: no preload (or DAXPMEM_PRELOAD_DISABLE=1): msync is the kernel's alone.
 * With DAXPMEM_FORCE_PMEM=1 the mapping is pmem: the syncs issue no msync at all. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include <daxpmem.h>
#include "pl_common.h"

static int fails, checks;
#define CHECK(c) do { checks++; if (!(c)) { fails++; fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d, %s)\n", \
	__FILE__, __LINE__, #c, errno, dax_errormsg()); } } while (0)

static struct dax_stats st(dax_map_t *m)
{
	struct dax_stats s;
	memset(&s, 0, sizeof s);
	s.size = sizeof s;
	if (dax_get_stats(m, &s) != 0)
		fprintf(stderr, "dax_get_stats: %s\n", dax_errormsg());
	return s;
}

int main(int argc, char **argv)
{
	char path[4096];
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), len = 64 * pg;
	const char *force = getenv("DAXPMEM_FORCE_PMEM");
	int expect, pmem, fd;
	dax_map_t *m, *h;
	struct dax_stats s0, s;
	char *p, *buf;
	uint64_t seen0 = daxpmem_counter(DAXPMEM_COUNTER_MSYNC_SEEN, 0);

	if (argc != 3)
		return 2;
	expect = atoi(argv[2]);
	snprintf(path, sizeof path, "%s/daxmap", argv[1]);
	unlink(path);
	m = dax_map(path, len, DAX_CREATE, 0644);
	if (!m) {
		fprintf(stderr, "dax_map: %s\n", dax_errormsg());
		return 1;
	}
	p = dax_addr(m);
	pmem = dax_is_pmem(m);
	if (force && strcmp(force, "1") == 0)
		CHECK(pmem == 1);
	printf("pl_daxmap: the mapping is %s\n", pmem ? "pmem" : "page cache");
	s0 = st(m);

	/* 1. a marked write, then plain msync(MS_SYNC) of the whole mapping */
	memset(p + 100, 'x', 300);
	CHECK(dax_mark_dirty(m, p + 100, 300) == 0);
	errno = 777;
	CHECK(msync(p, len, MS_SYNC) == 0);
	CHECK(errno == 777);
	s = st(m);
	CHECK(s.syncs - s0.syncs == (uint64_t)expect);
	if (expect) {
		CHECK(s.dirty_lines == 0);
		CHECK(s.msync_calls - s0.msync_calls == (pmem ? 0u : 1u));
		CHECK(s.lines_written_back - s0.lines_written_back >= 5);
	} else {
		CHECK(s.dirty_lines == 6); /* nobody synced them */
		CHECK(s.msync_calls == s0.msync_calls);
	}
	/* the data is in the file (another process reads it) */
	fd = open(path, O_RDONLY);
	buf = malloc(300);
	CHECK(fd >= 0 && pread(fd, buf, 300, 100) == 300 && memcmp(buf, p + 100, 300) == 0);
	close(fd);
	free(buf);

	/* 2. MS_ASYNC returns 0 and syncs nothing; a sub-range MS_SYNC is one dax_sync */
	s0 = st(m);
	CHECK(msync(p, pg, MS_ASYNC) == 0);
	CHECK(msync(p + pg, 2 * pg, 0) == 0);
	memset(p + 5 * pg, 'y', 64);
	dax_mark_dirty(m, p + 5 * pg, 64);
	CHECK(msync(p + 4 * pg, 2 * pg, MS_SYNC) == 0);
	s = st(m);
	CHECK(s.syncs - s0.syncs == (uint64_t)expect);
	if (expect)
		CHECK(s.msync_calls - s0.msync_calls == (pmem ? 0u : 1u));

	/* 3. ranges not wholly inside the mapping go to the kernel: no dax_sync */
	s0 = st(m);
	errno = 0;
	{
		int rc = msync(p + len - pg, 2 * pg, MS_SYNC);
		int e = errno;
		printf("msync past the end: rc %d errno %d\n", rc, rc ? e : 0);
	}
	CHECK(msync(p + 1, pg, MS_SYNC) == -1 && errno == EINVAL);
	CHECK(msync(p, pg, MS_SYNC | MS_ASYNC) == -1 && errno == EINVAL);
	s = st(m);
	CHECK(s.syncs == s0.syncs);

	/* 4. the preload's counters in the core */
	{
		uint64_t seen = daxpmem_counter(DAXPMEM_COUNTER_MSYNC_SEEN, 0) - seen0;
		uint64_t user = daxpmem_counter(DAXPMEM_COUNTER_MSYNC_USER, 0);
		uint64_t kern = daxpmem_counter(DAXPMEM_COUNTER_MSYNC_KERNEL, 0);
		CHECK(seen == (expect ? 7u : 0u));
		CHECK(user + kern == seen);
		if (expect)
			CHECK(user == (pmem ? 4u : 2u) && kern == (pmem ? 3u : 5u));
	}

	/* 5. madvise(MADV_DONTNEED) marks the dropped pages dirty (pmem mappings) */
	s0 = st(m);
	CHECK(madvise(p + 8 * pg, 2 * pg, MADV_DONTNEED) == 0);
	s = st(m);
	CHECK(s.dirty_lines - s0.dirty_lines == (expect && pmem ? 2 * pg / 64 : 0));
	CHECK(dax_sync(m, NULL, 0) == 0);

	/* 6. munmap of the middle: the registry is split (with the preload) */
	CHECK(munmap(p + 16 * pg, 16 * pg) == 0);
	h = dax_find(p);
	if (expect) {
		CHECK(h != NULL && h != m);
		CHECK(dax_find(p + 20 * pg) == NULL);
		CHECK(dax_find(p + 40 * pg) != NULL);
		CHECK(h && dax_len(h) == 16 * pg);
		/* msync of a split piece is a dax_sync of that piece */
		if (h) {
			s0 = st(h);
			memset(p, 'z', 64);
			dax_mark_dirty(h, p, 64);
			CHECK(msync(p, 16 * pg, MS_SYNC) == 0);
			s = st(h);
			CHECK(s.syncs - s0.syncs == 1);
		}
		/* the hole: the kernel says ENOMEM, as without the preload */
		CHECK(msync(p + 16 * pg, pg, MS_SYNC) == -1 && errno == ENOMEM);
	} else {
		CHECK(h == m); /* the registry did not see the munmap */
	}

	/* 7. mremap of a daxpmem range: synced, forgotten, moved by the kernel */
	if (expect) {
		char *n;
		h = dax_find(p + 40 * pg);
		memset(p + 40 * pg, 'w', 64);
		if (h)
			dax_mark_dirty(h, p + 40 * pg, 64);
		n = mremap(p + 32 * pg, 32 * pg, 64 * pg, MREMAP_MAYMOVE);
		CHECK(n != MAP_FAILED);
		CHECK(dax_find(p + 40 * pg) == NULL);
		CHECK(n != MAP_FAILED && dax_find(n) == NULL);
		CHECK(n != MAP_FAILED && msync(n, 32 * pg, MS_SYNC) == 0); /* the kernel's now */
		if (n != MAP_FAILED)
			CHECK(munmap(n, 64 * pg) == 0);
		CHECK(munmap(p, 16 * pg) == 0);
		CHECK(dax_find(p) == NULL);
	} else {
		CHECK(dax_unmap(m) == 0);
	}
	printf("pl_daxmap: %d checks, %d failed\n", checks, fails);
	return fails != 0;
}
