/*
 * bench_pmem.c -- daxpmem vs PMDK libpmem, side by side in one process.
 *
 * Both libraries are linked into this one program (daxpmem exports no pmem_*
 * symbols). For every size the candidates of a group are measured round by round,
 * interleaved (candidate order rotated each round), on the same MAP_SHARED mapping
 * of a file in /dev/shm. A sample is the mean of `reps` operations; the table shows
 * the median over the samples and the median of the per-round ratios
 * libpmem_time / daxpmem_time (> 1: daxpmem is faster).
 *
 * Build: see bench/README.md (or `make -C bench`).
 * Usage: bench_pmem [--quick] [--min SIZE] [--max SIZE] [--samples N] [--investigate]
 *                   [--only-investigate]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <libpmem.h>

#include <daxpmem.h>

#define KiB (1024UL)
#define MiB (1024UL * KiB)
#define GiB (1024UL * MiB)

/* ------------------------------------------------------------------ timing */

static double ns_per_tick;   /* TSC period, calibrated against CLOCK_MONOTONIC */
static uint64_t tick_overhead; /* median cost of an empty tsc_begin/tsc_end pair */

static inline uint64_t tsc_begin(void)
{
	_mm_lfence();
	uint64_t t = __rdtsc();
	_mm_lfence();
	return t;
}

