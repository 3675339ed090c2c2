/*
 * compat_bench.c -- PMDK's libpmem against daxpmem's libpmem compatibility
 * library, the same libpmem calls on both in one run (make compat-bench).
 *
 *   compat_bench LIBPMEM_SO DAXPMEM_LIBPMEM_SO DIR [--flags-only | --no-flags]
 *
 * Both libraries export the same symbols, so each is loaded with
 * dlopen(RTLD_NOW | RTLD_LOCAL) by path and called through dlsym pointers.
 * The operations are pmem_persist of dirty lines, pmem_memcpy_persist and
 * pmem_memset_persist, at 256 B, 4 KiB, 64 KiB, 2 MiB, 64 MiB and 256 MiB, on
 * a MAP_SHARED mapping of a file in DIR (a tmpfs such as /dev/shm). Rounds
 * interleave the two libraries (alternating which goes first); each cell is
 * the median over ROUNDS rounds of the mean time per call within a round.
 * ratio = libpmem time / daxpmem time (> 1: daxpmem is faster).
 *
 * pmem_persist: before each call every line of the range is dirtied with one
 * ordinary store (untimed); only the pmem_persist call is timed (RDTSCP/LFENCE,
 * TSC calibrated against CLOCK_MONOTONIC).
 *
 * Second table, the flag paths: pmem_memcpy, pmem_memmove and pmem_memset with
 * each of PMEM_F_MEM_TEMPORAL, _NONTEMPORAL, _WB, _WC, _NOFLUSH and _NODRAIN
 * (one flag a row), at 256 B, 4 KiB and 64 KiB. pmem_memcpy copies from the
 * private buffer; pmem_memmove moves an overlapping range backwards inside the
 * mapping (dst = src + 64). A measurement is the mean of a batch of calls on the
 * same destination (as pmem_memcpy_persist above), followed by an untimed
 * pmem_drain of the same library. FLAG_ROUNDS rounds, interleaved (the library
 * that goes first alternates); ratio = libpmem time / daxpmem time as above,
 * but the median of the per-round ratios, with the rounds at >= 0.9, and the
 * ratio of each library's fastest round (this host has 2x phases lasting a few
 * ms, which hit one library's batch at a time: 256 B cells are bimodal, ~190
 * or ~380 ns a call for either library). Verdict ">= 1.0x within noise":
 * median ratio >= 0.95, or the fastest rounds' ratio >= 0.95; "slower": median
 * < 0.9, < 0.9 in most rounds, and the fastest rounds' ratio < 0.95.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define ROUNDS 9
#define NLIB 2
#define NOP 3
#define LINE 64

typedef void (*persist_fn)(const void *, size_t);
typedef void *(*memcpy_fn)(void *, const void *, size_t);
typedef void *(*memset_fn)(void *, int, size_t);
typedef void *(*memmove_flags_fn)(void *, const void *, size_t, unsigned);
typedef void *(*memset_flags_fn)(void *, int, size_t, unsigned);
typedef void (*drain_fn)(void);

/* PMEM_F_MEM_* of libpmem.h (1.x ABI) */
#define F_NODRAIN (1U << 0)
#define F_NONTEMPORAL (1U << 1)
#define F_TEMPORAL (1U << 2)
#define F_WC (1U << 3)
#define F_WB (1U << 4)
#define F_NOFLUSH (1U << 5)
#define FLAG_ROUNDS 15
#define NFOP 3
#define NFLAG 6
#define NFSIZE 3

struct lib {
	const char *path;
	const char *name;
	void *h;
	persist_fn persist;
	memcpy_fn memcpy_persist;
	memset_fn memset_persist;
	memmove_flags_fn memcpy_flags, memmove_flags;
	memset_flags_fn memset_flags;
	drain_fn drain;
};

static const size_t sizes[] = {256, 4096, 65536, 2u << 20, 64u << 20,
	256u << 20};
#define NSIZE (sizeof(sizes) / sizeof(sizes[0]))
static const char *const opnames[NOP] = {"pmem_persist (dirty lines)",
	"pmem_memcpy_persist", "pmem_memset_persist"};

static double tsc_per_ns;

static inline uint64_t
tsc_begin(void)
{
	_mm_lfence();
	uint64_t t = __rdtsc();
	_mm_lfence();
	return t;
}

static inline uint64_t
tsc_end(void)
{
	unsigned aux;
	uint64_t t = __rdtscp(&aux);
	_mm_lfence();
	return t;
}

static double
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void
calibrate(void)
{
	double t0 = now_ns();
	uint64_t c0 = tsc_begin();
	while (now_ns() - t0 < 50e6)
		;
	uint64_t c1 = tsc_end();
	double t1 = now_ns();
	tsc_per_ns = (double)(c1 - c0) / (t1 - t0);
}

