/* dax_sync against the kernel's msync(MS_SYNC) on a real fsdax mapping (make bench-dax,
 * run inside the daxvm guest on /mnt/dax: ext4 -o dax, MAP_SYNC).
 *
 * Three 64 MiB files (by default), each mapped with dax_map (MAP_SYNC, 2 MiB-aligned):
 *   2M        the default mapping: the kernel maps 2 MiB (PMD) entries
 *   4K        madvise(MADV_NOHUGEPAGE) on the mapping before it is touched: 4 KiB entries
 *   mprotect  mapped with DAX_TRACK_MPROTECT: written without marks, the library tracks
 * Every mapping is prefaulted once (the file is written with write(2) first, so the faults
 * find written extents). For k = 1, 100, 10 000 random 64-byte records per round (the
 * same records for every candidate of a round), each round:
 *   2M/4K: write the k records and dax_mark_dirty them -> time dax_sync(m, NULL, 0);
 *          write the same k records again (no marks)   -> time msync(whole mapping, MS_SYNC)
 *   mprotect: write the k records (timed: the tracking faults are there) -> time dax_sync.
 * Candidates are interleaved round by round; medians over the rounds; ratios msync/dax_sync.
 * The kernel's msync writes back whole entries (4 KiB or 2 MiB) per dirty entry and
 * write-protects them again (so the next writes fault: not in the timed part).
 * usage: bench_dax [--size MiB] [--rounds R] [--quick] [DIR]   (DIR default: cwd) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <daxpmem.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static struct dax_stats stats(const dax_map_t *m) {
    struct dax_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    if (dax_get_stats(m, &s) != 0) fprintf(stderr, "dax_get_stats: %s\n", dax_errormsg());
    return s;
}

/* The file's physical misalignment: 0 if every extent maps a 2 MiB-aligned file offset to
 * a 2 MiB-aligned device offset (what a PMD fault needs), else the first extent's
 * (physical - logical) mod 2 MiB; -1 if FIEMAP is not available. */
static long long misalign(int fd) {
    union {
        struct fiemap fm;
        char b[sizeof(struct fiemap) + 64 * sizeof(struct fiemap_extent)];
    } u;
    memset(&u, 0, sizeof u);
    u.fm.fm_length = FIEMAP_MAX_OFFSET;
    u.fm.fm_flags = FIEMAP_FLAG_SYNC;
    u.fm.fm_extent_count = 64;
    if (ioctl(fd, FS_IOC_FIEMAP, &u.fm) != 0 || u.fm.fm_mapped_extents == 0) return -1;
    for (unsigned i = 0; i < u.fm.fm_mapped_extents; i++) {
        const struct fiemap_extent *x = &u.fm.fm_extents[i];
        long long d = (long long)((x->fe_physical - x->fe_logical) % (2u << 20));
        if (d) return d;
    }
    return 0;
}

/* Allocate the file in one piece (posix_fallocate), 2 MiB-aligned on the device so the
 * kernel can map PMDs: ext4 starts a new file near a per-pid "colour" goal, which lands
 * right after the inode tables (not 2 MiB-aligned) for some pids; then the file is
 * re-made behind a pad file that takes the misaligned head (pads are left in *npad and
 * removed by the caller). Then it is filled with write(2), so the extents are written and
 * the faults only map (no zeroing of unwritten extents in the fault path). */
static int make_file(const char *path, size_t len, int *npad, long long *mis_out) {
    long long mis = -1;
    int fd = -1;
    for (int attempt = 0; attempt < 6; attempt++) {
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) return -1;
        int e = posix_fallocate(fd, 0, (off_t)len);
        if (e != 0) {
            close(fd);
            errno = e;
            return -1;
        }
        mis = misalign(fd);
        if (mis <= 0) break;
        close(fd);
        fd = -1;
        unlink(path);
        char pad[600];
        snprintf(pad, sizeof pad, "%s.pad%d", path, (*npad)++);
        int pfd = open(pad, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (pfd < 0) return -1;
        e = posix_fallocate(pfd, 0, (off_t)((2u << 20) - (unsigned long long)mis));
        close(pfd);
        if (e != 0) {
            errno = e;
            return -1;
        }
    }
    if (fd < 0) { /* still misaligned after the last pad: take what we get */
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || posix_fallocate(fd, 0, (off_t)len) != 0) return -1;
        mis = misalign(fd);
    }
    *mis_out = mis;
    static char buf[1 << 20];
    memset(buf, 0x5a, sizeof buf);
    for (size_t off = 0; off < len; off += sizeof buf) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
            close(fd);
            return -1;
        }
    }
    int r = fsync(fd);
    close(fd);
    return r;
}

