/* pl_reader FILE: another process's view of FILE through pread: size and FNV-1a hash. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned char buf[65536];
	uint64_t h = 1469598103934665603ULL, size = 0;
	ssize_t n;
	off_t off = 0;
	int fd;

	if (argc != 2)
		return 2;
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 1099511628211ULL;
		off += n;
		size += (uint64_t)n;
	}
	printf("  reader: %llu bytes, fnv %016llx\n", (unsigned long long)size, (unsigned long long)h);
	return n < 0;
}
