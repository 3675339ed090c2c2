/* pl_fork FILE READER: fork and exec from a (preloaded) process that has a shared
 * file mapping: a child writes and msyncs and exits, a second child execs READER,
 * the parent msyncs its own writes afterwards. Output identical with and without the
 * preload; with DAXPMEM_STATS=1 three processes print a stats line (the parent, the
 * first child, the exec'ed reader). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include "pl_common.h"

int main(int argc, char **argv)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), len = 32 * pg;
	unsigned char *p;
	pid_t pid;
	int fd, st;

	if (argc != 3)
		return 2;
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
		PL_DIE("open");
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		PL_DIE("mmap");
	memset(p, 'a', len / 2);
	printf("parent msync: %d\n", msync(p, len / 2, MS_SYNC));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		memset(p + len / 2, 'b', len / 2);
		printf("child msync: %d\n", msync(p + len / 2, len / 2, MS_SYNC));
		printf("child munmap: %d\n", munmap(p, len));
		exit(0);
	}
	waitpid(pid, &st, 0);
	printf("child 1 exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	printf("parent sees child's write: %d\n", p[len - 1] == 'b');
	printf("exec reader: %d\n", pl_run_reader(argv[2], argv[1]));
	memset(p, 'c', pg);
	printf("parent msync again: %d\n", msync(p, len, MS_SYNC));
	printf("exec reader: %d\n", pl_run_reader(argv[2], argv[1]));
	printf("parent munmap: %d\n", munmap(p, len));
	return 0;
}
