/*
 * pmem_diff.c -- differential test for the libpmem 1.x API.
 *
 * Uses only the public libpmem API (plus libc).  Prints a canonical,
 * deterministic transcript: one line per case, never an address or a message
 * text.  Build the SAME source once against Debian's libpmem and once against
 * daxpmem's compat libpmem.so.1, run both in the same kind of scratch
 * directory (same file system type) and diff the transcripts.
 *
 * usage: pmem_diff SCRATCH_DIR [MODE]
 *   MODE all     (default) every group below except the env modes
 *        map     pmem_map_file matrix only
 *        unmap   pmem_unmap only
 *        mem     memmove/memcpy/memset only
 *        misc    is_pmem, msync, deep_*, check_version, errormsg, has_*
 *        env     is_pmem probes under whatever PMEM_IS_PMEM_FORCE the caller
 *                exported (the value is printed in the header)
 *        latch   setenv(PMEM_IS_PMEM_FORCE=1) only AFTER the first
 *                pmem_is_pmem() call: libpmem reads it once, on first call
 *        setenv  setenv(PMEM_IS_PMEM_FORCE=1) in main() before the first call
 *
 * SCRATCH_DIR must exist; the program creates and removes files under
 * SCRATCH_DIR/pmem_diff.d.  Runs with umask 0.
 */
#define _GNU_SOURCE
#include <libpmem.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char Dir[2048];	/* SCRATCH_DIR/pmem_diff.d */

/* ---- helpers ---------------------------------------------------------- */

static const char *
ename(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ELOOP: return "ELOOP";
	case EOVERFLOW: return "EOVERFLOW";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOSYS: return "ENOSYS";
	default: {
		static char buf[32];
		snprintf(buf, sizeof(buf), "E%d", e);
		return buf;
	}
	}
}

/* FNV-1a 64 */
static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
#define FNV0 0xcbf29ce484222325ULL

static int
errmsg_nonempty(void)
{
	const char *m = pmem_errormsg();
	return m != NULL && m[0] != '\0';
}

static void
path_of(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", Dir, name);
}

static void
rm_rf(const char *p)
{
	struct stat st;
	if (lstat(p, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(p);
		if (d) {
			struct dirent *e;
			while ((e = readdir(d)) != NULL) {
				if (!strcmp(e->d_name, ".") ||
						!strcmp(e->d_name, ".."))
					continue;
				char q[PATH_MAX];
				snprintf(q, sizeof(q), "%s/%s", p, e->d_name);
				rm_rf(q);
			}
			closedir(d);
		}
		rmdir(p);
	} else {
		unlink(p);
	}
}

static int
count_dirents(const char *p)
{
	DIR *d = opendir(p);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void
write_file(const char *p, size_t size, unsigned seed, mode_t mode)
{
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, mode);
	if (fd < 0) {
		perror("setup open");
		exit(2);
	}
	unsigned char buf[4096];
	size_t off = 0;
	while (off < size) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char)((off + i) * 31 + seed);
		if (write(fd, buf, n) != (ssize_t)n) {
			perror("setup write");
			exit(2);
		}
		off += n;
	}
	fchmod(fd, mode);
	close(fd);
}

/* checksum of a file's content (pread(2), not mmap); big: first+last MiB */
static uint64_t
file_sum(const char *p, long long *size)
{
	*size = -1;
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return 0;
	}
	const off_t M = (off_t)1 << 20;
	off_t ranges[2][2] = { { 0, st.st_size }, { 0, 0 } };
	if (st.st_size > 16 * M) {
		ranges[0][1] = M;
		ranges[1][0] = st.st_size - M;
		ranges[1][1] = st.st_size;
	}
	uint64_t h = FNV0;
	static unsigned char buf[65536];
	for (int r = 0; r < 2; r++) {
		off_t off = ranges[r][0];
		while (off < ranges[r][1]) {
			size_t want = (size_t)(ranges[r][1] - off);
			if (want > sizeof(buf))
				want = sizeof(buf);
			ssize_t n = pread(fd, buf, want, off);
			if (n <= 0)
				break;
			h = fnv(h, buf, (size_t)n);
			off += n;
		}
	}
	close(fd);
	*size = (long long)st.st_size;
	return h;
}

/*
 * stat the file backing the mapping that starts at addr, through
 * /proc/self/map_files (works for unlinked O_TMPFILE/mkstemp files too).
 */
static int
stat_mapping(void *addr, struct stat *st)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	char line[1024];
	int ret = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		if (lo == (unsigned long)addr) {
			char p[128];
			snprintf(p, sizeof(p), "/proc/self/map_files/%lx-%lx",
				lo, hi);
			ret = stat(p, st);
			break;
		}
	}
	fclose(f);
	return ret;
}

/* checksum of a mapping; only the first and last MiB of a big one */
static uint64_t
sum_map(const void *a, size_t len)
{
	const size_t M = (size_t)1 << 20;
	if (len <= 16 * M)
		return fnv(FNV0, a, len);
	uint64_t h = fnv(FNV0, a, M);
	return fnv(h, (const char *)a + len - M, M);
}

