/* Built against the installed library by pkg-config and by CMake (make test-packages):
 * maps a file, writes and marks a record, syncs, checks the stats, and prints one line. */
#include <daxpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/dev/shm/daxpmem-consumer";
    dax_map_t *m = dax_map(path, 4 << 20, DAX_CREATE, 0600);
    if (!m) {
        fprintf(stderr, "dax_map %s: %s\n", path, dax_errormsg());
        return 1;
    }
    char *p = dax_addr(m);
    memcpy(p + 4096, "daxpmem consumer record", 24);
    struct dax_stats st = {.size = sizeof st};
    if (dax_mark_dirty(m, p + 4096, 24) != 0 || dax_get_stats(m, &st) != 0 || st.dirty_lines != 1 ||
        dax_sync(m, NULL, 0) != 0 || dax_get_stats(m, &st) != 0 || st.dirty_lines != 0 || st.syncs != 1) {
        fprintf(stderr, "consumer: %s\n", dax_errormsg());
        return 1;
    }
    printf("daxpmem %s: %s, pmem=%d, synced 1 record\n", daxpmem_version(), daxpmem_flush_name(),
           dax_is_pmem(m));
    dax_unmap(m);
    remove(path);
    return 0;
}
