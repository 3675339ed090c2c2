/* DAX_TRACK_MPROTECT, deterministic: each round stores into one page (no marks) and
 * syncs; every round must take a fault and write back that page's lines. Run on any
 * filesystem; inside the fsdax guest on /mnt/dax, 2 MiB-mapped and with MADV_NOHUGEPAGE.
 * usage: test_track DIR [nohuge] */
#include <daxpmem.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include "check.h"

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int nohuge = argc > 2 && strcmp(argv[2], "nohuge") == 0;
    char p[512];
    snprintf(p, sizeof p, "%s/test_track.dat", dir);
    unlink(p);
    size_t len = 8u << 20;
    dax_map_t *c = dax_map(p, len, DAX_CREATE, 0644); /* create, then remap tracked */
    CHECK(c != NULL);
    if (!c) return check_done("test_track");
    dax_unmap(c);
    dax_map_t *m = dax_map(p, 0, DAX_TRACK_MPROTECT, 0);
    CHECK(m != NULL);
    if (!m) return check_done("test_track");
    CHECK(dax_track_mode(m) == (int)DAX_TRACK_MPROTECT);
    unsigned char *a = (unsigned char *)dax_addr(m);
    if (nohuge) CHECK(madvise(a, len, MADV_NOHUGEPAGE) == 0);
    struct dax_stats s0 = stats(m);
    int missed = 0, rounds = 300;
    unsigned long long seed = 12345;
    for (int r = 0; r < rounds; r++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t page = (size_t)(seed >> 33) % (len / 4096);
        if (r % 3 == 0) page = (size_t)r % 4; /* the same pages again and again */
        struct dax_stats b = stats(m);
        a[page * 4096 + (size_t)(r % 64) * 64] = (unsigned char)r; /* no mark */
        CHECK(dax_sync(m, NULL, 0) == 0);
        struct dax_stats e = stats(m);
        if (e.tracked_faults == b.tracked_faults || e.lines_written_back == b.lines_written_back) {
            if (missed++ < 5)
                printf("round %d page %zu: faults %llu -> %llu, lines %llu -> %llu\n", r, page,
                       (unsigned long long)b.tracked_faults, (unsigned long long)e.tracked_faults,
                       (unsigned long long)b.lines_written_back, (unsigned long long)e.lines_written_back);
        }
    }
    struct dax_stats s1 = stats(m);
    printf("%s%s: %d rounds, %llu faults, %llu lines written back, %d rounds missed, pmem=%d\n", dir,
           nohuge ? " (nohuge)" : "", rounds, (unsigned long long)(s1.tracked_faults - s0.tracked_faults),
           (unsigned long long)(s1.lines_written_back - s0.lines_written_back), missed, dax_is_pmem(m));
    CHECK(missed == 0);
    /* The data is in the file. */
    int fd = open(p, O_RDONLY);
    unsigned char *buf = (unsigned char *)malloc(len);
    CHECK(fd >= 0 && pread(fd, buf, len, 0) == (ssize_t)len && memcmp(buf, a, len) == 0);
    close(fd);
    free(buf);
    CHECK(dax_unmap(m) == 0);
    /* Syncing one page at a time closes what it opened: after more faults than the
     * handler's page-run budget (8192), a write still opens and marks one page, not
     * 2 MiB (the open runs were once counted down only by whole-mapping syncs). */
    m = dax_map(p, 0, DAX_TRACK_MPROTECT, 0);
    CHECK(m != NULL);
    if (m) {
        unsigned char *f = (unsigned char *)dax_addr(m);
        int coarse = 0;
        for (int r = 0; r < 12000; r++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t page = (size_t)(seed >> 33) % (len / 4096);
            struct dax_stats b = stats(m);
            f[page * 4096 + 7] = (unsigned char)r;
            CHECK(dax_sync(m, f + page * 4096, 4096) == 0);
            struct dax_stats e = stats(m);
            if (e.lines_written_back - b.lines_written_back != 4096 / 64 && coarse++ < 3)
                printf("partial-sync round %d: %llu lines written back for one page\n", r,
                       (unsigned long long)(e.lines_written_back - b.lines_written_back));
        }
        /* Every written page was synced right away: nothing is left over. Opening 2 MiB
         * per fault would have marked lines never written, which a whole sync finds. */
        struct dax_stats b = stats(m);
        CHECK(dax_sync(m, NULL, 0) == 0);
        struct dax_stats e = stats(m);
        printf("one page per sync: %llu faults, then a whole sync wrote back %llu lines\n",
               (unsigned long long)e.tracked_faults,
               (unsigned long long)(e.lines_written_back - b.lines_written_back));
        CHECK(e.lines_written_back == b.lines_written_back);
        CHECK(coarse == 0);
        CHECK(dax_unmap(m) == 0);
    }
    /* dax_forget hands a tracked mapping back writable: a store after it must not fault
     * (it would kill the process: the mapping is no longer the handler's). */
    m = dax_map(p, 0, DAX_TRACK_MPROTECT, 0);
    CHECK(m != NULL);
    if (m) {
        unsigned char *f = (unsigned char *)dax_addr(m);
        f[5 * 4096] = 1;
        CHECK(dax_sync(m, NULL, 0) == 0);
        CHECK(dax_forget(m) == 0);
        f[5 * 4096] = 2;
        f[6 * 4096] = 3;
        CHECK(f[5 * 4096] == 2 && f[6 * 4096] == 3);
        CHECK(dax_find(f) == NULL);
        CHECK(munmap(f, len) == 0);
    }
    unlink(p);
    return check_done("test_track");
}
