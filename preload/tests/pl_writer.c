/* pl_writer FILE READER: an ordinary program (no daxpmem): maps a file, writes,
 * msyncs in every flavour, and after each msync lets another process read the file.
 * Its output must be the same with and without the preload. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include "pl_common.h"

#define SZ (1u << 20)

static const char *file, *reader;

static void scribble(unsigned char *p, size_t len, int n)
{
	for (int i = 0; i < n; i++) {
		size_t off = pl_rand() % (len - 64);
		for (int j = 0; j < 64; j++)
			p[off + j] = (unsigned char)pl_rand();
	}
}

static void report(const char *what, int rc, int err)
{
	printf("%s: rc %d errno %d\n", what, rc, rc ? err : 0);
	if (pl_run_reader(reader, file) != 0)
		printf("  reader failed\n");
}

int main(int argc, char **argv)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *a, *b;
	int fd, rc;
	static const int flags[] = { MS_SYNC, MS_ASYNC, 0, MS_SYNC | MS_INVALIDATE,
				     MS_ASYNC | MS_INVALIDATE, MS_INVALIDATE };

	if (argc != 3)
		return 2;
	file = argv[1];
	reader = argv[2];
	unlink(file);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, SZ) != 0)
		PL_DIE("open");
	/* first half with mmap, second half with mmap64 */
	a = mmap(NULL, SZ / 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	b = mmap64(NULL, SZ / 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd, SZ / 2);
	if (a == MAP_FAILED || b == MAP_FAILED)
		PL_DIE("mmap");
	for (int r = 0; r < 12; r++) {
		char what[64];
		int f = flags[r % 6];
		scribble(a, SZ / 2, 50);
		scribble(b, SZ / 2, 50);
		errno = 0;
		rc = msync(a, SZ / 2, f);
		snprintf(what, sizeof what, "round %d msync(a, flags %d)", r, f);
		report(what, rc, errno);
		rc = msync(b + 3 * pg, 5 * (size_t)pg + 100, f);
		snprintf(what, sizeof what, "round %d msync(b+3p, 5p+100, flags %d)", r, f);
		report(what, rc, errno);
		rc = msync(b, SZ / 2, MS_SYNC);
		report("  msync(b) MS_SYNC", rc, errno);
	}
	/* pages dropped from the mapping come back from the file */
	scribble(a, SZ / 2, 20);
	rc = msync(a, SZ / 2, MS_SYNC);
	report("msync before madvise", rc, errno);
	rc = madvise(a + 16 * pg, 32 * (size_t)pg, MADV_DONTNEED);
	printf("madvise DONTNEED: rc %d, mapping fnv %016llx\n", rc, (unsigned long long)pl_fnv(a, SZ / 2));
	/* a hole in the middle of the first mapping, then both sides go on */
	rc = munmap(a + 64 * pg, 16 * (size_t)pg);
	printf("munmap middle: rc %d\n", rc);
	scribble(a, 64 * (size_t)pg, 10);
	scribble(a + 80 * pg, SZ / 2 - 80 * (size_t)pg, 10);
	rc = msync(a, 64 * (size_t)pg, MS_SYNC);
	report("msync head", rc, errno);
	rc = msync(a + 80 * pg, SZ / 2 - 80 * (size_t)pg, MS_SYNC);
	report("msync tail", rc, errno);
	errno = 0;
	rc = msync(a, SZ / 2, MS_SYNC);
	report("msync over the hole", rc, errno);
	/* grow the file and the second mapping with mremap */
	if (ftruncate(fd, SZ * 2) != 0)
		PL_DIE("ftruncate");
	b = mremap(b, SZ / 2, SZ / 2 + SZ, MREMAP_MAYMOVE);
	if (b == MAP_FAILED)
		PL_DIE("mremap");
	scribble(b, SZ / 2 + SZ, 100);
	rc = msync(b, SZ / 2 + SZ, MS_SYNC);
	report("msync after mremap", rc, errno);
	printf("munmap: %d %d %d\n", munmap(a, 64 * (size_t)pg), munmap(a + 80 * pg, SZ / 2 - 80 * (size_t)pg),
	       munmap(b, SZ / 2 + SZ));
	close(fd);
	report("closed", 0, 0);
	return 0;
}
