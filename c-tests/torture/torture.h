/* Helpers of the torture suite (c-tests/torture): small, no daxpmem state of their own.
 * Every case is one invocation of a program (`torture CASE DIR`); the runner
 * (run.sh) puts it under `timeout`, so a hang is a failure, and reports crashes by
 * signal. A case prints what went wrong on stderr and exits 0 (pass), 1 (fail) or
 * 77 (skipped, with the reason on stdout). */
#ifndef TORTURE_H
#define TORTURE_H
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T_SKIP 77

static int t_failures = 0;

/* A failed expectation: one line on stderr (with errno), counted; the case goes on. */
#define T_EXPECT(cond, ...)                                                            \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            int t_e_ = errno;                                                          \
            t_failures++;                                                              \
            fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, " (errno %d %s)\n", t_e_, strerror(t_e_));                 \
            if (t_failures > 20) exit(1);                                              \
        }                                                                              \
    } while (0)

/* An immediate failure of the case: message, counted; returns 1 (the exit code). */
static inline int t_fail(const char *fmt, ...) {
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (errno %d %s)\n", e, strerror(e));
    t_failures++;
    return 1;
}

static inline double t_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void t_sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Progress markers on stderr, unbuffered (the runner shows the tail on failure: the
 * last marker says where a hang or crash happened). */
static inline void t_note(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
}

/* xorshift64: per-thread state, no libc rand (not async-signal-safe, shared state). */
static inline uint64_t t_rnd(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static inline void t_path(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static inline size_t t_page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Pages of [addr, addr+len) that are mapped (mincore succeeds on them). */
static inline size_t t_mapped_pages(const void *addr, size_t len) {
    size_t pg = t_page(), n = 0;
    unsigned char v;
    for (size_t o = 0; o < len; o += pg)
        if (mincore((void *)((uintptr_t)addr + o), pg, &v) == 0) n++;
    return n;
}

/* Wait for a child at most `secs` seconds; a child still running then is killed
 * (SIGKILL: it may be spinning with every signal blocked) and -1 is returned (hung).
 * Otherwise 0 with the wait status in *st. */
static inline int t_wait_child(pid_t pid, double secs, int *st) {
    double end = t_now() + secs;
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid) return 0;
        if (r < 0 && errno != EINTR) return -2;
        if (t_now() > end) {
            kill(pid, SIGKILL);
            while (waitpid(pid, st, 0) < 0 && errno == EINTR) {
            }
            return -1;
        }
        t_sleep_us(200);
    }
}

/* How a child ended, for messages. */
static inline const char *t_status(int st, char *buf, size_t n) {
    if (WIFEXITED(st))
        snprintf(buf, n, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, n, "status %#x", st);
    return buf;
}

/* A file of `size` bytes filled with `c` (created or truncated). */
static inline int t_make_file(const char *path, size_t size, int c) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    char buf[4096];
    memset(buf, c, sizeof buf);
    for (size_t o = 0; o < size; o += sizeof buf) {
        size_t k = size - o < sizeof buf ? size - o : sizeof buf;
        if (pwrite(fd, buf, k, (off_t)o) != (ssize_t)k) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static inline int t_done(const char *name) {
    if (t_failures) fprintf(stderr, "%s: %d expectation(s) failed\n", name, t_failures);
    return t_failures ? 1 : 0;
}
#endif
