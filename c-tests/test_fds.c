/* File descriptors and placement (issue 14): no mapping keeps a descriptor of its file
 * (dax_map, dax_map_fd, dax_adopt), splitting a mapping opens none, and running out of
 * descriptors never makes an unmap or a hole punch fail; DAX_TRACK_UFFD holds exactly
 * its two (userfaultfd, pagemap), shared by the pieces of a split. A mapping is placed
 * where libpmem's pmem_map_file would place it and leaves the same free space after it,
 * so PMDK's memory-order dance (an anonymous mapping after the mapping, then a re-map of
 * the file at a hinted address) works.
 *
 * usage: test_fds DIR */
#include <daxpmem.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"

static const char *dir;
static char pbuf[4096];
static const char *path(const char *name) {
    snprintf(pbuf, sizeof pbuf, "%s/test_fds.%s", dir, name);
    return pbuf;
}

/* Open descriptors of this process (the directory's own excluded). */
static int nfds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

/* Fill the descriptor table so that exactly `leave` descriptors are free, with a soft
 * RLIMIT_NOFILE of 256; release() undoes it. */
static int fillers[512];
static int nfill;
static struct rlimit saved_rl;
static void exhaust(int leave) {
    CHECK(getrlimit(RLIMIT_NOFILE, &saved_rl) == 0);
    struct rlimit rl = saved_rl;
    rl.rlim_cur = 256;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    nfill = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) break;
        fillers[nfill++] = fd;
    }
    CHECK(errno == EMFILE);
    for (int i = 0; i < leave && nfill > 0; i++) close(fillers[--nfill]);
}
static void release(void) {
    while (nfill > 0) close(fillers[--nfill]);
    CHECK(setrlimit(RLIMIT_NOFILE, &saved_rl) == 0);
}

static int mapped(void *a) { /* is the page at a mapped? */
    return msync(a, 4096, MS_ASYNC) == 0;
}

static void no_fd_held(void) {
    const char *p = path("plain");
    unlink(p);
    int base = nfds();
    dax_map_t *m = dax_map(p, 4 << 20, DAX_CREATE, 0644);
    CHECK(m != NULL);
    CHECK(nfds() == base);
    static const unsigned modes[] = {DAX_TRACK_MPROTECT, DAX_TRACK_KERNEL};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        dax_map_t *t = dax_map(p, 0, modes[i], 0);
        CHECK(t != NULL);
        CHECK(nfds() == base);
        CHECK(t && dax_unmap(t) == 0);
    }
    int fd = open(p, O_RDWR);
    dax_map_t *f = dax_map_fd(fd, 4096, 0, 0);
    CHECK(f != NULL && nfds() == base + 1);
    close(fd);
    CHECK(nfds() == base);
    /* still usable without the caller's descriptor */
    char *a = (char *)dax_addr(f);
    memcpy(a, "hello", 5);
    CHECK(dax_mark_dirty(f, a, 5) == 0 && dax_sync(f, NULL, 0) == 0);
    CHECK(dax_punch_hole(f, a + 8192, 3 * 4096 + 100) == 0);
    CHECK(dax_unmap(f) == 0);
    /* adopt: the caller's descriptor is only looked at */
    fd = open(p, O_RDWR);
    void *raw = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    dax_map_t *ad = dax_adopt(raw, 1 << 20, fd, 0, 0);
    CHECK(ad != NULL);
    close(fd);
    CHECK(nfds() == base);
    CHECK(ad && dax_unmap(ad) == 0);
    CHECK(dax_unmap(m) == 0);
    CHECK(nfds() == base);
    unlink(p);
}

static void without_free_descriptors(void) {
    const char *p = path("emfile");
    unlink(p);
    int base = nfds();
    /* One free descriptor is enough to map a file by path (libpmem needs one too). */
    dax_map_t *c = dax_map(p, 8 << 20, DAX_CREATE, 0644);
    CHECK(c != NULL && dax_unmap(c) == 0);
    exhaust(1);
    dax_map_t *m = dax_map(p, 0, 0, 0);
    CHECK(m != NULL);
    release();
    /* None free: dax_map_fd (no duplicate), splitting, punching, unmapping. */
    int fd = open(p, O_RDWR);
    exhaust(0);
    dax_map_t *f = dax_map_fd(fd, 0, 0, 0);
    CHECK(f != NULL);
    char *a = (char *)dax_addr(m);
    memset(a, 7, 8 << 20);
    CHECK(dax_mark_dirty(m, a, 8 << 20) == 0);
    CHECK(dax_punch_hole(m, a + (6 << 20) + 10, 3 * 4096) == 0);
    CHECK(dax_unmap_range(a + (2 << 20), 2 << 20) == 0); /* the middle */
    CHECK(!mapped(a + (2 << 20)) && !mapped(a + (4 << 20) - 4096));
    dax_map_t *lo = dax_find(a), *hi = dax_find(a + (5 << 20));
    CHECK(lo != NULL && hi != NULL && lo != hi);
    CHECK(lo && dax_sync(lo, NULL, 0) == 0 && hi && dax_sync(hi, NULL, 0) == 0);
    CHECK(a[0] == 7 && a[(6 << 20) + 10] == 0 && a[(6 << 20) + 9] == 7);
    CHECK(lo && dax_unmap(lo) == 0);
    CHECK(hi && dax_unmap(hi) == 0);
    CHECK(!mapped(a));
    CHECK(f && dax_unmap(f) == 0);
    release();
    close(fd);
    CHECK(nfds() == base);
    unlink(p);
}

