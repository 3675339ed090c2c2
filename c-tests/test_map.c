/* dax_map / dax_sync from C and C++ through the installed library: bad input, the
 * non-pmem msync path (exactly one msync per sync with dirty data, none when clean),
 * the pmem path (forced with DAXPMEM_FORCE_PMEM=1 or on a DAX filesystem: no msync at
 * all), data read back by another process, hole punching at every alignment, write
 * helpers, lookup by address.
 *
 * usage: test_map DIR     (files are created in DIR) */
#include <daxpmem.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static char dir[512];
static char pathbuf[1024];

static const char *path(const char *name) {
    snprintf(pathbuf, sizeof pathbuf, "%s/%s", dir, name);
    return pathbuf;
}

static unsigned char pat(size_t i) { return (unsigned char)(i * 37u + 11u); }

/* Another process reads the file with pread and compares it with buf. */
static int other_process_sees(const char *p, const unsigned char *want, size_t len) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(p, O_RDONLY);
        if (fd < 0) _exit(2);
        unsigned char *got = (unsigned char *)malloc(len);
        if (!got || pread(fd, got, len, 0) != (ssize_t)len) _exit(3);
        _exit(memcmp(got, want, len) == 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void bad_input(void) {
    const char *p = path("bad");
    unlink(p);
    CHECK_ERR(dax_map(NULL, 4096, DAX_CREATE, 0600), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map(p, 4096, 0, 0600), (dax_map_t *)NULL, ENOENT);
    CHECK_ERR(dax_map(p, 0, DAX_CREATE, 0600), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map(p, 4096, DAX_EXCL, 0600), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map(p, 4096, DAX_CREATE | 0x80000000u, 0600), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map(dir, 0, 0, 0600), (dax_map_t *)NULL, EISDIR);
    dax_map_t *m = dax_map(p, 8192, DAX_CREATE | DAX_EXCL, 0600);
    CHECK(m != NULL);
    CHECK_ERR(dax_map(p, 8192, DAX_CREATE | DAX_EXCL, 0600), (dax_map_t *)NULL, EEXIST);
    CHECK_ERR(dax_map(p, 8192 * 2, 0, 0600), (dax_map_t *)NULL, EINVAL);
    if (!m) return;
    unsigned char *a = (unsigned char *)dax_addr(m);
    size_t len = dax_len(m);
    CHECK(len == 8192);
    CHECK(((uintptr_t)a & 4095) == 0);
    /* NULL handles */
    CHECK_ERR(dax_addr(NULL), (void *)NULL, EINVAL);
    CHECK_ERR(dax_len(NULL), (size_t)0, EINVAL);
    CHECK_ERR(dax_is_pmem(NULL), -1, EINVAL);
    CHECK_ERR(dax_sync(NULL, NULL, 0), -1, EINVAL);
    CHECK_ERR(dax_mark_dirty(NULL, a, 1), -1, EINVAL);
    CHECK_ERR(dax_punch_hole(NULL, a, 1), -1, EINVAL);
    CHECK_ERR(dax_memcpy(NULL, a, a, 1), -1, EINVAL);
    CHECK_ERR(dax_memset(NULL, a, 0, 1), -1, EINVAL);
    CHECK_ERR(dax_get_stats(NULL, NULL), -1, EINVAL);
    CHECK_ERR(dax_unmap(NULL), -1, EINVAL);
    /* Ranges outside the mapping, wrapping ranges, NULL with a length */
    CHECK_ERR(dax_mark_dirty(m, a + len, 1), -1, EINVAL);
    CHECK_ERR(dax_mark_dirty(m, a - 1, 2), -1, EINVAL);
    CHECK_ERR(dax_mark_dirty(m, a + 10, len), -1, EINVAL);
    CHECK_ERR(dax_mark_dirty(m, (const void *)(UINTPTR_MAX - 5), 100), -1, EINVAL);
    CHECK_ERR(dax_sync(m, NULL, 10), -1, EINVAL);
    CHECK_ERR(dax_sync(m, a + 4096, 8192), -1, EINVAL);
    CHECK_ERR(dax_punch_hole(m, a + 8000, 4096), -1, EINVAL);
    CHECK_ERR(dax_memset(m, a + 8000, 1, 4096), -1, EINVAL);
    CHECK_ERR(dax_memcpy(m, a, NULL, 10), -1, EINVAL);
    struct dax_stats s;
    memset(&s, 0, sizeof s);
    s.size = 8;
    CHECK_ERR(dax_get_stats(m, &s), -1, EINVAL);
    CHECK_ERR(dax_get_stats(m, NULL), -1, EINVAL);
    /* len 0 is a no-op everywhere */
    CHECK(dax_mark_dirty(m, NULL, 0) == 0);
    CHECK(dax_sync(m, a, 0) == 0);
    CHECK(dax_punch_hole(m, a, 0) == 0);
    CHECK(dax_memset(m, NULL, 0, 0) == 0);
    /* dax_map_fd */
    CHECK_ERR(dax_map_fd(-1, 0, 4096, 0), (dax_map_t *)NULL, EBADF);
    int fd = open(p, O_RDWR);
    CHECK(fd >= 0);
    CHECK_ERR(dax_map_fd(fd, -4096, 4096, 0), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map_fd(fd, 100, 4096, 0), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map_fd(fd, 0, 4096, DAX_CREATE), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_map_fd(fd, 8192, 0, 0), (dax_map_t *)NULL, EINVAL);
    dax_map_t *m2 = dax_map_fd(fd, 4096, 0, 0);
    CHECK(m2 != NULL && dax_len(m2) == 4096);
    close(fd); /* the mapping needs no descriptor */
    if (m2) {
        ((unsigned char *)dax_addr(m2))[0] = 42;
        CHECK(dax_mark_dirty(m2, dax_addr(m2), 1) == 0);
        CHECK(dax_sync(m2, NULL, 0) == 0);
        CHECK(a[4096] == 42);
        CHECK(dax_unmap(m2) == 0);
    }
    int rfd = open(p, O_RDONLY);
    CHECK_ERR(dax_map_fd(rfd, 0, 4096, 0), (dax_map_t *)NULL, EACCES);
    close(rfd);
    /* No permission (root bypasses file modes: only checked as another user) */
    if (geteuid() != 0) {
        const char *q = path("noperm");
        int f = open(q, O_CREAT | O_RDWR, 0400);
        CHECK(f >= 0 && ftruncate(f, 4096) == 0);
        close(f);
        CHECK_ERR(dax_map(q, 0, 0, 0), (dax_map_t *)NULL, EACCES);
        unlink(q);
    }
    /* Lookup by address */
    CHECK(dax_find(a + 100) == m);
    CHECK_ERR(dax_find(&s), (dax_map_t *)NULL, ENOENT);
    CHECK(dax_unmap(m) == 0);
    /* A second unmap is detected */
    CHECK_ERR(dax_unmap(m), -1, EBADF);
    CHECK_ERR(dax_sync(m, NULL, 0), -1, EBADF);
    unlink(p);
}

static void sync_paths(void) {
    const char *p = path("data");
    unlink(p);
    size_t len = 4u << 20;
    dax_map_t *m = dax_map(p, len, DAX_CREATE, 0644);
    CHECK(m != NULL);
    if (!m) return;
    unsigned char *a = (unsigned char *)dax_addr(m);
    int pmem = dax_is_pmem(m);
    struct dax_stats s0 = stats(m);
    CHECK(s0.dirty_lines == 0 && s0.syncs == 0 && s0.msync_calls == 0);
    CHECK(((s0.flags & DAX_STAT_PMEM) != 0) == (pmem == 1));
    printf("  %s: pmem=%d map_sync=%d file_dax=%d huge_bytes=%lld\n", dir, pmem,
           (int)((s0.flags & DAX_STAT_MAP_SYNC) != 0), (int)((s0.flags & DAX_STAT_FILE_DAX) != 0),
           (long long)s0.huge_mapped_bytes);
    /* A clean sync issues no msync. */
    CHECK(dax_sync(m, NULL, 0) == 0);
    struct dax_stats s1 = stats(m);
    CHECK(s1.syncs == 1 && s1.msync_calls == 0 && s1.lines_written_back == 0);
    /* Write three records in different pages, mark, sync: exactly one msync (page
     * cache) or none (pmem), and exactly the marked lines. */
    size_t line = daxpmem_cache_line_size();
    size_t offs[3] = {100, 2u << 20, len - 64};
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < 64; j++) a[offs[i] + j] = pat(offs[i] + j);
        CHECK(dax_mark_dirty(m, a + offs[i], 64) == 0);
    }
    size_t want_lines = 0;
    for (int i = 0; i < 3; i++) want_lines += (offs[i] % line + 64 + line - 1) / line;
    struct dax_stats s2 = stats(m);
    CHECK(s2.dirty_lines == want_lines);
    CHECK(dax_sync(m, NULL, 0) == 0);
    struct dax_stats s3 = stats(m);
    CHECK(s3.dirty_lines == 0);
    CHECK(s3.msync_calls == (pmem ? 0u : 1u));
    /* With persistent caches (eADR, or DAXPMEM_NO_FLUSH=1) pmem needs only the fence. */
    int skip = pmem && (s0.flags & DAX_STAT_EADR) != 0;
    CHECK(s3.lines_written_back == (skip ? 0u : want_lines));
    /* Clean again: still one msync at most. */
    CHECK(dax_sync(m, NULL, 0) == 0);
    CHECK(stats(m).msync_calls == (pmem ? 0u : 1u));
    /* A range sync takes only its range. */
    a[0] = 1;
    a[len - 1] = 2;
    CHECK(dax_mark_dirty(m, a, 1) == 0);
    CHECK(dax_mark_dirty(m, a + len - 1, 1) == 0);
    CHECK(dax_sync(m, a, 4096) == 0);
    CHECK(stats(m).dirty_lines == 1);
    CHECK(dax_sync(m, a + len - 4096, 4096) == 0);
    CHECK(stats(m).dirty_lines == 0);
    /* Write helpers mark for us. */
    unsigned char rec[300];
    for (size_t i = 0; i < sizeof rec; i++) rec[i] = (unsigned char)(255 - i);
    CHECK(dax_memcpy(m, a + 5000, rec, sizeof rec) == 0);
    CHECK(dax_memset(m, a + 9000, 0x5A, 1000) == 0);
    CHECK(memcmp(a + 5000, rec, sizeof rec) == 0);
    CHECK(a[9000] == 0x5A && a[9999] == 0x5A && a[10000] != 0x5A);
    if (!pmem) CHECK(stats(m).dirty_lines > 0);
    CHECK(dax_sync(m, NULL, 0) == 0);
    CHECK(stats(m).dirty_lines == 0);
    /* Another process reads what was synced. */
    unsigned char *copy = (unsigned char *)malloc(len);
    memcpy(copy, a, len);
    CHECK(other_process_sees(p, copy, len));
    free(copy);
    CHECK(dax_range_is_pmem(a, len) == pmem);
    CHECK(dax_range_is_pmem(a, 0) == 0);
    CHECK(dax_unmap(m) == 0);
    /* Reopen the whole file (len 0) and find the data. */
    m = dax_map(p, 0, 0, 0);
    CHECK(m != NULL && dax_len(m) == len);
    if (m) {
        a = (unsigned char *)dax_addr(m);
        CHECK(a[100] == pat(100) && a[len - 1] == 2 && a[5000] == 255);
        CHECK(dax_unmap(m) == 0);
    }
    unlink(p);
}

