/*
 * which_libpmem.c -- the binary-compatibility probe.  Built against Debian's
 * libpmem (-lpmem, /usr/include/libpmem.h); run it with and without
 * LD_LIBRARY_PATH pointing at the compat library directory.  It makes a libpmem
 * call (so the binding happens) and prints, from /proc/self/maps, the file that
 * provides libpmem.so.1 and whether libdaxpmem.so.0 is loaded:
 *
 *   libpmem=/path/to/libpmem.so.1 daxpmem=1 is_pmem(heap)=0 version=ok
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpmem.h>

int
main(void)
{
	char *buf = malloc(4096);
	if (buf == NULL)
		return 2;
	memset(buf, 0, 4096);
	pmem_persist(buf, 4096);
	int is_pmem = pmem_is_pmem(buf, 4096);
	const char *v = pmem_check_version(PMEM_MAJOR_VERSION,
		PMEM_MINOR_VERSION);

	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return 2;
	char line[4096], libpmem[4096] = "none";
	int daxpmem = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = strchr(line, '/');
		if (p == NULL)
			continue;
		p[strcspn(p, "\n")] = '\0';
		const char *base = strrchr(p, '/') + 1;
		if (strcmp(base, "libpmem.so.1") == 0 ||
				strncmp(base, "libpmem.so.1.", 13) == 0)
			snprintf(libpmem, sizeof(libpmem), "%s", p);
		if (strncmp(base, "libdaxpmem.so.0", 15) == 0)
			daxpmem = 1;
	}
	fclose(f);
	printf("libpmem=%s daxpmem=%d is_pmem(heap)=%d version=%s\n", libpmem,
		daxpmem, is_pmem, v == NULL ? "ok" : v);
	free(buf);
	return 0;
}
