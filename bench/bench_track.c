/* bench_track: what automatic dirty tracking costs (issue: plain stores reach the dirty
 * index without API calls). A 1 GiB file in a tmpfs directory (default /dev/shm),
 * populated once, mapped per mode with its pages present; every figure is a median over
 * rounds, and every ratio is against a baseline measured in the same run:
 *   - the first store to a page after a sync (us/page): 1000 pages a round, sequential
 *     (each round its own 1000 pages) or random, the sync before it not timed; against an
 *     untracked mapping (every page mapped first), and for MPROTECT and UFFD against the
 *     raw kernel mechanism done by hand here (a bare SIGSEGV handler that makes the page
 *     writable; a bare userfaultfd in async write-protect mode): the goal is within 10 %
 *     of it;
 *   - dax_sync of the clean 1 GiB mapping (goal <= 0.3 ms); for UFFD also the kernel's
 *     part alone, one PAGEMAP_SCAN get-and-clear of the range;
 *   - filling the 1 GiB (a 4 KiB memset a page), sequential or random page order, with a
 *     dax_sync every 1000 pages and one at the end; against the untracked fill, no syncs.
 * Modes: untracked (DAX_TRACK_EXPLICIT, no marks: what a program gets without the
 * library's help, and not durable), explicit (a dax_mark_dirty per store), KERNEL,
 * MPROTECT, UFFD (n/a where the kernel lacks WP_ASYNC/PAGEMAP_SCAN). First stores and
 * clean syncs run every mode's rounds by turns (seven 1 GiB mappings of one file).
 * usage: bench_track [--quick] [DIR]      (~30 s; --quick: 11 rounds, ~15 s) */
#define _GNU_SOURCE
#include <daxpmem.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* Debian 12's headers predate these (kernel 6.7 / 6.1). */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* PAGEMAP_SCAN (kernel 6.7), likewise. */
struct page_region {
    uint64_t start, end, categories;
};
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
        category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WRITTEN (1 << 1)

#define PG 4096ul
#define ROUND 1000ul

static const size_t LEN = 1ul << 30;
static const size_t NPAGES = (1ul << 30) / 4096;
static int rounds = 31;

/* ---- the raw mechanisms, by hand ---- */

static void raw_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    uintptr_t p = (uintptr_t)si->si_addr & ~(PG - 1);
    mprotect((void *)p, PG, PROT_READ | PROT_WRITE);
}