/* ---- pmem_map_file matrix ------------------------------------------- */

enum kind { K_MISSING, K_EXIST, K_EMPTY, K_SMALL, K_DIR, K_NOPARENT, K_MAX };
static const char *Kname[K_MAX] = {
	"missing", "exist8k", "empty", "exist100", "dir", "noparent"
};

#define EXIST_MODE 0640

/* prepares the target; returns its path in buf */
static void
prep(enum kind k, char *buf)
{
	char t[PATH_MAX];
	path_of(t, "t");
	rm_rf(t);
	switch (k) {
	case K_MISSING:
		break;
	case K_EXIST:
		write_file(t, 8192, 7, EXIST_MODE);
		break;
	case K_EMPTY:
		write_file(t, 0, 0, EXIST_MODE);
		break;
	case K_SMALL:
		write_file(t, 100, 3, EXIST_MODE);
		break;
	case K_DIR:
		mkdir(t, 0750);
		break;
	case K_NOPARENT:
		path_of(t, "nodir/t");
		break;
	default:
		break;
	}
	strcpy(buf, t);
}

static void
flagstr(int flags, char *buf)
{
	if (flags & ~0xf) {
		sprintf(buf, "0x%x", (unsigned)flags);
		return;
	}
	buf[0] = '\0';
	if (flags & PMEM_FILE_CREATE) strcat(buf, "C");
	if (flags & PMEM_FILE_EXCL) strcat(buf, "E");
	if (flags & PMEM_FILE_SPARSE) strcat(buf, "S");
	if (flags & PMEM_FILE_TMPFILE) strcat(buf, "T");
	if (!buf[0]) strcat(buf, "0");
}

#define SENT_LEN ((size_t)0x5a5a5a5a)
#define SENT_PMEM 77

/*
 * One pmem_map_file case.  outs: bit0 pass &mapped_len, bit1 pass &is_pmem.
 */
static void
map_case(const char *tag, enum kind k, size_t len, int flags, mode_t mode,
	int outs)
{
	char p[PATH_MAX], fl[32];
	prep(k, p);
	flagstr(flags, fl);
	int ents0 = count_dirents(Dir);

	size_t mlen = SENT_LEN;
	int ispm = SENT_PMEM;
	errno = 0;
	void *a = pmem_map_file(p, len, flags, mode,
		(outs & 1) ? &mlen : NULL, (outs & 2) ? &ispm : NULL);
	int e = errno;

	printf("map %s target=%s len=%zu flags=%s mode=%04o outs=%c%c ",
		tag, Kname[k], len, fl, (unsigned)mode,
		(outs & 1) ? 'L' : '-', (outs & 2) ? 'P' : '-');
	if (a == NULL) {
		printf("ret=NULL errno=%s msg=%d", ename(e), errmsg_nonempty());
	} else {
		printf("ret=ok");
	}
	if (outs & 1) {
		if (mlen == SENT_LEN)
			printf(" mapped_len=untouched");
		else
			printf(" mapped_len=%zu", mlen);
	}
	if (outs & 2) {
		if (ispm == SENT_PMEM)
			printf(" is_pmem=untouched");
		else
			printf(" is_pmem=%d", ispm);
	}
	if (a != NULL) {
		struct stat st;
		if (stat_mapping(a, &st) == 0)
			printf(" backing_mode=%04o backing_size=%lld nlink=%lu",
				(unsigned)(st.st_mode & 07777),
				(long long)st.st_size,
				(unsigned long)st.st_nlink);
		else
			printf(" backing=?");
		/* the size pmem_map_file reported (or the file size) */
		size_t ml = (outs & 1) ? mlen : (size_t)st.st_size;
		printf(" map_sum=%016" PRIx64, sum_map(a, ml));
		/* write through the mapping; it must reach the file */
		((volatile char *)a)[0] = 'X';
		((volatile char *)a)[ml - 1] = 'Y';
		pmem_persist(a, 1);
		pmem_persist((char *)a + ml - 1, 1);
		errno = 0;
		int r1 = pmem_msync(a, ml);
		int e1 = errno;
		errno = 0;
		int r2 = pmem_unmap(a, ml);
		int e2 = errno;
		printf(" msync=%d/%s unmap=%d/%s", r1, r1 ? ename(e1) : "-",
			r2, r2 ? ename(e2) : "-");
	}
	/* what is left on disk */
	struct stat st;
	if (lstat(p, &st) != 0) {
		printf(" after=absent");
	} else if (S_ISDIR(st.st_mode)) {
		printf(" after=dir entries=%d", count_dirents(p));
	} else {
		long long sz;
		uint64_t h = file_sum(p, &sz);
		printf(" after=file size=%lld mode=%04o sum=%016" PRIx64, sz,
			(unsigned)(st.st_mode & 07777), h);
	}
	printf(" dirents_delta=%d\n", count_dirents(Dir) - ents0);
	fflush(stdout);
}