static inline uint64_t tsc_end(void)
{
	unsigned aux;
	uint64_t t = __rdtscp(&aux);
	_mm_lfence();
	return t;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double t[64];
	memcpy(t, v, n * sizeof(*v));
	qsort(t, n, sizeof(*t), cmp_dbl);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static double quantile(const double *v, int n, double q)
{
	double t[64];
	memcpy(t, v, n * sizeof(*v));
	qsort(t, n, sizeof(*t), cmp_dbl);
	double pos = q * (n - 1);
	int i = (int)pos;
	if (i >= n - 1)
		return t[n - 1];
	return t[i] + (pos - i) * (t[i + 1] - t[i]);
}

static void calibrate_tsc(void)
{
	double s0 = now_s();
	uint64_t t0 = __rdtsc();
	while (now_s() - s0 < 0.05)
		;
	double s1 = now_s();
	uint64_t t1 = __rdtsc();
	ns_per_tick = (s1 - s0) * 1e9 / (double)(t1 - t0);

	uint64_t v[1001];
	for (int i = 0; i < 1001; i++) {
		uint64_t a = tsc_begin();
		uint64_t b = tsc_end();
		v[i] = b - a;
	}
	qsort(v, 1001, sizeof(v[0]), cmp_u64);
	tick_overhead = v[500];
}

/* ------------------------------------------------- hand-written reference code */

static int have_avx512f, have_avx2;

static inline void clwb_line(const void *p)
{
	__asm__ volatile("clwb (%0)" ::"r"(p) : "memory");
}

static inline void sfence(void)
{
	__asm__ volatile("sfence" ::: "memory");
}

static void clwb_range(const void *addr, size_t len)
{
	uintptr_t p = (uintptr_t)addr & ~(uintptr_t)63;
	uintptr_t end = (uintptr_t)addr + len;
	for (; p < end; p += 64)
		clwb_line((const void *)p);
}

/* NT fill of a 64-byte-aligned body, 4 lines per iteration. */
__attribute__((target("avx512f"))) static void nt_fill_avx512(char *d, int c, size_t n)
{
	__m512i v = _mm512_set1_epi8((char)c);
	char *e = d + n;
	for (; d + 256 <= e; d += 256) {
		_mm512_stream_si512((void *)(d + 0), v);
		_mm512_stream_si512((void *)(d + 64), v);
		_mm512_stream_si512((void *)(d + 128), v);
		_mm512_stream_si512((void *)(d + 192), v);
	}
	for (; d < e; d += 64)
		_mm512_stream_si512((void *)d, v);
}

/* One 64-byte store per iteration: the loop shape of daxpmem's fill_avx512. */
__attribute__((target("avx512f"))) static void nt_fill_avx512_1x(char *d, int c, size_t n)
{
	__m512i v = _mm512_set1_epi8((char)c);
	for (char *e = d + n; d < e; d += 64)
		_mm512_stream_si512((void *)d, v);
}

__attribute__((target("avx2"))) static void nt_fill_avx2(char *d, int c, size_t n)
{
	__m256i v = _mm256_set1_epi8((char)c);
	char *e = d + n;
	for (; d + 256 <= e; d += 256) {
		for (int i = 0; i < 256; i += 32)
			_mm256_stream_si256((void *)(d + i), v);
	}
	for (; d < e; d += 64) {
		_mm256_stream_si256((void *)d, v);
		_mm256_stream_si256((void *)(d + 32), v);
	}
}

/* AVX2 NT fill with PMDK's WC-buffer workaround: SFENCE after every 768 B (12 lines). */
__attribute__((target("avx2"))) static void nt_fill_avx2_wcb(char *d, int c, size_t n)
{
	__m256i v = _mm256_set1_epi8((char)c);
	char *e = d + n;
	for (; d + 768 <= e; d += 768) {
		for (int i = 0; i < 768; i += 32)
			_mm256_stream_si256((void *)(d + i), v);
		_mm_sfence();
	}
	for (; d < e; d += 64) {
		_mm256_stream_si256((void *)d, v);
		_mm256_stream_si256((void *)(d + 32), v);
	}
}

/* AVX-512 NT fill with an SFENCE every 768 B, to see whether the workaround matters
 * for the 64-byte stores too. */
__attribute__((target("avx512f"))) static void nt_fill_avx512_wcb(char *d, int c, size_t n)
{
	__m512i v = _mm512_set1_epi8((char)c);
	char *e = d + n;
	for (; d + 768 <= e; d += 768) {
		for (int i = 0; i < 768; i += 64)
			_mm512_stream_si512((void *)(d + i), v);
		_mm_sfence();
	}
	for (; d < e; d += 64)
		_mm512_stream_si512((void *)d, v);
}

typedef void (*fill_fn)(char *, int, size_t);

/* memset with NT stores for the aligned body, temporal stores + CLWB for the
 * unaligned head and tail (as daxpmem and libpmem do), then SFENCE. */
static void hand_nt_memset_with(fill_fn body_fn, char *dst, int c, size_t len)
{
	size_t head = (64 - ((uintptr_t)dst & 63)) & 63;
	if (head > len)
		head = len;
	size_t body = (len - head) & ~(size_t)63;
	size_t tail = len - head - body;
	if (head) {
		memset(dst, c, head);
		clwb_range(dst, head);
	}
	if (body)
		body_fn(dst + head, c, body);
	if (tail) {
		memset(dst + head + body, c, tail);
		clwb_range(dst + head + body, tail);
	}
	sfence();
}

static void nt_copy_avx512(char *d, const char *s, size_t n);

/* daxpmem's order (nt.rs fill + pmem.rs wb_temporal): head and tail stored, body
 * streamed, and only then the head and tail lines written back. */
static void hand_nt_memset_late_wb(char *dst, int c, size_t len)
{
	size_t head = (64 - ((uintptr_t)dst & 63)) & 63;
	if (head > len)
		head = len;
	size_t body = (len - head) & ~(size_t)63;
	size_t tail = len - head - body;
	memset(dst, c, head);
	if (body)
		(have_avx512f ? nt_fill_avx512 : nt_fill_avx2)(dst + head, c, body);
	memset(dst + head + body, c, tail);
	if (head)
		clwb_range(dst, head);
	if (tail)
		clwb_range(dst + head + body, tail);
	sfence();
}

/* The same order as hand_nt_memcpy but with the write-back of head and tail late. */
static void hand_nt_memcpy_late_wb(char *dst, const char *src, size_t len)
{
	size_t head = (64 - ((uintptr_t)dst & 63)) & 63;
	if (head > len)
		head = len;
	size_t body = (len - head) & ~(size_t)63;
	size_t tail = len - head - body;
	memcpy(dst, src, head);
	if (body)
		nt_copy_avx512(dst + head, src + head, body);
	memcpy(dst + head + body, src + head + body, tail);
	if (head)
		clwb_range(dst, head);
	if (tail)
		clwb_range(dst + head + body, tail);
	sfence();
}

static void hand_nt_memset(char *dst, int c, size_t len)
{
	hand_nt_memset_with(have_avx512f ? nt_fill_avx512 : nt_fill_avx2, dst, c, len);
}

/* NT copy of a 64-byte-aligned destination body. */
__attribute__((target("avx512f"))) static void nt_copy_avx512(char *d, const char *s, size_t n)
{
	size_t i = 0;
	for (; i + 256 <= n; i += 256) {
		__m512i a = _mm512_loadu_si512((const void *)(s + i));
		__m512i b = _mm512_loadu_si512((const void *)(s + i + 64));
		__m512i c = _mm512_loadu_si512((const void *)(s + i + 128));
		__m512i e = _mm512_loadu_si512((const void *)(s + i + 192));
		_mm512_stream_si512((void *)(d + i), a);
		_mm512_stream_si512((void *)(d + i + 64), b);
		_mm512_stream_si512((void *)(d + i + 128), c);
		_mm512_stream_si512((void *)(d + i + 192), e);
	}
	for (; i < n; i += 64)
		_mm512_stream_si512((void *)(d + i), _mm512_loadu_si512((const void *)(s + i)));
}

/* PMDK's shape: 32 lines (2 KiB) loaded, then 32 NT stores; smaller tails in 4s. */
__attribute__((target("avx512f"))) static void nt_copy_avx512_x32(char *d, const char *s, size_t n)
{
	size_t i = 0;
#define LD(k) __m512i v##k = _mm512_loadu_si512((const void *)(s + i + 64 * k));
#define ST(k) _mm512_stream_si512((void *)(d + i + 64 * k), v##k);
#define X32(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) \
	M(15) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
	for (; i + 2048 <= n; i += 2048) {
		/* 32 named registers: an array would be copied through the stack */
		X32(LD)
		X32(ST)
	}
#undef LD
#undef ST
#undef X32
	if (i < n)
		nt_copy_avx512(d + i, s + i, n - i);
}

static void hand_nt_memcpy(char *dst, const char *src, size_t len)
{
	size_t head = (64 - ((uintptr_t)dst & 63)) & 63;
	if (head > len)
		head = len;
	size_t body = (len - head) & ~(size_t)63;
	size_t tail = len - head - body;
	if (head) {
		memcpy(dst, src, head);
		clwb_range(dst, head);
	}
	if (body)
		nt_copy_avx512(dst + head, src + head, body);
	if (tail) {
		memcpy(dst + head + body, src + head + body, tail);
		clwb_range(dst + head + body, tail);
	}
	sfence();
}

/* Dirty the range with ordinary stores (outside the timed region). Volatile stores so
 * the compiler cannot turn this into a libc memset that might use streaming stores. */
static void dirty_range(char *p, size_t n, uint64_t val)
{
	volatile uint64_t *q = (volatile uint64_t *)p;
	size_t words = n / 8;
	for (size_t i = 0; i < words; i++)
		q[i] = val;
	for (size_t i = words * 8; i < n; i++)
		((volatile char *)p)[i] = (char)val;
}

/* ------------------------------------------------------------- candidates */

typedef void (*op_fn)(char *dst, const char *src, size_t n);

static void op_dax_flush(char *d, const char *s, size_t n) { (void)s; wb_cache_pmem(d, n); wmb_pmem(); }
static void op_lib_flush(char *d, const char *s, size_t n) { (void)s; pmem_flush(d, n); pmem_drain(); }
static void op_hand_flush(char *d, const char *s, size_t n) { (void)s; clwb_range(d, n); sfence(); }
static void op_dax_clear(char *d, const char *s, size_t n) { (void)s; clear_pmem(d, n); wmb_pmem(); }
static void op_lib_clear(char *d, const char *s, size_t n) { (void)s; pmem_memset_persist(d, 0, n); }
static void op_hand_clear(char *d, const char *s, size_t n) { (void)s; hand_nt_memset(d, 0, n); }
static void op_hand_clear512(char *d, const char *s, size_t n) { (void)s; hand_nt_memset_with(nt_fill_avx512, d, 0, n); }
static void op_hand_clear256(char *d, const char *s, size_t n) { (void)s; hand_nt_memset_with(nt_fill_avx2, d, 0, n); }
static void op_hand_clear256wcb(char *d, const char *s, size_t n) { (void)s; hand_nt_memset_with(nt_fill_avx2_wcb, d, 0, n); }
static void op_hand_clear512wcb(char *d, const char *s, size_t n) { (void)s; hand_nt_memset_with(nt_fill_avx512_wcb, d, 0, n); }
static void op_hand_clearmov(char *d, const char *s, size_t n) { (void)s; memset(d, 0, n); clwb_range(d, n); sfence(); }
static void op_dax_copy(char *d, const char *s, size_t n) { memcpy_to_pmem(d, s, n); wmb_pmem(); }
static void op_lib_copy(char *d, const char *s, size_t n) { pmem_memcpy_persist(d, s, n); }
static void op_hand_copy(char *d, const char *s, size_t n) { hand_nt_memcpy(d, s, n); }
static void op_hand_copy4(char *d, const char *s, size_t n) { nt_copy_avx512(d, s, n); sfence(); }
static void op_hand_copy32(char *d, const char *s, size_t n) { nt_copy_avx512_x32(d, s, n); sfence(); }
static void op_hand_clear512_1x(char *d, const char *s, size_t n) { (void)s; hand_nt_memset_with(nt_fill_avx512_1x, d, 0, n); }
static void op_hand_clear_late(char *d, const char *s, size_t n) { (void)s; hand_nt_memset_late_wb(d, 0, n); }
static void op_hand_copy_late(char *d, const char *s, size_t n) { hand_nt_memcpy_late_wb(d, s, n); }
static void op_hand_copymov(char *d, const char *s, size_t n) { memcpy(d, s, n); clwb_range(d, n); sfence(); }

struct cand {
	const char *name;
	op_fn fn;
};

/* ------------------------------------------------------------ measurement */

struct cfg {
	int quick;
	size_t max;
	int samples;
	double sample_s; /* target wall time of one sample */
};

static struct cfg C;
static char *map_base; /* MAP_SHARED mapping of a /dev/shm file */
static size_t map_len;
static char *src_base; /* private source buffer for the copies */

#define MAXC 8
#define MAXS 64

struct result {
	int nc, ns;
	double ns_op[MAXC][MAXS]; /* ns per operation, per candidate, per round */
	double med[MAXC];
	double ratio_med[MAXC], ratio_lo[MAXC], ratio_hi[MAXC]; /* cand[0] time / cand[k] time */
	long reps;
};

#define DIRTY_BATCH (256 * KiB)

/* One sample: mean ns per operation over `reps` operations. */
static double run_sample(op_fn fn, int dirty, char *dst, const char *src, size_t n, long reps, uint64_t seq)
{
	if (!dirty) {
		uint64_t t0 = tsc_begin();
		for (long r = 0; r < reps; r++)
			fn(dst, src, n);
		uint64_t t1 = tsc_end();
		return (double)(t1 - t0) * ns_per_tick / (double)reps;
	}
	/*
	 * Dirty: `batch` adjacent copies of the range (up to DIRTY_BATCH bytes in all, so
	 * they stay cache-resident) are dirtied with ordinary stores, untimed; then one
	 * operation per copy is timed as a whole, so the clock's own cost (~25 ns) does
	 * not swamp the 64 B case. Ranges of 64 KiB and more are timed one by one, minus
	 * the calibrated cost of reading the clock.
	 */
	long batch = n < DIRTY_BATCH ? (long)(DIRTY_BATCH / n) : 1;
	uint64_t sum = 0;
	long done = 0;
	while (done < reps) {
		long b = batch < reps - done ? batch : reps - done;
		dirty_range(dst, n * (size_t)b, 0x0101010101010101ULL * ((seq + done) % 255 + 1));
		_mm_mfence(); /* the dirtying stores leave the store buffer before the clock starts */
		uint64_t t0 = tsc_begin();
		for (long k = 0; k < b; k++)
			fn(dst + (size_t)k * n, src, n);
		uint64_t t1 = tsc_end();
		uint64_t d = t1 - t0;
		sum += d > tick_overhead ? d - tick_overhead : 0;
		done += b;
	}
	return (double)sum * ns_per_tick / (double)reps;
}

/*
 * Measure candidates c[0..nc) at size n, interleaved: round r runs every candidate
 * once, starting at candidate r % nc. Ratios are relative to cand[ref]: for each
 * round, time(cand[k]) / time(cand[ref]) -- so with ref = daxpmem, the libpmem column
 * is libpmem_time / daxpmem_time.
 */
static void measure(struct result *R, const struct cand *c, int nc, int ref, int dirty,
		    size_t n, size_t dst_off)
{
	char *dst = map_base + dst_off;
	const char *src = src_base;
	int ns = C.samples;
	memset(R, 0, sizeof(*R));
	R->nc = nc;
	R->ns = ns;

	/* warm up + calibrate: wall time per op (including the dirtying) */
	double worst = 0;
	for (int k = 0; k < nc; k++) {
		run_sample(c[k].fn, dirty, dst, src, n, 1, 0);
		long probe = 1;
		double el;
		for (;;) {
			double s0 = now_s();
			run_sample(c[k].fn, dirty, dst, src, n, probe, 1);
			el = now_s() - s0;
			if (el > 0.002 || probe >= (1L << 24))
				break;
			probe *= 4;
		}
		double per = el / probe;
		if (per > worst)
			worst = per;
	}
	long reps = (long)(C.sample_s / worst);
	if (reps < 1)
		reps = 1;
	R->reps = reps;
	/* Huge operations (reps == 1): fewer rounds, so that one cell stays near a
	 * second, but never fewer than 7. */
	if (reps == 1 && worst * ns > 1.0) {
		ns = (int)(1.0 / worst);
		if (ns < 7)
			ns = 7;
		if (ns > C.samples)
			ns = C.samples;
		R->ns = ns;
	}

	uint64_t seq = 7;
	for (int r = 0; r < ns; r++) {
		for (int j = 0; j < nc; j++) {
			int k = (r + j) % nc;
			R->ns_op[k][r] = run_sample(c[k].fn, dirty, dst, src, n, reps, seq);
			seq += reps;
		}
	}
	for (int k = 0; k < nc; k++) {
		double rat[MAXS];
		for (int r = 0; r < ns; r++)
			rat[r] = R->ns_op[k][r] / R->ns_op[ref][r];
		R->med[k] = median(R->ns_op[k], ns);
		R->ratio_med[k] = median(rat, ns);
		R->ratio_lo[k] = quantile(rat, ns, 0.25);
		R->ratio_hi[k] = quantile(rat, ns, 0.75);
	}
}

/* ---------------------------------------------------------------- output */

static const char *fmt_size(size_t n)
{
	static char buf[8][32];
	static int i;
	char *b = buf[i++ % 8];
	if (n >= GiB && n % GiB == 0)
		snprintf(b, 32, "%zu GiB", n / GiB);
	else if (n >= MiB && n % MiB == 0)
		snprintf(b, 32, "%zu MiB", n / MiB);
	else if (n >= KiB && n % KiB == 0)
		snprintf(b, 32, "%zu KiB", n / KiB);
	else
		snprintf(b, 32, "%zu B", n);
	return b;
}

static const char *fmt_ns(double ns)
{
	static char buf[16][32];
	static int i;
	char *b = buf[i++ % 16];
	if (ns >= 1e6)
		snprintf(b, 32, "%.2f ms", ns / 1e6);
	else if (ns >= 1e4)
		snprintf(b, 32, "%.1f µs", ns / 1e3);
	else
		snprintf(b, 32, "%.0f ns", ns);
	return b;
}

static const char *fmt_ratio(const struct result *R, int k)
{
	static char buf[16][48];
	static int i;
	char *b = buf[i++ % 16];
	snprintf(b, 48, "**%.2f** (%.2f–%.2f)", R->ratio_med[k], R->ratio_lo[k], R->ratio_hi[k]);
	return b;
}

static double gbps(size_t n, double ns) { return (double)n / ns; }

static void print_header(void)
{
	char model[256] = "?";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, "model name", 10) == 0) {
				char *p = strchr(line, ':');
				if (p) {
					p += 2;
					p[strcspn(p, "\n")] = 0;
					snprintf(model, sizeof model, "%s", p);
				}
				break;
			}
		}
		fclose(f);
	}
	struct utsname u;
	uname(&u);
	char date[64];
	time_t t = time(NULL);
	strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("# bench_pmem: daxpmem %s vs libpmem %s\n\n", daxpmem_version(),
#ifdef LIBPMEM_VERSION
	       LIBPMEM_VERSION
#else
	       "(PMDK)"
#endif
	);
	printf("CPU: %s (%ld CPUs online) | kernel %s | %s | daxpmem flush=%s nt=%s line=%zu B | "
	       "hand NT memset=%s | mode=%s, %d rounds/cell (>= 7 for the largest sizes), ~%.0f ms/sample\n",
	       model, ncpu, u.release, date, daxpmem_flush_name(), daxpmem_nt_name(),
	       daxpmem_cache_line_size(), have_avx512f ? "avx512f" : "avx2",
	       C.quick ? "quick" : "full", C.samples, C.sample_s * 1e3);
	const char *envs[] = {"DAXPMEM_NO_CLWB", "DAXPMEM_NO_CLFLUSHOPT", "DAXPMEM_NO_MOVNT",
			      "DAXPMEM_MOVNT_THRESHOLD", "DAXPMEM_NO_AVX512F", "DAXPMEM_NO_AVX",
			      "PMEM_NO_CLWB", "PMEM_NO_CLFLUSHOPT", "PMEM_NO_MOVNT",
			      "PMEM_MOVNT_THRESHOLD", "PMEM_AVX", "PMEM_AVX512F",
			      "PMEM_WC_WORKAROUND", "PMEM_MOVDIR64B", "PMEM_NO_FLUSH", NULL};
	int any = 0;
	for (int i = 0; envs[i]; i++) {
		const char *v = getenv(envs[i]);
		if (v) {
			printf("%s%s=%s", any ? " " : "env overrides: ", envs[i], v);
			any = 1;
		}
	}
	if (any)
		printf("\n");
	Dl_info di;
	if (dladdr((void *)wb_cache_pmem, &di) && di.dli_fname) {
		struct stat st = {0};
		char mt[64] = "?";
		if (stat(di.dli_fname, &st) == 0)
			strftime(mt, sizeof mt, "%Y-%m-%d %H:%M:%S", localtime(&st.st_mtime));
		printf("libdaxpmem: %s (%lld bytes, modified %s)\n", di.dli_fname,
		       (long long)st.st_size, mt);
	}
	printf("Mapping: MAP_SHARED of a %s file in /dev/shm (tmpfs, DRAM: no real pmem), "
	       "destination 64-byte aligned.\n\n",
	       fmt_size(map_len));
}

