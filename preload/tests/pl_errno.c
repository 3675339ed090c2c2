/* pl_errno DIR: the return value and errno of msync/munmap/madvise/mremap/mmap for
 * bad and edge-case arguments, on an ordinary mapping and on a daxpmem mapping (the
 * preload's "known mapping" path). One line per case; the output with the preload
 * must equal the output without it. Successful calls must leave errno alone. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include <daxpmem.h>
#include "pl_common.h"

#define KEEP 12345 /* errno before every call: a success must leave it */

static size_t pg;

#define T(name, call) do { errno = KEEP; long rc_ = (long)(call); int e_ = errno; \
	printf("%-44s rc %ld errno %d\n", name, rc_, e_); } while (0)
#define TM(name, call) do { errno = KEEP; void *p_ = (call); int e_ = errno; \
	printf("%-44s %s errno %d\n", name, p_ == MAP_FAILED ? "MAP_FAILED" : "mapped", e_); \
	if (p_ != MAP_FAILED) munmap(p_, pg); } while (0)

static void msync_matrix(const char *tag, char *p, size_t len)
{
	char n[64];
#define M(what, a, l, f) do { snprintf(n, sizeof n, "%s msync %s", tag, what); T(n, msync(a, l, f)); } while (0)
	M("bad flag 8", p, len, 8);
	M("flags -1", p, len, -1);
	M("ASYNC|SYNC", p, len, MS_ASYNC | MS_SYNC);
	M("ASYNC|SYNC|bad", p, len, MS_ASYNC | MS_SYNC | 8);
	M("unaligned", p + 1, len, MS_SYNC);
	M("unaligned ASYNC|SYNC", p + 1, len, MS_ASYNC | MS_SYNC);
	M("unaligned len 0", p + 1, 0, MS_SYNC);
	M("len 0", p, 0, MS_SYNC);
	M("len 0 bad flags", p, 0, 8);
	M("len 1", p, 1, MS_SYNC);
	M("len SIZE_MAX", p, SIZE_MAX, MS_SYNC);
	M("len SIZE_MAX-pg+1", p, SIZE_MAX - pg + 1, MS_SYNC);
	M("len SIZE_MAX-pg", p, SIZE_MAX - pg, MS_SYNC);
	M("len SIZE_MAX/2", p, SIZE_MAX / 2, MS_SYNC);
	M("len SIZE_MAX/2 ASYNC", p, SIZE_MAX / 2, MS_ASYNC);
	M("whole SYNC", p, len, MS_SYNC);
	M("whole ASYNC", p, len, MS_ASYNC);
	M("whole 0", p, len, 0);
	M("whole INVALIDATE", p, len, MS_INVALIDATE);
	M("whole SYNC|INVALIDATE", p, len, MS_SYNC | MS_INVALIDATE);
	M("whole ASYNC|INVALIDATE", p, len, MS_ASYNC | MS_INVALIDATE);
	M("second page", p + pg, pg, MS_SYNC);
	M("last page + 1 (past the end)", p + len - pg, 2 * pg, MS_SYNC);
	M("last page + 1 ASYNC", p + len - pg, 2 * pg, MS_ASYNC);
	M("len+pg", p, len + pg, MS_SYNC);
	M("odd len inside", p, len - pg + 7, MS_SYNC);
	if (mlock(p, pg) == 0) {
		M("mlocked INVALIDATE", p, pg, MS_INVALIDATE);
		M("mlocked SYNC|INVALIDATE", p, pg, MS_SYNC | MS_INVALIDATE);
		M("mlocked SYNC", p, pg, MS_SYNC);
		munlock(p, pg);
	} else {
		printf("%s mlock failed (%d): skipped\n", tag, errno);
	}
#undef M
}

