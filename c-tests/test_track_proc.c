/* Process-level behaviour with DAX_TRACK_MPROTECT (or another mode given by name):
 *   test_track_proc DIR MODE segv      a SIGSEGV handler the program installs (through
 *                                      dax_chain_sigaction) still sees its own faults,
 *                                      and tracked stores keep being tracked
 *   test_track_proc DIR MODE nullderef a real NULL dereference: dies of SIGSEGV
 *   test_track_proc DIR MODE fork      fork: the child writes and syncs its own writes,
 *                                      the parent's tracking is unaffected; then exec
 *   test_track_proc DIR MODE scatter   >= 100 000 scattered pages (past vm.max_map_count
 *                                      for one VMA per page) are written and synced
 * MODE: mprotect | uffd */
#include <daxpmem.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static sigjmp_buf jb;
static volatile sig_atomic_t own_faults = 0;
static void own_handler(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    (void)ctx;
    own_faults++;
    siglongjmp(jb, 1);
}

/* One fault of the program's own (a store to an unmapped low address), caught by its
 * handler; kept apart so no variable of the caller lives across the longjmp. */
static int own_fault(int i) {
    if (sigsetjmp(jb, 1) == 0) {
        volatile unsigned char *bad = (volatile unsigned char *)(uintptr_t)(16 + i);
        *bad = 1;
        return 0;
    }
    return 1;
}

static dax_map_t *map_tracked(const char *dir, const char *name, size_t len, unsigned mode) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
    dax_map_t *c = dax_map(p, len, DAX_CREATE | DAX_SPARSE, 0644);
    if (!c) return NULL;
    dax_unmap(c);
    dax_map_t *m = dax_map(p, 0, mode, 0);
    unlink(p);
    return m;
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    const char *dir = argv[1], *what = argv[3];
    unsigned mode = strcmp(argv[2], "uffd") == 0 ? DAX_TRACK_UFFD : DAX_TRACK_MPROTECT;
    if (strcmp(what, "exec-child") == 0) { /* the exec'd image: starts clean */
        printf("exec'd child ran\n");
        return 0;
    }
    size_t len = strcmp(what, "scatter") == 0 ? (size_t)1 << 30 : (size_t)16 << 20;
    dax_map_t *m = map_tracked(dir, "track_proc.dat", len, mode);
    if (!m && errno == EOPNOTSUPP) {
        printf("%s not available here: %s\n", argv[2], dax_errormsg());
        return check_done("test_track_proc");
    }
    CHECK(m != NULL);
    if (!m) return check_done("test_track_proc");
    unsigned char *a = (unsigned char *)dax_addr(m);

    if (strcmp(what, "segv") == 0) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = own_handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        int r = dax_chain_sigaction(SIGSEGV, &sa, &old);
        CHECK(r == 0 || (r == 1 && mode == DAX_TRACK_UFFD)); /* uffd installs no handler */
        if (r == 1) CHECK(sigaction(SIGSEGV, &sa, &old) == 0);
        for (int i = 0; i < 5; i++) {
            CHECK(own_fault(i) == 1); /* the program's own fault reached its handler */
            a[(size_t)i * 4096] = (unsigned char)i; /* tracked stores keep working */
            CHECK(dax_sync(m, NULL, 0) == 0);
        }
        CHECK(own_faults == 5);
        CHECK(stats(m).lines_written_back >= 5 * 64 || mode == DAX_TRACK_UFFD);
    } else if (strcmp(what, "nullderef") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            a[0] = 1; /* tracked: handled */
            volatile int *np = (volatile int *)0;
            *np = 42; /* real: must kill */
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    } else if (strcmp(what, "fork") == 0) {
        a[0] = 1;
        CHECK(dax_sync(m, NULL, 0) == 0);
        uint64_t before = stats(m).lines_written_back;
        pid_t pid = fork();
        if (pid == 0) {
            a[8192] = 2; /* the child's own write, tracked or conservatively whole */
            int ok = dax_sync(m, NULL, 0) == 0 && stats(m).lines_written_back > before;
            if (ok) {
                execl(argv[0], argv[0], dir, argv[2], "exec-child", (char *)NULL);
                _exit(3);
            }
            _exit(1);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        /* The parent: its bits untouched by the child, its next write tracked. */
        a[4096 * 7] = 3;
        CHECK(dax_sync(m, NULL, 0) == 0);
        CHECK(stats(m).lines_written_back - before >= 64);
    } else if (strcmp(what, "scatter") == 0) {
        size_t pages = len / 4096, n = 0;
        for (size_t p = 0; p < pages; p += 2) { /* every other page: no two runs merge */
            a[p * 4096] = (unsigned char)p;
            n++;
        }
        CHECK(n >= 100000);
        CHECK(dax_sync(m, NULL, 0) == 0);
        struct dax_stats s = stats(m);
        printf("scatter: %zu pages written, %llu faults, %llu lines written back\n", n,
               (unsigned long long)s.tracked_faults, (unsigned long long)s.lines_written_back);
        CHECK(s.lines_written_back >= n); /* over-marking allowed, never fewer */
        /* a second round after the sync: tracked again */
        for (size_t p = 1; p < pages; p += 1024) a[p * 4096] = 7;
        CHECK(dax_sync(m, NULL, 0) == 0);
        CHECK(stats(m).lines_written_back > s.lines_written_back);
    }
    CHECK(dax_unmap(m) == 0);
    return check_done("test_track_proc");
}
