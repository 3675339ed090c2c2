/* mprotect_shadow2 FILE MiB SECONDS [nohuge] [nosync] [orig] [strict]
 * Variant of the workplace reproducer daxvm/tests/mprotect_shadow.c (locked mprotect +
 * SIGSEGV dirty tracking, 2 writer threads storing sequence numbers at offsets 8 and 16 of
 * random pages, a collector that locks, protects all, takes the bits, unlocks and copies the
 * reported pages into a shadow; at the end shadow must equal the mapping).
 * Differences:
 *   - by default the pages written by the single-thread warm-up phase (byte 5 of 100 pages)
 *     are copied into the shadow after their collect.  The original does NOT copy them, so
 *     every one of those 100 pages that no writer happens to touch during the concurrent
 *     phase is reported as "lost".  "orig" restores the original (flawed) behaviour.
 *   - every lost page is explained: its index, whether it is a warm-up page, which bytes
 *     differ, whether a writer's seq there is newer than the shadow's, how often it was
 *     collected during the concurrent phase.
 *   - "strict": in every round, while the collector still holds the lock (all pages RO, no
 *     handler can finish, so no store can land), every page NOT reported must equal the
 *     shadow: a store that landed without a SIGSEGV is caught in the round it happened.
 *   - "nosync": plain MAP_SHARED even where MAP_SYNC works. "nohuge": MADV_NOHUGEPAGE.
 * Prints one RESULT line; exit status 0 iff lost_pages == 0 and strict_violations == 0.
 * Build: gcc -O2 -pthread -o mprotect_shadow2 mprotect_shadow2.c */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
