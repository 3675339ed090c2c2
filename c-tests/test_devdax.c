/* Device DAX checks, run inside the daxvm guest with --mode devdax (make test-devdax):
 *   test_devdax [/dev/daxX.Y]
 * The device is argv[1], else $DAXVM_DEVDAX, else the first device DAX found under
 * /sys/bus/dax/devices. Checks: dax_is_devdax(); dax_map(dev, 0, 0, 0) maps the whole
 * device (size from sysfs) at an address aligned to the device alignment; dax_is_pmem()
 * is 1; the stats say DAX_STAT_DEVDAX; writes + dax_mark_dirty + dax_sync leave nothing
 * dirty and issue no msync at all (the stats counter AND a seccomp filter that traps every
 * msync system call of the process: the core's raw syscalls included); a length that is
 * not a multiple of the device alignment, or beyond the device, is refused with EINVAL;
 * dax_punch_hole fails with EOPNOTSUPP; the data is read back after dax_unmap + dax_map,
 * through dax_map_fd at an offset, and through a plain mmap(2) of the device. */
#include <daxpmem.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include "check.h"

static volatile sig_atomic_t msync_trapped = 0;

static void on_sigsys(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    if (si->si_syscall == SYS_msync) msync_trapped++;
    /* The trapped call was not executed; make it fail visibly. */
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = -EXDEV;
}

/* Every msync(2) of this process traps (SIGSYS) and fails with EXDEV. 0 if installed. */
static int trap_msync(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSYS, &sa, NULL) != 0) return -1;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_msync, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog;
    prog.len = (unsigned short)(sizeof f / sizeof f[0]);
    prog.filter = f;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return -1;
    /* Prove the trap works. */
    void *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) return -1;
    errno = 0;
    long r = syscall(SYS_msync, a, 4096, MS_SYNC);
    int e = errno;
    munmap(a, 4096);
    if (r != -1 || e != EXDEV || msync_trapped != 1) return -1;
    msync_trapped = 0;
    return 0;
}

static unsigned long long sysfs_ull(const char *dev, const char *attr) {
    const char *b = strrchr(dev, '/');
    char p[512];
    snprintf(p, sizeof p, "/sys/bus/dax/devices/%s/%s", b ? b + 1 : dev, attr);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
    return v;
}

static const char *find_devdax(char *buf, size_t n) {
    DIR *d = opendir("/sys/bus/dax/devices");
    if (!d) return NULL;
    struct dirent *e;
    const char *found = NULL;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "dax", 3) != 0) continue;
        snprintf(buf, n, "/dev/%s", e->d_name);
        if (dax_is_devdax(buf) == 1) {
            found = buf;
            break;
        }
    }
    closedir(d);
    return found;
}

/* Records: NREC 64-byte records on distinct pages of the first `span` bytes. */
#define NREC 256
static size_t rec_off(size_t i, size_t span) {
    size_t pages = span / 4096;
    return ((i * 7919u) % pages) * 4096 + ((i * 3u) % 64) * 64;
}
static unsigned char rec_val(size_t i, unsigned gen) { return (unsigned char)(0x11 + i * 13 + gen * 101); }

#define MEMCPY_LEN 5000
#define MEMSET_LEN 300

struct layout {
    size_t span, cpy_off, set_off;
    unsigned char cpy[MEMCPY_LEN];
};

/* Number of mismatching records/ranges in [p, p+len). */
static int verify(const unsigned char *p, const struct layout *L, unsigned gen) {
    int bad = 0;
    unsigned char want[64];
    for (size_t i = 0; i < NREC; i++) {
        memset(want, rec_val(i, gen), 64);
        if (memcmp(p + rec_off(i, L->span), want, 64) != 0) bad++;
    }
    if (memcmp(p + L->cpy_off, L->cpy, MEMCPY_LEN) != 0) bad++;
    for (size_t i = 0; i < MEMSET_LEN; i++)
        if (p[L->set_off + i] != (unsigned char)(0xA5 ^ gen)) {
            bad++;
            break;
        }
    return bad;
}

