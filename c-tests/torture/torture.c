/* The torture suite of issue 13 (soundness): `torture CASE DIR [ARG]`, one case per
 * invocation, run by c-tests/torture/run.sh under `timeout`. DIR is a scratch directory
 * (tmpfs for the tracking cases). Exit 0 = pass, 1 = fail, 77 = skipped; a hang is a
 * failure through the runner's timeout, a crash through the signal that ended it.
 * `torture list` prints the case names.
 *
 * The contract tested is the FIXED library's (see run.sh and the issue): calls racing
 * dax_unmap succeed or fail with EBADF; stale and forged handles give EBADF (or EINVAL)
 * and touch nothing; fork with other threads inside the library leaves a usable child;
 * re-entry from a signal handler on the same thread succeeds or fails with EDEADLK,
 * never hangs; tracking survives kills, longjmps, handler stores and kernel writes; a
 * failed msync is reported by every later sync; truncation gives an error, not SIGBUS;
 * bad input to dax_map_fd and dax_adopt is refused with EINVAL. */
#include <daxpmem.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include "torture.h"

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)

static const char *g_dir;

static dax_map_t *map_new(const char *name, size_t len, unsigned flags) {
    char p[512];
    t_path(p, sizeof p, g_dir, name);
    return dax_map(p, len, DAX_CREATE | DAX_SPARSE | flags, 0644);
}

static struct dax_stats get_stats(dax_map_t *m) {
    struct dax_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    if (dax_get_stats(m, &s) != 0) {
        t_failures++;
        fprintf(stderr, "dax_get_stats failed: %s\n", dax_errormsg());
    }
    return s;
}

/* One map + write + mark + sync + unmap: the process is still usable. */
static int still_usable(const char *name) {
    dax_map_t *m = map_new(name, 64 * KIB, 0);
    if (!m) return 0;
    char *a = (char *)dax_addr(m);
    if (!a) return 0;
    memset(a + 4096, 0x5c, 128);
    int ok = dax_mark_dirty(m, a + 4096, 128) == 0 && dax_sync(m, NULL, 0) == 0;
    ok = dax_unmap(m) == 0 && ok;
    return ok;
}

/* ==== 1. calls on a handle racing dax_unmap of it ===================================== */

enum race_op { R_MARK, R_SYNC, R_MEMCPY, R_MEMSET, R_STATS, R_ADDR, R_LEN, R_ISPMEM, R_TRACK };
static const char *const race_names[] = {"mark", "sync", "memcpy", "memset", "stats",
                                         "addr", "len", "is_pmem", "track_mode"};

struct race {
    dax_map_t *m;
    char *a;
    enum race_op op;
    atomic_int go, done;
    atomic_long calls, starts;
    int jitter;
    long ok, ebadf, bad;
    int bad_errno;
    uint64_t rnd;
};

/* 1 = the call succeeded, 0 = it failed (errno set). */
static int race_call(struct race *r) {
    size_t off = (size_t)(t_rnd(&r->rnd) % (60 * KIB / 64)) * 64;
    char src[256];
    struct dax_stats s;
    switch (r->op) {
    case R_MARK: return dax_mark_dirty(r->m, r->a + off, 64) == 0;
    case R_SYNC: return dax_mark_dirty(r->m, r->a + off, 64) == 0 && dax_sync(r->m, NULL, 0) == 0;
    case R_MEMCPY: memset(src, (int)off, sizeof src); return dax_memcpy(r->m, r->a + off, src, sizeof src) == 0;
    case R_MEMSET: return dax_memset(r->m, r->a + off, 0x33, 256) == 0;
    case R_STATS: memset(&s, 0, sizeof s); s.size = sizeof s; return dax_get_stats(r->m, &s) == 0;
    case R_ADDR: return dax_addr(r->m) != NULL;
    case R_LEN: return dax_len(r->m) != 0;
    case R_ISPMEM: return dax_is_pmem(r->m) >= 0;
    case R_TRACK: return dax_track_mode(r->m) >= 0;
    }
    return 0;
}

static void *race_thread(void *arg) {
    struct race *r = (struct race *)arg;
    while (!atomic_load(&r->go)) sched_yield();
    for (;;) {
        atomic_fetch_add(&r->starts, 1); /* about to call: the unmapper watches this */
        if (r->jitter) { /* every other round: call a random few ns later */
            unsigned spin = (unsigned)(t_rnd(&r->rnd) % 256);
            for (volatile unsigned i = 0; i < spin; i++) {
            }
        }
        errno = 0;
        int ok = race_call(r);
        atomic_fetch_add(&r->calls, 1);
        if (ok) {
            r->ok++;
            continue;
        }
        if (errno == EBADF) r->ebadf++;
        else {
            r->bad++;
            r->bad_errno = errno;
        }
        break; /* the handle is gone: this round is over */
    }
    atomic_store(&r->done, 1);
    return NULL;
}

/* opname: a call (race_names), racing dax_unmap; or CALL_split: racing a
 * dax_unmap_range of a middle part of the mapping (what the preload's munmap of part of
 * a mapping does), which retires the handle and registers the two parts left. */
