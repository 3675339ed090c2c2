/* dax_sync against its oracle, in one run (issue: a sync costs what was written).
 * A 1 GiB mapping of a /dev/shm file, treated as pmem (run with DAXPMEM_FORCE_PMEM=1:
 * the write-back path on DRAM). For k = 1, 100, 10 000 random 64-byte records, written
 * and marked, times:
 *   dax_sync(m, NULL, 0)                        the index finds and writes back the k lines
 *   oracle: k x wb_cache_pmem(line) + wmb_pmem  exactly those lines, known in advance
 *   wb_cache_pmem(whole 1 GiB) + wmb_pmem       what a tracker-less caller must do
 *   pmem_persist(whole 1 GiB) (PMDK libpmem)    the same through libpmem
 * plus one dax_mark_dirty per record and a dax_sync of the clean mapping. Each round
 * runs dax_sync and the oracle once each, taking turns at going first, each on its own
 * fresh random lines dirtied just before and settled by a fence (without the fence the
 * oracle's time included the last stores of the memset: up to 2x at k = 10 000).
 * Neither dax_sync nor the oracle waits for its write-backs to complete (both end with
 * the fence, as pmem_persist does): the next locked instruction does, which is why the
 * marks are timed after a fence too.
 * Reported: medians of the times, the median of the per-round ratios, and how many
 * rounds met the goal.
 * usage: bench_sync [--quick] [--k K1,K2,...] [--csv FILE] [--msync] [DIR]
 *   --k      the record counts (default 1,100,10000)
 *   --csv    also write the medians to FILE (make bench-plot): comment lines with the
 *            machine, kernel and date, then k,mark_ns,dax_sync_ns,oracle_ns,
 *            flush_whole_ns,pmem_persist_ns,msync_ns (NaN: not measured)
 *   --msync  in the whole-mapping rounds also time msync(whole mapping, MS_SYNC) after
 *            the k records are written (the kernel's way; meaningful on fsdax, where it
 *            writes back the dirty entries: make bench-plot runs it in the daxvm guest)
 * Without options the output is the table above. */
#include <daxpmem.h>
#include <libpmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