static void punch(void) {
    const char *p = path("punch");
    static const size_t offs[] = {0, 1, 63, 64, 65, 4095, 4096, 4097, 8191};
    static const size_t lens[] = {1, 63, 64, 65, 4096, 4097, 8192 + 5};
    size_t len = 64 * 1024;
    unsigned char *want = (unsigned char *)malloc(len);
    unsigned char *got = (unsigned char *)malloc(len);
    int fails = 0;
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            unlink(p);
            dax_map_t *m = dax_map(p, len, DAX_CREATE, 0644);
            CHECK(m != NULL);
            if (!m) return;
            unsigned char *a = (unsigned char *)dax_addr(m);
            for (size_t k = 0; k < len; k++) want[k] = a[k] = pat(k + i + j);
            CHECK(dax_mark_dirty(m, a, len) == 0);
            size_t o = 16384 + offs[i], l = lens[j];
            if (dax_punch_hole(m, a + o, l) != 0) {
                if (errno == EOPNOTSUPP) { /* a filesystem without hole punching */
                    printf("  punch: EOPNOTSUPP in %s, skipped\n", dir);
                    dax_unmap(m);
                    unlink(p);
                    free(want);
                    free(got);
                    return;
                }
                CHECK(!"dax_punch_hole failed");
            }
            memset(want + o, 0, l);
            /* The mapping and a separate read path agree with the model. */
            fails += memcmp(a, want, len) != 0;
            CHECK(dax_sync(m, NULL, 0) == 0);
            int fd = open(p, O_RDONLY);
            CHECK(fd >= 0 && pread(fd, got, len, 0) == (ssize_t)len);
            close(fd);
            fails += memcmp(got, want, len) != 0;
            CHECK(dax_unmap(m) == 0);
        }
    }
    CHECK(fails == 0);
    unlink(p);
    free(want);
    free(got);
}