static int case_race(const char *spec) {
    char opname[32];
    snprintf(opname, sizeof opname, "%s", spec);
    size_t sl = strlen(opname);
    int split = sl > 6 && strcmp(opname + sl - 6, "_split") == 0;
    if (split) opname[sl - 6] = 0;
    int op = -1;
    for (int i = 0; i < (int)(sizeof race_names / sizeof *race_names); i++)
        if (strcmp(opname, race_names[i]) == 0) op = i;
    if (op < 0) return 2;
    size_t pg = t_page();
    long split_bad = 0;
    uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    /* dax_get_stats spends ~3 us reading the page tables and looks the handle up in its
     * first few instructions: fewer rounds per second, a narrower window; more time */
    double end = t_now() + (op == R_STATS ? 3.0 : 1.5);
    long rounds = 0, bad = 0, unmap_bad = 0;
    for (; rounds < 20000 && (rounds < 200 || t_now() < end); rounds++) {
        struct race r;
        memset(&r, 0, sizeof r);
        r.m = map_new("race.dat", 64 * KIB, 0);
        if (!r.m) {
            T_EXPECT(0, "dax_map: %s", dax_errormsg());
            break;
        }
        r.a = (char *)dax_addr(r.m);
        r.op = (enum race_op)op;
        r.rnd = t_rnd(&seed) | 1;
        /* two ways of timing the unmap; the second (taking turns with the first) only
         * for dax_get_stats, whose handle lookup is a few ns at the start of a 3 us call */
        r.jitter = op == R_STATS ? (int)(rounds % 2) : 0;
        pthread_t th;
        pthread_create(&th, NULL, race_thread, &r);
        atomic_store(&r.go, 1);
        if (!r.jitter) {
            /* unmap after 0..15 calls and a random spin (up to a few us): anywhere in
             * a call; dense for the fast calls */
            long k = (long)(t_rnd(&seed) % 16);
            unsigned spin = (unsigned)(t_rnd(&seed) % 8192);
            while (atomic_load(&r.calls) < k && !atomic_load(&r.done)) sched_yield();
            for (volatile unsigned i = 0; i < spin; i++) {
            }
        } else {
            /* unmap as call 1..16 starts (the caller counts `starts` just before a call,
             * then waits a random few ns): the unmap meets the call's handle lookup even
             * in a slow call such as dax_get_stats */
            long k = 1 + (long)(t_rnd(&seed) % 16);
            for (unsigned n = 0; atomic_load(&r.starts) < k && !atomic_load(&r.done); n++)
                if (n > 4096) sched_yield();
        }
        if (!split) {
            if (dax_unmap(r.m) != 0) unmap_bad++;
        } else if (dax_unmap_range(r.a + 4 * pg, 4 * pg) != 0) {
            unmap_bad++;
        }
        pthread_join(th, NULL);
        if (split) { /* the hole unmapped; both parts mapped and registered: release them */
            char *part[2] = {r.a, r.a + 8 * pg};
            size_t plen[2] = {4 * pg, 64 * KIB - 8 * pg};
            int ok = t_mapped_pages(r.a + 4 * pg, 4 * pg) == 0;
            for (int i = 0; i < 2; i++) {
                dax_map_t *f = dax_find(part[i]);
                ok = ok && t_mapped_pages(part[i], plen[i]) == plen[i] / pg && f && f != r.m;
                if (f && f != r.m) {
                    if (dax_unmap(f) != 0) ok = 0;
                } else {
                    munmap(part[i], plen[i]);
                }
            }
            if (!ok && split_bad++ < 3)
                fprintf(stderr, "round %ld: after the split the hole or the parts are wrong\n", rounds);
        }
        if (r.bad) {
            if (bad < 5)
                fprintf(stderr, "round %ld: %s failed with errno %d (%s), not EBADF\n", rounds,
                        opname, r.bad_errno, strerror(r.bad_errno));
            bad++;
        }
    }
    t_note("%ld rounds of dax_%s racing dax_%s", rounds, opname, split ? "unmap_range of a middle part" : "unmap");
    T_EXPECT(split_bad == 0, "%ld rounds with a wrong split", split_bad);
    T_EXPECT(bad == 0, "%ld rounds where the racing call failed with another errno than EBADF", bad);
    T_EXPECT(unmap_bad == 0, "%ld dax_unmap calls failed", unmap_bad);
    T_EXPECT(still_usable("race2.dat"), "map/sync/unmap after the races");
    return t_done("race");
}

/* dax_unmap_range racing dax_unmap of the same mapping: the range ends up unmapped
 * and unregistered; the parts outside it are mapped iff registered. */
struct ur {
    dax_map_t *m;
    char *a;
    size_t off, len;
    atomic_int go;
    unsigned d_unmap, d_range; /* random delays after go: every interleaving */
    int rc_unmap, e_unmap, rc_range, e_range;
};
static void *ur_unmap(void *arg) {
    struct ur *u = (struct ur *)arg;
    while (!atomic_load(&u->go)) sched_yield();
    for (volatile unsigned i = 0; i < u->d_unmap; i++) {
    }
    errno = 0;
    u->rc_unmap = dax_unmap(u->m);
    u->e_unmap = errno;
    return NULL;
}
static void *ur_range(void *arg) {
    struct ur *u = (struct ur *)arg;
    while (!atomic_load(&u->go)) sched_yield();
    for (volatile unsigned i = 0; i < u->d_range; i++) {
    }
    errno = 0;
    u->rc_range = dax_unmap_range(u->a + u->off, u->len);
    u->e_range = errno;
    return NULL;
}

/* [p, p+len) outside the unmapped range: mapped iff dax_find finds it; then released. */
static int ur_outside(char *p, size_t len, long round) {
    size_t pages = len / t_page(), mapped = t_mapped_pages(p, len);
    dax_map_t *f = dax_find(p);
    if (mapped != 0 && mapped != pages) {
        fprintf(stderr, "round %ld: %zu of %zu pages outside the range mapped\n", round, mapped, pages);
        return 0;
    }
    if ((mapped != 0) != (f != NULL)) {
        fprintf(stderr, "round %ld: part outside %s but %s\n", round, mapped ? "mapped" : "unmapped",
                f ? "registered" : "not registered");
        if (mapped) munmap(p, len);
        return 0;
    }
    if (f && dax_unmap(f) != 0) {
        fprintf(stderr, "round %ld: dax_unmap of a split part: %s\n", round, dax_errormsg());
        return 0;
    }
    return 1;
}

static int case_unmap_range(const char *variant) {
    int middle = strcmp(variant, "middle") == 0;
    uint64_t seed = 0x5bd1e995ULL ^ (uint64_t)getpid();
    size_t len = 64 * KIB, pg = t_page();
    long rounds = 0, bad = 0;
    double end = t_now() + 3.0; /* 1-2 bad rounds in 10 000 on main: more of them */
    for (; rounds < 40000 && (rounds < 200 || t_now() < end) && bad < 5; rounds++) {
        struct ur u;
        memset(&u, 0, sizeof u);
        u.m = map_new("ur.dat", len, 0);
        if (!u.m) {
            T_EXPECT(0, "dax_map: %s", dax_errormsg());
            break;
        }
        u.a = (char *)dax_addr(u.m);
        u.off = middle ? 4 * pg : 0;
        u.len = middle ? 4 * pg : len;
        u.d_unmap = (unsigned)(t_rnd(&seed) % 2048);
        u.d_range = (unsigned)(t_rnd(&seed) % 2048);
        pthread_t t1, t2;
        pthread_create(&t1, NULL, ur_unmap, &u);
        pthread_create(&t2, NULL, ur_range, &u);
        atomic_store(&u.go, 1);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        int ok = 1;
        if (!(u.rc_unmap == 0 || (u.rc_unmap == -1 && u.e_unmap == EBADF))) {
            fprintf(stderr, "round %ld: dax_unmap %d errno %d\n", rounds, u.rc_unmap, u.e_unmap);
            ok = 0;
        }
        if (u.rc_range != 0) {
            fprintf(stderr, "round %ld: dax_unmap_range %d errno %d\n", rounds, u.rc_range, u.e_range);
            ok = 0;
        }
        size_t left = t_mapped_pages(u.a + u.off, u.len);
        if (left) {
            fprintf(stderr, "round %ld: %zu pages of the range still mapped\n", rounds, left);
            ok = 0;
        }
        if (dax_find(u.a + u.off) || dax_lookup(u.a + u.off, u.len)) {
            fprintf(stderr, "round %ld: the unmapped range is still registered\n", rounds);
            ok = 0;
        }
        if (middle) {
            ok = ur_outside(u.a, u.off, rounds) && ok;
            ok = ur_outside(u.a + u.off + u.len, len - u.off - u.len, rounds) && ok;
        } else if (left) {
            munmap(u.a, len); /* keep the next rounds apart */
        }
        if (!ok) bad++;
    }
    t_note("%ld rounds of dax_unmap_range (%s) racing dax_unmap", rounds, variant);
    T_EXPECT(bad == 0, "%ld bad rounds", bad);
    T_EXPECT(still_usable("ur2.dat"), "map/sync/unmap afterwards");
    return t_done("unmap_range");
}