/* pmem_map_file(NULL, ...) in a child: it may crash (libpmem has no checks) */
static void
map_null_path(int flags, size_t len)
{
	char fl[32];
	flagstr(flags, fl);
	fflush(stdout);
	int pfd[2];
	if (pipe(pfd) != 0)
		exit(2);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		size_t ml;
		int ip;
		errno = 0;
		void *a = pmem_map_file(NULL, len, flags, 0600, &ml, &ip);
		int e = errno;
		char buf[128];
		int n;
		if (a == NULL)
			n = snprintf(buf, sizeof(buf), "ret=NULL errno=%s msg=%d",
				ename(e), errmsg_nonempty());
		else
			n = snprintf(buf, sizeof(buf), "ret=ok");
		if (write(pfd[1], buf, (size_t)n) != n)
			_exit(3);
		_exit(0);
	}
	close(pfd[1]);
	char buf[128] = "";
	ssize_t n = read(pfd[0], buf, sizeof(buf) - 1);
	if (n > 0)
		buf[n] = '\0';
	close(pfd[0]);
	int status;
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		printf("map null-path len=%zu flags=%s signal=%d\n", len, fl,
			WTERMSIG(status));
	else
		printf("map null-path len=%zu flags=%s %s\n", len, fl, buf);
}

static void
group_map(void)
{
	static const size_t lens[] = { 0, 4096, 1000 };
	/* full matrix: every target x every combination of the 4 flags x len */
	for (int k = 0; k < K_MAX; k++)
		for (int f = 0; f < 16; f++)
			for (unsigned l = 0; l < sizeof(lens) / sizeof(lens[0]);
					l++)
				map_case("matrix", (enum kind)k, lens[l], f,
					0644, 3);

	/* invalid flags (checked before anything else) */
	static const int bad[] = { 0x10, 0x20, 0x100, 0x11, 0x1f,
		INT_MIN, -1 };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		map_case("badflags", K_MISSING, 4096, bad[i], 0644, 3);
		map_case("badflags", K_EXIST, 0, bad[i], 0644, 3);
	}

	/* out-parameters: NULL combinations */
	for (int outs = 0; outs < 4; outs++) {
		map_case("outs", K_EXIST, 0, 0, 0644, outs);
		map_case("outs", K_MISSING, 8192, PMEM_FILE_CREATE, 0644, outs);
		map_case("outs", K_MISSING, 0, 0, 0644, outs);
	}

	/* creation modes with umask 0 */
	static const mode_t modes[] = { 0, 0400, 0600, 0644, 0666, 0755,
		0777, 01777, 02755, 04755, 07777, 0100644 };
	for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		map_case("mode", K_MISSING, 4096, PMEM_FILE_CREATE, modes[i], 3);
		map_case("mode", K_MISSING, 4096,
			PMEM_FILE_CREATE | PMEM_FILE_EXCL | PMEM_FILE_SPARSE,
			modes[i], 3);
		map_case("mode", K_EXIST, 4096, PMEM_FILE_CREATE, modes[i], 3);
		map_case("mode", K_DIR, 4096,
			PMEM_FILE_CREATE | PMEM_FILE_TMPFILE, modes[i], 3);
	}

	/* lengths: odd, large sparse, > OFF_MAX, ftruncate failure */
	static const size_t biglens[] = {
		1, 63, 4095, 4097, (size_t)2 << 20, ((size_t)2 << 20) + 1,
		(size_t)1 << 30,
		((size_t)1 << 62),
		((size_t)1 << 63), SIZE_MAX, SIZE_MAX - 4095
	};
	for (unsigned i = 0; i < sizeof(biglens) / sizeof(biglens[0]); i++) {
		size_t l = biglens[i];
		int sparse_ok = l >= ((size_t)1 << 30);
		map_case("len", K_MISSING, l, PMEM_FILE_CREATE |
			PMEM_FILE_SPARSE, 0600, 3);
		map_case("len", K_MISSING, l, PMEM_FILE_CREATE |
			PMEM_FILE_EXCL | PMEM_FILE_SPARSE, 0600, 3);
		if (!sparse_ok || l > ((size_t)1 << 40)) {
			/*
			 * Non-sparse: only small sizes, or sizes so large
			 * that ftruncate/posix_fallocate fail up front
			 * (never anything that would really fill a disk).
			 */
			map_case("len", K_MISSING, l, PMEM_FILE_CREATE, 0600, 3);
			map_case("len", K_MISSING, l, PMEM_FILE_CREATE |
				PMEM_FILE_EXCL, 0600, 3);
			map_case("len", K_EXIST, l, PMEM_FILE_CREATE |
				PMEM_FILE_EXCL, 0600, 3);
		}
		map_case("len", K_EXIST, l, PMEM_FILE_CREATE | PMEM_FILE_SPARSE,
			0600, 3);
		map_case("len", K_DIR, l, PMEM_FILE_CREATE | PMEM_FILE_TMPFILE
			| PMEM_FILE_SPARSE, 0600, 3);
	}

	/* odd paths */
	{
		size_t ml = SENT_LEN;
		int ip = SENT_PMEM;
		errno = 0;
		void *a = pmem_map_file("", 0, 0, 0, &ml, &ip);
		int e = errno;
		printf("map empty-path ret=%s errno=%s msg=%d\n",
			a ? "ok" : "NULL", a ? "-" : ename(e),
			errmsg_nonempty());
		if (a)
			pmem_unmap(a, ml);
		errno = 0;
		a = pmem_map_file("", 4096, PMEM_FILE_CREATE, 0600, &ml, &ip);
		e = errno;
		printf("map empty-path-create ret=%s errno=%s msg=%d\n",
			a ? "ok" : "NULL", a ? "-" : ename(e),
			errmsg_nonempty());
		if (a)
			pmem_unmap(a, ml);
		errno = 0;
		a = pmem_map_file("/dev/null", 0, 0, 0, &ml, &ip);
		e = errno;
		printf("map dev-null ret=%s errno=%s msg=%d\n",
			a ? "ok" : "NULL", a ? "-" : ename(e),
			errmsg_nonempty());
		if (a)
			pmem_unmap(a, ml);
		char lp[PATH_MAX];
		path_of(lp, "t");
		char name[PATH_MAX + 64];
		memset(name, 'n', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		errno = 0;
		a = pmem_map_file(name, 4096, PMEM_FILE_CREATE, 0600, &ml, &ip);
		e = errno;
		printf("map long-path ret=%s errno=%s msg=%d\n",
			a ? "ok" : "NULL", a ? "-" : ename(e),
			errmsg_nonempty());
		/* a symlink to a regular file, and a dangling one */
		prep(K_EXIST, lp);
		char sl[PATH_MAX];
		path_of(sl, "link");
		unlink(sl);
		if (symlink("t", sl) != 0)
			exit(2);
		errno = 0;
		a = pmem_map_file(sl, 0, 0, 0, &ml, &ip);
		e = errno;
		printf("map symlink ret=%s errno=%s mapped_len=%zu\n",
			a ? "ok" : "NULL", a ? "-" : ename(e), a ? ml : 0);
		if (a)
			pmem_unmap(a, ml);
		unlink(lp);
		errno = 0;
		a = pmem_map_file(sl, 4096, PMEM_FILE_CREATE | PMEM_FILE_EXCL,
			0600, &ml, &ip);
		e = errno;
		printf("map dangling-symlink-excl ret=%s errno=%s\n",
			a ? "ok" : "NULL", a ? "-" : ename(e));
		if (a)
			pmem_unmap(a, ml);
		errno = 0;
		a = pmem_map_file(sl, 4096, PMEM_FILE_CREATE, 0600, &ml, &ip);
		e = errno;
		struct stat st;
		printf("map dangling-symlink-create ret=%s errno=%s target=%s\n",
			a ? "ok" : "NULL", a ? "-" : ename(e),
			stat(lp, &st) == 0 ? "created" : "absent");
		if (a)
			pmem_unmap(a, ml);
		unlink(sl);
		unlink(lp);
	}
	map_null_path(0, 0);
	map_null_path(PMEM_FILE_CREATE, 4096);
	map_null_path(PMEM_FILE_CREATE | PMEM_FILE_TMPFILE, 4096);
	map_null_path(0x10, 0);
	map_null_path(0, 4096);

	/*
	 * Which check wins: libpmem 1.12 looks at the path (access/stat,
	 * Device DAX test) before it validates flags and len.
	 */
	{
		char longp[PATH_MAX + 64], notdir[PATH_MAX];
		memset(longp, 'n', sizeof(longp) - 1);
		longp[sizeof(longp) - 1] = '\0';
		char f[PATH_MAX];
		prep(K_SMALL, f);
		snprintf(notdir, sizeof(notdir), "%.4000s/x", f);
		struct { const char *n; const char *p; size_t l; int fl; } c[] = {
			{ "long-path-badflags", longp, 0, 0x10 },
			{ "long-path-len-noCREATE", longp, 4096, 0 },
			{ "notdir-path-len-noCREATE", notdir, 4096, 0 },
			{ "notdir-path-badflags", notdir, 0, 0x10 },
			{ "notdir-path-T", notdir, 0, PMEM_FILE_TMPFILE },
			{ "notdir-path-C", notdir, 4096, PMEM_FILE_CREATE },
			{ "dev-null-CE", "/dev/null", 4096,
				PMEM_FILE_CREATE | PMEM_FILE_EXCL },
			{ "dev-null-C", "/dev/null", 4096, PMEM_FILE_CREATE },
			{ "dev-null-badflags", "/dev/null", 0, 0x10 },
			{ "dev-zero", "/dev/zero", 0, 0 },
			{ "proc-version", "/proc/version", 0, 0 },
		};
		for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
			size_t ml = SENT_LEN;
			int ip = SENT_PMEM;
			errno = 0;
			void *a = pmem_map_file(c[i].p, c[i].l, c[i].fl, 0600,
				&ml, &ip);
			int e = errno;
			printf("map %s ret=%s errno=%s\n", c[i].n,
				a ? "ok" : "NULL", a ? "-" : ename(e));
			if (a)
				pmem_unmap(a, ml);
		}
		unlink(f);
	}

	/* two mappings of one file are independent and share content */
	{
		char p[PATH_MAX];
		prep(K_EXIST, p);
		size_t l1, l2;
		int i1, i2;
		char *a = pmem_map_file(p, 0, 0, 0, &l1, &i1);
		char *b = pmem_map_file(p, 0, 0, 0, &l2, &i2);
		if (a && b) {
			pmem_memset_persist(a + 100, 0x42, 10);
			int shared = b[105] == 0x42;
			int r1 = pmem_unmap(a, l1);
			int still = b[105] == 0x42;
			int r2 = pmem_unmap(b, l2);
			printf("map twice len=%zu/%zu shared=%d unmap1=%d "
				"second_alive=%d unmap2=%d\n", l1, l2, shared,
				r1, still, r2);
		} else {
			printf("map twice failed\n");
		}
	}
}