int main(int argc, char **argv) {
    char buf[300];
    const char *dev = argc > 1 ? argv[1] : getenv("DAXVM_DEVDAX");
    if (!dev || !*dev) dev = find_devdax(buf, sizeof buf);
    if (!dev) {
        fprintf(stderr, "test_devdax: no device DAX (/sys/bus/dax/devices is empty; run with --mode devdax)\n");
        CHECK(dev != NULL);
        return check_done("test_devdax");
    }
    unsigned long long ssize = sysfs_ull(dev, "size"), salign = sysfs_ull(dev, "align");
    printf("device %s: sysfs size %llu (%llu MiB), align %llu; write-back %s\n", dev, ssize,
           ssize >> 20, salign, daxpmem_flush_name());
    CHECK(dax_is_devdax(dev) == 1);
    CHECK(dax_is_devdax("/test") == 0);
    if (getenv("DAXVM_PMEM")) CHECK(dax_is_devdax(getenv("DAXVM_PMEM")) == 0); /* block device */
    CHECK_ERR(dax_is_devdax("/dev/does-not-exist"), -1, ENOENT);
    CHECK(ssize > 0);
    size_t align = salign ? (size_t)salign : (size_t)2 << 20;

    int seccomp_ok = trap_msync() == 0;
    printf("seccomp msync trap: %s\n", seccomp_ok ? "installed (every msync syscall is counted)"
                                                  : "NOT available: relying on the stats counter");

    /* ---- the whole device */
    dax_map_t *m = dax_map(dev, 0, 0, 0);
    CHECK(m != NULL);
    if (!m) return check_done("test_devdax");
    size_t len = dax_len(m);
    unsigned char *p = (unsigned char *)dax_addr(m);
    struct dax_stats s = stats(m);
    printf("dax_map(%s, 0): len %zu at %p, pmem=%d, flags %#llx, track %#x, huge-mapped %lld\n", dev,
           len, (void *)p, dax_is_pmem(m), (unsigned long long)s.flags, s.track_mode,
           (long long)s.huge_mapped_bytes);
    CHECK(len == ssize);
    CHECK(len >= 4 * align);
    CHECK(((uintptr_t)p % align) == 0);
    CHECK(dax_is_pmem(m) == 1);
    CHECK((s.flags & DAX_STAT_DEVDAX) != 0);
    CHECK((s.flags & DAX_STAT_PMEM) != 0);
    CHECK((s.flags & DAX_STAT_FORCED) == 0);
    CHECK(s.track_mode == DAX_TRACK_EXPLICIT);
    CHECK(dax_find(p + len / 2) == m);
    CHECK(dax_range_is_pmem(p, len) == 1);
    if (len < 4 * align) return check_done("test_devdax");

    /* ---- writes + marks + sync */
    static struct layout L;
    L.span = len - 2 * align;
    L.cpy_off = len - align - 8192 + 100; /* unaligned head and tail */
    L.set_off = len - MEMSET_LEN - 7;     /* up to 7 bytes before the end of the device */
    for (size_t i = 0; i < MEMCPY_LEN; i++) L.cpy[i] = (unsigned char)(i * 7 + 3);
    uint64_t wb0 = daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0);
    for (size_t i = 0; i < NREC; i++) {
        unsigned char *r = p + rec_off(i, L.span);
        memset(r, rec_val(i, 0), 64);
        CHECK(dax_mark_dirty(m, r, 64) == 0);
    }
    CHECK(dax_memcpy(m, p + L.cpy_off, L.cpy, MEMCPY_LEN) == 0);
    CHECK(dax_memset(m, p + L.set_off, 0xA5, MEMSET_LEN) == 0);
    s = stats(m);
    CHECK(s.dirty_lines >= NREC);
    CHECK(dax_sync(m, NULL, 0) == 0);
    s = stats(m);
    uint64_t wb1 = daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0);
    printf("after dax_sync: dirty %llu, written back %llu lines, syncs %llu, msync calls %llu (stats), %d (trapped)\n",
           (unsigned long long)s.dirty_lines, (unsigned long long)s.lines_written_back,
           (unsigned long long)s.syncs, (unsigned long long)s.msync_calls, (int)msync_trapped);
    CHECK(s.dirty_lines == 0);
    CHECK(s.lines_written_back >= NREC);
    CHECK(s.syncs >= 1);
    CHECK(s.msync_calls == 0);
    CHECK(wb1 - wb0 == s.lines_written_back);
    CHECK(msync_trapped == 0);
    CHECK(verify(p, &L, 0) == 0);
    /* a range sync of one record */
    unsigned char *r0 = p + rec_off(0, L.span);
    r0[1] = rec_val(0, 0);
    CHECK(dax_mark_dirty(m, r0, 64) == 0);
    CHECK(dax_sync(m, r0, 64) == 0);
    s = stats(m);
    CHECK(s.dirty_lines == 0);
    CHECK(s.msync_calls == 0);
    /* a clean sync */
    CHECK(dax_sync(m, NULL, 0) == 0);
    /* ranges outside the device */
    CHECK_ERR(dax_mark_dirty(m, p + len - 32, 64), -1, EINVAL);
    CHECK_ERR(dax_sync(m, p + len, 64), -1, EINVAL);

    /* ---- hole punching: not on device DAX; nothing lost */
    CHECK_ERR(dax_punch_hole(m, p, align), -1, EOPNOTSUPP);
    printf("dax_punch_hole: %s\n", dax_errormsg());
    CHECK_ERR(dax_punch_hole(m, p + 4096, 4096), -1, EOPNOTSUPP);
    CHECK(verify(p, &L, 0) == 0);

    /* ---- lengths */
    if (align > 4096) {
        CHECK_ERR(dax_map(dev, 4096, 0, 0), NULL, EINVAL);
        printf("dax_map(len 4096): %s\n", dax_errormsg());
        CHECK_ERR(dax_map(dev, align + 4096, 0, 0), NULL, EINVAL);
        CHECK_ERR(dax_map(dev, len - 4096, 0, 0), NULL, EINVAL);
    }
    CHECK_ERR(dax_map(dev, len + align, 0, 0), NULL, EINVAL);
    printf("dax_map(len beyond the device): %s\n", dax_errormsg());
    CHECK_ERR(dax_map(dev, 0, DAX_CREATE, 0600), NULL, EINVAL);
    /* a valid partial length maps the start of the same device */
    dax_map_t *m2 = dax_map(dev, align, 0, 0);
    CHECK(m2 != NULL);
    if (m2) {
        unsigned char *p2 = (unsigned char *)dax_addr(m2);
        CHECK(dax_len(m2) == align);
        CHECK(((uintptr_t)p2 % align) == 0);
        CHECK(memcmp(p2, p, align) == 0);
        p2[64] = (unsigned char)(p2[64] + 1);
        CHECK(p[64] == p2[64]); /* the same memory */
        CHECK(dax_mark_dirty(m2, p2 + 64, 1) == 0);
        CHECK(dax_sync(m2, NULL, 0) == 0);
        CHECK(stats(m2).msync_calls == 0);
        CHECK(dax_unmap(m2) == 0);
    }

    /* ---- unmap, remap, read back */
    CHECK(dax_unmap(m) == 0);
    CHECK_ERR(dax_unmap(m), -1, EBADF);
    m = dax_map(dev, 0, 0, 0);
    CHECK(m != NULL);
    if (!m) return check_done("test_devdax");
    p = (unsigned char *)dax_addr(m);
    CHECK(dax_len(m) == len);
    CHECK(verify(p, &L, 0) == 0);
    /* second generation, written through the remapped handle */
    for (size_t i = 0; i < NREC; i++) {
        unsigned char *r = p + rec_off(i, L.span);
        memset(r, rec_val(i, 1), 64);
        CHECK(dax_mark_dirty(m, r, 64) == 0);
    }
    for (size_t i = 0; i < MEMCPY_LEN; i++) L.cpy[i] = (unsigned char)(i * 11 + 5);
    CHECK(dax_memcpy(m, p + L.cpy_off, L.cpy, MEMCPY_LEN) == 0);
    CHECK(dax_memset(m, p + L.set_off, 0xA5 ^ 1, MEMSET_LEN) == 0);
    CHECK(dax_sync(m, NULL, 0) == 0);
    CHECK(stats(m).msync_calls == 0);
    CHECK(dax_unmap(m) == 0);

    /* a plain mmap(2) of the device: an independent read path */
    int fd = open(dev, O_RDWR);
    CHECK(fd >= 0);
    if (fd >= 0) {
        void *q = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        CHECK(q != MAP_FAILED);
        if (q != MAP_FAILED) {
            CHECK(verify((const unsigned char *)q, &L, 1) == 0);
            munmap(q, len);
        }
        /* dax_map_fd at an aligned offset: the same bytes, shifted */
        dax_map_t *mf = dax_map_fd(fd, (off_t)align, 2 * align, 0);
        CHECK(mf != NULL);
        if (mf) {
            unsigned char *pf = (unsigned char *)dax_addr(mf);
            CHECK(dax_len(mf) == 2 * align);
            CHECK(dax_is_pmem(mf) == 1);
            CHECK((stats(mf).flags & DAX_STAT_DEVDAX) != 0);
            for (size_t i = 0; i < NREC; i++) {
                size_t o = rec_off(i, L.span);
                if (o >= align && o + 64 <= 3 * align) CHECK(pf[o - align] == rec_val(i, 1));
            }
            CHECK(dax_unmap(mf) == 0);
        }
        /* dax_map_fd with a length that is not a multiple of the alignment */
        if (align > 4096) CHECK_ERR(dax_map_fd(fd, 0, align + 4096, 0), NULL, EINVAL);
        /* an offset that is a page but not an alignment multiple: must not hand out a
           mapping that would SIGBUS (informational: report what happens) */
        if (align > 4096) {
            errno = 0;
            dax_map_t *mo = dax_map_fd(fd, 4096, align, 0);
            printf("dax_map_fd(offset 4096, len %zu): %s (errno %d %s)\n", align,
                   mo ? "MAPPED (not touched)" : "refused", errno, mo ? "" : dax_errormsg());
            if (mo) dax_unmap(mo);
        }
        close(fd);
    }

    /* ---- other flags on device DAX */
    dax_map_t *mp = dax_map(dev, 0, DAX_POPULATE, 0);
    CHECK(mp != NULL);
    if (mp) {
        CHECK(verify((const unsigned char *)dax_addr(mp), &L, 1) == 0);
        s = stats(mp);
        printf("DAX_POPULATE: huge-mapped %lld of %zu\n", (long long)s.huge_mapped_bytes, len);
        CHECK(dax_unmap(mp) == 0);
    }
    const unsigned modes[] = {DAX_TRACK_KERNEL, DAX_TRACK_AUTO, DAX_TRACK_MPROTECT, DAX_TRACK_UFFD};
    const char *names[] = {"DAX_TRACK_KERNEL", "DAX_TRACK_AUTO", "DAX_TRACK_MPROTECT", "DAX_TRACK_UFFD"};
    for (int i = 0; i < 4; i++) {
        errno = 0;
        dax_map_t *mt = dax_map(dev, 0, modes[i], 0);
        if (!mt) {
            printf("%s: refused, errno %d (%s): %s\n", names[i], errno, strerror(errno), dax_errormsg());
            /* only the two user-space trackers may be unavailable */
            CHECK(i >= 2);
            continue;
        }
        s = stats(mt);
        printf("%s: track_mode %#x\n", names[i], s.track_mode);
        unsigned char *pt = (unsigned char *)dax_addr(mt);
        unsigned char *r = pt + rec_off(7, L.span);
        memset(r, rec_val(7, 1), 64); /* same value: the data stays as verified */
        if (i < 2) CHECK(dax_mark_dirty(mt, r, 64) == 0);
        CHECK(dax_sync(mt, NULL, 0) == 0);
        s = stats(mt);
        CHECK(s.dirty_lines == 0);
        if (modes[i] == DAX_TRACK_MPROTECT) { /* the unmarked store was tracked and synced */
            printf("%s: tracked faults %llu, lines written back %llu\n", names[i],
                   (unsigned long long)s.tracked_faults, (unsigned long long)s.lines_written_back);
            CHECK(s.tracked_faults >= 1);
            CHECK(s.lines_written_back >= 1);
        }
        /* msync on device DAX fails (EINVAL: no fsync) and is never needed */
        CHECK(s.msync_calls == 0);
        CHECK(dax_unmap(mt) == 0);
    }
    printf("msync system calls trapped during the whole test: %d%s\n", (int)msync_trapped,
           seccomp_ok ? "" : " (no trap installed)");
    CHECK(msync_trapped == 0);
    return check_done("test_devdax");
}