static char *base; static size_t len, npages;
static atomic_uchar *bits; static atomic_int lock;
static atomic_ulong faults;
static void lk(void) { int z = 0; while (!atomic_compare_exchange_weak(&lock, &z, 1)) z = 0; }
static void ul(void) { atomic_store(&lock, 0); }
static void h(int sig, siginfo_t *si, void *uc) {
    (void)uc; char *a = si->si_addr;
    if (a < base || a >= base + len) { signal(sig, SIG_DFL); return; }
    size_t pg = (a - base) / 4096;
    lk(); atomic_store(&bits[pg], 1); mprotect(base + pg * 4096, 4096, PROT_READ | PROT_WRITE); ul();
    atomic_fetch_add(&faults, 1);
}
static char *shadow; static int strict; static size_t violations;
static size_t collect(unsigned char *out) {
    lk(); mprotect(base, len, PROT_READ);
    size_t n = 0;
    for (size_t i = 0; i < npages; i++) { out[i] = atomic_exchange(&bits[i], 0); n += out[i]; }
    if (strict)   /* still locked: nothing can be written now; unreported pages must be unchanged */
        for (size_t i = 0; i < npages; i++)
            if (!out[i] && memcmp(shadow + i * 4096, base + i * 4096, 4096)) {
                if (violations++ < 10) printf("STRICT: page %zu changed without a SIGSEGV\n", i);
                memcpy(shadow + i * 4096, base + i * 4096, 4096);
            }
    ul(); return n;
}
static volatile int stop;
static void *writer(void *arg) {
    uint64_t r = (uintptr_t)arg * 7919 + 1, s = 0;
    while (!stop) { r ^= r << 13; r ^= r >> 7; r ^= r << 17; size_t pg = r % npages; s++;
                    *(volatile uint64_t *)(base + pg * 4096 + ((uintptr_t)arg) * 8) = s; }
    return NULL;
}
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4) { fprintf(stderr, "usage: %s FILE MiB SECONDS [nohuge] [nosync] [orig] [strict]\n", argv[0]); return 2; }
    int nohuge = 0, nosync = 0, orig = 0;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "nohuge")) nohuge = 1; else if (!strcmp(argv[i], "nosync")) nosync = 1;
        else if (!strcmp(argv[i], "orig")) orig = 1; else if (!strcmp(argv[i], "strict")) strict = 1;
        else { fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
    }
    len = (size_t)atoi(argv[2]) << 20; npages = len / 4096;
    int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, len)) { perror(argv[1]); return 2; }
    base = nosync ? MAP_FAILED : mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
    int sync = base != MAP_FAILED;
    if (!sync) base = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) { perror("mmap"); return 2; }
    if (nohuge) madvise(base, len, MADV_NOHUGEPAGE);
    memset(base, 0, len);
    bits = calloc(npages, 1); unsigned char *snap = malloc(npages); shadow = calloc(len, 1);
    unsigned *ncoll = calloc(npages, sizeof *ncoll); unsigned char *warm = calloc(npages, 1);
    struct sigaction sa = {0}; sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO; sigaction(SIGSEGV, &sa, 0);
    mprotect(base, len, PROT_READ);
    for (int i = 0; i < 100; i++) { size_t pg = (size_t)i * 37 % npages; warm[pg] = 1; base[pg * 4096 + 5] = 1; }
    size_t n = collect(snap);
    if (!orig) for (size_t i = 0; i < npages; i++) if (snap[i]) memcpy(shadow + i * 4096, base + i * 4096, 4096);
    printf("single: recorded %zu pages for 100 distinct writes (faults %lu)%s\n", n, atomic_load(&faults),
           orig ? " [orig: NOT copied to the shadow]" : "");
    pthread_t t[2]; stop = 0;
    for (long i = 0; i < 2; i++) pthread_create(&t[i], 0, writer, (void *)(i + 1));
    struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0); size_t rounds = 0, reported = 0;
    do {
        reported += collect(snap);
        for (size_t i = 0; i < npages; i++) if (snap[i]) { ncoll[i]++; memcpy(shadow + i * 4096, base + i * 4096, 4096); }
        rounds++; clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) < atoi(argv[3]));
    stop = 1; for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
    reported += collect(snap);
    for (size_t i = 0; i < npages; i++) if (snap[i]) { ncoll[i]++; memcpy(shadow + i * 4096, base + i * 4096, 4096); }
    size_t lost = 0, lost_warm = 0, untouched_warm = 0;
    for (size_t i = 0; i < npages; i++) if (warm[i] && !ncoll[i]) untouched_warm++;
    for (size_t i = 0; i < npages; i++) {
        if (!memcmp(shadow + i * 4096, base + i * 4096, 4096)) continue;
        lost++; lost_warm += warm[i];
        if (lost <= 8) {
            char diff[128] = ""; int k = 0;
            for (int b = 0; b < 4096 && k < 6; b++) if (shadow[i * 4096 + b] != base[i * 4096 + b]) { k++;
                snprintf(diff + strlen(diff), sizeof diff - strlen(diff), " %d:%02x->%02x", b, (unsigned char)shadow[i * 4096 + b], (unsigned char)base[i * 4096 + b]); }
            uint64_t m1 = *(uint64_t *)(base + i * 4096 + 8), s1 = *(uint64_t *)(shadow + i * 4096 + 8);
            uint64_t m2 = *(uint64_t *)(base + i * 4096 + 16), s2 = *(uint64_t *)(shadow + i * 4096 + 16);
            printf("LOST page %zu warmup=%d collected=%u times; bytes shadow->mem%s; seq w1 %lu/%lu w2 %lu/%lu (shadow/mem)\n",
                   i, warm[i], ncoll[i], diff, s1, m1, s2, m2);
        }
    }
    printf("RESULT map_sync=%d nohuge=%d orig=%d strict=%d rounds=%zu faults=%lu reported=%zu "
           "warmup_pages_untouched_by_writers=%zu lost_pages=%zu (of them warm-up pages: %zu) strict_violations=%zu\n",
           sync, nohuge, orig, strict, rounds, atomic_load(&faults), reported, untouched_warm, lost, lost_warm, violations);
    return lost != 0 || violations != 0;
}
