/* DAX_TRACK_UFFD: plain stores (no marks) into a tmpfs or disk file mapping are found by
 * dax_sync, exactly: each sync writes back (or msyncs, one call) the lines of the pages
 * written since the last one, and nothing when nothing was written. fork: the child's
 * first sync covers the whole mapping (it cannot know what it wrote before re-arming),
 * later ones exactly its own pages; the parent's tracking is untouched by the child.
 * On a DAX file the mode must be refused (EOPNOTSUPP); on kernels before 6.7 (no
 * UFFD_FEATURE_WP_ASYNC) too, and the test then says so and checks only that.
 * usage: test_uffd DIR */
#include <daxpmem.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static int kernel_has_wp_async(void) {
    struct utsname u;
    int a = 0, b = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &a, &b) != 2) return 1;
    return a > 6 || (a == 6 && b >= 7);
}

static const size_t PG = 4096;
static size_t LINE, PAGE_LINES;
static int PMEM;

/* Sync the whole mapping; the lines written back must be `lines`, the pages reported
 * by the scan `pages` (-1: any), and one msync on the page cache (none when clean). */
static void sync_expect(dax_map_t *m, unsigned long long lines, long long pages, int line_no) {
    struct dax_stats b = stats(m);
    CHECK(dax_sync(m, NULL, 0) == 0);
    struct dax_stats e = stats(m);
    unsigned long long got = e.lines_written_back - b.lines_written_back;
    unsigned long long ms = e.msync_calls - b.msync_calls;
    unsigned long long want_ms = (!PMEM && lines) ? 1 : 0;
    unsigned long long f = e.tracked_faults - b.tracked_faults;
    if (got != lines || ms != want_ms || (pages >= 0 && f != (unsigned long long)pages))
        fprintf(stderr, "line %d: %llu lines written back (want %llu), %llu msync (want %llu), %llu pages reported (want %lld)\n",
                line_no, got, lines, ms, want_ms, f, pages);
    CHECK(got == lines);
    CHECK(ms == want_ms);
    CHECK(pages < 0 || f == (unsigned long long)pages);
    CHECK(e.dirty_lines == 0);
}
#define SYNC_EXPECT(m, lines, pages) sync_expect((m), (lines), (pages), __LINE__)

