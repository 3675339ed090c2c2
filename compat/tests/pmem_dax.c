/* The libpmem drop-in on a real DAX filesystem (run by make test-dax in the guest):
 *   pmem_dax DIR EXPECT_IS_PMEM
 * pmem_map_file creates a file in DIR and reports is_pmem (1 on ext4 -o dax, 0
 * elsewhere); pmem_memcpy_persist / pmem_persist write; after pmem_unmap the data is in
 * the file (pread). Uses only <libpmem.h>. Prints "pmem_dax: N passed, M failed". */
#define _GNU_SOURCE
#include <libpmem.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int pass, fail;
#define T(c) do { if (c) pass++; else { fail++; fprintf(stderr, "%s:%d: %s failed (%s)\n", __FILE__, __LINE__, #c, pmem_errormsg()); } } while (0)

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    char p[512];
    snprintf(p, sizeof p, "%s/pmem_dax.dat", argv[1]);
    unlink(p);
    size_t mapped = 0;
    int is_pmem = -1;
    size_t len = 4u << 20;
    char *a = (char *)pmem_map_file(p, len, PMEM_FILE_CREATE, 0644, &mapped, &is_pmem);
    T(a != NULL);
    if (!a) { printf("pmem_dax: %d passed, %d failed\n", pass, fail); return 1; }
    printf("%s: mapped %zu, is_pmem %d, pmem_is_pmem %d\n", argv[1], mapped, is_pmem, pmem_is_pmem(a, len));
    T(mapped == len);
    T(is_pmem == atoi(argv[2]));
    T(pmem_is_pmem(a, len) == atoi(argv[2]));
    static const char msg[] = "written through the libpmem API on daxpmem";
    pmem_memcpy_persist(a + 100, msg, sizeof msg);
    memset(a + 3 * 4096, 0x5A, 300);
    if (is_pmem) pmem_persist(a + 3 * 4096, 300); else T(pmem_msync(a + 3 * 4096, 300) == 0);
    T(pmem_unmap(a, len) == 0);
    int fd = open(p, O_RDONLY);
    char buf[512];
    T(fd >= 0 && pread(fd, buf, sizeof msg, 100) == (ssize_t)sizeof msg && memcmp(buf, msg, sizeof msg) == 0);
    T(pread(fd, buf, 300, 3 * 4096) == 300 && buf[0] == 0x5A && buf[299] == 0x5A);
    close(fd);
    unlink(p);
    printf("pmem_dax: %d passed, %d failed\n", pass, fail);
    return fail != 0;
}