/* ---- pmem_unmap ----------------------------------------------------- */

static void
unmap_line(const char *tag, int r, int e)
{
	printf("unmap %s ret=%d errno=%s\n", tag, r, r ? ename(e) : "-");
}

#define UNMAP(tag, a, l) do { errno = 0; int r_ = pmem_unmap(a, l); \
	unmap_line(tag, r_, errno); } while (0)

static void
group_unmap(void)
{
	char p[PATH_MAX];
	size_t ml;
	int ip;
	path_of(p, "u");
	unlink(p);
	char *a = pmem_map_file(p, 4 * 4096, PMEM_FILE_CREATE, 0600, &ml,
		&ip);
	if (!a) {
		printf("unmap setup failed\n");
		return;
	}
	UNMAP("len0", a, 0);
	UNMAP("misaligned", a + 1, 4096);
	UNMAP("huge", a, SIZE_MAX);
	UNMAP("partial-first-page", a, 4096);
	printf("unmap after-partial is_pmem_rest=%d\n",
		pmem_is_pmem(a + 4096, 3 * 4096));
	UNMAP("partial-unaligned-len", a + 4096, 100);
	UNMAP("rest", a + 2 * 4096, 2 * 4096);
	UNMAP("again", a, ml);
	UNMAP("null-page", NULL, 4096);
	UNMAP("null-0", NULL, 0);

	/* a plain mmap (not from pmem_map_file) */
	void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	UNMAP("anon-mmap", m, 8192);

	/* unaligned mapped_len from a 100-byte file */
	unlink(p);
	a = pmem_map_file(p, 100, PMEM_FILE_CREATE, 0600, &ml, &ip);
	if (a) {
		printf("unmap small mapped_len=%zu\n", ml);
		UNMAP("small", a, ml);
	}
	/* unmap with the page-rounded length */
	a = pmem_map_file(p, 0, 0, 0, &ml, &ip);
	if (a)
		UNMAP("small-rounded", a, 4096);
	unlink(p);
	fflush(stdout);
}