/* ==== 2. stale and forged handles ====================================================== */

static int expect_ebadf_all(dax_map_t *h, char *old_addr) {
    struct dax_stats s;
    char src[64] = {0};
    int bad = 0;
#define EB(call, failval)                                                                   \
    do {                                                                                    \
        errno = 0;                                                                          \
        if (!((call) == (failval) && errno == EBADF)) {                                     \
            fprintf(stderr, "stale handle: %s: not %s with EBADF (errno %d)\n", #call,      \
                    #failval, errno);                                                       \
            bad++;                                                                          \
        }                                                                                   \
    } while (0)
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    EB(dax_mark_dirty(h, old_addr, 64), -1);
    EB(dax_sync(h, NULL, 0), -1);
    EB(dax_memcpy(h, old_addr, src, sizeof src), -1);
    EB(dax_memset(h, old_addr, 1, 64), -1);
    EB(dax_get_stats(h, &s), -1);
    EB(dax_addr(h), NULL);
    EB(dax_len(h), 0);
    EB(dax_is_pmem(h), -1);
    EB(dax_track_mode(h), -1);
    EB(dax_unmap(h), -1);
#undef EB
    return bad == 0;
}

static int live_ok(dax_map_t *m, char *a, size_t len, int tag) {
    if (t_mapped_pages(a, len) != len / t_page()) {
        fprintf(stderr, "live mapping %d: unmapped under it\n", tag);
        return 0;
    }
    if (dax_addr(m) != a || dax_find(a) != m) {
        fprintf(stderr, "live mapping %d: handle/registry lost\n", tag);
        return 0;
    }
    a[100] = (char)tag;
    if (dax_mark_dirty(m, a + 100, 1) != 0 || dax_sync(m, NULL, 0) != 0) {
        fprintf(stderr, "live mapping %d: mark/sync failed: %s\n", tag, dax_errormsg());
        return 0;
    }
    return 1;
}

static int case_stale(void) {
    size_t len = 64 * KIB;
    enum { B = 1124, BATCHES = 5 }; /* 5620 cycles, in batches wider than a 1024 quarantine */
    static dax_map_t *h[B];
    static char *ah[B];
    dax_map_t *before = map_new("stale-live0.dat", len, 0);
    dax_map_t *stale = map_new("stale.dat", len, 0);
    if (!before || !stale) return t_fail("dax_map");
    char *ab = (char *)dax_addr(before), *as = (char *)dax_addr(stale);
    T_EXPECT(dax_unmap(stale) == 0, "first unmap");
    long cycles = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < B; i++)
            if (!(h[i] = map_new("stale-cycle.dat", len, 0))) return t_fail("cycle map: %s", dax_errormsg());
        for (int i = 0; i < B; i++)
            if (dax_unmap(h[i]) != 0) return t_fail("cycle unmap: %s", dax_errormsg());
        cycles += B;
    }
    /* live mappings made after the cycles: the ones a recycled handle would alias */
    for (int i = 0; i < B; i++) {
        if (!(h[i] = map_new("stale-live.dat", len, 0))) return t_fail("live map: %s", dax_errormsg());
        ah[i] = (char *)dax_addr(h[i]);
    }
    t_note("%ld map/unmap cycles since the handle was unmapped, %d live mappings", cycles, B);
    int aliased = -1;
    for (int i = 0; i < B; i++)
        if (h[i] == stale) aliased = i;
    if (aliased >= 0) t_note("the stale handle's value is live mapping %d's handle", aliased);
    T_EXPECT(expect_ebadf_all(stale, as), "every call on the stale handle fails with EBADF");
    T_EXPECT(live_ok(before, ab, len, 0), "the mapping made before still works");
    int lost = 0;
    for (int i = 0; i < B; i++) {
        if (t_mapped_pages(ah[i], len) != len / t_page() || dax_find(ah[i]) != h[i] ||
            dax_addr(h[i]) != ah[i]) {
            if (lost++ < 3) fprintf(stderr, "live mapping %d was unmapped or unregistered\n", i);
            continue;
        }
        if (i % 97 == 0) T_EXPECT(live_ok(h[i], ah[i], len, i), "live mapping %d syncs", i);
    }
    T_EXPECT(lost == 0, "%d live mappings lost", lost);
    T_EXPECT(dax_unmap(before) == 0, "unmap");
    for (int i = 0; i < B; i++) dax_unmap(h[i]);
    return t_done("stale");
}

/* A forged handle: dax_unmap / dax_sync / dax_addr (the one named by `call`) gives
 * -1/NULL with EBADF or EINVAL. One call per case: a crash in one hides no other. */
static const char *g_forged_call = "unmap";
static int forged_calls(dax_map_t *h, const char *what) {
    int bad = 0, r;
    errno = 0;
    if (strcmp(g_forged_call, "unmap") == 0) {
        r = dax_unmap(h);
        if (!(r == -1 && (errno == EBADF || errno == EINVAL))) {
            fprintf(stderr, "%s: dax_unmap = %d errno %d\n", what, r, errno);
            bad++;
        }
    } else if (strcmp(g_forged_call, "sync") == 0) {
        r = dax_sync(h, NULL, 0);
        if (!(r == -1 && (errno == EBADF || errno == EINVAL))) {
            fprintf(stderr, "%s: dax_sync = %d errno %d\n", what, r, errno);
            bad++;
        }
    } else {
        void *p = dax_addr(h);
        if (!(p == NULL && (errno == EBADF || errno == EINVAL))) {
            fprintf(stderr, "%s: dax_addr = %p errno %d\n", what, p, errno);
            bad++;
        }
    }
    return bad == 0;
}