/* A mapping the program made itself, adopted; then forgotten again. */
static void adopt(void) {
    const char *p = path("adopt");
    unlink(p);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
    unsigned char *a = (unsigned char *)mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(a != MAP_FAILED);
    CHECK_ERR(dax_adopt(a + 1, 4096, fd, 0, 0), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_adopt(a, 4096, fd, 100, 0), (dax_map_t *)NULL, EINVAL);
    CHECK_ERR(dax_adopt(a, 4096, -1, 0, 0), (dax_map_t *)NULL, EBADF);
    dax_map_t *m = dax_adopt(a, 1 << 20, fd, 0, 0);
    CHECK(m != NULL);
    close(fd);
    if (!m) return;
    CHECK(dax_find(a + 12345) == m && dax_addr(m) == a && dax_len(m) == (size_t)1 << 20);
    CHECK_ERR(dax_adopt(a + 4096, 4096, 0, 0, 0), (dax_map_t *)NULL, EEXIST);
    a[70000] = 99;
    CHECK(dax_mark_dirty(m, a + 70000, 1) == 0);
    CHECK(dax_sync(m, NULL, 0) == 0);
    CHECK(stats(m).msync_calls == (dax_is_pmem(m) ? 0u : 1u));
    CHECK(dax_forget(m) == 0);
    CHECK_ERR(dax_find(a), (dax_map_t *)NULL, ENOENT);
    a[0] = 1; /* still mapped: the program's again */
    CHECK(munmap(a, 1 << 20) == 0);
    /* dax_unmap_range: the middle of a dax_map mapping; the outer parts stay usable */
    m = dax_map(p, 1 << 20, 0, 0);
    CHECK(m != NULL);
    if (!m) return;
    a = (unsigned char *)dax_addr(m);
    a[0] = 5;
    CHECK(dax_mark_dirty(m, a, 1) == 0);
    CHECK(dax_unmap_range(a + 4096, 8192) == 0);
    dax_map_t *lo = dax_find(a), *hi = dax_find(a + 12288);
    CHECK(lo != NULL && hi != NULL && lo != hi);
    CHECK(dax_find(a + 4096) == NULL);
    CHECK(lo && dax_len(lo) == 4096 && stats(lo).dirty_lines == 1);
    CHECK(lo && dax_sync(lo, NULL, 0) == 0);
    CHECK(hi && dax_len(hi) == (1u << 20) - 12288);
    CHECK_ERR(dax_unmap_range(a + 1, 4096), -1, EINVAL);
    CHECK_ERR(dax_sync(m, NULL, 0), -1, EBADF); /* the split retired the old handle */
    if (lo) CHECK(dax_unmap(lo) == 0);
    if (hi) CHECK(dax_unmap(hi) == 0);
    unlink(p);
}

