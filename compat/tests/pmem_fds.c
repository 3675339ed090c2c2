/*
 * pmem_fds.c -- file descriptors through libpmem's public API (issue 14), as a
 * transcript to compare between Debian's libpmem and ours (run_compat_tests.sh):
 * none is held once pmem_map_file returns or after a direct munmap; one free
 * descriptor is enough for pmem_map_file; with none free, unmapping the middle of
 * a mapping works and leaves the two ends mapped.
 *
 * usage: pmem_fds DIR
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpmem.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static int
nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static int fillers[512];
static int nfill;
static struct rlimit saved;

/* leave exactly `leave` descriptors free (soft limit 256) */
static void
exhaust(int leave)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &saved);
	rl = saved;
	rl.rlim_cur = 256;
	setrlimit(RLIMIT_NOFILE, &rl);
	nfill = 0;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
		fillers[nfill++] = fd;
	}
	while (leave-- > 0 && nfill > 0)
		close(fillers[--nfill]);
}

static void
release(void)
{
	while (nfill > 0)
		close(fillers[--nfill]);
	setrlimit(RLIMIT_NOFILE, &saved);
}

static int
mapped(char *a)
{
	return msync(a, 4096, MS_ASYNC) == 0;
}

int
main(int argc, char **argv)
{
	char path[4096];
	size_t len = 0;
	int e;
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/pmem_fds.%d", argv[1], (int)getpid());
	int base = nfds();

	char *a = pmem_map_file(path, 8 << 20, PMEM_FILE_CREATE, 0600, &len, NULL);
	printf("map: %s len=%zu descriptors held=%d\n", a ? "ok" : "NULL", len,
		nfds() - base);
	printf("munmap directly: ret=%d descriptors held=%d\n",
		a ? munmap(a, len) : -1, nfds() - base);

	exhaust(1);
	errno = 0;
	a = pmem_map_file(path, 0, 0, 0, &len, NULL);
	e = errno;
	release();
	printf("map with one free descriptor: %s errno=%s\n", a ? "ok" : "NULL",
		a ? "-" : strerror(e));

	if (a != NULL) {
		exhaust(0);
		errno = 0;
		int r = pmem_unmap(a + (2 << 20), 2 << 20);
		e = errno;
		release();
		printf("unmap the middle with none free: ret=%d errno=%s "
			"mapped: head=%d middle=%d tail=%d\n", r,
			r ? strerror(e) : "-", mapped(a), mapped(a + (3 << 20)),
			mapped(a + (6 << 20)));
		printf("is_pmem of the ends: %d %d\n", pmem_is_pmem(a, 4096),
			pmem_is_pmem(a + (6 << 20), 4096));
		printf("unmap the ends: %d %d\n", pmem_unmap(a, 2 << 20),
			pmem_unmap(a + (4 << 20), 4 << 20));
	}
	printf("descriptors held at the end=%d\n", nfds() - base);
	unlink(path);
	return 0;
}