/* ------------------------------------------------------------------ main */

static size_t parse_size(const char *s)
{
	char *e;
	double v = strtod(s, &e);
	size_t m = 1;
	switch (*e) {
	case 'k': case 'K': m = KiB; break;
	case 'm': case 'M': m = MiB; break;
	case 'g': case 'G': m = GiB; break;
	case 0: break;
	default: fprintf(stderr, "bad size %s\n", s); exit(2);
	}
	return (size_t)(v * (double)m);
}

static void main_tables(const size_t *sizes, int nsizes)
{
	static const struct cand fl[] = {{"daxpmem", op_dax_flush}, {"libpmem", op_lib_flush}};
	static const struct cand cl[] = {{"daxpmem", op_dax_clear}, {"libpmem", op_lib_clear},
					 {"hand NT", op_hand_clear}};
	static const struct cand cp[] = {{"daxpmem", op_dax_copy}, {"libpmem", op_lib_copy}};
	static struct result rd[16], rc[16], rz[16], rm[16];
	double t0 = now_s();

	for (int i = 0; i < nsizes; i++) {
		size_t n = sizes[i];
		fprintf(stderr, "  measuring %s ...\n", fmt_size(n));
		measure(&rd[i], fl, 2, 0, 1, n, 0);
		measure(&rc[i], fl, 2, 0, 0, n, 0);
		measure(&rz[i], cl, 3, 0, 0, n, 0);
		measure(&rm[i], cp, 2, 0, 0, n, 0);
	}

	printf("## 1. Write back + fence: `wb_cache_pmem`+`wmb_pmem` (dax) vs `pmem_flush`+`pmem_drain` (lib)\n\n");
	printf("Dirty: the range was written with ordinary stores just before (untimed; below 256 KiB, a batch of adjacent ranges is dirtied, then flushed one call each). "
	       "Clean: the same range flushed again and again. Median ns per call; ns/line = per 64-byte line. "
	       "Ratio = lib/dax time, median of the per-round ratios (interquartile range); >1: daxpmem faster.\n\n");
	printf("| size | dirty dax | dirty lib | dax ns/line | lib ns/line | **dirty lib/dax** | clean dax | clean lib | dax ns/line | lib ns/line | **clean lib/dax** |\n");
	printf("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|\n");
	for (int i = 0; i < nsizes; i++) {
		size_t n = sizes[i];
		double lines = (double)((n + 63) / 64);
		printf("| %s | %s | %s | %.1f | %.1f | %s | %s | %s | %.1f | %.1f | %s |\n", fmt_size(n),
		       fmt_ns(rd[i].med[0]), fmt_ns(rd[i].med[1]), rd[i].med[0] / lines,
		       rd[i].med[1] / lines, fmt_ratio(&rd[i], 1), fmt_ns(rc[i].med[0]),
		       fmt_ns(rc[i].med[1]), rc[i].med[0] / lines, rc[i].med[1] / lines,
		       fmt_ratio(&rc[i], 1));
	}

	printf("\n## 2. Zeroing to pmem: `clear_pmem`+`wmb_pmem` (dax) vs `pmem_memset_persist(p,0,n)` (lib) vs hand NT memset+SFENCE (hand)\n\n");
	printf("Median ns per call and GB/s (10^9 B/s). lib/dax and hand/dax: time ratios as above "
	       "(hand/dax < 1: the hand-written loop is faster than daxpmem).\n\n");
	printf("| size | dax | lib | hand | dax GB/s | lib GB/s | hand GB/s | **lib/dax** | **hand/dax** |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
	for (int i = 0; i < nsizes; i++) {
		size_t n = sizes[i];
		struct result *R = &rz[i];
		printf("| %s | %s | %s | %s | %.2f | %.2f | %.2f | %s | %s |\n", fmt_size(n),
		       fmt_ns(R->med[0]), fmt_ns(R->med[1]), fmt_ns(R->med[2]), gbps(n, R->med[0]),
		       gbps(n, R->med[1]), gbps(n, R->med[2]), fmt_ratio(R, 1), fmt_ratio(R, 2));
	}

	printf("\n## 3. Copy to pmem: `memcpy_to_pmem`+`wmb_pmem` (dax) vs `pmem_memcpy_persist` (lib)\n\n");
	printf("Source: a private, pre-faulted buffer (cache-warm for small sizes).\n\n");
	printf("| size | dax | lib | dax GB/s | lib GB/s | **lib/dax** |\n");
	printf("|---:|---:|---:|---:|---:|---|\n");
	for (int i = 0; i < nsizes; i++) {
		size_t n = sizes[i];
		struct result *R = &rm[i];
		printf("| %s | %s | %s | %.2f | %.2f | %s |\n", fmt_size(n), fmt_ns(R->med[0]),
		       fmt_ns(R->med[1]), gbps(n, R->med[0]), gbps(n, R->med[1]), fmt_ratio(R, 1));
	}
	printf("\nMain tables: %.1f s wall.\n\n", now_s() - t0);
}

/* Extra tables for the investigation (--investigate). */
static void investigate(void)
{
	double t0 = now_s();
	static struct result R;

	/* (a) the NT threshold and the 256 B boundary, zeroing and copying */
	static const struct cand cl[] = {{"daxpmem", op_dax_clear},
					 {"libpmem", op_lib_clear},
					 {"hand NT", op_hand_clear},
					 {"hand memset+clwb", op_hand_clearmov}};
	static const struct cand cp[] = {{"daxpmem", op_dax_copy},
					 {"libpmem", op_lib_copy},
					 {"hand NT", op_hand_copy},
					 {"hand memcpy+clwb", op_hand_copymov}};
	size_t small[] = {64, 128, 192, 255, 256, 320, 384, 512, 768, 1024, 2048, 4096, 16384};
	int nsmall = sizeof small / sizeof small[0];
	for (int pass = 0; pass < 2; pass++) {
		const struct cand *c = pass ? cp : cl;
		printf("## I-%c. %s around the NT threshold (ns per call, median; ratio = X/dax time)\n\n",
		       pass ? 'b' : 'a', pass ? "Copy" : "Zeroing");
		printf("| size | dax | lib | hand NT | hand %s+clwb | lib/dax | hand NT/dax | hand temporal/dax |\n",
		       pass ? "memcpy" : "memset");
		printf("|---:|---:|---:|---:|---:|---|---|---|\n");
		for (int i = 0; i < nsmall; i++) {
			if (small[i] > C.max)
				break;
			measure(&R, c, 4, 0, 0, small[i], 0);
			printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", fmt_size(small[i]),
			       fmt_ns(R.med[0]), fmt_ns(R.med[1]), fmt_ns(R.med[2]), fmt_ns(R.med[3]),
			       fmt_ratio(&R, 1), fmt_ratio(&R, 2), fmt_ratio(&R, 3));
		}
		printf("\n");
	}

	/* (b) store width and the WC-buffer SFENCE every 768 B */
	static const struct cand nt[] = {{"daxpmem", op_dax_clear},
					 {"libpmem", op_lib_clear},
					 {"hand avx512", op_hand_clear512},
					 {"hand avx2", op_hand_clear256},
					 {"hand avx2+sfence/768B", op_hand_clear256wcb},
					 {"hand avx512+sfence/768B", op_hand_clear512wcb},
					 {"hand avx512, 1 store/iteration", op_hand_clear512_1x}};
	size_t big[] = {4 * KiB, 64 * KiB, 2 * MiB, 64 * MiB};
	if (have_avx512f) {
		printf("## I-c. Zeroing: store width and PMDK's SFENCE-every-768-B (GB/s, median; ratio = X/dax time)\n\n");
		printf("h512 = hand AVX-512 NT (4 stores/iteration), h512x1 = 1 store/iteration (daxpmem's loop shape), "
		       "h256 = AVX2 NT, +wcb = SFENCE after every 768 B as PMDK's SSE2/AVX paths do.\n\n");
		printf("| size | dax | lib | h512 | h512x1 | h256 | h256+wcb | h512+wcb | lib/dax | h512/dax | h512x1/dax | h256/dax | h256wcb/dax | h512wcb/dax |\n");
		printf("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---|\n");
		for (int i = 0; i < 4; i++) {
			size_t n = big[i];
			if (n > C.max)
				break;
			measure(&R, nt, 7, 0, 0, n, 0);
			printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s |\n",
			       fmt_size(n), gbps(n, R.med[0]), gbps(n, R.med[1]), gbps(n, R.med[2]),
			       gbps(n, R.med[6]), gbps(n, R.med[3]), gbps(n, R.med[4]), gbps(n, R.med[5]),
			       fmt_ratio(&R, 1), fmt_ratio(&R, 2), fmt_ratio(&R, 6), fmt_ratio(&R, 3),
			       fmt_ratio(&R, 4), fmt_ratio(&R, 5));
		}
		printf("\n");
	}

	/* (c) call overhead: the library write-back vs an inlined CLWB loop */
	static const struct cand fl[] = {{"daxpmem", op_dax_flush},
					 {"libpmem", op_lib_flush},
					 {"hand clwb loop", op_hand_flush}};
	size_t fs[] = {64, 256, 4096};
	for (int dirty = 1; dirty >= 0; dirty--) {
		printf("## I-%c. Write back + fence, %s lines: library vs inlined CLWB loop (ns per call)\n\n",
		       dirty ? 'd' : 'e', dirty ? "dirty" : "clean");
		printf("| size | dax | lib | hand | lib/dax | hand/dax |\n|---:|---:|---:|---:|---|---|\n");
		for (int i = 0; i < 3; i++) {
			measure(&R, fl, 3, 0, dirty, fs[i], 0);
			printf("| %s | %s | %s | %s | %s | %s |\n", fmt_size(fs[i]), fmt_ns(R.med[0]),
			       fmt_ns(R.med[1]), fmt_ns(R.med[2]), fmt_ratio(&R, 1), fmt_ratio(&R, 2));
		}
		printf("\n");
	}

	/* (d) misaligned destinations: head and tail written with temporal stores */
	printf("## I-f. Misaligned destination (dst = 64-aligned + off), ns per call; ratio = X/dax time\n\n");
	printf("| op | size | off | dax | lib | hand NT | lib/dax | hand/dax |\n|---|---:|---:|---:|---:|---:|---|---|\n");
	size_t ms[] = {300, 4096, 65536};
	size_t offs[] = {8, 40};
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < 3; i++) {
			for (int j = 0; j < 2; j++) {
				measure(&R, pass ? cp : cl, 3, 0, 0, ms[i], offs[j]);
				printf("| %s | %s | %zu | %s | %s | %s | %s | %s |\n", pass ? "copy" : "zero",
				       fmt_size(ms[i]), offs[j], fmt_ns(R.med[0]), fmt_ns(R.med[1]),
				       fmt_ns(R.med[2]), fmt_ratio(&R, 1), fmt_ratio(&R, 2));
			}
		}
	}

	/* (e) misaligned: when are the head and tail lines written back? */
	static const struct cand lz[] = {{"daxpmem", op_dax_clear},
					 {"libpmem", op_lib_clear},
					 {"hand, head/tail wb early", op_hand_clear},
					 {"hand, head/tail wb late", op_hand_clear_late}};
	static const struct cand lc[] = {{"daxpmem", op_dax_copy},
					 {"libpmem", op_lib_copy},
					 {"hand, head/tail wb early", op_hand_copy},
					 {"hand, head/tail wb late", op_hand_copy_late}};
	printf("\n## I-h. Misaligned NT path: head/tail write-back right after the head store (early: PMDK) or after the body (late: daxpmem)\n\n");
	printf("ns per call, median; ratio = X/dax time.\n\n");
	printf("| op | size | off | dax | lib | early | late | lib/dax | early/dax | late/dax |\n|---|---:|---:|---:|---:|---:|---:|---|---|---|\n");
	size_t hs[] = {256, 300, 1000, 4096};
	size_t ho[] = {8, 40};
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 2; j++) {
				measure(&R, pass ? lc : lz, 4, 0, 0, hs[i], ho[j]);
				printf("| %s | %s | %zu | %s | %s | %s | %s | %s | %s | %s |\n", pass ? "copy" : "zero",
				       fmt_size(hs[i]), ho[j], fmt_ns(R.med[0]), fmt_ns(R.med[1]), fmt_ns(R.med[2]),
				       fmt_ns(R.med[3]), fmt_ratio(&R, 1), fmt_ratio(&R, 2), fmt_ratio(&R, 3));
			}

	/* (f) copy: loads in flight per iteration (daxpmem 4 lines, PMDK 32 lines) */
	static const struct cand cb[] = {{"daxpmem", op_dax_copy},
					 {"libpmem", op_lib_copy},
					 {"hand 4 lines/iter", op_hand_copy4},
					 {"hand 32 lines/iter", op_hand_copy32}};
	size_t cbs[] = {64 * KiB, 2 * MiB, 64 * MiB, 1 * GiB};
	printf("\n## I-g. NT copy: lines loaded before storing (GB/s, median; ratio = X/dax time)\n\n");
	printf("h4 = 4 loads then 4 NT stores per iteration (daxpmem's copy_avx512), h32 = 32 then 32 (PMDK's memmove_movnt_avx512f).\n\n");
	printf("| size | dax | lib | h4 | h32 | lib/dax | h4/dax | h32/dax |\n|---:|---:|---:|---:|---:|---|---|---|\n");
	for (int i = 0; i < 4; i++) {
		size_t n = cbs[i];
		if (n > C.max || n + 4096 > map_len)
			break;
		measure(&R, cb, 4, 0, 0, n, 0);
		printf("| %s | %.2f | %.2f | %.2f | %.2f | %s | %s | %s |\n", fmt_size(n), gbps(n, R.med[0]),
		       gbps(n, R.med[1]), gbps(n, R.med[2]), gbps(n, R.med[3]), fmt_ratio(&R, 1),
		       fmt_ratio(&R, 2), fmt_ratio(&R, 3));
	}
	printf("\nInvestigation tables: %.1f s wall.\n", now_s() - t0);
}