static int file_matches(const char *p, const unsigned char *a, size_t len) {
    int fd = open(p, O_RDONLY);
    unsigned char *buf = (unsigned char *)malloc(len);
    int ok = fd >= 0 && buf && pread(fd, buf, len, 0) == (ssize_t)len && memcmp(buf, a, len) == 0;
    if (fd >= 0) close(fd);
    free(buf);
    return ok;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char p[512];
    snprintf(p, sizeof p, "%s/test_uffd.dat", dir);
    unlink(p);
    size_t len = 8u << 20, npages = len / PG;
    LINE = daxpmem_cache_line_size();
    PAGE_LINES = PG / LINE;
    dax_map_t *c = dax_map(p, len, DAX_CREATE, 0644); /* create, then remap tracked */
    CHECK(c != NULL);
    if (!c) return check_done("test_uffd");
    uint64_t fl = stats(c).flags;
    dax_unmap(c);
    int dax = (fl & (DAX_STAT_MAP_SYNC | DAX_STAT_FILE_DAX | DAX_STAT_DEVDAX)) != 0;

    errno = 0;
    dax_map_t *m = dax_map(p, 0, DAX_TRACK_UFFD, 0);
    if (dax || !kernel_has_wp_async()) {
        /* Refused on DAX, and where the kernel has no asynchronous write-protect. */
        if (m == NULL) {
            CHECK(errno == EOPNOTSUPP);
            printf("test_uffd: DAX_TRACK_UFFD refused in %s (%s): %s\n", dir,
                   dax ? "DAX" : "kernel < 6.7", dax_errormsg());
        } else {
            CHECK(dax);  /* on DAX it must never be accepted */
            dax_unmap(m);
        }
        unlink(p);
        return check_done("test_uffd");
    }
    CHECK(m != NULL);
    if (!m) {
        unlink(p);
        return check_done("test_uffd");
    }
    CHECK(dax_track_mode(m) == (int)DAX_TRACK_UFFD);
    CHECK(stats(m).track_mode == DAX_TRACK_UFFD);
    PMEM = dax_is_pmem(m);
    unsigned char *a = (unsigned char *)dax_addr(m);

    /* Clean: nothing written back, no msync. */
    SYNC_EXPECT(m, 0, 0);
    SYNC_EXPECT(m, 0, 0);

    /* Rounds of k distinct pages (first touches of never-mapped pages, then pages
     * written before), one store each, no marks. */
    unsigned long long seed = 777;
    for (int r = 0; r < 300; r++) {
        size_t k = 1 + (size_t)r % 5;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t first = (size_t)(seed >> 33) % (npages - 5 * 97);
        if (r % 3 == 0) first = (size_t)r % 7; /* the same pages again and again */
        for (size_t i = 0; i < k; i++)
            a[(first + i * 97) * PG + (size_t)(r * 61 % 4096)] = (unsigned char)(r + 1);
        SYNC_EXPECT(m, k * PAGE_LINES, (long long)k);
    }
    /* A store straddling a page boundary: both pages. */
    memcpy(a + 100 * PG - 3, "abcdefgh", 8);
    SYNC_EXPECT(m, 2 * PAGE_LINES, 2);
    /* Reads are not writes. */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < npages; i += 3) sink = (unsigned char)(sink + a[i * PG]);
    (void)sink;
    SYNC_EXPECT(m, 0, 0);

    /* A partial sync takes only its range; the rest waits for the next sync. */
    a[10 * PG + 5] = 1;
    a[1000 * PG + 5] = 2;
    {
        struct dax_stats b = stats(m);
        CHECK(dax_sync(m, a + 10 * PG + 64, 64) == 0); /* inside page 10 */
        struct dax_stats e = stats(m);
        /* The scan reports page 10, the sync takes its one line; the page's other
         * lines stay marked for later. */
        CHECK(e.lines_written_back - b.lines_written_back == 1);
        CHECK(e.dirty_lines == PAGE_LINES - 1);
    }
    SYNC_EXPECT(m, 2 * PAGE_LINES - 1, 1); /* page 1000 and the rest of page 10 */
    CHECK(file_matches(p, a, len));

    /* fork */
    a[200 * PG] = 0x11; /* the parent's, not synced before the fork */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        check_failures = 0;
        a[300 * PG] = 0x22;
        /* First sync in the child: re-armed, the whole mapping marked. */
        SYNC_EXPECT(m, len / LINE, -1);
        a[400 * PG + 9] = 0x33;
        SYNC_EXPECT(m, PAGE_LINES, 1); /* then exactly its own pages again */
        SYNC_EXPECT(m, 0, 0);
        CHECK(file_matches(p, a, len));
        CHECK(dax_unmap(m) == 0);
        fflush(stdout);
        fflush(stderr);
        _exit(check_failures ? 1 : 0);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(a[300 * PG] == 0x22 && a[400 * PG + 9] == 0x33); /* shared file pages */
    /* The parent's own write from before the fork is still found (the child scanned
     * its own page tables, not ours), and the child's stores are not the parent's. */
    SYNC_EXPECT(m, PAGE_LINES, 1);
    a[500 * PG] = 0x44;
    a[501 * PG] = 0x45;
    SYNC_EXPECT(m, 2 * PAGE_LINES, 2);
    SYNC_EXPECT(m, 0, 0);
    CHECK(file_matches(p, a, len));

    /* A child that never syncs changes nothing for the parent either. */
    a[600 * PG] = 0x55;
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        a[601 * PG] = 0x56;
        _exit(0);
    }
    CHECK(waitpid(pid, &st, 0) == pid);
    SYNC_EXPECT(m, PAGE_LINES, 1);

    struct dax_stats s = stats(m);
    printf("%s: uffd, pmem=%d: %llu syncs, %llu lines written back, %llu msync, %llu pages reported\n",
           dir, PMEM, (unsigned long long)s.syncs, (unsigned long long)s.lines_written_back,
           (unsigned long long)s.msync_calls, (unsigned long long)s.tracked_faults);
    CHECK(dax_unmap(m) == 0);
    unlink(p);
    return check_done("test_uffd");
}
