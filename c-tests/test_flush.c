/* The foundation API from C and C++: the chosen instruction (forced through the
 * environment by the runner), and clear_pmem / memcpy_to_pmem / wb_cache_pmem for every
 * head and tail alignment, lengths 0 to a few pages and one >= 64 MiB range, with guard
 * bytes proving nothing outside the range changed.
 *
 * usage: test_flush EXPECTED_FLUSH [EXPECTED_NT]   (e.g. "clwb" "avx512f"; "-" = any) */
#include <daxpmem.h>
#include <stdint.h>
#include <sys/mman.h>
#include "check.h"

#define GUARD 256
static unsigned char pattern(size_t i) { return (unsigned char)(i * 131u + 7u); }

static void one(unsigned char *buf, size_t cap, size_t off, size_t len, int copy,
                const unsigned char *src) {
    memset(buf, 0xEE, cap);
    unsigned char *p = buf + GUARD + off;
    if (copy) {
        void *r = memcpy_to_pmem(p, src, len);
        CHECK(r == p);
    } else {
        clear_pmem(p, len);
    }
    wmb_pmem();
    size_t i;
    for (i = 0; i < GUARD + off; i++)
        if (buf[i] != 0xEE) break;
    CHECK(i == GUARD + off);
    if (copy) {
        CHECK(memcmp(p, src, len) == 0);
    } else {
        for (i = 0; i < len; i++)
            if (p[i] != 0) break;
        CHECK(i == len);
    }
    for (i = GUARD + off + len; i < cap; i++)
        if (buf[i] != 0xEE) break;
    CHECK(i == cap);
}

int main(int argc, char **argv) {
    const char *want_flush = argc > 1 ? argv[1] : "-";
    const char *want_nt = argc > 2 ? argv[2] : "-";
    printf("flush=%s nt=%s line=%zu version=%s\n", daxpmem_flush_name(), daxpmem_nt_name(),
           daxpmem_cache_line_size(), daxpmem_version());
    if (strcmp(want_flush, "-") != 0) CHECK(strcmp(daxpmem_flush_name(), want_flush) == 0);
    if (strcmp(want_nt, "-") != 0) CHECK(strcmp(daxpmem_nt_name(), want_nt) == 0);
    size_t line = daxpmem_cache_line_size();
    CHECK(line >= 32 && (line & (line - 1)) == 0);

    size_t maxlen = 3 * 4096 + 128;
    size_t cap = GUARD + 64 + maxlen + GUARD;
    unsigned char *buf = (unsigned char *)aligned_alloc(4096, (cap + 4095) / 4096 * 4096);
    unsigned char *src = (unsigned char *)malloc(maxlen + 64);
    CHECK(buf && src);
    for (size_t i = 0; i < maxlen + 64; i++) src[i] = pattern(i);
    static const size_t lens[] = {0, 1, 2, 63, 64, 65, 127, 128, 255, 256, 257, 511, 1000,
                                  4095, 4096, 4097, 8192 + 100, 3 * 4096 + 128};
    for (size_t off = 0; off < 64; off++) {
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            /* Tail alignment sweeps too: off + len covers every end offset mod 64. */
            one(buf, cap, off, lens[k], 0, NULL);
            one(buf, cap, off, lens[k], 1, src + (k % 7));
        }
    }
    for (size_t tail = 0; tail < 64; tail++) {
        one(buf, cap, 5, 4096 + tail, 0, NULL);
        one(buf, cap, 17, 4096 + tail, 1, src);
    }

    /* A range >= 64 MiB, in a mapping, with guard pages' worth of sentinels around it. */
    size_t big = (64u << 20) + 4096 + 3;
    size_t bcap = big + 2 * 8192;
    unsigned char *m = (unsigned char *)mmap(NULL, bcap, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    if (m != MAP_FAILED) {
        memset(m, 0xEE, bcap);
        clear_pmem(m + 8192 + 9, big);
        wmb_pmem();
        size_t bad = 0;
        for (size_t i = 0; i < bcap; i++) {
            int inside = i >= 8192 + 9 && i < 8192 + 9 + big;
            if (m[i] != (inside ? 0 : 0xEE)) bad++;
        }
        CHECK(bad == 0);
        unsigned char *s2 = (unsigned char *)malloc(big);
        CHECK(s2 != NULL);
        for (size_t i = 0; i < big; i++) s2[i] = pattern(i * 3);
        memset(m, 0xEE, bcap);
        CHECK(memcpy_to_pmem(m + 8192 + 33, s2, big) == m + 8192 + 33);
        wmb_pmem();
        CHECK(memcmp(m + 8192 + 33, s2, big) == 0);
        bad = 0;
        for (size_t i = 0; i < 8192 + 33; i++) bad += m[i] != 0xEE;
        for (size_t i = 8192 + 33 + big; i < bcap; i++) bad += m[i] != 0xEE;
        CHECK(bad == 0);
        wb_cache_pmem(m, bcap);
        wmb_pmem();
        free(s2);
        munmap(m, bcap);
    }

    /* len 0 is a no-op whatever the pointer; NULL with len > 0 and wrapping ranges are
     * refused with EINVAL and touch nothing. */
    errno = 0;
    wb_cache_pmem(NULL, 0);
    clear_pmem(NULL, 0);
    CHECK(memcpy_to_pmem(NULL, NULL, 0) == NULL);
    CHECK(errno == 0);
    errno = 0;
    wb_cache_pmem(NULL, 64);
    CHECK(errno == EINVAL);
    errno = 0;
    clear_pmem(NULL, 64);
    CHECK(errno == EINVAL);
    errno = 0;
    wb_cache_pmem((const void *)(UINTPTR_MAX - 10), 100);
    CHECK(errno == EINVAL);
    CHECK(strstr(dax_errormsg(), "wraps") != NULL);
    errno = 0;
    clear_pmem((void *)(UINTPTR_MAX - 10), 100);
    CHECK(errno == EINVAL);
    CHECK_ERR(memcpy_to_pmem(buf, NULL, 10), (void *)NULL, EINVAL);
    CHECK_ERR(memcpy_to_pmem(buf, (const void *)(UINTPTR_MAX - 3), 10), (void *)NULL, EINVAL);
    /* libpmem's pmem_flush / pmem_persist in the core: the same rules, messages naming
     * the call. */
    errno = 0;
    daxpmem_flush(NULL, 0);
    daxpmem_persist(NULL, 0);
    daxpmem_flush(buf, 4096);
    daxpmem_persist(buf + 3, 5000);
    CHECK(errno == 0);
    errno = 0;
    daxpmem_flush(NULL, 64);
    CHECK(errno == EINVAL);
    CHECK(strstr(dax_errormsg(), "daxpmem_flush") != NULL);
    errno = 0;
    daxpmem_persist(NULL, 64);
    CHECK(errno == EINVAL);
    CHECK(strstr(dax_errormsg(), "daxpmem_persist") != NULL);
    errno = 0;
    daxpmem_persist((const void *)(UINTPTR_MAX - 10), 100);
    CHECK(errno == EINVAL);
    CHECK(strstr(dax_errormsg(), "wraps") != NULL);
    /* Overlapping copies behave as memmove. */
    for (size_t i = 0; i < 4096; i++) buf[i] = pattern(i);
    memcpy_to_pmem(buf + 100, buf, 3000);
    for (size_t i = 0; i < 3000; i++)
        if (buf[100 + i] != pattern(i)) { CHECK(!"overlap forward"); break; }
    free(buf);
    free(src);
    return check_done("test_flush");
}