static int case_forged(const char *spec) {
    char kind[32], call[16];
    if (sscanf(spec, "%31[^_]_%15s", kind, call) != 2) return 2;
    if (strcmp(call, "unmap") != 0 && strcmp(call, "sync") != 0 && strcmp(call, "addr") != 0) return 2;
    g_forged_call = spec + strlen(kind) + 1;
    size_t pg = t_page(), len = 64 * KIB;
    dax_map_t *live = map_new("forged-live.dat", len, 0);
    if (!live) return t_fail("dax_map");
    char *al = (char *)dax_addr(live);
    if (strcmp(kind, "literal") == 0) {
        static const char lit[] = "a string literal, not a daxpmem handle at all........";
        T_EXPECT(forged_calls((dax_map_t *)(uintptr_t)lit, "string literal"), "refused");
    } else if (strcmp(kind, "roprot") == 0) {
        unsigned char *p = (unsigned char *)mmap(NULL, pg, PROT_READ | PROT_WRITE,
                                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint64_t s = 12345;
        for (size_t i = 0; i < pg; i++) p[i] = (unsigned char)t_rnd(&s);
        mprotect(p, pg, PROT_READ);
        T_EXPECT(forged_calls((dax_map_t *)(void *)p, "PROT_READ page"), "refused");
        T_EXPECT(forged_calls((dax_map_t *)(void *)(p + 1024), "PROT_READ page + 1024"), "refused");
    } else if (strcmp(kind, "heap") == 0) {
        enum { N = 4096 };
        unsigned char *h = (unsigned char *)malloc(N), *copy = (unsigned char *)malloc(N);
        uint64_t s = 0xfeedULL;
        for (int round = 0; round < 64; round++) {
            for (size_t i = 0; i < N; i++) h[i] = (unsigned char)t_rnd(&s);
            memcpy(copy, h, N);
            char what[64];
            snprintf(what, sizeof what, "random heap block %d", round);
            if (!forged_calls((dax_map_t *)(void *)h, what)) {
                T_EXPECT(0, "%s refused", what);
                break;
            }
            if (memcmp(h, copy, N) != 0) {
                T_EXPECT(0, "%s: the library wrote through a forged handle", what);
                break;
            }
        }
        free(h);
        free(copy);
    } else if (strcmp(kind, "one") == 0) {
        T_EXPECT(forged_calls((dax_map_t *)(uintptr_t)1, "(dax_map_t *)1"), "refused");
    } else if (strcmp(kind, "unmapped") == 0) {
        void *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(p, pg);
        T_EXPECT(forged_calls((dax_map_t *)p, "unmapped page"), "refused");
    } else {
        return 2;
    }
    T_EXPECT(live_ok(live, al, len, 7), "the live mapping still works");
    T_EXPECT(dax_unmap(live) == 0, "unmap");
    return t_done("forged");
}

/* ==== 3. fork while other threads are inside the library ============================== */

static atomic_int f_stop;
static atomic_long f_thread_errors, f_thread_calls;
static dax_map_t *f_m;
static char *f_a;

static void *f_mapper(void *arg) { /* (a): map + write + mark + unmap in a loop */
    (void)arg;
    while (!atomic_load(&f_stop)) {
        dax_map_t *m = map_new("fork-thread.dat", 64 * KIB, 0);
        if (!m) {
            atomic_fetch_add(&f_thread_errors, 1);
            continue;
        }
        char *a = (char *)dax_addr(m);
        a[64] = 1;
        if (dax_mark_dirty(m, a + 64, 1) != 0) atomic_fetch_add(&f_thread_errors, 1);
        if (dax_unmap(m) != 0) atomic_fetch_add(&f_thread_errors, 1);
        atomic_fetch_add(&f_thread_calls, 1);
    }
    return NULL;
}
static void *f_marker(void *arg) { /* (b) */
    uint64_t s = 99 + (uint64_t)(intptr_t)arg;
    while (!atomic_load(&f_stop)) {
        size_t off = (size_t)(t_rnd(&s) % (MIB / 64)) * 64;
        f_a[off] = 1;
        if (dax_mark_dirty(f_m, f_a + off, 64) != 0) atomic_fetch_add(&f_thread_errors, 1);
        /* a sync now and then keeps the mark ring from filling up (a full ring sends
         * marks to the bitmap, and the ring's publish window is what a fork must not
         * catch half-done) */
        if (atomic_fetch_add(&f_thread_calls, 1) % 256 == 255 && dax_sync(f_m, NULL, 0) != 0)
            atomic_fetch_add(&f_thread_errors, 1);
    }
    return NULL;
}
static void *f_finder(void *arg) { /* (c) */
    long which = (long)(intptr_t)arg;
    uint64_t s = 7 + (uint64_t)which;
    while (!atomic_load(&f_stop)) {
        size_t off = (size_t)(t_rnd(&s) % MIB);
        if (which == 0) {
            if (dax_find(f_a + off) != f_m) atomic_fetch_add(&f_thread_errors, 1);
        } else if (which == 1) {
            if (dax_lookup(f_a + off, 1) != f_m) atomic_fetch_add(&f_thread_errors, 1);
        } else {
            if (daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0) == UINT64_MAX)
                atomic_fetch_add(&f_thread_errors, 1);
        }
        atomic_fetch_add(&f_thread_calls, 1);
    }
    return NULL;
}
static void *f_syncer(void *arg) { /* (d) */
    long which = (long)(intptr_t)arg;
    uint64_t s = 3;
    struct dax_stats st;
    while (!atomic_load(&f_stop)) {
        if (which == 0) {
            size_t off = (size_t)(t_rnd(&s) % (MIB / 64)) * 64;
            f_a[off] = 2;
            if (dax_mark_dirty(f_m, f_a + off, 64) != 0 || dax_sync(f_m, NULL, 0) != 0)
                atomic_fetch_add(&f_thread_errors, 1);
        } else {
            memset(&st, 0, sizeof st);
            st.size = sizeof st;
            if (dax_get_stats(f_m, &st) != 0) atomic_fetch_add(&f_thread_errors, 1);
        }
        atomic_fetch_add(&f_thread_calls, 1);
    }
    return NULL;
}

/* The child's part: only the library, plain memory and _exit. Exit codes say which
 * step failed (10 + step). */
static void fork_child(char kind, const char *child_path) {
    struct dax_stats st;
    switch (kind) {
    case 'a': {
        dax_map_t *m = dax_map(child_path, 64 * KIB, DAX_CREATE, 0644);
        if (!m) _exit(11);
        char *a = (char *)dax_addr(m);
        if (!a) _exit(12);
        memset(a, 0x42, 4096);
        if (dax_mark_dirty(m, a, 4096) != 0) _exit(13);
        if (dax_sync(m, NULL, 0) != 0) _exit(14);
        if (dax_unmap(m) != 0) _exit(15);
        unlink(child_path);
        _exit(0);
    }
    case 'b':
        if (dax_sync(f_m, NULL, 0) != 0) _exit(21);
        if (dax_unmap(f_m) != 0) _exit(22);
        _exit(0);
    case 'c':
        if (dax_unmap(f_m) != 0) _exit(31);
        _exit(0);
    case 'd':
        if (dax_sync(f_m, NULL, 0) != 0) _exit(41);
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        if (dax_get_stats(f_m, &st) != 0) _exit(42);
        if (dax_unmap(f_m) != 0) _exit(43);
        _exit(0);
    }
    _exit(99);
}

