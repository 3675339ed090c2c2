/* Memory and time against the mapping's size (issue #16: no performance cliffs).
 *
 * Part 1: sparse files of 1 GiB, 64 GiB and 1 TiB in DIR (default /dev/shm; made with
 * dax_map(DAX_CREATE | DAX_SPARSE), i.e. ftruncate), each mapped whole; then rounds of
 * "store 8 bytes into 1000 scattered random lines and dax_mark_dirty each" followed by
 * one of: dax_get_stats, a ranged dax_sync over the span of the marks, a whole-mapping
 * dax_sync(m, NULL, 0). Times are medians over the rounds; the anonymous memory the
 * process gained (RssAnon of /proc/self/status: the library's index, mark log, tables;
 * the file's own pages are RssShmem and reported apart) is read after each step.
 * Goals from the issue: on 1 TiB, 1000 marks then a ranged sync or dax_get_stats each
 * < 1 ms, and < 16 MiB RssAnon growth.
 *
 * Part 2: 1000 mappings of 4 KiB (dax_map_fd of one 4 MiB file at offsets 4 KiB
 * apart), every line of each marked and synced, ten times: RssAnon, VmSize and
 * /proc/self/maps lines per mapping. Goal: a 4 KiB mapping costs a few KiB (<= 8 KiB
 * RssAnon).
 *
 * With DAXPMEM_FORCE_PMEM=1 (make bench) the syncs are the write-back path; without it
 * they are msync on tmpfs.
 *
 * usage: bench_sparse [--quick] [DIR]
 */
#define _GNU_SOURCE
#include <daxpmem.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define NMARK 1000
#define MAXR 32

/* kB of a /proc/self/status field */
static long status_kb(const char *field) {
    char buf[256];
    long v = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(buf, sizeof buf, f))
        if (strncmp(buf, field, n) == 0 && buf[n] == ':') {
            v = strtol(buf + n + 1, NULL, 10);
            break;
        }
    if (f) fclose(f);
    return v;
}
static long maps_lines(void) {
    char buf[512];
    long n = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(buf, sizeof buf, f)) n++;
    if (f) fclose(f);
    return n;
}

static const char *fmt_ns(char *b, double ns) {
    if (ns < 1e4) snprintf(b, 32, "%.2f us", ns / 1e3);
    else if (ns < 1e6) snprintf(b, 32, "%.1f us", ns / 1e3);
    else snprintf(b, 32, "%.2f ms", ns / 1e6);
    return b;
}
static const char *fmt_kb(char *b, long kb) {
    if (kb >= 10240 || kb <= -10240) snprintf(b, 32, "%+.1f MiB", kb / 1024.0);
    else snprintf(b, 32, "%+ld KiB", kb);
    return b;
}

static uint64_t offs[NMARK];
static int trace; /* BENCH_SPARSE_TRACE=1: RssAnon after every round, on stderr */

