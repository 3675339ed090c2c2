/* The library's signal handling and argument checks (soundness issue, items 7, 9-11):
 *   test_signals DIR killsegv  kill/raise/sigqueue(SIGSEGV) is never taken for a
 *                              tracking fault: with SIG_DFL the process dies of it, with
 *                              SIG_IGN it is ignored, a program handler receives it
 *   test_signals DIR longjmp   a program SIGSEGV handler left by plain longjmp: tracked
 *                              stores keep working; the handler runs with its sa_mask
 *   test_signals DIR nested    a signal handler that stores into a tracked page,
 *                              interrupting the tracking handler: no hang, no death
 *   test_signals DIR truncate  the file shrunk under a mapping with dirty lines:
 *                              dax_sync/dax_memcpy/dax_memset return EIO (sticky),
 *                              the program's own store still dies of SIGBUS or reaches
 *                              its own handler
 *   test_signals DIR mapfd     dax_map_fd checks what dax_map checks
 *   test_signals DIR adopt     dax_adopt accepts only a shared writable mapping of fd */
#include <daxpmem.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static const char *dir;

static const char *path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/signals-%s.dat", dir, name);
    return p;
}

static dax_map_t *map_tracked(const char *name, size_t len, unsigned mode) {
    const char *p = path(name);
    unlink(p);
    dax_map_t *m = dax_map(p, len, DAX_CREATE | DAX_SPARSE | mode, 0644);
    unlink(p);
    return m;
}

/* Wait for pid at most `secs` seconds (then kill it): the raw wait status, or -1 when
 * it had to be killed (hung). */
static int wait_for(pid_t pid, int secs) {
    int st = 0;
    for (int i = 0; i < secs * 100; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) return st;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static int died_of(int st, int sig) { return st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == sig; }
static int exited_ok(int st) { return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0; }

/* ---- killsegv ---- */

static volatile sig_atomic_t got_user = 0;
static void count_user(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    if (si->si_code <= 0) got_user++;
}

static void killsegv(void) {
    dax_map_t *m = map_tracked("killsegv", 1 << 20, DAX_TRACK_MPROTECT);
    CHECK(m != NULL);
    if (!m) return;
    unsigned char *a = (unsigned char *)dax_addr(m);
    a[0] = 1; /* the handler is in place and works */
    for (int how = 0; how < 3; how++) {
        pid_t pid = fork();
        if (pid == 0) {
            a[4096] = 2;
            if (how == 0) kill(getpid(), SIGSEGV);
            if (how == 1) raise(SIGSEGV);
            if (how == 2) {
                union sigval v;
                v.sival_int = 0;
                sigqueue(getpid(), SIGSEGV, v);
            }
            _exit(0); /* survived: wrong (no tracked store after it: that would die anyway) */
        }
        int st = wait_for(pid, 20);
        if (!died_of(st, SIGSEGV)) fprintf(stderr, "killsegv %d: status %#x\n", how, st);
        CHECK(died_of(st, SIGSEGV));
    }
    /* SIG_IGN: a sent SIGSEGV is ignored, tracking goes on */
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        if (dax_chain_sigaction(SIGSEGV, &sa, NULL) != 0) _exit(2);
        kill(getpid(), SIGSEGV);
        a[3 * 4096] = 4;
        _exit(dax_sync(m, NULL, 0) == 0 ? 0 : 3);
    }
    CHECK(exited_ok(wait_for(pid, 20)));
    /* a program handler sees the sent signal (si_code <= 0) */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = count_user;
    sa.sa_flags = SA_SIGINFO;
    CHECK(dax_chain_sigaction(SIGSEGV, &sa, &old) == 0);
    kill(getpid(), SIGSEGV);
    raise(SIGSEGV);
    CHECK(got_user == 2);
    a[5 * 4096] = 5;
    CHECK(dax_sync(m, NULL, 0) == 0);
    CHECK(dax_chain_sigaction(SIGSEGV, &old, NULL) == 0);
    CHECK(dax_unmap(m) == 0);
}

/* ---- longjmp ---- */

static jmp_buf pj;
static volatile sig_atomic_t plain_faults = 0, usr2_blocked = 0, usr1_blocked = 0;
static void plain_handler(int sig) {
    (void)sig;
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    usr2_blocked += sigismember(&cur, SIGUSR2) == 1;
    usr1_blocked += sigismember(&cur, SIGUSR1) == 1;
    plain_faults++;
    longjmp(pj, 1); /* plain longjmp: the signal mask is not restored */
}

static void own_plain_fault(int i) {
    if (setjmp(pj) == 0) {
        volatile unsigned char *bad = (volatile unsigned char *)(uintptr_t)(16 + i);
        *bad = 1;
    }
}

