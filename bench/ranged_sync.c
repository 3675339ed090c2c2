/* Ranged dax_syncs up close (issue #16, session 9): one process, the library's sync and
 * the oracle (the same stores, then exactly those lines written back, one fence a call)
 * interleaved round by round, so that the host's speed phases fall on both.
 *
 *   ranged_sync c1 K ROUNDS      a (dax_sync of the whole mapping), c1 (one ranged
 *                                dax_sync from the lowest to the highest record) and the
 *                                oracle in turn; prints their medians and the median of
 *                                the per-round ratio c1 / a
 *   ranged_sync parts K ROUNDS P P ranged dax_syncs over consecutive pieces of the
 *                                records (by address), the marks made in random order
 *                                (RANGED_SORTED=1: in address order); prints the median
 *                                of each of the first four calls and of the whole, for
 *                                dax, for the oracle and for the oracle with a locked
 *                                instruction before and after each call's write-backs
 *                                (as a sync takes and gives back a user of its mapping:
 *                                a locked instruction waits for the write-backs still in
 *                                flight, which the oracle's fence alone does not)
 *
 * K random 64-byte records in a 1 GiB mapping of a /dev/shm file; run with
 * DAXPMEM_FORCE_PMEM=1 (the write-back path on DRAM). LD_LIBRARY_PATH picks the build.
 */
#define _GNU_SOURCE
#include <daxpmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

#define LINE 64

static int cmpu64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "c1") && strcmp(argv[1], "parts")) ||
        (!strcmp(argv[1], "parts") && argc < 5)) {
        fprintf(stderr, "usage: ranged_sync c1 K ROUNDS | ranged_sync parts K ROUNDS P\n");
        return 2;
    }
    int c1 = !strcmp(argv[1], "c1");
    size_t k = strtoull(argv[2], NULL, 10), len = 1ul << 30;
    int rounds = atoi(argv[3]), parts = c1 ? 1 : atoi(argv[4]);
    if (k < 1 || k > 1000000 || rounds < 1 || parts < 1) {
        fprintf(stderr, "ranged_sync: K in 1..1000000, ROUNDS and P at least 1\n");
        return 2;
    }
    if ((size_t)parts > k) parts = (int)k;
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/daxpmem-ranged-sync.%d", (int)getpid());
    dax_map_t *m = dax_map(path, len, DAX_CREATE | DAX_EXCL, 0600);
    if (!m) {
        fprintf(stderr, "ranged_sync: dax_map %s: %s\n", path, dax_errormsg());
        return 1;
    }
    unlink(path);
    char *b = dax_addr(m);
    int sorted = getenv("RANGED_SORTED") != NULL;
    static volatile uint64_t pin; /* the locked oracle's counter */
    /* t[mode][call]: mode 0 dax (c1: a), 1 oracle (c1: c1), 2 locked oracle (c1: oracle);
     * call 4 = all */
    double *t[3][5], *ratio = calloc(rounds, sizeof *ratio);
    for (int g = 0; g < 3; g++)
        for (int c = 0; c < 5; c++) t[g][c] = calloc(rounds, sizeof(double));
    uint64_t *o = malloc(k * sizeof *o), *so = malloc(k * sizeof *so);
    int modes = 3;
    for (int r = 0; r < rounds; r++) {
        for (int q = 0; q < modes; q++) {
            int mode = (q + r) % modes, oracle = c1 ? mode == 2 : mode >= 1, locked = !c1 && mode == 2;
            uint64_t lo = UINT64_MAX, hi = 0;
            for (size_t i = 0; i < k; i++) {
                o[i] = (next() % (len / LINE)) * LINE;
                lo = o[i] < lo ? o[i] : lo;
                hi = o[i] + LINE > hi ? o[i] + LINE : hi;
            }
            memcpy(so, o, k * sizeof *o);
            qsort(so, k, sizeof *so, cmpu64);
            const uint64_t *mo = sorted ? so : o;
            for (size_t i = 0; i < k; i++) {
                memset(b + mo[i], r, LINE);
                if (!oracle) dax_mark_dirty(m, b + mo[i], LINE);
            }
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            double t0 = now_ns();
            if (c1) {
                if (mode == 0) dax_sync(m, NULL, 0);
                else if (mode == 1) dax_sync(m, b + lo, hi - lo);
                else {
                    for (size_t i = 0; i < k; i++) wb_cache_pmem(b + o[i], LINE);
                    wmb_pmem();
                }
                t[mode][4][r] = now_ns() - t0;
                continue;
            }
            for (int g = 0; g < parts; g++) {
                size_t x = k * g / parts, y = k * (g + 1) / parts;
                double a0 = now_ns();
                if (!oracle) dax_sync(m, b + so[x], so[y - 1] + LINE - so[x]);
                else {
                    if (locked) __atomic_fetch_add(&pin, 1, __ATOMIC_ACQUIRE);
                    for (size_t i = x; i < y; i++) wb_cache_pmem(b + so[i], LINE);
                    wmb_pmem();
                    if (locked) __atomic_fetch_sub(&pin, 1, __ATOMIC_RELEASE);
                }
                if (g < 4) t[mode][g][r] = now_ns() - a0;
            }
            t[mode][4][r] = now_ns() - t0;
        }
        if (c1) ratio[r] = t[1][4][r] / t[0][4][r];
    }
    if (c1) {
        double a = median(t[0][4], rounds), c = median(t[1][4], rounds), or = median(t[2][4], rounds);
        printf("k=%zu a %.0f ns, c1 %.0f ns, oracle %.0f ns; c1/a (median of per-round ratios) %.3f; a/oracle %.2f, c1/oracle %.2f\n",
               k, a, c, or, median(ratio, rounds), a / or, c / or);
    } else {
        printf("k=%zu, %d parts, marks %s; medians, ns: calls 1-4 and all:", k, parts, sorted ? "in address order" : "in random order");
        for (int g = 0; g < 3; g++) {
            printf(" %s", g == 2 ? "| locked oracle" : g ? "| oracle" : "dax");
            for (int c = 0; c < 5; c++) printf(" %.0f", c < parts || c == 4 ? median(t[g][c], rounds) : 0.0);
        }
        printf("\n");
    }
    dax_unmap(m);
    return 0;
}