static double prefault(char *p, size_t len) {
    double t0 = now_ns();
    for (size_t off = 0; off < len; off += 4096) p[off] = (char)(p[off] + 1);
    return now_ns() - t0;
}

static void write_records(char *p, const size_t *off, int k, int v) {
    for (int i = 0; i < k; i++) memset(p + off[i], v + i, 64);
}

struct cand {
    const char *name;
    char path[512];
    dax_map_t *m;
    char *p;
    const char *na; /* why unavailable, or NULL */
    char na_buf[300];
};

static void fmt_ratio(char *b, size_t n, double r) {
    snprintf(b, n, r < 1 ? "%.2f" : r < 100 ? "%.1f" : "%.0f", r);
}

static void fmt_us(char *b, size_t n, double ns) {
    double us = ns / 1e3;
    if (us < 10) snprintf(b, n, "%.2f µs", us);
    else if (us < 10000) snprintf(b, n, "%.0f µs", us);
    else snprintf(b, n, "%.1f ms", us / 1e3);
}

int main(int argc, char **argv) {
    size_t mib = 64;
    int rounds_override = 0, quick = 0;
    const char *dir = ".";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) mib = strtoul(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds_override = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_dax [--size MiB] [--rounds R] [--quick] [DIR]\n");
            return 2;
        } else dir = argv[i];
    }
    size_t len = mib << 20;
    if (len < (4u << 20) || len % (2u << 20)) {
        fprintf(stderr, "bench_dax: --size must be a multiple of 2 and >= 4 (MiB)\n");
        return 2;
    }

    /* ---- environment */
    struct utsname u;
    uname(&u);
    char model[256] = "?";
    int tcg = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        }
        fclose(f);
    }
    if (strstr(model, "QEMU TCG")) tcg = 1;
    time_t tt = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&tt));
    printf("bench_dax: %s, kernel %s, cpu \"%s\" x%ld, write-back %s, daxpmem %s\n", date,
           u.release, model, sysconf(_SC_NPROCESSORS_ONLN), daxpmem_flush_name(),
           daxpmem_version());
    if (tcg)
        printf("NOTE: QEMU TCG guest: CLWB/CLFLUSHOPT are not real write-backs here (TCG has no\n"
               "      cache model; they cost an emulated instruction each, on both sides). The\n"
               "      ratios measure software cost (index walk vs. the kernel's xarray walk,\n"
               "      write-protect + TLB flush, syscall), not pmem write-back bandwidth.\n");

    /* ---- the three mappings */
    struct cand c[3];
    memset(c, 0, sizeof c);
    int npad = 0;
    c[0].name = "2M";
    c[1].name = "4K";
    c[2].name = "mprotect";
    for (int i = 0; i < 3; i++) {
        snprintf(c[i].path, sizeof c[i].path, "%s/bench-dax-%s.dat", dir, c[i].name);
        long long mis = -1;
        if (make_file(c[i].path, len, &npad, &mis) != 0) {
            fprintf(stderr, "bench_dax: creating %s: %s\n", c[i].path, strerror(errno));
            return 1;
        }
        unsigned fl = i == 2 ? DAX_TRACK_MPROTECT : 0;
        errno = 0;
        c[i].m = dax_map(c[i].path, 0, fl, 0);
        if (!c[i].m) {
            int e = errno;
            if (i == 2) {
                if (e == EOPNOTSUPP) c[i].na = "n/a (not available)";
                else {
                    snprintf(c[i].na_buf, sizeof c[i].na_buf, "n/a (%s)", strerror(e));
                    c[i].na = c[i].na_buf;
                }
                printf("mprotect: dax_map(DAX_TRACK_MPROTECT) failed: errno %d (%s): %s\n", e,
                       strerror(e), dax_errormsg());
                unlink(c[i].path);
                continue;
            }
            fprintf(stderr, "bench_dax: dax_map %s: %s\n", c[i].path, dax_errormsg());
            return 1;
        }
        c[i].p = (char *)dax_addr(c[i].m);
        if (dax_is_pmem(c[i].m) != 1) {
            fprintf(stderr, "bench_dax: %s: dax_is_pmem() = %d, not a MAP_SYNC/pmem mapping (run on a DAX mount)\n",
                    c[i].path, dax_is_pmem(c[i].m));
            return 1;
        }
        if (i == 1 && madvise(c[i].p, len, MADV_NOHUGEPAGE) != 0) {
            fprintf(stderr, "bench_dax: madvise(MADV_NOHUGEPAGE): %s\n", strerror(errno));
            return 1;
        }
        double t = prefault(c[i].p, len);
        if (msync(c[i].p, len, MS_SYNC) != 0) { /* start clean for the kernel too */
            fprintf(stderr, "bench_dax: msync: %s\n", strerror(errno));
            return 1;
        }
        if (dax_sync(c[i].m, NULL, 0) != 0) {
            fprintf(stderr, "bench_dax: dax_sync: %s\n", dax_errormsg());
            return 1;
        }
        struct dax_stats s = stats(c[i].m);
        printf("%-8s %zu MiB at %p, extents %s: flags %#llx (%s%s%s%s), track %#x, prefault %.2f s, huge-mapped %s",
               c[i].name, mib, (void *)c[i].p,
               mis == 0 ? "2 MiB-aligned" : mis < 0 ? "unknown" : "MISALIGNED", (unsigned long long)s.flags,
               s.flags & DAX_STAT_PMEM ? "pmem " : "", s.flags & DAX_STAT_MAP_SYNC ? "MAP_SYNC " : "",
               s.flags & DAX_STAT_FILE_DAX ? "file-DAX " : "", s.flags & DAX_STAT_FORCED ? "FORCED" : "",
               s.track_mode, t / 1e9,
               s.huge_mapped_bytes == DAX_HUGE_UNKNOWN ? "unknown" : "");
        if (s.huge_mapped_bytes != DAX_HUGE_UNKNOWN)
            printf("%llu MiB", (unsigned long long)(s.huge_mapped_bytes >> 20));
        printf("\n");
        if (i == 0 && s.huge_mapped_bytes != DAX_HUGE_UNKNOWN && s.huge_mapped_bytes < len / 2)
            printf("WARNING: the 2M mapping is mostly NOT mapped with 2 MiB entries (extents not aligned?)\n");
        if (i == 1 && s.huge_mapped_bytes != DAX_HUGE_UNKNOWN && s.huge_mapped_bytes != 0)
            printf("WARNING: the MADV_NOHUGEPAGE mapping has 2 MiB entries\n");
        if (s.flags & DAX_STAT_FORCED)
            printf("WARNING: pmem is FORCED (not a DAX mount): msync here is page-cache msync, not comparable\n");
    }

    if (npad)
        printf("(%d pad file(s) were needed to get 2 MiB-aligned extents; removed now)\n", npad);
    for (int i = 0; i < npad; i++) { /* the bench files stay where they are */
        char pad[600];
        snprintf(pad, sizeof pad, "%s.pad%d", c[0].path, i);
        unlink(pad);
        snprintf(pad, sizeof pad, "%s.pad%d", c[1].path, i);
        unlink(pad);
        snprintf(pad, sizeof pad, "%s.pad%d", c[2].path, i);
        unlink(pad);
    }

    /* ---- rounds */
    const int ks[3] = {1, 100, 10000};
    int rounds_for[3] = {31, 21, 7};
    if (quick) rounds_for[0] = 9, rounds_for[1] = 7, rounds_for[2] = 3;
    size_t *off = (size_t *)malloc(10000 * sizeof *off);
    enum { DS2, MS2, DS4, MS4, DSP, WRP, NT };
    double *t[NT];
    for (int j = 0; j < NT; j++) t[j] = (double *)calloc(64, sizeof(double));
    double res[3][NT];
    uint64_t mp_lines[3] = {0}, mp_faults[3] = {0};
    int failed = 0;
    size_t lines = len / 64;
    for (int ki = 0; ki < 3; ki++) {
        int k = ks[ki];
        int R = rounds_override > 0 ? rounds_override : rounds_for[ki];
        if (R > 64) R = 64;
        struct dax_stats s0 = c[2].m ? stats(c[2].m) : (struct dax_stats){0};
        for (int r = 0; r < R; r++) {
            for (int i = 0; i < k; i++) off[i] = (size_t)(next() % lines) * 64;
            int v = (r * 7 + ki * 3) & 0x7f;
            for (int ci = 0; ci < 2; ci++) {
                dax_map_t *m = c[ci].m;
                char *p = c[ci].p;
                write_records(p, off, k, v);
                for (int i = 0; i < k; i++)
                    if (dax_mark_dirty(m, p + off[i], 64) != 0) failed = 1;
                double t0 = now_ns();
                int rc = dax_sync(m, NULL, 0);
                double t1 = now_ns();
                if (rc != 0) {
                    fprintf(stderr, "dax_sync: %s\n", dax_errormsg());
                    failed = 1;
                }
                t[ci ? DS4 : DS2][r] = t1 - t0;
                write_records(p, off, k, v + 1);
                t0 = now_ns();
                rc = msync(p, len, MS_SYNC);
                t1 = now_ns();
                if (rc != 0) {
                    fprintf(stderr, "msync: %s\n", strerror(errno));
                    failed = 1;
                }
                t[ci ? MS4 : MS2][r] = t1 - t0;
            }
            if (c[2].m) {
                double t0 = now_ns();
                write_records(c[2].p, off, k, v);
                double t1 = now_ns();
                int rc = dax_sync(c[2].m, NULL, 0);
                double t2 = now_ns();
                if (rc != 0) {
                    fprintf(stderr, "dax_sync (mprotect): %s\n", dax_errormsg());
                    failed = 1;
                }
                t[WRP][r] = t1 - t0;
                t[DSP][r] = t2 - t1;
            }
        }
        for (int j = 0; j < NT; j++) res[ki][j] = median(t[j], R);
        if (c[2].m) {
            struct dax_stats s1 = stats(c[2].m);
            mp_lines[ki] = (s1.lines_written_back - s0.lines_written_back) / (uint64_t)R;
            mp_faults[ki] = (s1.tracked_faults - s0.tracked_faults) / (uint64_t)R;
            if (s1.dirty_lines != 0) {
                fprintf(stderr, "mprotect: %llu lines still dirty after dax_sync\n",
                        (unsigned long long)s1.dirty_lines);
                failed = 1;
            }
        }
        fprintf(stderr, "bench_dax: k = %d done (%d rounds)\n", k, R);
    }
    for (int ci = 0; ci < 2; ci++) {
        struct dax_stats s = stats(c[ci].m);
        printf("%s: %llu dax_sync calls, %llu msync issued by daxpmem%s, huge-mapped %s",
               c[ci].name, (unsigned long long)s.syncs, (unsigned long long)s.msync_calls,
               s.msync_calls ? " (EXPECTED 0)" : "",
               s.huge_mapped_bytes == DAX_HUGE_UNKNOWN ? "unknown" : "");
        if (s.huge_mapped_bytes != DAX_HUGE_UNKNOWN)
            printf("%llu MiB", (unsigned long long)(s.huge_mapped_bytes >> 20));
        printf(" after the runs\n");
        if (s.msync_calls) failed = 1;
    }

    /* ---- table */
    printf("\nmedians of the sync call alone; ratio = msync / dax_sync (>1: dax_sync faster)\n\n");
    printf("| k | dax_sync 2M | msync 2M | ratio 2M | dax_sync 4K | msync 4K | ratio 4K | "
           "DAX_TRACK_MPROTECT dax_sync | msync 2M / mprotect |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int ki = 0; ki < 3; ki++) {
        char a[32], b[32], d[32], e[32], g[64], h[64];
        fmt_us(a, sizeof a, res[ki][DS2]);
        fmt_us(b, sizeof b, res[ki][MS2]);
        fmt_us(d, sizeof d, res[ki][DS4]);
        fmt_us(e, sizeof e, res[ki][MS4]);
        if (c[2].m) {
            fmt_us(g, sizeof g, res[ki][DSP]);
            fmt_ratio(h, sizeof h, res[ki][MS2] / res[ki][DSP]);
        } else {
            snprintf(g, sizeof g, "%s", c[2].na);
            snprintf(h, sizeof h, "%s", c[2].na);
        }
        char r2[16], r4[16];
        fmt_ratio(r2, sizeof r2, res[ki][MS2] / res[ki][DS2]);
        fmt_ratio(r4, sizeof r4, res[ki][MS4] / res[ki][DS4]);
        printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", ks[ki], a, b, r2, d, e, r4, g, h);
    }
    if (c[2].m) {
        printf("\nDAX_TRACK_MPROTECT: per round, write phase (tracking faults included), lines\n"
               "written back per dax_sync, tracked faults:\n\n| k | write phase | lines/sync | faults/round |\n|---:|---:|---:|---:|\n");
        for (int ki = 0; ki < 3; ki++) {
            char a[32];
            fmt_us(a, sizeof a, res[ki][WRP]);
            printf("| %d | %s | %llu | %llu |\n", ks[ki], a, (unsigned long long)mp_lines[ki],
                   (unsigned long long)mp_faults[ki]);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (c[i].m && dax_unmap(c[i].m) != 0) failed = 1;
        unlink(c[i].path);
    }
    for (int j = 0; j < NT; j++) free(t[j]);
    free(off);
    if (failed) printf("\nbench_dax: ERRORS above\n");
    return failed;
}