static void longjmp_case(void) {
    dax_map_t *m = map_tracked("longjmp", 1 << 20, DAX_TRACK_MPROTECT);
    CHECK(m != NULL);
    if (!m) return;
    unsigned char *a = (unsigned char *)dax_addr(m);
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = plain_handler;
        sigemptyset(&sa.sa_mask);
        sigaddset(&sa.sa_mask, SIGUSR2);
        if (dax_chain_sigaction(SIGSEGV, &sa, NULL) != 0) _exit(2);
        for (int i = 0; i < 5; i++) {
            own_plain_fault(i);
            a[(size_t)i * 4096] = (unsigned char)i; /* must not kill */
            if (dax_sync(m, NULL, 0) != 0) _exit(3);
        }
        if (plain_faults != 5) _exit(4);
        if (usr2_blocked != 5) _exit(5); /* the handler's sa_mask was in force */
        if (usr1_blocked != 0) _exit(6); /* nothing else was */
        _exit(0);
    }
    int st = wait_for(pid, 20);
    if (!exited_ok(st)) fprintf(stderr, "longjmp: status %#x\n", st);
    CHECK(exited_ok(st));
    CHECK(dax_unmap(m) == 0);
}

/* ---- nested ---- */

static unsigned char *nested_base;
static volatile unsigned nested_i = 0;
static void usr1_store(int sig) {
    (void)sig;
    nested_base[(size_t)(512 + (nested_i++ % 256)) * 4096] = 1; /* a tracked store */
}
static volatile int nested_stop = 0;
static void *pester(void *arg) {
    pthread_t t = *(pthread_t *)arg;
    while (!nested_stop) pthread_kill(t, SIGUSR1);
    return NULL;
}

static void nested(void) {
    dax_map_t *m = map_tracked("nested", 4 << 20, DAX_TRACK_MPROTECT);
    CHECK(m != NULL);
    if (!m) return;
    nested_base = (unsigned char *)dax_addr(m);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGUSR1, usr1_store);
        pthread_t self = pthread_self(), th;
        pthread_create(&th, NULL, pester, &self);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        unsigned long n = 0;
        do {
            for (int i = 0; i < 256; i++) nested_base[(size_t)i * 4096] = (unsigned char)n;
            if (dax_sync(m, NULL, 0) != 0) _exit(3);
            n++;
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while (t.tv_sec - t0.tv_sec < 3);
        nested_stop = 1;
        pthread_join(th, NULL);
        printf("nested: %lu rounds, %u stores from the signal handler\n", n, nested_i);
        _exit(0);
    }
    int st = wait_for(pid, 30);
    if (!exited_ok(st)) fprintf(stderr, "nested: status %#x (-1: hung)\n", st);
    CHECK(exited_ok(st));
    CHECK(dax_unmap(m) == 0);
}

/* ---- truncate ---- */

static sigjmp_buf bj;
static volatile sig_atomic_t own_bus = 0;
static void bus_handler(int sig) {
    (void)sig;
    own_bus++;
    siglongjmp(bj, 1);
}

/* Whether this CPU faults on the write-back of a line no page backs (hardware does: CLWB
 * and CLFLUSHOPT check the page like a read; QEMU's TCG does not, and then a sync over a
 * truncated range has nothing to catch and returns 0). */
static int writeback_faults(void) {
    void *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pid_t pid = fork();
    if (pid == 0) {
        wb_cache_pmem(p, 64);
        _exit(0);
    }
    int st = wait_for(pid, 20);
    munmap(p, 4096);
    return died_of(st, SIGSEGV);
}