/* store into and mark NMARK fresh random lines; returns ns per mark; lo, hi: their span */
static double mark_round(dax_map_t *m, char *base, size_t len, int v, uint64_t *lo, uint64_t *hi) {
    *lo = UINT64_MAX;
    *hi = 0;
    for (int i = 0; i < NMARK; i++) {
        offs[i] = (next() % (len / 64)) * 64;
        *(volatile uint64_t *)(base + offs[i]) = (uint64_t)v; /* faults the page in (untimed) */
        *lo = offs[i] < *lo ? offs[i] : *lo;
        *hi = offs[i] + 64 > *hi ? offs[i] + 64 : *hi;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    double t0 = now_ns();
    for (int i = 0; i < NMARK; i++) dax_mark_dirty(m, base + offs[i], 64);
    return (now_ns() - t0) / NMARK;
}

static void sizes(const char *dir, int rounds) {
    static const struct {
        size_t len;
        const char *name;
    } sz[] = {{1ull << 30, "1 GiB"}, {64ull << 30, "64 GiB"}, {1ull << 40, "1 TiB"}};
    printf("| size | dax_map | mark (ns each) | dax_get_stats | ranged dax_sync | whole dax_sync | dax_unmap | RssAnon: map | 3x 1000 marks | stats | ranged sync | peak (total) | after unmap | RssShmem (file pages) | goal (issue: on 1 TiB) < 1 ms each, < 16 MiB |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (size_t s = 0; s < sizeof sz / sizeof sz[0]; s++) {
        size_t len = sz[s].len;
        char path[512];
        snprintf(path, sizeof path, "%s/daxpmem-bench-sparse.%d", dir, (int)getpid());
        long a0 = status_kb("RssAnon"), sh0 = status_kb("RssShmem");
        double t0 = now_ns();
        dax_map_t *m = dax_map(path, len, DAX_CREATE | DAX_EXCL | DAX_SPARSE, 0600);
        double tmap = now_ns() - t0;
        unlink(path);
        if (!m) {
            printf("| %s | dax_map failed: %s |\n", sz[s].name, dax_errormsg());
            continue;
        }
        char *base = dax_addr(m);
        long a1 = status_kb("RssAnon");
        double mkn[3 * MAXR], stt[MAXR], rs[MAXR], ws[MAXR];
        int nmk = 0;
        long dmark = 0, dstep[3] = {0, 0, 0}, ap = a1, apeak = a1;
        uint64_t lo, hi;
        for (int r = 0; r < rounds; r++) {
            /* three steps, each on its own 1000 fresh marks, in a rotating order: a ranged
             * sync over the span of the marks; dax_get_stats (then an untimed whole sync);
             * a whole-mapping sync */
            for (int j = 0; j < 3; j++) {
                int step = (j + r) % 3;
                double mk1 = mark_round(m, base, len, r * 3 + j, &lo, &hi);
                mkn[nmk++] = mk1;
                long am = status_kb("RssAnon");
                t0 = now_ns();
                if (step == 0) {
                    dax_sync(m, base + lo, hi - lo);
                    rs[r] = now_ns() - t0;
                } else if (step == 1) {
                    struct dax_stats st = {.size = sizeof st};
                    dax_get_stats(m, &st);
                    stt[r] = now_ns() - t0;
                    if (st.dirty_lines < NMARK) fprintf(stderr, "bench_sparse: dax_get_stats: %llu dirty lines\n",
                                                         (unsigned long long)st.dirty_lines);
                } else {
                    dax_sync(m, NULL, 0);
                    ws[r] = now_ns() - t0;
                }
                long a = status_kb("RssAnon");
                if (step == 1) dax_sync(m, NULL, 0);
                if (r == 0) {
                    dmark += am - ap;
                    dstep[step] = a - am;
                }
                ap = status_kb("RssAnon");
                apeak = ap > apeak ? ap : apeak;
                apeak = a > apeak ? a : apeak;
            }
            if (trace) fprintf(stderr, "%s round %d: RssAnon %+ld KiB since before dax_map\n", sz[s].name, r, ap - a0);
        }
        long sh1 = status_kb("RssShmem");
        t0 = now_ns();
        dax_unmap(m);
        double tun = now_ns() - t0;
        long a6 = status_kb("RssAnon");
        double mst = median(stt, rounds), mrs = median(rs, rounds);
        long grow = apeak - a0;
        char verdict[160];
        snprintf(verdict, sizeof verdict, "ranged sync %s, stats %s, RSS %s", mrs < 1e6 ? "met" : "**NOT met**",
                 mst < 1e6 ? "met" : "**NOT met**", grow < 16 * 1024 ? "met" : "**NOT met**");
        char b[12][32];
        printf("| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sz[s].name,
               fmt_ns(b[0], tmap), median(mkn, nmk), fmt_ns(b[1], mst), fmt_ns(b[2], mrs),
               fmt_ns(b[3], median(ws, rounds)), fmt_ns(b[4], tun), fmt_kb(b[5], a1 - a0), fmt_kb(b[6], dmark),
               fmt_kb(b[7], dstep[1]), fmt_kb(b[8], dstep[0]), fmt_kb(b[9], grow), fmt_kb(b[10], a6 - a0),
               fmt_kb(b[11], sh1 - sh0), verdict);
        fflush(stdout);
    }
    printf("\nTimes: medians of %d rounds of 1000 fresh scattered marks; RssAnon columns: growth over the step "
           "(first round; 'stats': until the sync after it), 'peak': the most above the level before dax_map, "
           "read after every step of every round (the goal's figure).\n",
           rounds);
}

static void small(const char *dir) {
    enum { N = 1000, LEN = 4096 };
    char path[512];
    snprintf(path, sizeof path, "%s/daxpmem-bench-small.%d", dir, (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)N * LEN) != 0) {
        perror(path);
        return;
    }
    unlink(path);
    static dax_map_t *ms[N];
    long a0 = status_kb("RssAnon"), v0 = status_kb("VmSize"), l0 = maps_lines();
    double t0 = now_ns();
    for (int i = 0; i < N; i++) {
        ms[i] = dax_map_fd(fd, (off_t)i * LEN, LEN, 0);
        if (!ms[i]) {
            printf("dax_map_fd #%d: %s\n", i, dax_errormsg());
            close(fd);
            for (int j = 0; j < i; j++) dax_unmap(ms[j]);
            return;
        }
    }
    double tmap = (now_ns() - t0) / N;
    close(fd);
    long a1 = status_kb("RssAnon"), v1 = status_kb("VmSize"), l1 = maps_lines();
    double tm[10], ts[10];
    for (int r = 0; r < 10; r++) {
        t0 = now_ns();
        for (int i = 0; i < N; i++) {
            char *p = dax_addr(ms[i]);
            for (int o = 0; o < LEN; o += 64) {
                p[o] = (char)r;
                dax_mark_dirty(ms[i], p + o, 64);
            }
        }
        tm[r] = (now_ns() - t0) / N;
        t0 = now_ns();
        for (int i = 0; i < N; i++) dax_sync(ms[i], NULL, 0);
        ts[r] = (now_ns() - t0) / N;
    }
    long a2 = status_kb("RssAnon");
    t0 = now_ns();
    for (int i = 0; i < N; i++) dax_unmap(ms[i]);
    double tun = (now_ns() - t0) / N;
    long a3 = status_kb("RssAnon");
    double per = (double)(a2 - a0) / N;
    char b[4][32];
    printf("| mappings | dax_map_fd each | 64 stores+marks per mapping | dax_sync each (64 lines) | dax_unmap each | RssAnon per mapping: mapped | marked and synced 10x | left after unmap (total) | VmSize per mapping | maps lines per mapping | goal <= 8 KiB RssAnon each |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    printf("| %d x 4 KiB | %s | %s | %s | %s | %.1f KiB | %.1f KiB | %ld KiB | %.0f KiB | %.1f | %s |\n", N,
           fmt_ns(b[0], tmap), fmt_ns(b[1], median(tm, 10)), fmt_ns(b[2], median(ts, 10)), fmt_ns(b[3], tun),
           (double)(a1 - a0) / N, per, a3 - a0, (double)(v1 - v0) / N, (double)(l1 - l0) / N,
           per <= 8 ? "met" : "**NOT met**");
}