int main(int argc, char **argv) {
    int quick = 0, do_msync = 0, nk = 3;
    const char *dir = "/dev/shm", *csv_path = NULL;
    size_t ks[32] = {1, 100, 10000};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--msync") == 0) do_msync = 1;
        else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) csv_path = argv[++i];
        else if (strcmp(argv[i], "--k") == 0 && i + 1 < argc) {
            nk = 0;
            for (char *q = argv[++i]; *q && nk < 32;) {
                char *e;
                ks[nk] = strtoull(q, &e, 10);
                if (e == q || ks[nk] == 0) break;
                nk++;
                q = *e == ',' ? e + 1 : e;
            }
            if (nk == 0) {
                fprintf(stderr, "bench_sync: bad --k list\n");
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_sync [--quick] [--k K1,K2,...] [--csv FILE] [--msync] [DIR]\n");
            return 2;
        } else dir = argv[i];
    }
    size_t kmax = 0;
    for (int ki = 0; ki < nk; ki++) kmax = ks[ki] > kmax ? ks[ki] : kmax;
    size_t len = 1ull << 30;
    char path[512];
    snprintf(path, sizeof path, "%s/daxpmem-bench-sync", dir);
    unlink(path);
    dax_map_t *m = dax_map(path, len, DAX_CREATE, 0600);
    if (!m) {
        fprintf(stderr, "dax_map: %s\n", dax_errormsg());
        return 1;
    }
    unlink(path);
    char *base = (char *)dax_addr(m);
    memset(base, 1, len); /* populate */
    struct utsname u;
    uname(&u);
    time_t tt = time(NULL);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%d", gmtime(&tt));
    struct dax_stats st = {.size = sizeof st};
    dax_get_stats(m, &st);
    const char *how = st.flags & DAX_STAT_FORCED ? "forced: DRAM write-back path"
                      : st.flags & DAX_STAT_PMEM ? "MAP_SYNC"
                                                 : "page cache: msync";
    printf("# dax_sync benchmark: 1 GiB mapping in %s, pmem=%d (%s), flush=%s, kernel %s, %s\n\n",
           dir, dax_is_pmem(m), how, daxpmem_flush_name(), u.release, day);
    int rounds = quick ? 15 : 41, whole_rounds = quick ? 3 : 5;
    size_t line = daxpmem_cache_line_size();
    uint64_t *offs = (uint64_t *)malloc(kmax * sizeof *offs);
    FILE *csv = NULL;
    if (csv_path) {
        csv = fopen(csv_path, "w");
        if (!csv) {
            perror(csv_path);
            return 1;
        }
        char model[256] = "unknown CPU", buf[512];
        FILE *ci = fopen("/proc/cpuinfo", "r");
        while (ci && fgets(buf, sizeof buf, ci))
            if (strncmp(buf, "model name", 10) == 0 && strchr(buf, ':')) {
                snprintf(model, sizeof model, "%s", strchr(buf, ':') + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        if (ci) fclose(ci);
        fprintf(csv, "# bench_sync: cost of making k dirty 64-byte records durable in a 1 GiB mapping (medians)\n");
        fprintf(csv, "# dir=%s pmem=%d (%s) flush=%s\n", dir, dax_is_pmem(m), how, daxpmem_flush_name());
        fprintf(csv, "# machine=%s, %ld CPUs; kernel %s; date %s; rounds %d (whole mapping: %d)\n", model,
                sysconf(_SC_NPROCESSORS_ONLN), u.release, day, rounds, whole_rounds);
        fprintf(csv, "k,mark_ns,dax_sync_ns,oracle_ns,flush_whole_ns,pmem_persist_ns,msync_ns\n");
    }
    printf("| k | mark ns/record | dax_sync | oracle (k lines + 1 fence) | dax_sync / oracle (median of rounds) | goal <= 1.5x oracle + 1 us (medians; rounds meeting it) | flush whole 1 GiB | pmem_persist 1 GiB | pmem_persist / dax_sync |\n");
    printf("|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
    for (int ki = 0; ki < nk; ki++) {
        size_t k = ks[ki];
        double ds[64], orc[64], mk[64], whole[16], lib[16], msy[16], ratio[64];
        int slack[64];
        int nw = 0;
        for (int r = 0; r < rounds; r++) {
            /* The two candidates take turns going first (the host's noise drifts), each
             * on its own fresh random lines, dirtied the same way just before it runs
             * and settled by a fence, so both start from the same cache state. */
            for (int turn = 0; turn < 2; turn++) {
                for (size_t i = 0; i < k; i++) offs[i] = (next() % (len / line)) * line;
                if (turn == (r & 1)) {
                    /* dax_sync: mark (timed separately), write, then sync. The fence
                     * first: a mark's locked instruction waits for the write-backs still
                     * in flight from the turn before (a sync, like the oracle and
                     * pmem_persist, returns once its fence is issued, not completed),
                     * and that wait belongs to them, not to the mark. */
                    __atomic_thread_fence(__ATOMIC_SEQ_CST);
                    double t0 = now_ns();
                    for (size_t i = 0; i < k; i++) dax_mark_dirty(m, base + offs[i], 64);
                    mk[r] = (now_ns() - t0) / k;
                    for (size_t i = 0; i < k; i++) memset(base + offs[i], (int)r, 64);
                    __atomic_thread_fence(__ATOMIC_SEQ_CST);
                    t0 = now_ns();
                    dax_sync(m, NULL, 0);
                    ds[r] = now_ns() - t0;
                } else {
                    /* oracle: exactly those k lines, known in advance */
                    for (size_t i = 0; i < k; i++) memset(base + offs[i], (int)r + 1, 64);
                    __atomic_thread_fence(__ATOMIC_SEQ_CST);
                    double t0 = now_ns();
                    for (size_t i = 0; i < k; i++) wb_cache_pmem(base + offs[i], 64);
                    wmb_pmem();
                    orc[r] = now_ns() - t0;
                }
            }
            ratio[r] = ds[r] / orc[r];
            slack[r] = ds[r] <= 1.5 * orc[r] + 1000;
        }
        /* The whole-mapping baselines run in their own rounds: a 1 GiB flush evicts every
         * cache and TLB entry, which would make the rounds above measure cold misses. */
        for (int r = 0; r < whole_rounds; r++) {
            double t0;
            for (size_t i = 0; i < k; i++) offs[i] = (next() % (len / line)) * line;
            {
                for (size_t i = 0; i < k; i++) memset(base + offs[i], (int)r + 2, 64);
                t0 = now_ns();
                wb_cache_pmem(base, len);
                wmb_pmem();
                whole[nw] = now_ns() - t0;
                for (size_t i = 0; i < k; i++) memset(base + offs[i], (int)r + 3, 64);
                t0 = now_ns();
                pmem_persist(base, len);
                lib[nw] = now_ns() - t0;
                if (do_msync) {
                    for (size_t i = 0; i < k; i++) memset(base + offs[i], (int)r + 4, 64);
                    t0 = now_ns();
                    if (msync(base, len, MS_SYNC) != 0) perror("msync");
                    msy[nw] = now_ns() - t0;
                }
                nw++;
            }
        }
        int met = 0;
        for (int r = 0; r < rounds; r++) met += slack[r];
        double d = median(ds, rounds), o = median(orc, rounds);
        double w = median(whole, nw), l = median(lib, nw);
        printf("| %zu | %.1f | %.2f us | %.2f us | %.2f | %s (%d/%d rounds) | %.1f ms | %.1f ms | %.0fx |\n",
               k, median(mk, rounds), d / 1e3, o / 1e3, median(ratio, rounds),
               d <= 1.5 * o + 1000 ? "met" : "NOT met", met, rounds, w / 1e6, l / 1e6, l / d);
        double ms = do_msync ? median(msy, nw) : 0;
        if (do_msync) printf("|   | msync(whole mapping, MS_SYNC) after %zu records: %.3f ms |\n", k, ms / 1e6);
        if (csv) {
            fprintf(csv, "%zu,%.1f,%.0f,%.0f,%.0f,%.0f,", k, median(mk, rounds), d, o, w, l);
            if (do_msync) fprintf(csv, "%.0f\n", ms);
            else fprintf(csv, "NaN\n");
        }
    }
    if (csv) fclose(csv);
    double clean[32];
    for (int r = 0; r < 31; r++) {
        double t0 = now_ns();
        dax_sync(m, NULL, 0);
        clean[r] = now_ns() - t0;
    }
    printf("\ndax_sync of the clean 1 GiB mapping: %.0f ns (median of 31)\n", median(clean, 31));
    dax_unmap(m);
    free(offs);
    return 0;
}
