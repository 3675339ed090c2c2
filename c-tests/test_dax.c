/* DAX-specific checks, run inside the fsdax guest (make test-dax):
 *   test_dax DIR EXPECT_PMEM
 * EXPECT_PMEM 1 (a DAX mount): dax_is_pmem() is 1, the mapping is MAP_SYNC, the file has
 * the DAX attribute, dax_sync issues no msync at all and the data is in the file
 * afterwards (read through pread, not the mapping), a 2 MiB-aligned mapping is reported
 * huge-mapped once touched, DAX_TRACK_UFFD is refused and DAX_TRACK_AUTO resolves to a
 * mode that is safe on DAX (the kernel's msync).
 * EXPECT_PMEM 0 (tmpfs, non-DAX ext4): dax_is_pmem() is 0 and a sync with dirty data
 * issues exactly one msync. */
#include <daxpmem.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#include "check.h"

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *dir = argv[1];
    int want = atoi(argv[2]);
    char p[512];
    snprintf(p, sizeof p, "%s/test_dax.dat", dir);
    unlink(p);
    size_t len = 8u << 20;
    dax_map_t *m = dax_map(p, len, DAX_CREATE, 0644);
    CHECK(m != NULL);
    if (!m) return check_done("test_dax");
    struct dax_stats s = stats(m);
    printf("%s: pmem=%d flags=%#llx track=%u\n", dir, dax_is_pmem(m), (unsigned long long)s.flags,
           s.track_mode);
    CHECK(dax_is_pmem(m) == want);
    CHECK(((s.flags & DAX_STAT_MAP_SYNC) != 0) == (want == 1));
    if (want) CHECK((s.flags & DAX_STAT_FILE_DAX) != 0);
    unsigned char *a = (unsigned char *)dax_addr(m);
    CHECK(((uintptr_t)a & ((2u << 20) - 1)) == 0);
    for (size_t i = 0; i < 100; i++) {
        size_t off = (i * 81919u) % (len - 64);
        memset(a + off, (int)(i + 1), 64);
        CHECK(dax_mark_dirty(m, a + off, 64) == 0);
    }
    CHECK(dax_sync(m, NULL, 0) == 0);
    s = stats(m);
    CHECK(s.msync_calls == (want ? 0u : 1u));
    CHECK(s.dirty_lines == 0);
    /* The data is in the file: a separate, non-mmap read path. */
    int fd = open(p, O_RDONLY);
    unsigned char *buf = (unsigned char *)malloc(len);
    CHECK(fd >= 0 && pread(fd, buf, len, 0) == (ssize_t)len);
    CHECK(memcmp(buf, a, len) == 0);
    close(fd);
    free(buf);
    /* Touched everywhere: a 2 MiB-aligned DAX mapping is mapped with PMDs. */
    for (size_t off = 0; off < len; off += 4096) a[off] = a[off];
    s = stats(m);
    printf("%s: huge_mapped_bytes=%lld of %zu\n", dir, (long long)s.huge_mapped_bytes, len);
    if (want) CHECK(s.huge_mapped_bytes != DAX_HUGE_UNKNOWN && s.huge_mapped_bytes > 0);
    CHECK(dax_unmap(m) == 0);
    /* Tracking modes on this filesystem. */
    errno = 0;
    dax_map_t *u = dax_map(p, 0, DAX_TRACK_UFFD, 0);
    if (want) {
        CHECK(u == NULL);
        printf("%s: DAX_TRACK_UFFD refused: %s\n", dir, dax_errormsg());
    } else if (u) {
        dax_unmap(u);
    }
    dax_map_t *au = dax_map(p, 0, DAX_TRACK_AUTO, 0);
    CHECK(au != NULL);
    if (au) {
        s = stats(au);
        printf("%s: DAX_TRACK_AUTO resolved to %#x\n", dir, s.track_mode);
        if (want) CHECK(s.track_mode == DAX_TRACK_KERNEL || s.track_mode == DAX_TRACK_EXPLICIT);
        ((unsigned char *)dax_addr(au))[5] = 7;
        CHECK(dax_sync(au, NULL, 0) == 0);
        dax_unmap(au);
    }
    unlink(p);
    return check_done("test_dax");
}