/* The process total of lines written back (daxpmem_counter) is the sum over the
 * mappings' own counts, and keeps an unmapped mapping's lines. */
static void process_total(void) {
    const char *pa = path("total-a"), *pb = path("total-b");
    unlink(pa);
    unlink(pb);
    dax_map_t *a = dax_map(pa, 1u << 20, DAX_CREATE, 0644);
    dax_map_t *b = dax_map(pb, 1u << 20, DAX_CREATE, 0644);
    CHECK(a != NULL && b != NULL);
    if (!a || !b) return;
    uint64_t t0 = daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0);
    char *pa_ = (char *)dax_addr(a), *pb_ = (char *)dax_addr(b);
    for (int i = 0; i < 3; i++) CHECK(dax_memset(a, pa_ + i * 4096, 7, 64) == 0);
    for (int i = 0; i < 5; i++) CHECK(dax_memset(b, pb_ + i * 8192, 9, 64) == 0);
    CHECK(dax_sync(a, NULL, 0) == 0 && dax_sync(b, NULL, 0) == 0);
    uint64_t la = stats(a).lines_written_back, lb = stats(b).lines_written_back;
    uint64_t t1 = daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0);
    int skip = dax_is_pmem(a) == 1 && (stats(a).flags & DAX_STAT_EADR) != 0;
    CHECK(skip || (la >= 3 && lb >= 5));
    CHECK(t1 - t0 == la + lb);
    CHECK(dax_unmap(a) == 0);
    CHECK(daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0) == t1);
    CHECK(dax_memset(b, pb_ + 100000, 1, 200) == 0);
    CHECK(dax_sync(b, NULL, 0) == 0);
    uint64_t lb2 = stats(b).lines_written_back;
    CHECK(daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0) - t0 == la + lb2);
    CHECK(daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 1) == UINT64_MAX && errno == EINVAL);
    CHECK(dax_unmap(b) == 0);
    unlink(pa);
    unlink(pb);
}

/* dax_fd_kind: what a descriptor is, as dax_map_fd sees it. */
static void fd_kinds(void) {
    int fd = open(path("fdkind.dat"), O_CREAT | O_RDWR, 0600);
    CHECK(fd >= 0);
    int k = dax_fd_kind(fd);
    CHECK(k == DAX_FD_FILE || k == DAX_FD_FSDAX);
    close(fd);
    unlink(path("fdkind.dat"));
    int nul = open("/dev/null", O_RDWR);
    CHECK(nul >= 0 && dax_fd_kind(nul) == DAX_FD_OTHER);
    int pfd[2];
    CHECK(pipe(pfd) == 0 && dax_fd_kind(pfd[0]) == DAX_FD_OTHER);
    close(pfd[0]);
    close(pfd[1]);
    errno = 0;
    CHECK(dax_fd_kind(nul + 1000) == -1 && errno == EBADF && strlen(dax_errormsg()) > 0);
    close(nul);
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "/tmp");
    fd_kinds();
    bad_input();
    adopt();
    sync_paths();
    punch();
    process_total();
    return check_done("test_map");
}