static int case_fork(const char *variant) {
    char kind = variant[0];
    /* at least `forks` forks, then more (up to 1000) while 2.5 s have not passed: the
     * windows are a few instructions wide */
    int nthreads = 0, forks = kind == 'a' ? 250 : 200, maxforks = 1000;
    double end = t_now() + 2.0;
    pthread_t th[3];
    if (kind != 'a') {
        f_m = map_new("fork-shared.dat", MIB, 0);
        if (!f_m) return t_fail("dax_map");
        f_a = (char *)dax_addr(f_m);
    }
    switch (kind) {
    case 'a': pthread_create(&th[nthreads++], NULL, f_mapper, NULL); break;
    case 'b':
        for (long i = 0; i < 2; i++) pthread_create(&th[nthreads++], NULL, f_marker, (void *)(intptr_t)i);
        break;
    case 'c':
        for (long i = 0; i < 3; i++) pthread_create(&th[nthreads++], NULL, f_finder, (void *)(intptr_t)i);
        break;
    case 'd':
        for (long i = 0; i < 2; i++) pthread_create(&th[nthreads++], NULL, f_syncer, (void *)(intptr_t)i);
        break;
    default: return 2;
    }
    while (atomic_load(&f_thread_calls) < 10) sched_yield();
    int done = 0, bad = 0;
    char cpath[512], sbuf[96];
    for (; done < maxforks && (done < forks || t_now() < end) && bad == 0; done++) {
        snprintf(cpath, sizeof cpath, "%s/fork-child-%d.dat", g_dir, done);
        pid_t pid = fork();
        if (pid < 0) {
            T_EXPECT(0, "fork");
            break;
        }
        if (pid == 0) fork_child(kind, cpath);
        int st = 0, w = t_wait_child(pid, 3.0, &st);
        if (w == -1) {
            fprintf(stderr, "fork %d: the child hung (killed after 3 s)\n", done);
            bad++;
        } else if (w != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "fork %d: child %s\n", done, t_status(st, sbuf, sizeof sbuf));
            bad++;
        }
        unlink(cpath);
    }
    atomic_store(&f_stop, 1);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    t_note("fork (%s): %d forks, %ld calls on the other threads", variant, done,
           (long)atomic_load(&f_thread_calls));
    T_EXPECT(bad == 0, "%d children failed or hung", bad);
    T_EXPECT(done >= forks, "%d of %d forks", done, forks);
    T_EXPECT(atomic_load(&f_thread_errors) == 0, "%ld failed calls on the other threads",
             (long)atomic_load(&f_thread_errors));
    if (f_m) {
        T_EXPECT(dax_sync(f_m, NULL, 0) == 0, "parent sync");
        T_EXPECT(dax_unmap(f_m) == 0, "parent unmap");
    }
    T_EXPECT(still_usable("fork-after.dat"), "the parent maps, syncs and unmaps afterwards");
    return t_done("fork");
}

/* ==== 4. signal handlers re-entering the library on the same thread =================== */

static dax_map_t *s_m;
static char *s_a;
static char s_other[512];
static pthread_t s_main;
static atomic_int s_stop;
static volatile sig_atomic_t s_count, s_bad, s_bad_errno, s_deadlk;
static int s_kind;

/* The handler: calls back into the library on the interrupted thread. */
static void s_handler(int sig) {
    int e = errno;
    (void)sig;
    s_count++;
    struct dax_stats st;
    int r = 0;
    switch (s_kind) {
    case 0: /* dax_sync: re-entering a sync */
    case 2:
        errno = 0;
        r = dax_sync(s_m, NULL, 0);
        break;
    case 1:
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        errno = 0;
        r = dax_get_stats(s_m, &st);
        break;
    case 3: {
        errno = 0;
        dax_map_t *o = dax_map(s_other, 64 * KIB, DAX_CREATE, 0644);
        if (!o) {
            r = -1;
            break;
        }
        errno = 0;
        r = dax_unmap(o);
        break;
    }
    case 4: { /* the async-signal-safe ones: must work */
        size_t off = (size_t)(s_count % 1000) * 64 + 512 * KIB;
        s_a[off] = (char)s_count;
        errno = 0;
        r = dax_mark_dirty(s_m, s_a + off, 64);
        wb_cache_pmem(s_a + off, 64);
        wmb_pmem();
        /* the primitives, on another line of the mapping (marked too) */
        char *p2 = s_a + off + 256 * KIB; /* 768 KiB .. 832 KiB, and 64 KiB above it */
        memcpy_to_pmem(p2, s_a + off, 64);
        clear_pmem(p2 + 64 * KIB, 64);
        daxpmem_persist(p2, 64);
        if (r == 0) {
            errno = 0;
            r = dax_mark_dirty(s_m, p2, 64 * KIB + 64);
        }
        if (r != 0) {
            s_bad++;
            s_bad_errno = errno;
        }
        errno = e;
        return;
    }
    }
    if (r != 0) {
        if (errno == EDEADLK) s_deadlk++;
        else {
            s_bad++;
            s_bad_errno = errno;
        }
    }
    errno = e;
}

static void *s_kicker(void *arg) {
    sigset_t all;
    (void)arg;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (!atomic_load(&s_stop)) {
        pthread_kill(s_main, SIGUSR1);
        t_sleep_us(30);
    }
    return NULL;
}

static int case_signal(const char *variant) {
    static const char *const names[] = {"sync_in_sync", "stats_in_sync", "sync_in_mark",
                                        "map_in_find", "async_safe"};
    s_kind = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(variant, names[i]) == 0) s_kind = i;
    if (s_kind < 0) return 2;
    s_m = map_new("sig.dat", MIB, 0);
    if (!s_m) return t_fail("dax_map");
    s_a = (char *)dax_addr(s_m);
    t_path(s_other, sizeof s_other, g_dir, "sig-other.dat");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    s_main = pthread_self();
    pthread_t k;
    pthread_create(&k, NULL, s_kicker, NULL);
    uint64_t s = 5;
    long iters = 0, main_bad = 0;
    double end = t_now() + 1.5;
    for (; iters < 2000000 && (t_now() < end || s_count == 0) && t_now() < end + 3; iters++) {
        size_t off = (size_t)(t_rnd(&s) % (256 * KIB / 64)) * 64;
        switch (s_kind) {
        case 0: case 1: case 4:
            s_a[off] = 1;
            if (dax_mark_dirty(s_m, s_a + off, 64) != 0 || dax_sync(s_m, NULL, 0) != 0) main_bad++;
            break;
        case 2:
            s_a[off] = 1;
            if (dax_mark_dirty(s_m, s_a + off, 64) != 0) main_bad++;
            break;
        case 3:
            if (dax_find(s_a + off) != s_m || dax_lookup(s_a + off, 64) != s_m) main_bad++;
            break;
        }
    }
    atomic_store(&s_stop, 1);
    pthread_join(k, NULL);
    signal(SIGUSR1, SIG_IGN);
    t_note("%s: %ld iterations, %d handler calls, %d EDEADLK", variant, iters, (int)s_count,
           (int)s_deadlk);
    T_EXPECT(s_count > 0, "the handler ran");
    T_EXPECT(s_bad == 0, "%d calls in the handler failed with errno %d (not EDEADLK)", (int)s_bad,
             (int)s_bad_errno);
    T_EXPECT(main_bad == 0, "%ld calls of the interrupted loop failed", main_bad);
    T_EXPECT(dax_sync(s_m, NULL, 0) == 0, "final sync");
    T_EXPECT(get_stats(s_m).dirty_lines == 0, "nothing left dirty after the final sync");
    T_EXPECT(dax_unmap(s_m) == 0, "unmap");
    unlink(s_other);
    return t_done("signal");
}

/* ==== 5. DAX_TRACK_MPROTECT against the program's own signal use ===================== */

static dax_map_t *tracked(const char *name, size_t len, unsigned mode) {
    dax_map_t *m = map_new(name, len, mode);
    return m;
}

static int skip_unavailable(const char *what) {
    if (errno == EOPNOTSUPP || errno == EPERM) {
        printf("%s unavailable here: %s\n", what, dax_errormsg());
        return 1;
    }
    return 0;
}

