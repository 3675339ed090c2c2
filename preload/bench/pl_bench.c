/* pl_bench FILE MIB K GROUPS: an ordinary program (no daxpmem): writes K random
 * 64-byte records into a MIB MiB shared file mapping, then msync(MS_SYNC) of the
 * mapping, GROUPS times. Prints the mean time per group in microseconds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	size_t len, k, groups;
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	unsigned char rec[64], *p;
	double t0;
	int fd;

	if (argc != 5)
		return 2;
	len = (size_t)atol(argv[2]) << 20;
	k = (size_t)atol(argv[3]);
	groups = (size_t)atol(argv[4]);
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
		perror(argv[1]);
		return 1;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(p, 0, len); /* allocate the pages first */
	msync(p, len, MS_SYNC);
	memset(rec, 0xa5, sizeof rec);
	t0 = now();
	for (size_t g = 0; g < groups; g++) {
		for (size_t i = 0; i < k; i++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			rec[0] = (unsigned char)g;
			memcpy(p + (x % (len / 64)) * 64, rec, 64);
		}
		if (msync(p, len, MS_SYNC) != 0) {
			perror("msync");
			return 1;
		}
	}
	printf("%.3f\n", (now() - t0) * 1e6 / (double)groups);
	munmap(p, len);
	close(fd);
	unlink(argv[1]);
	return 0;
}
