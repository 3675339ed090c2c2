/* Helpers for the preload test programs (plain C11 + POSIX; no daxpmem). */
#ifndef PL_COMMON_H
#define PL_COMMON_H
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t pl_rng = 88172645463325252ULL;
static inline uint64_t pl_rand(void)
{
	pl_rng ^= pl_rng << 13;
	pl_rng ^= pl_rng >> 7;
	pl_rng ^= pl_rng << 17;
	return pl_rng;
}

static inline uint64_t pl_fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

/* Run `reader file` in another process (fork + exec: the preload follows through
 * LD_PRELOAD in the environment) and wait for it. */
static inline int pl_run_reader(const char *reader, const char *file)
{
	pid_t pid;
	int st;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl(reader, reader, file, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define PL_DIE(what) do { fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, what, strerror(errno)); exit(1); } while (0)
#endif