static int uffd_arm(char *base, size_t len) {
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0) return -1;
    struct uffdio_api api = {.api = UFFD_API,
                             .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
    struct uffdio_register reg = {.range = {(uintptr_t)base, len},
                                  .mode = UFFDIO_REGISTER_MODE_WP};
    if (ioctl(fd, UFFDIO_API, &api) != 0 || ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The raw collector of uffd tracking: report the written pages and write-protect them
 * again in one step, as the library does (looping while the vector comes back full). */
static int pagemap_fd = -1;
static long raw_scan(char *base, size_t len) {
    static struct page_region vec[512];
    long total = 0;
    uint64_t cur = (uintptr_t)base, end = (uintptr_t)base + len;
    for (;;) {
        struct pm_scan_arg a = {.size = sizeof a,
                                .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
                                .start = cur,
                                .end = end,
                                .vec = (uintptr_t)vec,
                                .vec_len = 512,
                                .category_mask = PAGE_IS_WRITTEN,
                                .return_mask = PAGE_IS_WRITTEN};
        long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
        if (n < 0) return -1;
        total += n;
        if (n < 512 || a.walk_end >= end || a.walk_end <= cur) return total;
        cur = a.walk_end;
    }
}

static int uffd_protect(int fd, char *base, size_t len) {
    struct uffdio_writeprotect wp = {.range = {(uintptr_t)base, len},
                                     .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    return ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
}

/* ---- the measurements ---- */

enum { UNTRACKED, EXPLICIT, KERNEL, MPROTECT, UFFD, RAW_MPROTECT, RAW_UFFD, NMODES };
static const char *names[NMODES] = {"untracked", "explicit marks", "KERNEL", "MPROTECT",
                                    "UFFD", "raw mprotect", "raw uffd"};
static const unsigned flags[NMODES] = {DAX_TRACK_EXPLICIT, DAX_TRACK_EXPLICIT,
                                       DAX_TRACK_KERNEL,   DAX_TRACK_MPROTECT,
                                       DAX_TRACK_UFFD,     0, 0};

struct target {
    int mode;
    dax_map_t *m; /* library modes */
    char *base;
    int uffd;     /* raw uffd */
};

/* Everything written so far is taken: the library syncs, the raw ones re-protect. */
static void resync(struct target *t) {
    if (t->m) {
        if (dax_sync(t->m, NULL, 0) != 0) {
            fprintf(stderr, "dax_sync (%s): %s\n", names[t->mode], dax_errormsg());
            exit(1);
        }
    } else if (t->mode == RAW_MPROTECT) {
        mprotect(t->base, LEN, PROT_READ);
    } else if (t->mode == RAW_UFFD) {
        uffd_protect(t->uffd, t->base, LEN);
    }
}

static uint64_t *pages; /* a round's pages */

static double first_stores(struct target *t, int random, int r) {
    for (size_t i = 0; i < ROUND; i++)
        pages[i] = random ? next() % NPAGES : ((size_t)r * ROUND + i) % NPAGES;
    resync(t);
    volatile char *b = t->base;
    double t0 = now_ns();
    if (t->mode == EXPLICIT) {
        for (size_t i = 0; i < ROUND; i++) {
            b[pages[i] * PG] = (char)r;
            dax_mark_dirty(t->m, (const void *)(b + pages[i] * PG), 1);
        }
    } else {
        for (size_t i = 0; i < ROUND; i++) b[pages[i] * PG] = (char)r;
    }
    return (now_ns() - t0) / ROUND / 1e3;
}

static double fill(struct target *t, const uint64_t *order, int v) {
    resync(t);
    double t0 = now_ns();
    for (size_t i = 0; i < NPAGES; i++) {
        char *p = t->base + order[i] * PG;
        memset(p, v, PG);
        if (t->mode == EXPLICIT) dax_mark_dirty(t->m, p, PG);
        if (t->m && t->mode != UNTRACKED && (i + 1) % ROUND == 0) dax_sync(t->m, NULL, 0);
    }
    if (t->m && t->mode != UNTRACKED) dax_sync(t->m, NULL, 0);
    return (now_ns() - t0) / 1e6;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const char *dir = argc > 1 + quick ? argv[1 + quick] : "/dev/shm";
    if (quick) rounds = 11;
    char path[512];
    snprintf(path, sizeof path, "%s/daxpmem-bench-track", dir);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)LEN) != 0) {
        perror(path);
        return 1;
    }
    {
        char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        memset(p, 1, LEN); /* every page present in the page cache */
        munmap(p, LEN);
    }
    struct sigaction sa = {0};
    sa.sa_sigaction = raw_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);

    pages = malloc(ROUND * sizeof *pages);
    uint64_t *seq = malloc(NPAGES * sizeof *seq), *rnd = malloc(NPAGES * sizeof *rnd);
    for (size_t i = 0; i < NPAGES; i++) seq[i] = rnd[i] = i;
    for (size_t i = NPAGES - 1; i > 0; i--) {
        size_t j = next() % (i + 1);
        uint64_t x = rnd[i];
        rnd[i] = rnd[j];
        rnd[j] = x;
    }

    struct utsname u;
    uname(&u);
    time_t tt = time(NULL);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M UTC", gmtime(&tt));
    printf("# tracking benchmark: 1 GiB file in %s (pages present), kernel %s, %s\n\n", dir,
           u.release, day);

    double fs[NMODES][2], clean[NMODES], fl[NMODES][2];
    int have[NMODES] = {0};
    struct target tg[NMODES];
    for (int mode = 0; mode < NMODES; mode++) {
        struct target *t = &tg[mode];
        *t = (struct target){.mode = mode, .uffd = -1};
        if (mode < RAW_MPROTECT) {
            t->m = dax_map_fd(fd, 0, LEN, flags[mode]);
            if (!t->m) {
                printf("  %s: n/a (%s)\n", names[mode], dax_errormsg());
                continue;
            }
            t->base = dax_addr(t->m);
        } else {
            t->base = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (t->base == MAP_FAILED) {
                perror("mmap");
                return 1;
            }
            if (mode == RAW_UFFD && pagemap_fd < 0)
                pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
            if (mode == RAW_UFFD && (t->uffd = uffd_arm(t->base, LEN)) < 0) {
                printf("  %s: n/a (userfaultfd WP_ASYNC: %s)\n", names[mode], strerror(errno));
                munmap(t->base, LEN);
                continue;
            }
        }
        have[mode] = 1;
        /* Every page mapped and present in this mapping before anything is timed (a
         * fresh mapping's first touch is a minor fault, ~1.8 us here, in every mode). */
        for (size_t i = 0; i < NPAGES; i++) ((volatile char *)t->base)[i * PG] = 1;
        resync(t);
    }
    /* The library's SIGSEGV action (installed with its first MPROTECT mapping) and the
     * bare one of the raw rounds take turns, like the rounds themselves: every mode's
     * rounds are interleaved, so that the host's slow and fast phases hit all alike. */
    struct sigaction lib_sa;
    sigaction(SIGSEGV, NULL, &lib_sa);
    double v[NMODES][64];
    for (int random = 0; random < 2; random++) {
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < NMODES; j++) {
                int mode = (j + r) % NMODES;
                if (!have[mode]) continue;
                if (mode == RAW_MPROTECT) sigaction(SIGSEGV, &sa, NULL);
                v[mode][r] = first_stores(&tg[mode], random, r);
                if (mode == RAW_MPROTECT) {
                    resync(&tg[mode]);
                    sigaction(SIGSEGV, &lib_sa, NULL);
                }
            }
        for (int mode = 0; mode < NMODES; mode++)
            if (have[mode]) fs[mode][random] = median(v[mode], rounds);
    }
    /* Clean syncs; for raw uffd, the kernel's part of a UFFD sync: one scan. */
    for (int mode = 0; mode < NMODES; mode++)
        if (have[mode]) resync(&tg[mode]);
    for (int r = 0; r < rounds; r++)
        for (int j = 0; j < NMODES; j++) {
            int mode = (j + r) % NMODES;
            if (!have[mode] || mode == RAW_MPROTECT) continue;
            double t0 = now_ns();
            if (mode == RAW_UFFD)
                raw_scan(tg[mode].base, LEN);
            else
                dax_sync(tg[mode].m, NULL, 0);
            v[mode][r] = (now_ns() - t0) / 1e3;
        }
    for (int mode = 0; mode < NMODES; mode++)
        if (have[mode] && mode != RAW_MPROTECT) clean[mode] = median(v[mode], rounds);
    for (int mode = 0; mode < RAW_MPROTECT; mode++) {
        struct target *t = &tg[mode];
        if (!have[mode]) continue;
        int nf = quick ? 1 : 3;
        for (int random = 0; random < 2; random++) {
            for (int r = 0; r < nf; r++) v[mode][r] = fill(t, random ? rnd : seq, r + 2);
            fl[mode][random] = median(v[mode], nf);
        }
        struct dax_stats st;
        st.size = sizeof st;
        dax_get_stats(t->m, &st);
        printf("  %s: mode in effect %d, %llu tracked faults\n", names[mode],
               dax_track_mode(t->m), (unsigned long long)st.tracked_faults);
        dax_unmap(t->m);
    }
    for (int mode = RAW_MPROTECT; mode < NMODES; mode++) {
        if (!have[mode]) continue;
        if (tg[mode].uffd >= 0) close(tg[mode].uffd);
        munmap(tg[mode].base, LEN);
    }
    close(fd);
    unlink(path);

    printf("\nFirst store to a page after a sync (us/page, median of %d rounds of %lu pages):\n\n",
           rounds, ROUND);
    printf("| pattern | untracked | explicit marks | KERNEL | MPROTECT | raw mprotect | MPROTECT / raw (goal <= 1.10) | UFFD | raw uffd | UFFD / raw (goal <= 1.10) |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int random = 0; random < 2; random++) {
        printf("| %s | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f | ", random ? "random" : "sequential",
               fs[UNTRACKED][random], fs[EXPLICIT][random], fs[KERNEL][random],
               fs[MPROTECT][random], fs[RAW_MPROTECT][random],
               fs[MPROTECT][random] / fs[RAW_MPROTECT][random]);
        if (have[UFFD] && have[RAW_UFFD])
            printf("%.2f | %.2f | %.2f |\n", fs[UFFD][random], fs[RAW_UFFD][random],
                   fs[UFFD][random] / fs[RAW_UFFD][random]);
        else
            printf("n/a | n/a | n/a |\n");
    }
    printf("\n(The shared note's raw costs on this host, tmpfs, pages present: mprotect 4.58 / 3.64,\n"
           "uffd 1.51 / 1.81 us/page sequential / random.)\n");
    printf("\ndax_sync of the clean 1 GiB mapping (us, median of %d; goal <= 300):\n\n", rounds);
    printf("| untracked | explicit marks | KERNEL | MPROTECT | UFFD | raw uffd (one PAGEMAP_SCAN get-and-clear) |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    char uc[32] = "n/a", rc[32] = "n/a";
    if (have[UFFD]) snprintf(uc, sizeof uc, "%.1f", clean[UFFD]);
    if (have[RAW_UFFD]) snprintf(rc, sizeof rc, "%.1f", clean[RAW_UFFD]);
    printf("| %.1f | %.1f | %.1f | %.1f | %s | %s |\n", clean[UNTRACKED], clean[EXPLICIT],
           clean[KERNEL], clean[MPROTECT], uc, rc);
    printf("\nFilling the 1 GiB (4 KiB a page), dax_sync every %lu pages (ms; ratio to the untracked fill):\n\n",
           ROUND);
    printf("| order | untracked (no syncs) | explicit marks | KERNEL | MPROTECT | UFFD |\n|---|---:|---:|---:|---:|---:|\n");
    for (int random = 0; random < 2; random++) {
        double b = fl[UNTRACKED][random];
        printf("| %s | %.0f | %.0f (%.2fx) | %.0f (%.2fx) | %.0f (%.2fx) |", random ? "random" : "sequential", b,
               fl[EXPLICIT][random], fl[EXPLICIT][random] / b, fl[KERNEL][random],
               fl[KERNEL][random] / b, fl[MPROTECT][random], fl[MPROTECT][random] / b);
        if (have[UFFD])
            printf(" %.0f (%.2fx) |\n", fl[UFFD][random], fl[UFFD][random] / b);
        else
            printf(" n/a |\n");
    }
    return 0;
}