int main(int argc, char **argv)
{
	char path[4096], path2[4096];
	char *p, *q, *d;
	dax_map_t *m;
	int fd, rofd;
	size_t len;

	if (argc != 2)
		return 2;
	pg = (size_t)sysconf(_SC_PAGESIZE);
	len = 8 * pg;
	snprintf(path, sizeof path, "%s/errno-plain", argv[1]);
	snprintf(path2, sizeof path2, "%s/errno-dax", argv[1]);
	unlink(path);
	unlink(path2);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)(64 * pg)) != 0)
		PL_DIE("open");
	rofd = open(path, O_RDONLY);
	/* a guard page around the mapping so "past the end" is unmapped */
	p = mmap(NULL, len + 2 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		PL_DIE("mmap");
	p += pg;
	if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != p)
		PL_DIE("mmap fixed");
	munmap(p + len, pg);
	munmap(p - pg, pg);
	memset(p, 'p', len);
	/* q: an unmapped page, used at once (a later mapping may take its place) */
	printf("start\n");
	q = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(q, pg);
	T("msync unmapped", msync(q, pg, MS_SYNC));
	T("msync unmapped ASYNC", msync(q, pg, MS_ASYNC));
	T("msync unmapped 0", msync(q, pg, 0));
	T("munmap unmapped", munmap(q, pg));
	T("madvise unmapped DONTNEED", madvise(q, pg, MADV_DONTNEED));
	TM("mremap unmapped", mremap(q, pg, 2 * pg, 0));

	msync_matrix("plain", p, len);

	m = dax_map(path2, len, DAX_CREATE, 0644);
	if (!m) {
		fprintf(stderr, "dax_map: %s\n", dax_errormsg());
		return 1;
	}
	d = dax_addr(m);
	memset(d, 'd', len);
	dax_mark_dirty(m, d, len);
	msync_matrix("daxmap", d, len);

	T("msync NULL", msync(NULL, pg, MS_SYNC));
	T("msync NULL ASYNC", msync(NULL, pg, MS_ASYNC));

	T("munmap NULL 0", munmap(NULL, 0));
	T("munmap unaligned", munmap(p + 1, pg));
	T("munmap len 0", munmap(p, 0));
	T("munmap SIZE_MAX", munmap(p, SIZE_MAX));
	T("munmap wrapping", munmap((void *)(UINTPTR_MAX & ~(uintptr_t)(pg - 1)), 2 * pg));
	T("madvise unaligned", madvise(p + 1, pg, MADV_DONTNEED));
	T("madvise bad advice", madvise(p, pg, 12345));
	T("madvise DONTNEED", madvise(p, pg, MADV_DONTNEED));
	T("madvise REMOVE plain", madvise(p + pg, pg, MADV_REMOVE));
	T("madvise DONTNEED daxmap", madvise(d + pg, 2 * pg, MADV_DONTNEED));
	T("madvise len 0", madvise(p, 0, MADV_DONTNEED));
	TM("mremap unaligned", mremap(p + 1, pg, 2 * pg, 0));
	TM("mremap new 0", mremap(p, pg, 0, 0));
	TM("mmap len 0", mmap(NULL, 0, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	TM("mmap unaligned offset", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 1));
	TM("mmap64 unaligned offset", mmap64(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 1));
	TM("mmap bad fd", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, -1, 0));
	TM("mmap closed fd", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, 999, 0));
	TM("mmap read-only fd RW", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, rofd, 0));
	TM("mmap MAP_SYNC non-DAX", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0));
	TM("mmap SHARED_VALIDATE bad flag", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | 0x800000, fd, 0));
	TM("mmap SHARED_VALIDATE", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE, fd, 0));
	TM("mmap no type", mmap(NULL, pg, PROT_READ | PROT_WRITE, 0, fd, 0));
	TM("mmap ok", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pg));
	TM("mmap64 ok", mmap64(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 2 * (off64_t)pg));
	TM("mmap anon", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
	T("munmap plain", munmap(p, len));
	T("dax_unmap", dax_unmap(m));
	close(fd);
	close(rofd);
	unlink(path);
	unlink(path2);
	return 0;
}