static int case_kill_segv(void) {
    dax_map_t *m = tracked("mp-kill.dat", MIB, DAX_TRACK_MPROTECT);
    if (!m) return skip_unavailable("DAX_TRACK_MPROTECT") ? T_SKIP : t_fail("dax_map");
    char *a = (char *)dax_addr(m);
    pid_t pid = fork();
    if (pid == 0) {
        a[0] = 1; /* a tracked fault first: the library's handler is live */
        if (dax_sync(m, NULL, 0) != 0) _exit(3);
        a[4096] = 2;
        kill(getpid(), SIGSEGV);
        t_sleep_us(100000);
        _exit(4); /* still alive: the signal was swallowed */
    }
    int st = 0;
    char sb[96];
    int w = t_wait_child(pid, 5.0, &st);
    T_EXPECT(w == 0, "the child ended within 5 s");
    T_EXPECT(w == 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
             "kill(getpid(), SIGSEGV) terminates by SIGSEGV; child: %s", t_status(st, sb, sizeof sb));
    T_EXPECT(dax_unmap(m) == 0, "unmap");
    return t_done("kill_segv");
}

static sigjmp_buf o_sjb;
static jmp_buf o_jb;
static volatile sig_atomic_t o_faults;
static int o_plain_longjmp;

static void o_handler(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    (void)ctx;
    o_faults++;
    if (o_plain_longjmp) longjmp(o_jb, 1);
    siglongjmp(o_sjb, 1);
}

/* One NULL-pointer fault of the program's own, left through its handler. */
static int __attribute__((noinline)) o_fault(int i) {
    volatile unsigned char *bad = (volatile unsigned char *)(uintptr_t)(8 + i);
    if (o_plain_longjmp) {
        if (setjmp(o_jb) == 0) {
            *bad = 1;
            return 0;
        }
        return 1;
    }
    if (sigsetjmp(o_sjb, 1) == 0) {
        *bad = 1;
        return 0;
    }
    return 1;
}

/* how: "siglongjmp" | "longjmp" (handler through dax_chain_sigaction, the documented
 * way after a tracked mapping exists) | "plain-longjmp" (plain sigaction + longjmp:
 * only meaningful under the preload, whose sigaction hook chains it). */