static void *
sym(struct lib *l, const char *name)
{
	void *p = dlsym(l->h, name);
	if (p == NULL) {
		fprintf(stderr, "dlsym %s in %s: %s\n", name, l->path, dlerror());
		exit(1);
	}
	return p;
}

static void
load(struct lib *l)
{
	l->h = dlopen(l->path, RTLD_NOW | RTLD_LOCAL);
	if (l->h == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", l->path, dlerror());
		exit(1);
	}
	/* function pointers from dlsym without the object-to-function cast */
	void *p = sym(l, "pmem_persist");
	memcpy(&l->persist, &p, sizeof(p));
	p = sym(l, "pmem_memcpy_persist");
	memcpy(&l->memcpy_persist, &p, sizeof(p));
	p = sym(l, "pmem_memset_persist");
	memcpy(&l->memset_persist, &p, sizeof(p));
	p = sym(l, "pmem_memcpy");
	memcpy(&l->memcpy_flags, &p, sizeof(p));
	p = sym(l, "pmem_memmove");
	memcpy(&l->memmove_flags, &p, sizeof(p));
	p = sym(l, "pmem_memset");
	memcpy(&l->memset_flags, &p, sizeof(p));
	p = sym(l, "pmem_drain");
	memcpy(&l->drain, &p, sizeof(p));
	Dl_info di;
	if (dladdr(sym(l, "pmem_persist"), &di) == 0 || di.dli_fname == NULL) {
		fprintf(stderr, "dladdr failed for %s\n", l->path);
		exit(1);
	}
	char a[4096], b[4096];
	if (realpath(di.dli_fname, a) == NULL || realpath(l->path, b) == NULL ||
			strcmp(a, b) != 0) {
		fprintf(stderr, "pmem_persist of %s resolved to %s\n", l->path,
			di.dli_fname);
		exit(1);
	}
}

/* calls per measurement: about 32 MiB of work, between 1 and 20000 calls */
static unsigned
calls_for(size_t size)
{
	size_t n = (32u << 20) / size;
	if (n < 1)
		n = 1;
	if (n > 20000)
		n = 20000;
	return (unsigned)n;
}

static volatile unsigned char sink;

/* mean ns per call of op on lib at size */
static double
measure(struct lib *l, int op, size_t size, unsigned char *dst,
	unsigned char *src, unsigned round)
{
	unsigned n = calls_for(size);
	uint64_t total = 0;
	switch (op) {
	case 0:
		for (unsigned i = 0; i < n; i++) {
			for (size_t o = 0; o < size; o += LINE)
				dst[o] = (unsigned char)(i + round);
			uint64_t t0 = tsc_begin();
			l->persist(dst, size);
			total += tsc_end() - t0;
		}
		break;
	case 1: {
		uint64_t t0 = tsc_begin();
		for (unsigned i = 0; i < n; i++)
			l->memcpy_persist(dst, src, size);
		total = tsc_end() - t0;
		break;
	}
	case 2: {
		uint64_t t0 = tsc_begin();
		for (unsigned i = 0; i < n; i++)
			l->memset_persist(dst, (int)(i + round) & 0xff, size);
		total = tsc_end() - t0;
		break;
	}
	}
	sink = dst[size - 1];
	return (double)total / tsc_per_ns / n;
}

static const unsigned flagv[NFLAG] = {F_TEMPORAL, F_NONTEMPORAL, F_WB, F_WC,
	F_NOFLUSH, F_NODRAIN};
static const char *const flagnames[NFLAG] = {"PMEM_F_MEM_TEMPORAL",
	"PMEM_F_MEM_NONTEMPORAL", "PMEM_F_MEM_WB", "PMEM_F_MEM_WC",
	"PMEM_F_MEM_NOFLUSH", "PMEM_F_MEM_NODRAIN"};
static const char *const fopnames[NFOP] = {"pmem_memcpy", "pmem_memmove",
	"pmem_memset"};
static const size_t fsizes[NFSIZE] = {256, 4096, 65536};