/* ---- memmove / memcpy / memset --------------------------------------- */

enum mfn { F_MOVE_P, F_MOVE_N, F_MOVE_F, F_CPY_P, F_CPY_N, F_CPY_F,
	F_SET_P, F_SET_N, F_SET_F };
static const char *Fname[] = {
	"memmove_persist", "memmove_nodrain", "memmove",
	"memcpy_persist", "memcpy_nodrain", "memcpy",
	"memset_persist", "memset_nodrain", "memset",
};

static const size_t Lens[] = { 0, 1, 63, 64, 65, 255, 256, 257, 4095, 4096,
	4097, 65536 + 13 };
#define NLENS (sizeof(Lens) / sizeof(Lens[0]))

static const unsigned Flags[] = {
	0,
	PMEM_F_MEM_NODRAIN,
	PMEM_F_MEM_NONTEMPORAL,
	PMEM_F_MEM_TEMPORAL,
	PMEM_F_MEM_WC,
	PMEM_F_MEM_WB,
	PMEM_F_MEM_NOFLUSH,
	PMEM_F_MEM_NONTEMPORAL | PMEM_F_MEM_NODRAIN,
	PMEM_F_MEM_TEMPORAL | PMEM_F_MEM_NOFLUSH,
	PMEM_F_MEM_VALID_FLAGS,
	0x40,
	0xffffffffu,
};
#define NFLAGS (sizeof(Flags) / sizeof(Flags[0]))

#define GUARD 64
#define AREA (4u << 20)		/* mapped work area */
#define DST_OFF (1u << 20)	/* dst base inside the area (64 KiB aligned) */
#define SRC_OFF (3u << 20)	/* separate source base */

static unsigned char *Area;
static unsigned char *Model;	/* malloc'd shadow of Area */

static void
fill(unsigned char *p, size_t lo, size_t hi, unsigned seed)
{
	for (size_t i = lo; i < hi; i++)
		p[i] = (unsigned char)(i * 131 + seed * 7 + (i >> 8));
}