static void truncate_case(void) {
    const size_t len = 1 << 20, keep = 512 << 10;
    const char *p = path("truncate");
    unlink(p);
    dax_map_t *m = dax_map(p, len, DAX_CREATE, 0644);
    CHECK(m != NULL);
    int fd = open(p, O_RDWR);
    unlink(p);
    if (!m || fd < 0) return;
    unsigned char *a = (unsigned char *)dax_addr(m);
    int pmem = dax_is_pmem(m), faults = writeback_faults();
    if (pmem && !faults)
        printf("truncate: this CPU does not fault on the write-back of an unmapped line "
               "(an emulator): the sync has nothing to catch, only the copy and fill do\n");
    for (size_t off = 0; off < len; off += 4096) {
        a[off] = 7;
        CHECK(dax_mark_dirty(m, a + off, 1) == 0);
    }
    CHECK(ftruncate(fd, (off_t)keep) == 0); /* the file shrinks under the dirty mapping */
    /* a sync first */
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        uint64_t before = stats(m).lines_written_back;
        errno = 0;
        int r = dax_sync(m, NULL, 0);
        if (pmem && faults) {
            /* the write-back of the lines past the end cannot succeed */
            if (r != -1 || errno != EIO) bad |= 1;
            if (stats(m).lines_written_back - before < keep / 4096) bad |= 2;
            errno = 0;
            if (dax_sync(m, NULL, 0) != -1 || errno != EIO) bad |= 4; /* sticky */
        } else if (r != 0) {
            bad |= 8; /* the page cache: msync of a truncated range succeeds; no fault */
        }
        if (bad) fprintf(stderr, "truncate, sync: bad %#x (%s)\n", bad, dax_errormsg());
        _exit(bad ? 1 : 0);
    }
    int st = wait_for(pid, 20);
    if (!exited_ok(st)) fprintf(stderr, "truncate, sync: status %#x\n", st);
    CHECK(exited_ok(st));
    /* a copy and a fill first */
    pid = fork();
    if (pid == 0) {
        int bad = 0;
        char buf[300];
        memset(buf, 1, sizeof buf);
        errno = 0;
        if (dax_memcpy(m, a + keep + 8192 + 100, buf, sizeof buf) != -1 || errno != EIO) bad |= 16;
        errno = 0;
        if (dax_memset(m, a + len - 5000, 3, 5000) != -1 || errno != EIO) bad |= 32;
        errno = 0;
        if (dax_memcpy(m, a + 100, buf, sizeof buf) != 0) bad |= 64; /* inside the file: fine */
        errno = 0;
        if (dax_sync(m, NULL, 0) != -1 || errno != EIO) bad |= 128; /* the loss is sticky */
        errno = 0;
        if (dax_sync(m, a, 4096) != -1 || errno != EIO) bad |= 256;
        if (bad) fprintf(stderr, "truncate, copy: bad %#x (%s)\n", bad, dax_errormsg());
        _exit(bad ? 1 : 0);
    }
    st = wait_for(pid, 20);
    if (!exited_ok(st)) fprintf(stderr, "truncate, copy: status %#x\n", st);
    CHECK(exited_ok(st));
    /* the program's own store past the end: dies of SIGBUS as without the library */
    pid = fork();
    if (pid == 0) {
        ((volatile unsigned char *)a)[keep + 4096] = 1;
        _exit(0);
    }
    CHECK(died_of(wait_for(pid, 20), SIGBUS));
    /* ... or reaches the program's own SIGBUS handler */
    pid = fork();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = bus_handler;
        int r = dax_chain_sigaction(SIGBUS, &sa, NULL);
        if (r == 1) sigaction(SIGBUS, &sa, NULL);
        if (sigsetjmp(bj, 1) == 0) ((volatile unsigned char *)a)[keep + 4096] = 1;
        _exit(own_bus == 1 && r == 0 ? 0 : 1);
    }
    CHECK(exited_ok(wait_for(pid, 20)));
    /* the parent's mapping is untouched by the children; inside the file all is well */
    a[0] = 9;
    CHECK(dax_mark_dirty(m, a, 1) == 0);
    CHECK(dax_sync(m, a, 4096) == 0);
    close(fd);
    CHECK(dax_unmap(m) == 0);
}

/* ---- mapfd ---- */

static void mapfd(void) {
    const char *p = path("mapfd");
    unlink(p);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 64 << 10) == 0);
    unlink(p);
    CHECK_ERR(dax_map_fd(fd, 0, 128 << 10, 0), (dax_map_t *)NULL, EINVAL); /* past EOF */
    CHECK_ERR(dax_map_fd(fd, 128 << 10, 4096, 0), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map_fd(fd, 60 << 10, 8192, 0), (dax_map_t *)NULL, EINVAL);
    dax_map_t *m = dax_map_fd(fd, 60 << 10, 4096, 0);
    CHECK(m != NULL);
    if (m) CHECK(dax_unmap(m) == 0);
    m = dax_map_fd(fd, 0, 64 << 10, 0);
    CHECK(m != NULL);
    if (m) CHECK(dax_unmap(m) == 0);
    close(fd);
    int z = open("/dev/zero", O_RDWR);
    CHECK(z >= 0);
    CHECK_ERR(dax_map_fd(z, 0, 4096, 0), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map_fd(z, 0, 0, 0), (dax_map_t *)NULL, EINVAL);
    close(z);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_ERR(dax_map_fd(sv[0], 0, 4096, 0), (dax_map_t *)NULL, EINVAL);
    close(sv[0]);
    close(sv[1]);
    const char *f = path("fifo");
    unlink(f);
    CHECK(mkfifo(f, 0600) == 0);
    int ff = open(f, O_RDWR);
    CHECK(ff >= 0);
    CHECK_ERR(dax_map_fd(ff, 0, 4096, 0), (dax_map_t *)NULL, EINVAL);
    close(ff);
    unlink(f);
}

