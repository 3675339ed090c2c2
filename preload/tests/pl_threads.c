/* pl_threads FILE: threads write their own slices of one shared mapping and msync
 * them, while other threads map and unmap files of their own; at the end the file
 * (read with pread) must hold every thread's last round. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include "pl_common.h"

#define NT 4
#define ROUNDS 300
#define SLICE (64 * 1024)

static unsigned char *map;
static const char *file;
static int errors;

static void fail(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
}

static void *writer(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned char *s = map + (size_t)t * SLICE;
	for (int r = 1; r <= ROUNDS; r++) {
		for (size_t i = 0; i < SLICE; i += 512)
			s[i] = (unsigned char)(r + t);
		if (msync(s, SLICE, (r % 3) ? MS_SYNC : MS_ASYNC) != 0)
			fail("writer msync");
	}
	if (msync(s, SLICE, MS_SYNC) != 0)
		__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void *mapper(void *arg)
{
	char path[4200];
	int t = (int)(intptr_t)arg, fd;
	snprintf(path, sizeof path, "%s.m%d", file, t);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, 16 * 4096) != 0) {
		__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	for (int r = 0; r < ROUNDS; r++) {
		unsigned char *p = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
			break;
		}
		p[r] = (unsigned char)r;
		if (msync(p, 16 * 4096, MS_SYNC) != 0)
			fail("mapper msync");
		if (munmap(p + 4096, 4096) != 0)
			fail("munmap one page");
		/* the parts left (the hole may already hold another thread's mapping) */
		if (munmap(p, 4096) != 0 || munmap(p + 2 * 4096, 14 * 4096) != 0)
			fail("munmap");
	}
	close(fd);
	unlink(path);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[2 * NT];
	unsigned char *buf = malloc(SLICE);
	int fd, bad = 0;

	if (argc != 2 || !buf)
		return 2;
	file = argv[1];
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, NT * SLICE) != 0)
		PL_DIE("open");
	map = mmap(NULL, NT * SLICE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		PL_DIE("mmap");
	for (int t = 0; t < NT; t++) {
		pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t);
		pthread_create(&th[NT + t], NULL, mapper, (void *)(intptr_t)t);
	}
	for (int t = 0; t < 2 * NT; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < NT; t++) {
		if (pread(fd, buf, SLICE, (off_t)t * SLICE) != SLICE)
			bad++;
		for (size_t i = 0; i < SLICE; i += 512)
			if (buf[i] != (unsigned char)(ROUNDS + t))
				bad++;
	}
	printf("threads: %d msync/mmap errors, %d bad bytes\n", errors, bad);
	munmap(map, NT * SLICE);
	return errors || bad;
}
