/* ab_sync: dax_sync of several builds of libdaxpmem, interleaved with the oracle in one
 * process, for comparing a change against the build before it. This host's speed moves
 * in phases (the oracle of bench_sync between 130 and 300 us at k = 10 000): two builds
 * benchmarked one after the other can differ by more than the change; taking turns
 * round by round, each build and the oracle see the same phase.
 *   usage: DAXPMEM_FORCE_PMEM=1 bench/ab_sync K ROUNDS /path/a/libdaxpmem.so /path/b/lib.so
 * Each build maps its own 1 GiB file in /dev/shm. The paths must differ (copy a build
 * before rebuilding: cp target/release/libdaxpmem.so /tmp/old.so). Prints, per build,
 * the median sync time and the median of its per-round ratio to the oracle (the oracle
 * uses the first build's wb_cache_pmem/wmb_pmem on its mapping). Up to 4 builds. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

#define MAXV 4

typedef void *(*map_fn)(const char *, size_t, unsigned, unsigned);
typedef void *(*addr_fn)(void *);
typedef int (*mark_fn)(void *, const void *, size_t);
typedef int (*sync_fn)(void *, const void *, size_t);
typedef void (*wb_fn)(const void *, size_t);
typedef void (*wmb_fn)(void);

int main(int argc, char **argv) {
    if (argc < 4 || argc > 3 + MAXV) {
        fprintf(stderr, "usage: ab_sync K ROUNDS LIB...\n");
        return 2;
    }
    size_t k = (size_t)atol(argv[1]);
    int rounds = atoi(argv[2]), nv = argc - 3;
    if (!k || rounds < 1) {
        fprintf(stderr, "ab_sync: K and ROUNDS must be positive\n");
        return 2;
    }
    const size_t len = 1ull << 30;
    mark_fn mark[MAXV];
    sync_fn sync[MAXV];
    wb_fn wb = NULL;
    wmb_fn wmb = NULL;
    void *m[MAXV];
    char *base[MAXV];
    for (int v = 0; v < nv; v++) {
        void *h = dlopen(argv[3 + v], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        map_fn map = (map_fn)dlsym(h, "dax_map");
        addr_fn addr = (addr_fn)dlsym(h, "dax_addr");
        mark[v] = (mark_fn)dlsym(h, "dax_mark_dirty");
        sync[v] = (sync_fn)dlsym(h, "dax_sync");
        if (v == 0) {
            wb = (wb_fn)dlsym(h, "wb_cache_pmem");
            wmb = (wmb_fn)dlsym(h, "wmb_pmem");
        }
        if (!map || !addr || !mark[v] || !sync[v] || !wb || !wmb) {
            fprintf(stderr, "%s: not a libdaxpmem\n", argv[3 + v]);
            return 1;
        }
        char p[64];
        snprintf(p, sizeof p, "/dev/shm/daxpmem-ab-sync-%d", v);
        m[v] = map(p, len, 1 /* DAX_CREATE */, 0600);
        unlink(p);
        if (!m[v]) {
            fprintf(stderr, "%s: dax_map failed\n", argv[3 + v]);
            return 1;
        }
        base[v] = (char *)addr(m[v]);
        memset(base[v], 1, len);
    }
    uint64_t *off = malloc(k * sizeof *off);
    double *t[MAXV + 1], *ratio[MAXV];
    for (int v = 0; v <= nv; v++) t[v] = malloc((size_t)rounds * sizeof(double));
    for (int v = 0; v < nv; v++) ratio[v] = malloc((size_t)rounds * sizeof(double));
    for (int r = 0; r < rounds; r++) {
        /* Each build and the oracle in turn, the order rotating from round to round, each
         * on fresh random lines written just before and settled by a fence. */
        for (int j = 0; j <= nv; j++) {
            int v = (j + r) % (nv + 1);
            for (size_t i = 0; i < k; i++) off[i] = (next() % (len / 64)) * 64;
            if (v < nv) {
                for (size_t i = 0; i < k; i++) mark[v](m[v], base[v] + off[i], 64);
                for (size_t i = 0; i < k; i++) memset(base[v] + off[i], r, 64);
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                double t0 = now_ns();
                sync[v](m[v], NULL, 0);
                t[v][r] = now_ns() - t0;
            } else {
                for (size_t i = 0; i < k; i++) memset(base[0] + off[i], r + 1, 64);
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                double t0 = now_ns();
                for (size_t i = 0; i < k; i++) wb(base[0] + off[i], 64);
                wmb();
                t[nv][r] = now_ns() - t0;
            }
        }
        for (int v = 0; v < nv; v++) ratio[v][r] = t[v][r] / t[nv][r];
    }
    printf("k=%zu oracle %.0f ns |", k, median(t[nv], rounds));
    for (int v = 0; v < nv; v++)
        printf(" %s: %.0f ns x%.2f |", argv[3 + v], median(t[v], rounds), median(ratio[v], rounds));
    printf("\n");
    return 0;
}