static int case_own_handler(const char *how) {
    o_plain_longjmp = strstr(how, "longjmp") != NULL && strstr(how, "siglongjmp") == NULL;
    int plain = strncmp(how, "plain", 5) == 0;
    dax_map_t *m = tracked("mp-own.dat", MIB, DAX_TRACK_MPROTECT);
    if (!m) return skip_unavailable("DAX_TRACK_MPROTECT") ? T_SKIP : t_fail("dax_map");
    char *a = (char *)dax_addr(m);
    a[0] = 1;
    T_EXPECT(dax_sync(m, NULL, 0) == 0, "first sync");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = o_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (plain) {
        T_EXPECT(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction");
    } else {
        int r = dax_chain_sigaction(SIGSEGV, &sa, NULL);
        T_EXPECT(r == 0, "dax_chain_sigaction chains (the tracking handler is in place): %d", r);
        if (r == 1) sigaction(SIGSEGV, &sa, NULL);
    }
    char path[512];
    t_path(path, sizeof path, g_dir, "mp-own.dat");
    int fd = open(path, O_RDONLY);
    /* siglongjmp: five own faults, each followed by a tracked store. Plain longjmp: ONE
     * own fault (a longjmp out of a handler leaves its signal blocked, so a second own
     * fault would kill any program, with or without daxpmem), then five tracked stores. */
    int own = o_plain_longjmp ? 1 : 5;
    for (int i = 0; i < 5; i++) {
        if (i < own) T_EXPECT(o_fault(i) == 1, "the program's own fault %d reached its handler", i);
        t_note("%s: %d own fault(s) handled; now a store into tracked page %d", how, i < own ? i + 1 : own, i);
        uint64_t before = get_stats(m).lines_written_back;
        a[(size_t)(i + 1) * 8192 + 64] = (char)(0x70 + i); /* must not kill us */
        T_EXPECT(dax_sync(m, NULL, 0) == 0, "sync after store %d", i);
        T_EXPECT(get_stats(m).lines_written_back > before, "store %d was written back", i);
        char c = 0;
        T_EXPECT(pread(fd, &c, 1, (off_t)((size_t)(i + 1) * 8192 + 64)) == 1 && c == (char)(0x70 + i),
                 "the file has store %d", i);
    }
    T_EXPECT(o_faults == own, "%d own faults handled, %d", own, (int)o_faults);
    close(fd);
    T_EXPECT(dax_unmap(m) == 0, "unmap");
    return t_done("own_handler");
}

/* Stores into tracked pages from a signal handler interrupting stores (and the
 * library's fault handler) on the same thread. */
static void st_handler(int sig) {
    (void)sig;
    s_count++;
    size_t page = ((size_t)s_count * 7919) % 1024;
    s_a[page * 4096 + (size_t)(s_count % 64) * 64] = (char)s_count;
}
static int case_store_in_handler(void) {
    s_m = tracked("mp-store.dat", 4 * MIB, DAX_TRACK_MPROTECT);
    if (!s_m) return skip_unavailable("DAX_TRACK_MPROTECT") ? T_SKIP : t_fail("dax_map");
    s_a = (char *)dax_addr(s_m);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = st_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    s_main = pthread_self();
    pthread_t k;
    pthread_create(&k, NULL, s_kicker, NULL);
    uint64_t s = 11;
    long iters = 0, sync_bad = 0;
    double end = t_now() + 1.5;
    for (; iters < 5000000 && t_now() < end; iters++) {
        size_t page = (size_t)(t_rnd(&s) % 1024);
        s_a[page * 4096 + 128] = (char)iters;
        if (iters % 64 == 63 && dax_sync(s_m, NULL, 0) != 0) sync_bad++;
    }
    atomic_store(&s_stop, 1);
    pthread_join(k, NULL);
    signal(SIGUSR1, SIG_IGN);
    t_note("store_in_handler: %ld main stores, %d handler stores", iters, (int)s_count);
    T_EXPECT(s_count > 0, "the handler ran");
    T_EXPECT(sync_bad == 0, "%ld syncs failed", sync_bad);
    T_EXPECT(dax_sync(s_m, NULL, 0) == 0, "final sync");
    T_EXPECT(get_stats(s_m).dirty_lines == 0, "clean after the final sync");
    T_EXPECT(dax_unmap(s_m) == 0, "unmap");
    return t_done("store_in_handler");
}

/* ==== 6. kernel writes (read, recv) into each tracking mode ========================== */

static int case_kernel_write(const char *spec) {
    char how[16], modename[16];
    if (sscanf(spec, "%15[^_]_%15s", how, modename) != 2) return 2;
    unsigned mode;
    if (strcmp(modename, "mprotect") == 0) mode = DAX_TRACK_MPROTECT;
    else if (strcmp(modename, "uffd") == 0) mode = DAX_TRACK_UFFD;
    else if (strcmp(modename, "kernel") == 0) mode = DAX_TRACK_KERNEL;
    else if (strcmp(modename, "explicit") == 0) mode = DAX_TRACK_EXPLICIT;
    else return 2;
    char path[512];
    t_path(path, sizeof path, g_dir, "kw.dat");
    unlink(path);
    dax_map_t *m = map_new("kw.dat", MIB, mode);
    if (!m) return skip_unavailable(modename) ? T_SKIP : t_fail("dax_map: %s", dax_errormsg());
    char *a = (char *)dax_addr(m);
    a[0] = 1;
    dax_mark_dirty(m, a, 1);
    T_EXPECT(dax_sync(m, NULL, 0) == 0, "first sync (pages protected again where tracked)");
    size_t n = 3 * 4096 + 100, off = 5 * 4096 + 100;
    char *buf = (char *)malloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = (char)('a' + i % 23);
    int sv[2];
    if (strcmp(how, "read") == 0) T_EXPECT(pipe(sv) == 0, "pipe");
    else if (strcmp(how, "recv") == 0) T_EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    else return 2;
    /* pipe: sv[0] read end, sv[1] write end; socketpair: either way */
    int wr = strcmp(how, "read") == 0 ? sv[1] : sv[0], rd = strcmp(how, "read") == 0 ? sv[0] : sv[1];
    T_EXPECT(write(wr, buf, n) == (ssize_t)n, "fill the %s", how);
    struct dax_stats s0 = get_stats(m);
    errno = 0;
    ssize_t r = strcmp(how, "read") == 0 ? read(rd, a + off, n) : recv(rd, a + off, n, 0);
    int e = errno;
    t_note("%s into a %s mapping: %zd (errno %d %s)", how, modename, r, e, r < 0 ? strerror(e) : "");
    if (r < 0) {
        T_EXPECT(mode == DAX_TRACK_MPROTECT && e == EFAULT, "%s failed (only EFAULT under MPROTECT is documented)", how);
    } else {
        T_EXPECT(r == (ssize_t)n || (mode == DAX_TRACK_MPROTECT && r > 0), "%s returned %zd of %zu", how, r, n);
        T_EXPECT(memcmp(a + off, buf, (size_t)r) == 0, "the mapping has the data");
        if (mode == DAX_TRACK_EXPLICIT) T_EXPECT(dax_mark_dirty(m, a + off, (size_t)r) == 0, "mark");
        T_EXPECT(dax_sync(m, NULL, 0) == 0, "sync after the kernel's write");
        struct dax_stats s1 = get_stats(m);
        if (mode == DAX_TRACK_KERNEL)
            T_EXPECT(s1.msync_calls > s0.msync_calls, "KERNEL: the sync issued msync");
        else
            T_EXPECT(s1.lines_written_back - s0.lines_written_back >= (uint64_t)r / 64,
                     "the kernel-written lines were written back: %llu lines for %zd bytes",
                     (unsigned long long)(s1.lines_written_back - s0.lines_written_back), r);
        T_EXPECT(s1.dirty_lines == 0, "clean after the sync");
        int fd = open(path, O_RDONLY);
        char *back = (char *)malloc(n);
        T_EXPECT(pread(fd, back, (size_t)r, (off_t)off) == r && memcmp(back, buf, (size_t)r) == 0,
                 "the file (pread on another fd) has the data");
        free(back);
        close(fd);
    }
    close(sv[0]);
    close(sv[1]);
    free(buf);
    T_EXPECT(dax_unmap(m) == 0, "unmap");
    unlink(path);
    return t_done("kernel_write");
}

/* ==== 7. a failed msync, then a retry (DIR: a nearly full filesystem) ================= */

static int case_enospc(void) {
    size_t len = (size_t)48 << 20, pg = t_page();
    dax_map_t *m = map_new("big.dat", len, 0);
    if (!m) return t_fail("dax_map of a sparse file: %s", dax_errormsg());
    char *a = (char *)dax_addr(m);
    for (size_t o = 0; o < len; o += pg) {
        memset(a + o, (int)(o / pg), 256);
        dax_mark_dirty(m, a + o, 256);
    }
    t_note("%zu MiB written and marked", len >> 20);
    errno = 0;
    int r1 = dax_sync(m, NULL, 0), e1 = errno;
    t_note("first dax_sync: %d errno %d (%s)", r1, e1, strerror(e1));
    T_EXPECT(r1 == -1 && (e1 == ENOSPC || e1 == EIO), "the first sync fails: %d errno %d", r1, e1);
    errno = 0;
    int r2 = dax_sync(m, NULL, 0), e2 = errno;
    t_note("second dax_sync: %d errno %d (%s)", r2, e2, strerror(e2));
    T_EXPECT(r2 == -1 && e2 == EIO, "the retry fails too with EIO: %d errno %d", r2, e2);
    /* every later sync reports it until the unmap: whole, ranged, after writeback settled */
    for (int i = 0; i < 4; i++) {
        if (i == 2) t_sleep_us(200000); /* let the device's writeback finish failing */
        errno = 0;
        int r = i % 2 ? dax_sync(m, a + (size_t)i * 4096, 4096) : dax_sync(m, NULL, 0), e = errno;
        T_EXPECT(r == -1 && e == EIO, "retry %d (%s) fails with EIO: %d errno %d", i + 3,
                 i % 2 ? "ranged" : "whole", r, e);
    }
    T_EXPECT(dax_unmap(m) == 0, "unmap");
    return t_done("enospc");
}

/* ==== 8. the file shrinks under the mapping ========================================== */

static int case_trunc(const char *spec) {
    char how[16], op[16];
    if (sscanf(spec, "%15[^_]_%15s", how, op) != 2) return 2;
    size_t len = 4 * MIB, cut = MIB, pg = t_page();
    char path[512];
    t_path(path, sizeof path, g_dir, "trunc.dat");
    unlink(path);
    dax_map_t *m = dax_map(path, len, DAX_CREATE, 0644);
    if (!m) return t_fail("dax_map");
    char *a = (char *)dax_addr(m);
    int pmem = dax_is_pmem(m);
    memset(a, 'A', 64);
    memset(a + 512 * KIB, 'B', 64);
    dax_mark_dirty(m, a, 64);
    dax_mark_dirty(m, a + 512 * KIB, 64);
    for (size_t o = len - MIB; o < len; o += pg) {
        memset(a + o, 'Z', 64);
        dax_mark_dirty(m, a + o, 64);
    }
    if (strcmp(how, "fd") == 0) {
        int fd = open(path, O_RDWR);
        T_EXPECT(fd >= 0 && ftruncate(fd, (off_t)cut) == 0, "ftruncate through another fd");
        close(fd);
    } else if (strcmp(how, "child") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open(path, O_RDWR);
            _exit(fd >= 0 && ftruncate(fd, (off_t)cut) == 0 ? 0 : 1);
        }
        int st = 0;
        T_EXPECT(t_wait_child(pid, 5.0, &st) == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                 "another process shrank the file");
    } else {
        return 2;
    }
    t_note("file cut to %zu of %zu bytes, mapping is %s; now %s", cut, len,
           pmem == 1 ? "pmem" : "page cache", op);
    errno = 0;
    int r;
    char src[1000];
    memset(src, 'Q', sizeof src);
    if (strcmp(op, "sync") == 0) r = dax_sync(m, NULL, 0);
    else if (strcmp(op, "rsync") == 0) r = dax_sync(m, a + len - MIB, MIB);
    else if (strcmp(op, "memset") == 0) r = dax_memset(m, a + len - MIB + 100, 0x5a, 1000);
    else if (strcmp(op, "memcpy") == 0) r = dax_memcpy(m, a + len - MIB + 100, src, sizeof src);
    else return 2;
    int e = errno;
    t_note("%s: %d errno %d (%s)", op, r, e, strerror(e));
    if (strcmp(op, "memset") == 0 || strcmp(op, "memcpy") == 0) {
        T_EXPECT(r == -1 && e != 0, "%s into the cut-off range fails with an errno", op);
    } else if (pmem == 1) {
        T_EXPECT(r == -1 && (e == EIO || e == ENXIO || e == EFAULT),
                 "sync of cut-off dirty lines on pmem fails with EIO/ENXIO/EFAULT: %d errno %d", r, e);
    } else {
        T_EXPECT(r == 0 || r == -1, "page cache: 0 or -1");
    }
    int fd = open(path, O_RDONLY);
    char c[2] = {0, 0};
    T_EXPECT(pread(fd, &c[0], 1, 0) == 1 && pread(fd, &c[1], 1, (off_t)(512 * KIB)) == 1 &&
                 c[0] == 'A' && c[1] == 'B',
             "the lines before the cut are in the file");
    close(fd);
    T_EXPECT(dax_unmap(m) == 0, "unmap");
    unlink(path);
    return t_done("trunc");
}

