/* pl_segv MODE FILE: a program with its own SIGSEGV handling, under a preload that
 * may adopt its file mapping.
 *   sigaction: an SA_SIGINFO handler makes a PROT_NONE page writable and returns;
 *   signal:    signal() + siglongjmp out of the handler;
 *   null:      dereferences NULL with no handler: must die of SIGSEGV. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include "pl_common.h"

static char *guard;
static size_t pg;
static volatile sig_atomic_t faults;
static sigjmp_buf jb;

static void on_segv_info(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	if (sig == SIGSEGV && (char *)si->si_addr >= guard && (char *)si->si_addr < guard + pg) {
		faults++;
		mprotect(guard, pg, PROT_READ | PROT_WRITE);
		return;
	}
	signal(SIGSEGV, SIG_DFL);
}

static void on_segv_jump(int sig)
{
	(void)sig;
	faults++;
	siglongjmp(jb, 1);
}

int main(int argc, char **argv)
{
	char *map;
	int fd;

	if (argc != 3)
		return 2;
	pg = (size_t)sysconf(_SC_PAGESIZE);
	fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)(16 * pg)) != 0)
		PL_DIE("open");
	map = mmap(NULL, 16 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	guard = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED || guard == MAP_FAILED)
		PL_DIE("mmap");
	memset(map, 'm', 16 * pg);
	if (strcmp(argv[1], "sigaction") == 0) {
		struct sigaction sa, old;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_segv_info;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSEGV, &sa, &old) != 0)
			PL_DIE("sigaction");
		printf("old handler default: %d\n", old.sa_handler == SIG_DFL);
		guard[10] = 'g'; /* faults once, the handler fixes it */
		guard[20] = 'h';
		printf("faults %d, guard %c%c\n", (int)faults, guard[10], guard[20]);
		if (sigaction(SIGSEGV, NULL, &old) != 0)
			PL_DIE("sigaction query");
		printf("handler still ours: %d\n", old.sa_sigaction == on_segv_info);
	} else if (strcmp(argv[1], "signal") == 0) {
		void (*prev)(int) = signal(SIGSEGV, on_segv_jump);
		printf("previous default: %d\n", prev == SIG_DFL);
		static int i; /* static: survives siglongjmp */
		for (i = 0; i < 3; i++)
			if (sigsetjmp(jb, 1) == 0)
				guard[i] = 'x';
		printf("faults %d\n", (int)faults);
		prev = signal(SIGSEGV, SIG_DFL);
		printf("previous was ours: %d\n", prev == on_segv_jump);
	} else if (strcmp(argv[1], "null") == 0) {
		volatile int *np = NULL;
		printf("about to dereference NULL\n");
		fflush(stdout);
		*np = 1;
		printf("survived?!\n");
	} else {
		return 2;
	}
	if (msync(map, 16 * pg, MS_SYNC) != 0)
		PL_DIE("msync");
	printf("done\n");
	return 0;
}