/*
 * One group: fn x flags x overlap-mode over every dst alignment 0..63 and
 * every length.  ovl: 0 = separate source; otherwise an overlap delta code.
 */
static void
mem_group(enum mfn fn, unsigned flags, int ovl)
{
	uint64_t h = FNV0;
	unsigned cases = 0, bad = 0, badret = 0, baderrno = 0;

	for (unsigned al = 0; al < 64; al++) {
		for (unsigned li = 0; li < NLENS; li++) {
			size_t len = Lens[li];
			size_t dst = DST_OFF + al;
			size_t src;
			ptrdiff_t delta = 0;
			if (ovl == 0) {
				src = SRC_OFF + ((al * 5 + 3) & 63);
			} else {
				switch (ovl) {
				case 1: delta = -1; break;
				case 2: delta = 1; break;
				case 3: delta = -65; break;
				case 4: delta = 65; break;
				case 5: delta = (ptrdiff_t)(len / 2); break;
				case 6: delta = -(ptrdiff_t)(len / 2); break;
				case 7: delta = 0; break;
				}
				src = (size_t)((ptrdiff_t)dst + delta);
			}
			/* region that may legitimately change or must not */
			size_t lo = dst - GUARD, hi = dst + len + GUARD;
			if (ovl) {
				if (src < lo)
					lo = src - GUARD;
				if (src + len + GUARD > hi)
					hi = src + len + GUARD;
			}
			unsigned seed = al * 16 + li;
			fill(Area, lo, hi, seed);
			fill(Model, lo, hi, seed);
			if (ovl == 0) {
				fill(Area, src, src + len, seed + 99);
				fill(Model, src, src + len, seed + 99);
			}
			int c = (int)(0x3c00 | ((al * 37 + li) & 0xff));

			errno = 4242;
			void *r = NULL;
			unsigned char *d = Area + dst, *s = Area + src;
			switch (fn) {
			case F_MOVE_P: r = pmem_memmove_persist(d, s, len); break;
			case F_MOVE_N: r = pmem_memmove_nodrain(d, s, len); break;
			case F_MOVE_F: r = pmem_memmove(d, s, len, flags); break;
			case F_CPY_P: r = pmem_memcpy_persist(d, s, len); break;
			case F_CPY_N: r = pmem_memcpy_nodrain(d, s, len); break;
			case F_CPY_F: r = pmem_memcpy(d, s, len, flags); break;
			case F_SET_P: r = pmem_memset_persist(d, c, len); break;
			case F_SET_N: r = pmem_memset_nodrain(d, c, len); break;
			case F_SET_F: r = pmem_memset(d, c, len, flags); break;
			}
			if (errno != 4242)
				baderrno++;
			if (fn == F_MOVE_N || fn == F_CPY_N || fn == F_SET_N ||
					((fn == F_MOVE_F || fn == F_CPY_F ||
					fn == F_SET_F) &&
					(flags & (PMEM_F_MEM_NODRAIN |
					PMEM_F_MEM_NOFLUSH))))
				pmem_drain();

			if (fn >= F_SET_P)
				memset(Model + dst, c, len);
			else
				memmove(Model + dst, Model + src, len);

			cases++;
			if (r != d)
				badret++;
			if (memcmp(Area + lo, Model + lo, hi - lo) != 0)
				bad++;
			h = fnv(h, Area + lo, hi - lo);
		}
	}
	printf("mem %s flags=0x%x ovl=%d cases=%u bad_content=%u bad_ret=%u "
		"errno_changed=%u sum=%016" PRIx64 "\n", Fname[fn], flags, ovl,
		cases, bad, badret, baderrno, h);
	fflush(stdout);
}

static void
group_mem(void)
{
	char p[PATH_MAX];
	size_t ml;
	int ip;
	path_of(p, "mem");
	unlink(p);
	Area = pmem_map_file(p, AREA, PMEM_FILE_CREATE, 0600, &ml, &ip);
	if (!Area || ml != AREA) {
		printf("mem setup failed errno=%s\n", ename(errno));
		return;
	}
	Model = calloc(1, AREA);

	mem_group(F_MOVE_P, 0, 0);
	mem_group(F_MOVE_N, 0, 0);
	mem_group(F_CPY_P, 0, 0);
	mem_group(F_CPY_N, 0, 0);
	mem_group(F_SET_P, 0, 0);
	mem_group(F_SET_N, 0, 0);
	for (unsigned f = 0; f < NFLAGS; f++) {
		mem_group(F_MOVE_F, Flags[f], 0);
		mem_group(F_CPY_F, Flags[f], 0);
		mem_group(F_SET_F, Flags[f], 0);
	}
	for (int o = 1; o <= 7; o++) {
		mem_group(F_MOVE_P, 0, o);
		mem_group(F_MOVE_N, 0, o);
		for (unsigned f = 0; f < NFLAGS; f++)
			mem_group(F_MOVE_F, Flags[f], o);
	}
	/* the content must reach the file */
	int r = pmem_msync(Area, AREA);
	uint64_t hm = fnv(FNV0, Area, AREA);
	int u = pmem_unmap(Area, AREA);
	long long sz;
	uint64_t hf = file_sum(p, &sz);
	printf("mem file msync=%d unmap=%d size=%lld map_eq_file=%d\n", r, u,
		sz, hm == hf);
	free(Model);
	unlink(p);
}