/* mean ns per call of flag op fop with flags on lib at size */
static double
measure_flags(struct lib *l, int fop, unsigned flags, size_t size,
	unsigned char *dst, unsigned char *src, unsigned round)
{
	unsigned n = calls_for(size);
	uint64_t t0 = tsc_begin();
	switch (fop) {
	case 0:
		for (unsigned i = 0; i < n; i++)
			l->memcpy_flags(dst, src, size, flags);
		break;
	case 1: /* overlapping, backwards: dst = src + 64 */
		for (unsigned i = 0; i < n; i++)
			l->memmove_flags(dst + LINE, dst, size, flags);
		break;
	case 2:
		for (unsigned i = 0; i < n; i++)
			l->memset_flags(dst, (int)(i + round) & 0xff, size,
				flags);
		break;
	}
	uint64_t total = tsc_end() - t0;
	l->drain();
	sink = dst[size - 1];
	return (double)total / tsc_per_ns / n;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void
fmt_time(char *buf, size_t n, double ns)
{
	if (ns < 1e3)
		snprintf(buf, n, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, n, "%.2f µs", ns / 1e3);
	else
		snprintf(buf, n, "%.2f ms", ns / 1e6);
}

static void
fmt_size(char *buf, size_t n, size_t s)
{
	if (s >= (1u << 20))
		snprintf(buf, n, "%zu MiB", s >> 20);
	else if (s >= 1024)
		snprintf(buf, n, "%zu KiB", s >> 10);
	else
		snprintf(buf, n, "%zu B", s);
}

/* the second table: the PMEM_F_MEM_* paths, interleaved, per-round ratios */
static void
flag_paths(struct lib *libs, unsigned char *dst, unsigned char *src)
{
	static double t[NFOP][NFLAG][NFSIZE][NLIB][FLAG_ROUNDS];
	for (int op = 0; op < NFOP; op++) /* warm-up, not recorded */
		for (int f = 0; f < NFLAG; f++)
			for (int s = 0; s < NFSIZE; s++)
				for (int k = 0; k < NLIB; k++)
					(void) measure_flags(&libs[k], op,
						flagv[f], fsizes[s], dst, src, 0);
	for (unsigned r = 0; r < FLAG_ROUNDS; r++)
		for (int s = 0; s < NFSIZE; s++)
			for (int op = 0; op < NFOP; op++)
				for (int f = 0; f < NFLAG; f++)
					for (int j = 0; j < NLIB; j++) {
						int k = (int)((j + r + (unsigned)f)
							% NLIB);
						t[op][f][s][k][r] = measure_flags(
							&libs[k], op, flagv[f],
							fsizes[s], dst, src, r + 1);
					}
	printf("\n### The flag paths: pmem_memcpy / pmem_memmove / pmem_memset "
		"with one PMEM_F_MEM_* flag\n\n");
	printf("%d rounds, interleaved; times: medians of the per-round mean "
		"time per call; ratio = libpmem / daxpmem, the median of the "
		"per-round ratios (> 1: daxpmem faster), and of each library's "
		"fastest round; goal >= 1.0x within noise (median >= 0.95, or "
		"the fastest rounds' ratio >= 0.95: this host has 2x phases "
		"that hit one library's batch at a time); slower: median < 0.9 "
		"in most rounds and the fastest rounds' ratio < 0.95\n\n",
		FLAG_ROUNDS);
	printf("| function | flag | size | libpmem | daxpmem | ratio | "
		"ratio of the fastest rounds | rounds >= 0.9 | verdict |\n");
	printf("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
	for (int op = 0; op < NFOP; op++)
		for (int f = 0; f < NFLAG; f++)
			for (int s = 0; s < NFSIZE; s++) {
				double ratio[FLAG_ROUNDS], med[NLIB];
				int ok = 0;
				for (unsigned r = 0; r < FLAG_ROUNDS; r++) {
					ratio[r] = t[op][f][s][0][r] /
						t[op][f][s][1][r];
					ok += ratio[r] >= 0.9;
				}
				for (int k = 0; k < NLIB; k++) {
					qsort(t[op][f][s][k], FLAG_ROUNDS,
						sizeof(double), cmp_double);
					med[k] = t[op][f][s][k][FLAG_ROUNDS / 2];
				}
				qsort(ratio, FLAG_ROUNDS, sizeof(double),
					cmp_double);
				double mr = ratio[FLAG_ROUNDS / 2];
				/* the fastest round of each library: robust against the
				 * host's 2x phases, which hit one library's batch at a time */
				double best = t[op][f][s][0][0] / t[op][f][s][1][0];
				char a[32], b[32], sz[32];
				fmt_size(sz, sizeof(sz), fsizes[s]);
				fmt_time(a, sizeof(a), med[0]);
				fmt_time(b, sizeof(b), med[1]);
				printf("| %s | %s | %s | %s | %s | %.2f | %.2f | "
					"%d/%d | %s |\n", fopnames[op],
					flagnames[f], sz, a, b, mr, best, ok,
					FLAG_ROUNDS,
					mr >= 0.95 ? "met" :
					best >= 0.95 ? "met (fastest rounds; "
					"the median was hit by a slow phase)" :
					mr < 0.9 && 2 * ok < FLAG_ROUNDS ?
					"**slower**" : "borderline");
			}
}

int
main(int argc, char *argv[])
{
	int main_table = 1, flag_table = 1;
	if (argc == 5 && strcmp(argv[4], "--flags-only") == 0)
		main_table = 0;
	else if (argc == 5 && strcmp(argv[4], "--no-flags") == 0)
		flag_table = 0;
	else if (argc != 4) {
		fprintf(stderr, "usage: %s LIBPMEM_SO DAXPMEM_LIBPMEM_SO DIR "
			"[--flags-only | --no-flags]\n", argv[0]);
		return 2;
	}
	struct lib libs[NLIB] = {
		{.path = argv[1], .name = "libpmem"},
		{.path = argv[2], .name = "daxpmem"},
	};
	for (int i = 0; i < NLIB; i++)
		load(&libs[i]);
	if (memcmp(&libs[0].persist, &libs[1].persist, sizeof(persist_fn)) == 0) {
		fprintf(stderr, "both paths gave the same library\n");
		return 1;
	}

	size_t maxsz = sizes[NSIZE - 1];
	char path[4096];
	snprintf(path, sizeof(path), "%s/compat_bench.%d", argv[3], (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)maxsz) != 0) {
		perror(path);
		return 1;
	}
	unsigned char *dst = mmap(NULL, maxsz, PROT_READ | PROT_WRITE,
		MAP_SHARED | MAP_POPULATE, fd, 0);
	unlink(path);
	close(fd);
	unsigned char *src = mmap(NULL, maxsz, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (dst == MAP_FAILED || src == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(dst, 1, maxsz);
	for (size_t i = 0; i < maxsz; i++)
		src[i] = (unsigned char)(i * 131);
	calibrate();

	static double t[NOP][NSIZE][NLIB][ROUNDS];
	/* warm-up round, not recorded */
	for (int op = 0; op < NOP && main_table; op++)
		for (size_t s = 0; s < NSIZE; s++)
			for (int k = 0; k < NLIB; k++)
				(void) measure(&libs[k], op, sizes[s], dst, src, 0);
	for (unsigned r = 0; r < ROUNDS && main_table; r++)
		for (size_t s = 0; s < NSIZE; s++)
			for (int op = 0; op < NOP; op++)
				for (int j = 0; j < NLIB; j++) {
					int k = (int)((j + r + s) % NLIB);
					t[op][s][k][r] = measure(&libs[k], op,
						sizes[s], dst, src, r + 1);
				}

	/* header */
	char cpu[256] = "unknown";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f != NULL) {
		char line[1024];
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "model name", 10) == 0) {
				char *p = strchr(line, ':');
				if (p != NULL) {
					p += 2;
					p[strcspn(p, "\n")] = '\0';
					snprintf(cpu, sizeof(cpu), "%s", p);
				}
				break;
			}
		fclose(f);
	}
	struct utsname u;
	uname(&u);
	char date[64];
	time_t now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M %Z", localtime(&now));
	const char *(*flush_name)(void) = NULL, *(*nt_name)(void) = NULL;
	void *fp = dlsym(libs[1].h, "daxpmem_flush_name");
	memcpy(&flush_name, &fp, sizeof(fp));
	fp = dlsym(libs[1].h, "daxpmem_nt_name");
	memcpy(&nt_name, &fp, sizeof(fp));

	printf("## libpmem vs daxpmem-libpmem\n\n");
	printf("- CPU: %s (%ld online)\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
	printf("- kernel: %s %s\n", u.sysname, u.release);
	printf("- date: %s\n", date);
	printf("- libpmem: %s\n", libs[0].path);
	printf("- daxpmem-libpmem: %s (core flush: %s, NT path: %s)\n",
		libs[1].path, flush_name ? flush_name() : "?",
		nt_name ? nt_name() : "?");
	printf("- mapping: MAP_SHARED file in %s", argv[3]);
	if (main_table)
		printf("; %d rounds, interleaved; median of per-round mean "
			"time per call", ROUNDS);
	printf("\n\n");
	if (main_table) {
		printf("| operation | size | libpmem | daxpmem | ratio |\n");
		printf("|---|---:|---:|---:|---:|\n");
		for (int op = 0; op < NOP; op++)
			for (size_t s = 0; s < NSIZE; s++) {
				double med[NLIB];
				for (int k = 0; k < NLIB; k++) {
					qsort(t[op][s][k], ROUNDS, sizeof(double),
						cmp_double);
					med[k] = t[op][s][k][ROUNDS / 2];
				}
				char a[32], b[32], sz[32];
				fmt_size(sz, sizeof(sz), sizes[s]);
				fmt_time(a, sizeof(a), med[0]);
				fmt_time(b, sizeof(b), med[1]);
				printf("| %s | %s | %s | %s | %.2f |\n", opnames[op], sz,
					a, b, med[0] / med[1]);
			}
	printf("\nratio = libpmem time / daxpmem time (> 1: daxpmem faster)\n");
	}
	if (flag_table)
		flag_paths(libs, dst, src);
	return 0;
}