int main(int argc, char **argv) {
    int quick = 0;
    const char *dir = "/dev/shm";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_sparse [--quick] [DIR]\n");
            return 2;
        } else dir = argv[i];
    }
    struct utsname u;
    uname(&u);
    time_t tt = time(NULL);
    char day[32], model[256] = "unknown CPU", buf[512];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M UTC", gmtime(&tt));
    FILE *ci = fopen("/proc/cpuinfo", "r");
    while (ci && fgets(buf, sizeof buf, ci))
        if (strncmp(buf, "model name", 10) == 0 && strchr(buf, ':')) {
            snprintf(model, sizeof model, "%s", strchr(buf, ':') + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    if (ci) fclose(ci);
    trace = getenv("BENCH_SPARSE_TRACE") != NULL;
    const char *force = getenv("DAXPMEM_FORCE_PMEM");
    printf("# bench_sparse: %s, %ld CPUs, kernel %s, %s; files in %s, %s, flush=%s\n\n", model,
           sysconf(_SC_NPROCESSORS_ONLN), u.release, day, dir,
           force && strcmp(force, "1") == 0 ? "DAXPMEM_FORCE_PMEM=1 (write-back path)" : "not forced (msync path on tmpfs)",
           daxpmem_flush_name());
    printf("## Sparse mappings: 1000 scattered marks, then stats or a sync\n\n");
    sizes(dir, quick ? 5 : 15);
    printf("\n## Many small mappings\n\n");
    small(dir);
    return 0;
}