static void uffd(void) {
    const char *p = path("uffd");
    unlink(p);
    int base = nfds();
    dax_map_t *m = dax_map(p, 8 << 20, DAX_CREATE | DAX_TRACK_UFFD, 0644);
    if (!m && errno == EOPNOTSUPP) {
        printf("  uffd: not available here (%s), skipped\n", dax_errormsg());
        unlink(p);
        return;
    }
    CHECK(m != NULL);
    if (!m) return;
    CHECK(nfds() == base + 2); /* its userfaultfd and /proc/self/pagemap */
    char *a = (char *)dax_addr(m);
    exhaust(0);
    CHECK(dax_unmap_range(a + (2 << 20), 2 << 20) == 0);
    release();
    CHECK(nfds() == base + 2); /* the pieces share them */
    dax_map_t *lo = dax_find(a), *hi = dax_find(a + (6 << 20));
    CHECK(lo != NULL && hi != NULL);
    a[6 << 20] = 1; /* tracked without a mark */
    CHECK(hi && dax_sync(hi, NULL, 0) == 0);
    CHECK(hi && stats(hi).tracked_faults >= 1);
    CHECK(lo && dax_unmap(lo) == 0);
    CHECK(nfds() == base + 2);
    CHECK(hi && dax_unmap(hi) == 0);
    CHECK(nfds() == base);
    unlink(p);
}

/* Where the mapping goes: libpmem reserves len + 2 MiB where the kernel puts it, maps
 * at the reservation rounded up to 2 MiB, and leaves the rest free. */
static uintptr_t next_mapping_above(uintptr_t x) {
    FILE *f = fopen("/proc/self/maps", "r");
    uintptr_t best = UINTPTR_MAX, s, e;
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s >= x && s < best) best = s;
    if (f) fclose(f);
    return best;
}

static void placement(void) {
    const char *p = path("place");
    unlink(p);
    const size_t len = 4 << 20, al = 2 << 20;
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)len) == 0);
    for (int round = 0; round < 2; round++) {
        /* what libpmem's util_map_hint would choose */
        char *probe = (char *)mmap(NULL, len + al, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(probe != MAP_FAILED);
        uintptr_t pend = (uintptr_t)probe + len + al;
        CHECK(munmap(probe, len + al) == 0);
        uintptr_t above = next_mapping_above(pend);
        dax_map_t *m = dax_map_fd(fd, 0, len, 0);
        CHECK(m != NULL);
        if (!m) break;
        uintptr_t d = (uintptr_t)dax_addr(m);
        uintptr_t hint = ((uintptr_t)probe + al - 1) & ~(al - 1);
        uintptr_t gap_l = above - (hint + len), gap = next_mapping_above(d + len) - (d + len);
        CHECK(d % al == 0);
        /* libpmem's address when our bookkeeping (the dirty index and the mark log,
         * allocated before the reservation so that they never take the space after the
         * mapping) fits in the slack above it; else just below the bookkeeping, with the
         * same free space after it */
        if (d != hint)
            printf("  placement: mapped at %#lx, libpmem's hint %#lx, %zu free after it\n", d,
                   hint, (size_t)gap);
        CHECK(d == hint || gap >= al);
        /* the free space after the mapping: what libpmem leaves (the PMD padding the
         * kernel wants for a hinted file mapping at least) */
        if (gap < (gap_l < al ? gap_l : al))
            fprintf(stderr, "placement: %zu free after the mapping, libpmem leaves %zu\n",
                    (size_t)gap, (size_t)gap_l);
        CHECK(gap >= (gap_l < al ? gap_l : al));
        /* PMDK's pmem_memcpy test, step by step: an anonymous mapping after the mapping
         * (src > dest), else swap; then swap (dest > src). A swap munmaps both directly
         * (the daxpmem mapping too) and maps the file at the old src address and the
         * anonymous memory at the old dest address, as hints. */
        char *dest = (char *)d;
        char *src = (char *)mmap(dest + len, len, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        CHECK(src != MAP_FAILED);
        char *src_orig = src;
        for (int step = 0; step < 2; step++) {
            if (step == 1 || src <= dest) {
                char *od = dest, *os = src;
                CHECK(munmap(od, len) == 0);
                CHECK(munmap(os, len) == 0);
                dest = (char *)mmap(os, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                src = (char *)mmap(od, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                                   -1, 0);
                CHECK(dest != MAP_FAILED && src != MAP_FAILED);
            }
            int ok = step == 0 ? src > dest : dest > src;
            if (!ok)
                fprintf(stderr, "placement: cannot map files in memory order (step %d)\n", step);
            CHECK(ok);
        }
        /* as pmem_memcpy ends: the original range through the library, then the rest */
        CHECK(dax_unmap_range((void *)d, len) == 0);
        CHECK(dax_find((void *)d) == NULL);
        munmap(src_orig, len);
        munmap(dest, len);
        munmap(src, len);
    }
    close(fd);
    unlink(p);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    no_fd_held();
    without_free_descriptors();
    uffd();
    placement();
    return check_done("test_fds");
}
