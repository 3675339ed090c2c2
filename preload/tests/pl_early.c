/* libpl_early.so: a library whose constructor runs before the preload's (listed after
 * it in LD_PRELOAD) and calls the hooked functions then: they must work (raw system
 * calls) and must not reach the core (the preload's counters stay 0). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((constructor)) static void early(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int r1, e1, r2, r3, e3, r4, r5;
	if (p == MAP_FAILED) {
		printf("early: mmap failed\n");
		return;
	}
	memset(p, 1, 4 * pg);
	errno = 0;
	r1 = msync(p, pg, 8);
	e1 = errno;
	r2 = msync(p, 4 * pg, MS_SYNC);
	r3 = msync(p + 1, pg, MS_SYNC);
	e3 = errno;
	r4 = madvise(p, pg, MADV_DONTNEED);
	p = mremap(p, 4 * pg, 2 * pg, 0);
	r5 = p == MAP_FAILED ? -1 : munmap(p, 2 * pg);
	printf("early: msync bad flags %d/%d, msync %d, unaligned %d/%d, madvise %d, mremap+munmap %d\n",
	       r1, e1, r2, r3, e3, r4, r5);
	fflush(stdout);
}