/* ---- misc ----------------------------------------------------------- */

static void
is_pmem_probes(const char *tag)
{
	char p[PATH_MAX];
	size_t ml = SENT_LEN;
	int ip = SENT_PMEM;
	path_of(p, "ip");
	unlink(p);
	char *a = pmem_map_file(p, 3 * 4096, PMEM_FILE_CREATE, 0600, &ml,
		&ip);
	printf("%s map_is_pmem=%d\n", tag, a ? ip : -1);
	if (!a)
		return;
	static int stackvar;
	char *heap = malloc(100);
	struct { const char *n; const void *a; size_t l; } c[] = {
		{ "mapped-all", a, ml },
		{ "mapped-1", a, 1 },
		{ "mapped-len0", a, 0 },
		{ "mapped-inner", a + 100, 5000 },
		{ "mapped-overrun", a, ml + 4096 },
		{ "before-map", a - 4096, 4096 },
		{ "null-0", NULL, 0 },
		{ "null-1", NULL, 1 },
		{ "static", &stackvar, sizeof(stackvar) },
		{ "heap", heap, 100 },
		{ "wrap", (void *)(UINTPTR_MAX - 10), 100 },
	};
	for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		errno = 4242;
		int r = pmem_is_pmem(c[i].a, c[i].l);
		printf("%s is_pmem %s ret=%d errno_changed=%d\n", tag, c[i].n, r,
			errno != 4242);
	}
	free(heap);
	pmem_unmap(a, ml);
	printf("%s is_pmem after-unmap ret=%d\n", tag, pmem_is_pmem(a, ml));
	unlink(p);
}

#define IRET(tag, expr) do { errno = 0; int r_ = (expr); int e_ = errno; \
	printf("%s ret=%d errno=%s\n", tag, r_, r_ ? ename(e_) : "-"); \
	} while (0)

#define VOIDCALL(tag, expr) do { errno = 4242; expr; \
	printf("%s done errno_changed=%d\n", tag, errno != 4242); } while (0)