/* ==== 9. input: dax_map_fd and dax_adopt refuse what they cannot map or track ======== */

static int case_input(const char *what) {
    size_t pg = t_page(), flen = 64 * KIB;
    char path[512];
    t_path(path, sizeof path, g_dir, "input.dat");
    int fd = t_make_file(path, flen, 'i');
    if (fd < 0) return t_fail("create %s", path);
    dax_map_t *h = NULL;
    void *p = MAP_FAILED;
    size_t plen = flen;
    int expect_ok = 0;
    errno = 0;
    if (strcmp(what, "mapfd_len") == 0) {
        h = dax_map_fd(fd, 0, 2 * flen, 0);
    } else if (strcmp(what, "mapfd_off") == 0) {
        h = dax_map_fd(fd, (off_t)(2 * flen), pg, 0);
    } else if (strcmp(what, "mapfd_devzero") == 0) {
        int z = open("/dev/zero", O_RDWR);
        T_EXPECT(z >= 0, "open /dev/zero");
        errno = 0;
        h = dax_map_fd(z, 0, pg, 0);
    } else if (strcmp(what, "adopt_anon") == 0) {
        p = mmap(NULL, plen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        errno = 0;
        h = dax_adopt(p, plen, fd, 0, 0);
    } else if (strcmp(what, "adopt_stack") == 0) {
        volatile char stackbuf[3 * 4096];
        stackbuf[0] = 1;
        char *page = (char *)(((uintptr_t)stackbuf + pg - 1) & ~(uintptr_t)(pg - 1));
        errno = 0;
        h = dax_adopt(page, pg, fd, 0, 0);
        if (h) { /* must not be unmapped: that would take our stack */
            T_EXPECT(0, "a stack page was adopted");
            dax_forget(h);
            h = NULL;
            errno = 0;
        }
    } else if (strcmp(what, "adopt_ro") == 0) {
        p = mmap(NULL, plen, PROT_READ, MAP_SHARED, fd, 0);
        errno = 0;
        h = dax_adopt(p, plen, fd, 0, 0);
    } else if (strcmp(what, "adopt_private") == 0) {
        p = mmap(NULL, plen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        errno = 0;
        h = dax_adopt(p, plen, fd, 0, 0);
    } else if (strcmp(what, "adopt_pastend") == 0) {
        T_EXPECT(ftruncate(fd, (off_t)(2 * flen)) == 0, "grow");
        p = mmap(NULL, 2 * flen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        munmap((char *)p + flen, flen); /* the second half is not mapped */
        errno = 0;
        h = dax_adopt(p, 2 * flen, fd, 0, 0);
    } else if (strcmp(what, "adopt_ok") == 0) {
        expect_ok = 1;
        p = mmap(NULL, plen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        errno = 0;
        h = dax_adopt(p, plen, fd, 0, 0);
    } else {
        return 2;
    }
    int e = errno;
    if (expect_ok) {
        T_EXPECT(h != NULL, "a shared writable mapping of the file is adopted: %s", dax_errormsg());
        if (h) {
            char *c = (char *)p;
            memset(c + 4096, 'k', 100);
            T_EXPECT(dax_mark_dirty(h, c + 4096, 100) == 0, "mark");
            T_EXPECT(dax_sync(h, NULL, 0) == 0, "sync");
            T_EXPECT(dax_find(c) == h, "registered");
            T_EXPECT(dax_unmap(h) == 0, "unmap");
            T_EXPECT(t_mapped_pages(p, plen) == 0, "dax_unmap unmapped the adopted range");
            char b = 0;
            T_EXPECT(pread(fd, &b, 1, 4096) == 1 && b == 'k', "the file has the data");
        }
    } else {
        T_EXPECT(h == NULL && e == EINVAL, "%s refused with EINVAL: got %s, errno %d (%s)", what,
                 h ? "a handle" : "NULL", e, strerror(e));
        if (h) dax_forget(h); /* give it back untouched */
    }
    close(fd);
    unlink(path);
    return t_done("input");
}

/* ==== dispatch ======================================================================== */

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: torture CASE DIR\n");
        return 2;
    }
    const char *c = argv[1];
    g_dir = argv[2];
    if (strncmp(c, "race_", 5) == 0) return case_race(c + 5);
    if (strncmp(c, "unmap_range_", 12) == 0) return case_unmap_range(c + 12);
    if (strcmp(c, "stale_handle") == 0) return case_stale();
    if (strncmp(c, "forged_", 7) == 0) return case_forged(c + 7);
    if (strncmp(c, "fork_", 5) == 0) return case_fork(c + 5);
    if (strncmp(c, "signal_", 7) == 0) return case_signal(c + 7);
    if (strcmp(c, "mp_kill_segv") == 0) return case_kill_segv();
    if (strncmp(c, "mp_own_", 7) == 0) return case_own_handler(c + 7);
    if (strcmp(c, "mp_store_in_handler") == 0) return case_store_in_handler();
    if (strncmp(c, "kw_", 3) == 0) return case_kernel_write(c + 3);
    if (strcmp(c, "enospc_retry") == 0) return case_enospc();
    if (strncmp(c, "trunc_", 6) == 0) return case_trunc(c + 6);
    if (strncmp(c, "input_", 6) == 0) return case_input(c + 6);
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
}