int main(int argc, char **argv)
{
	int inv = 0, only_inv = 0;
	size_t min_size = 0;
	C.max = 1 * GiB;
	C.samples = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			C.quick = 1;
		else if (!strcmp(argv[i], "--max") && i + 1 < argc)
			C.max = parse_size(argv[++i]);
		else if (!strcmp(argv[i], "--min") && i + 1 < argc)
			min_size = parse_size(argv[++i]);
		else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
			C.samples = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--investigate"))
			inv = 1;
		else if (!strcmp(argv[i], "--only-investigate"))
			inv = only_inv = 1;
		else {
			fprintf(stderr,
				"usage: %s [--quick] [--min SIZE] [--max SIZE] [--samples N] "
				"[--investigate] [--only-investigate]\n  SIZE accepts K/M/G suffixes (binary)\n",
				argv[0]);
			return 2;
		}
	}
	if (C.quick && C.max > 64 * MiB)
		C.max = 64 * MiB;
	if (C.samples <= 0)
		C.samples = C.quick ? 11 : 31;
	if (C.samples < 3)
		C.samples = 3;
	if (C.samples > MAXS)
		C.samples = MAXS;
	/* Short samples, many rounds: this VM switches between fast and slow phases on a
	 * millisecond scale, so two candidates measured back to back in one round usually
	 * share a phase and the per-round ratio stays meaningful. */
	C.sample_s = 0.002;

	__builtin_cpu_init();
	have_avx512f = __builtin_cpu_supports("avx512f");
	have_avx2 = __builtin_cpu_supports("avx2");
	if (!have_avx2) {
		fprintf(stderr, "this benchmark needs AVX2 (the hand-written NT memset)\n");
		return 1;
	}
	calibrate_tsc();

	static const size_t all[] = {64, 256, 4 * KiB, 64 * KiB, 2 * MiB, 64 * MiB, 1 * GiB};
	size_t sizes[8];
	int nsizes = 0;
	for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i] <= C.max && all[i] >= min_size)
			sizes[nsizes++] = all[i];
	if (nsizes == 0) {
		fprintf(stderr, "no size left between --min and --max\n");
		return 2;
	}

	map_len = sizes[nsizes - 1];
	if (inv && map_len < 64 * KiB)
		map_len = 64 * KiB;
	if (inv && map_len < 64 * MiB && C.max >= 64 * MiB)
		map_len = 64 * MiB;
	if (map_len < DIRTY_BATCH)
		map_len = DIRTY_BATCH;
	map_len += 4096; /* room for the misaligned runs */
	char path[64];
	snprintf(path, sizeof path, "/dev/shm/bench_pmem.%d", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)map_len) != 0) {
		perror(path);
		return 1;
	}
	map_base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	unlink(path);
	close(fd);
	if (map_base == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	src_base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src_base == MAP_FAILED) {
		perror("mmap src");
		return 1;
	}
	/* fault everything in */
	for (size_t i = 0; i < map_len; i += 4096)
		map_base[i] = 1;
	for (size_t i = 0; i < map_len; i += 8)
		*(uint64_t *)(src_base + i) = i * 0x9E3779B97F4A7C15ULL;

	print_header();
	double t0 = now_s();
	if (!only_inv)
		main_tables(sizes, nsizes);
	if (inv)
		investigate();
	fprintf(stderr, "total %.1f s\n", now_s() - t0);
	munmap(map_base, map_len);
	munmap(src_base, map_len);
	return 0;
}