static void
group_misc(void)
{
	is_pmem_probes("misc");

	char p[PATH_MAX];
	size_t ml;
	int ip;
	path_of(p, "misc");
	unlink(p);
	char *a = pmem_map_file(p, 3 * 4096 + 100, PMEM_FILE_CREATE, 0600,
		&ml, &ip);
	if (!a) {
		printf("misc setup failed\n");
		return;
	}
	memset(a, 0x11, ml);

	IRET("msync all", pmem_msync(a, ml));
	IRET("msync unaligned", pmem_msync(a + 4097, 10));
	IRET("msync len0", pmem_msync(a, 0));
	IRET("msync len0-unaligned", pmem_msync(a + 5, 0));
	IRET("msync tail-past-end-of-file", pmem_msync(a + ml - 1, 2000));
	/* a known hole: the middle page of a 3-page reservation */
	char *res = mmap(NULL, 3 * 4096, PROT_NONE,
		MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(res + 4096, 4096);
	IRET("msync hole", pmem_msync(res + 4096, 4096));
	IRET("msync spanning-hole", pmem_msync(res, 3 * 4096));
	IRET("deep_drain hole", pmem_deep_drain(res + 4096, 10));
	IRET("deep_drain spanning-hole", pmem_deep_drain(res, 3 * 4096));
	printf("unmap hole ret=%d\n", pmem_unmap(res, 3 * 4096));
	char *heap = malloc(100);
	IRET("msync heap", pmem_msync(heap, 100));
	int sv = 0;
	IRET("msync stack", pmem_msync(&sv, sizeof(sv)));
	printf("msync after-error msg=%d\n", errmsg_nonempty());

	IRET("deep_drain all", pmem_deep_drain(a, ml));
	IRET("deep_drain unaligned", pmem_deep_drain(a + 4097, 10));
	IRET("deep_drain len0", pmem_deep_drain(a, 0));
	IRET("deep_drain heap", pmem_deep_drain(heap, 100));
	IRET("deep_persist all", pmem_deep_persist(a, ml));
	IRET("deep_persist unaligned", pmem_deep_persist(a + 4097, 10));
	IRET("deep_persist len0", pmem_deep_persist(a, 0));
	IRET("deep_persist heap", pmem_deep_persist(heap, 100));
	IRET("deep_persist past-mapping", pmem_deep_persist(a, 4 * 4096));

	VOIDCALL("flush all", pmem_flush(a, ml));
	VOIDCALL("flush len0", pmem_flush(a + 7, 0));
	VOIDCALL("persist all", pmem_persist(a, ml));
	VOIDCALL("persist heap", pmem_persist(heap, 100));
	VOIDCALL("drain", pmem_drain());
	VOIDCALL("deep_flush all", pmem_deep_flush(a, ml));
	VOIDCALL("deep_flush len0", pmem_deep_flush(a + 7, 0));

	free(heap);
	pmem_unmap(a, ml);
	/* unmapped now: msync/deep_drain fail with ENOMEM */
	IRET("msync unmapped", pmem_msync(a, ml));
	printf("msync unmapped msg=%d\n", errmsg_nonempty());
	IRET("deep_drain unmapped", pmem_deep_drain(a, ml));
	unlink(p);

	IRET("has_hw_drain", pmem_has_hw_drain());
	printf("has_auto_flush ret=%d\n", pmem_has_auto_flush());

	static const unsigned ver[][2] = {
		{ PMEM_MAJOR_VERSION, PMEM_MINOR_VERSION },
		{ 1, 0 }, { 1, 1 }, { 1, 2 }, { 0, 0 }, { 0, 9 }, { 2, 0 },
		{ 1, UINT_MAX }, { UINT_MAX, 0 },
	};
	for (unsigned i = 0; i < sizeof(ver) / sizeof(ver[0]); i++) {
		errno = 4242;
		const char *r = pmem_check_version(ver[i][0], ver[i][1]);
		int ech = errno != 4242;
		const char *m = pmem_errormsg();
		printf("check_version %u.%u ret=%s nonempty=%d "
			"errormsg_equal=%d errno_changed=%d\n",
			ver[i][0], ver[i][1], r ? "msg" : "NULL",
			r ? r[0] != '\0' : 0,
			r ? (m != NULL && strcmp(r, m) == 0) : -1, ech);
	}
	/* errormsg after a pmem_map_file error */
	errno = 0;
	void *x = pmem_map_file(p, 1, 0, 0, NULL, NULL);
	printf("errormsg after-map-error ret=%s errno=%s nonempty=%d\n",
		x ? "ok" : "NULL", ename(errno), errmsg_nonempty());
	/* errormsg in a new thread-less child process is empty again */
}

static void
group_env(const char *mode)
{
	const char *v = getenv("PMEM_IS_PMEM_FORCE");
	printf("env mode=%s PMEM_IS_PMEM_FORCE=%s%s%s\n", mode,
		v ? "\"" : "", v ? v : "(unset)", v ? "\"" : "");
	is_pmem_probes("env");
}

static void
group_latch(void)
{
	const char *v = getenv("PMEM_IS_PMEM_FORCE");
	printf("latch PMEM_IS_PMEM_FORCE=%s\n", v ? v : "(unset)");
	int x = 0;
	printf("latch first-call heap is_pmem=%d\n", pmem_is_pmem(&x, 4));
	setenv("PMEM_IS_PMEM_FORCE", "1", 1);
	printf("latch after-setenv heap is_pmem=%d\n", pmem_is_pmem(&x, 4));
	is_pmem_probes("latch");
}

int
main(int argc, char *argv[])
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SCRATCH_DIR [all|map|unmap|mem|"
			"misc|env|latch|setenv]\n", argv[0]);
		return 2;
	}
	const char *mode = argc > 2 ? argv[2] : "all";
	umask(0);
	signal(SIGPIPE, SIG_IGN);
	if (strlen(argv[1]) > sizeof(Dir) - 32) {
		fprintf(stderr, "scratch path too long\n");
		return 2;
	}
	snprintf(Dir, sizeof(Dir), "%s/pmem_diff.d", argv[1]);
	rm_rf(Dir);
	if (mkdir(Dir, 0755) != 0) {
		perror(Dir);
		return 2;
	}
	struct statfs sfs;
	const char *fst = "other";
	if (statfs(Dir, &sfs) == 0) {
		if (sfs.f_type == 0x01021994)
			fst = "tmpfs";
		else if (sfs.f_type == 0xEF53)
			fst = "ext4";
		else if (sfs.f_type == 0x58465342)
			fst = "xfs";
	}
	printf("pmem_diff v1 mode=%s fs=%s header=%d.%d\n", mode, fst,
		PMEM_MAJOR_VERSION, PMEM_MINOR_VERSION);
	printf("errormsg initial nonempty=%d\n", errmsg_nonempty());
	fflush(stdout);

	int all = !strcmp(mode, "all");
	if (!strcmp(mode, "setenv")) {
		setenv("PMEM_IS_PMEM_FORCE", "1", 1);
		group_env(mode);
	} else if (!strcmp(mode, "env")) {
		group_env(mode);
	} else if (!strcmp(mode, "latch")) {
		group_latch();
	} else {
		if (all || !strcmp(mode, "map"))
			group_map();
		if (all || !strcmp(mode, "unmap"))
			group_unmap();
		if (all || !strcmp(mode, "misc"))
			group_misc();
		if (all || !strcmp(mode, "mem"))
			group_mem();
	}
	rm_rf(Dir);
	printf("end\n");
	return 0;
}