/* ---- adopt ---- */

static void adopt(void) {
    const size_t L = 64 << 10;
    const char *p = path("adopt");
    unlink(p);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
    unlink(p);
    const char *q = path("adopt2");
    unlink(q);
    int fd2 = open(q, O_RDWR | O_CREAT, 0644);
    CHECK(fd2 >= 0 && ftruncate(fd2, 1 << 20) == 0);
    unlink(q);
    /* private anonymous memory */
    void *anon = mmap(NULL, L, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(anon != MAP_FAILED);
    CHECK_ERR(dax_adopt(anon, L, fd, 0, 0), (dax_map_t *)NULL, EINVAL);
    munmap(anon, L);
    /* a stack page */
    char local[64];
    snprintf(local, sizeof local, "x");
    void *stack = (void *)((uintptr_t)local & ~(uintptr_t)4095);
    CHECK_ERR(dax_adopt(stack, 4096, fd, 0, 0), (dax_map_t *)NULL, EINVAL);
    /* read-only shared */
    void *ro = mmap(NULL, L, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(ro != MAP_FAILED);
    CHECK_ERR(dax_adopt(ro, L, fd, 0, 0), (dax_map_t *)NULL, EINVAL);
    munmap(ro, L);
    /* private file mapping */
    void *pv = mmap(NULL, L, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(pv != MAP_FAILED);
    CHECK_ERR(dax_adopt(pv, L, fd, 0, 0), (dax_map_t *)NULL, EINVAL);
    munmap(pv, L);
    /* a shared mapping followed by a gap: a length past the mapping */
    char *res = (char *)mmap(NULL, 2 * L, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(res != MAP_FAILED);
    char *sh = (char *)mmap(res, L, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    CHECK(sh == res);
    munmap(res + L, L);
    CHECK_ERR(dax_adopt(sh, 2 * L, fd, 0, 0), (dax_map_t *)NULL, EINVAL);
    /* another file, another offset */
    CHECK_ERR(dax_adopt(sh, L, fd2, 0, 0), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_adopt(sh, L, fd, 4096, 0), (dax_map_t *)NULL, EINVAL);
    /* a read-only page in the middle */
    CHECK(mprotect(sh + 8192, 4096, PROT_READ) == 0);
    CHECK_ERR(dax_adopt(sh, L, fd, 0, 0), (dax_map_t *)NULL, EINVAL);
    CHECK(mprotect(sh + 8192, 4096, PROT_READ | PROT_WRITE) == 0);
    /* the real thing: whole, and a part at its offset */
    dax_map_t *m = dax_adopt(sh + 4096, L - 4096, fd, 4096, 0);
    CHECK(m != NULL);
    if (m) CHECK(dax_forget(m) == 0);
    m = dax_adopt(sh, L, fd, 0, 0);
    CHECK(m != NULL);
    if (m) {
        sh[5] = 1;
        CHECK(dax_mark_dirty(m, sh + 5, 1) == 0);
        CHECK(dax_sync(m, NULL, 0) == 0);
        CHECK(dax_unmap(m) == 0);
    }
    /* two VMAs of the same file side by side, at matching offsets */
    res = (char *)mmap(NULL, 2 * L, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mmap(res, L, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == res);
    CHECK(mmap(res + L, L, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, L) == res + L);
    m = dax_adopt(res, 2 * L, fd, 0, 0);
    CHECK(m != NULL);
    if (m) CHECK(dax_unmap(m) == 0);
    /* ... and at offsets that do not follow on */
    res = (char *)mmap(NULL, 2 * L, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mmap(res, L, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == res);
    CHECK(mmap(res + L, L, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 4 * L) == res + L);
    CHECK_ERR(dax_adopt(res, 2 * L, fd, 0, 0), (dax_map_t *)NULL, EINVAL);
    munmap(res, 2 * L);
    close(fd);
    close(fd2);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    dir = argv[1];
    const char *what = argv[2];
    if (strcmp(what, "killsegv") == 0) killsegv();
    else if (strcmp(what, "longjmp") == 0) longjmp_case();
    else if (strcmp(what, "nested") == 0) nested();
    else if (strcmp(what, "truncate") == 0) truncate_case();
    else if (strcmp(what, "mapfd") == 0) mapfd();
    else if (strcmp(what, "adopt") == 0) adopt();
    else return 2;
    return check_done("test_signals");
}
