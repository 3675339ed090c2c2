/*
 * compat/libpmem.c -- PMDK libpmem 1.x (1.12.1, API 1.1) on top of daxpmem.
 *
 * Built as libpmem.so.1 with compat/libpmem.map (symbol version LIBPMEM_1.0)
 * and linked against libdaxpmem.so.0.  Every exported function is a small
 * wrapper over daxpmem's C API; the shim holds no state of its own (no
 * writable globals, no statics, no caches): registrations, the
 * PMEM_IS_PMEM_FORCE/PMEM_NO_FLUSH/eADR decisions and the thread-local error
 * message all live in the core.
 *
 * Return values and errno follow libpmem 1.12.1 as measured with
 * compat/tests/pmem_diff.c against Debian's libpmem1 1.12.1-2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "include/libpmem.h"
#include <daxpmem.h>

#define EXPORT __attribute__((visibility("default")))

#define PMEM_FILE_ALL_FLAGS \
	(PMEM_FILE_CREATE | PMEM_FILE_EXCL | PMEM_FILE_SPARSE | PMEM_FILE_TMPFILE)
#define PMEM_DAX_VALID_FLAGS (PMEM_FILE_CREATE | PMEM_FILE_SPARSE)

/* ---- error reporting (message in the core, errno here) --------------- */

#define MSG_MAX 512

/* format a message into the core's thread-local buffer; errno untouched */
static void __attribute__((format(printf, 1, 2)))
set_msg(const char *fmt, ...)
{
	char buf[MSG_MAX];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	dax_set_errormsg(buf);
	errno = saved;
}

/* set the message and errno = e */
#define FAIL(e, ...) do { set_msg(__VA_ARGS__); errno = (e); } while (0)

/* message "<what>: strerror(errno)" like PMDK's ERR("!...") */
#define FAIL_ERRNO(...) do { \
	int e_ = errno; \
	char w_[MSG_MAX / 2]; \
	snprintf(w_, sizeof(w_), __VA_ARGS__); \
	set_msg("%s: %s", w_, strerror(e_)); \
	errno = e_; \
} while (0)

/* ---- pmem_map_file --------------------------------------------------- */

/*
 * What libpmem's util_file_get_type() decides before any flag check:
 * -1 (errno set) for a NULL path, for access() errors other than ENOENT and
 * for character devices that are not Device DAX (EINVAL); 1 for Device DAX;
 * 0 for anything else, including a missing path.
 */
static int
file_type(const char *path)
{
	if (path == NULL) {
		FAIL(EINVAL, "invalid (NULL) path");
		return -1;
	}
	if (access(path, F_OK) != 0) {
		if (errno == ENOENT)
			return 0;
		FAIL_ERRNO("access \"%s\"", path);
		return -1;
	}
	struct stat st;
	if (stat(path, &st) != 0) {
		FAIL_ERRNO("stat \"%s\"", path);
		return -1;
	}
	if (!S_ISCHR(st.st_mode))
		return 0;
	int r = dax_is_devdax(path);
	if (r < 0)
		return -1;
	if (r == 0) {
		FAIL(EINVAL, "%s is a character device but not Device DAX",
			path);
		return -1;
	}
	return 1;
}

/*
 * Device DAX: only CREATE and SPARSE are accepted, and both are ignored;
 * len must be 0 or the exact size of the device; mode is ignored.
 */
static void *
map_devdax(const char *path, size_t len, int flags, size_t *mapped_lenp,
	int *is_pmemp)
{
	if (flags & ~PMEM_DAX_VALID_FLAGS) {
		FAIL(EINVAL, "flag unsupported for Device DAX %x",
			(unsigned)flags);
		return NULL;
	}
	dax_map_t *m = dax_map(path, 0, 0, 0);
	if (m == NULL)
		return NULL;
	size_t size = dax_len(m);
	if (len != 0 && len != size) {
		int e = dax_unmap(m);
		(void) e;
		FAIL(EINVAL, "Device DAX length must be either 0 or the exact "
			"size of the device %zu", len);
		return NULL;
	}
	void *addr = dax_addr(m);
	if (mapped_lenp != NULL)
		*mapped_lenp = size;
	if (is_pmemp != NULL)
		*is_pmemp = dax_range_is_pmem(addr, size);
	return addr;
}

/*
 * An unnamed file in directory dir: O_TMPFILE (mode 0600), falling back
 * to mkstemp()+unlink() where the file system lacks O_TMPFILE.  libpmem
 * 1.12.1 always uses mkstemp() under umask(077) and unlinks the name; the
 * result is the same (mode 0600 whatever mode/umask, no name), without the
 * window where the name exists and without touching the process umask.
 */
static int
open_tmpfile(const char *dir, int excl)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC |
		(excl ? O_EXCL : 0), S_IRUSR | S_IWUSR);
	if (fd >= 0) {
		/* 0600 whatever the umask, as libpmem's mkstemp under umask 077 */
		(void) fchmod(fd, S_IRUSR | S_IWUSR);
		return fd;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR) {
		FAIL_ERRNO("open O_TMPFILE \"%s\"", dir);
		return -1;
	}
	char templ[PATH_MAX];
	if ((size_t)snprintf(templ, sizeof(templ), "%s/pmem.XXXXXX", dir) >=
			sizeof(templ)) {
		FAIL(ENAMETOOLONG, "tmpfile path too long");
		return -1;
	}
	sigset_t all, old;
	sigfillset(&all);
	(void) sigprocmask(SIG_BLOCK, &all, &old);
	fd = mkostemp(templ, O_CLOEXEC);
	if (fd >= 0) {
		(void) unlink(templ);
		(void) fchmod(fd, S_IRUSR | S_IWUSR);
	}
	int e = errno;
	(void) sigprocmask(SIG_SETMASK, &old, NULL);
	if (fd < 0) {
		errno = e;
		FAIL_ERRNO("mkstemp");
	}
	return fd;
}

EXPORT void *
pmem_map_file(const char *path, size_t len, int flags, mode_t mode,
	size_t *mapped_lenp, int *is_pmemp)
{
	int open_flags = O_RDWR | O_CLOEXEC;
	int delete_on_err = 0;
	int fd;

	int type = file_type(path);
	if (type < 0)
		return NULL;

	if (flags & ~PMEM_FILE_ALL_FLAGS) {
		FAIL(EINVAL, "invalid flag specified %x", (unsigned)flags);
		return NULL;
	}
	if (type == 1)
		return map_devdax(path, len, flags, mapped_lenp, is_pmemp);

	if (flags & PMEM_FILE_CREATE) {
		if ((off_t)len < 0) {
			FAIL(EINVAL, "invalid file length %zu", len);
			return NULL;
		}
		open_flags |= O_CREAT;
	}
	if (flags & PMEM_FILE_EXCL)
		open_flags |= O_EXCL;
	if (len != 0 && !(flags & PMEM_FILE_CREATE)) {
		FAIL(EINVAL, "non-zero 'len' not allowed without "
			"PMEM_FILE_CREATE");
		return NULL;
	}
	if (len == 0 && (flags & PMEM_FILE_CREATE)) {
		FAIL(EINVAL, "zero 'len' not allowed with PMEM_FILE_CREATE");
		return NULL;
	}
	if ((flags & PMEM_FILE_TMPFILE) && !(flags & PMEM_FILE_CREATE)) {
		FAIL(EINVAL, "PMEM_FILE_TMPFILE not allowed without "
			"PMEM_FILE_CREATE");
		return NULL;
	}

	if (flags & PMEM_FILE_TMPFILE) {
		fd = open_tmpfile(path, flags & PMEM_FILE_EXCL);
		if (fd < 0)
			return NULL;
	} else {
		fd = open(path, open_flags, mode);
		if (fd < 0) {
			FAIL_ERRNO("open %s", path);
			return NULL;
		}
		if ((flags & PMEM_FILE_CREATE) && (flags & PMEM_FILE_EXCL))
			delete_on_err = 1;
	}

	if (flags & PMEM_FILE_CREATE) {
		/* always set the length: may extend or truncate */
		if (ftruncate(fd, (off_t)len) != 0) {
			FAIL_ERRNO("ftruncate");
			goto err;
		}
		if (!(flags & PMEM_FILE_SPARSE)) {
			int e = posix_fallocate(fd, 0, (off_t)len);
			if (e != 0) {
				errno = e;
				FAIL_ERRNO("posix_fallocate");
				goto err;
			}
		}
	} else {
		struct stat st;
		if (fstat(fd, &st) != 0) {
			FAIL_ERRNO("fstat %s", path);
			goto err;
		}
		if (st.st_size < 0) {
			FAIL(EINVAL, "stat %s: negative size", path);
			goto err;
		}
		len = (size_t)st.st_size;
	}
	if (len == 0) {
		/* libpmem: mmap of 0 bytes */
		FAIL(EINVAL, "mmap 0 bytes: %s", strerror(EINVAL));
		goto err;
	}

	dax_map_t *m = dax_map_fd(fd, 0, len, 0);
	if (m == NULL) {
		if (errno == 0)
			errno = ENOMEM;
		goto err;
	}
	void *addr = dax_addr(m);

	if (mapped_lenp != NULL)
		*mapped_lenp = len;
	if (is_pmemp != NULL)
		*is_pmemp = dax_range_is_pmem(addr, len);

	(void) close(fd);
	return addr;

err: {
		int e = errno;
		(void) close(fd);
		if (delete_on_err)
			(void) unlink(path);
		errno = e;
		return NULL;
	}
}

/* ---- unmap, is_pmem ---------------------------------------------------- */

EXPORT int
pmem_unmap(void *addr, size_t len)
{
	int r = dax_unmap_range(addr, len);
	if (r != 0)
		FAIL_ERRNO("munmap");
	return r;
}

EXPORT int
pmem_is_pmem(const void *addr, size_t len)
{
	int e = errno;
	int r = dax_range_is_pmem(addr, len);
	errno = e;
	return r;
}

/* ---- flush, drain, persist ------------------------------------------ */

EXPORT void
pmem_flush(const void *addr, size_t len)
{
	daxpmem_flush(addr, len);
}

EXPORT void
pmem_drain(void)
{
	wmb_pmem();
}

EXPORT void
pmem_persist(const void *addr, size_t len)
{
	daxpmem_persist(addr, len);
}

EXPORT int
pmem_has_hw_drain(void)
{
	return 0;
}

EXPORT int
pmem_has_auto_flush(void)
{
	return daxpmem_has_auto_flush();
}

/* msync(MS_SYNC) of the range, the address rounded down to a page */
static int
msync_range(const void *addr, size_t len)
{
	uintptr_t pmask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;
	len += (uintptr_t)addr & pmask;
	uintptr_t uptr = (uintptr_t)addr & ~pmask;
	int r = msync((void *)uptr, len, MS_SYNC);
	if (r < 0)
		FAIL_ERRNO("msync");
	return r;
}

EXPORT int
pmem_msync(const void *addr, size_t len)
{
	return msync_range(addr, len);
}

EXPORT void
pmem_deep_flush(const void *addr, size_t len)
{
	wb_cache_pmem(addr, len);
}

/*
 * libpmem's deep drain outside Device DAX is msync of the range; the core has
 * no WPQ flush, so Device DAX ranges get the same msync (see README).
 */
static int
deep_drain(const void *addr, size_t len)
{
	if (len == 0)
		return 0;
	return msync_range(addr, len);
}

EXPORT int
pmem_deep_drain(const void *addr, size_t len)
{
	return deep_drain(addr, len);
}

EXPORT int
pmem_deep_persist(const void *addr, size_t len)
{
	wb_cache_pmem(addr, len);
	return deep_drain(addr, len);
}

/* ---- memmove, memcpy, memset ------------------------------------------ */

/* libpmem release builds ignore unknown flag bits */
#define MEMFLAGS(f) ((f) & PMEM_F_MEM_VALID_FLAGS)

EXPORT void *
pmem_memmove(void *pmemdest, const void *src, size_t len, unsigned flags)
{
	daxpmem_memmove(pmemdest, src, len, MEMFLAGS(flags));
	return pmemdest;
}

EXPORT void *
pmem_memcpy(void *pmemdest, const void *src, size_t len, unsigned flags)
{
	daxpmem_memmove(pmemdest, src, len, MEMFLAGS(flags));
	return pmemdest;
}

EXPORT void *
pmem_memset(void *pmemdest, int c, size_t len, unsigned flags)
{
	daxpmem_memset(pmemdest, c, len, MEMFLAGS(flags));
	return pmemdest;
}

EXPORT void *
pmem_memmove_persist(void *pmemdest, const void *src, size_t len)
{
	daxpmem_memmove(pmemdest, src, len, 0);
	return pmemdest;
}

EXPORT void *
pmem_memcpy_persist(void *pmemdest, const void *src, size_t len)
{
	daxpmem_memmove(pmemdest, src, len, 0);
	return pmemdest;
}

EXPORT void *
pmem_memset_persist(void *pmemdest, int c, size_t len)
{
	daxpmem_memset(pmemdest, c, len, 0);
	return pmemdest;
}

EXPORT void *
pmem_memmove_nodrain(void *pmemdest, const void *src, size_t len)
{
	daxpmem_memmove(pmemdest, src, len, PMEM_F_MEM_NODRAIN);
	return pmemdest;
}

EXPORT void *
pmem_memcpy_nodrain(void *pmemdest, const void *src, size_t len)
{
	daxpmem_memmove(pmemdest, src, len, PMEM_F_MEM_NODRAIN);
	return pmemdest;
}

EXPORT void *
pmem_memset_nodrain(void *pmemdest, int c, size_t len)
{
	daxpmem_memset(pmemdest, c, len, PMEM_F_MEM_NODRAIN);
	return pmemdest;
}

/* ---- version, errors ------------------------------------------------- */

EXPORT const char *
pmem_check_version(unsigned major_required, unsigned minor_required)
{
	if (major_required != PMEM_MAJOR_VERSION) {
		set_msg("libpmem major version mismatch (need %u, found %u)",
			major_required, PMEM_MAJOR_VERSION);
		return dax_errormsg();
	}
	if (minor_required > PMEM_MINOR_VERSION) {
		set_msg("libpmem minor version mismatch (need %u, found %u)",
			minor_required, PMEM_MINOR_VERSION);
		return dax_errormsg();
	}
	return NULL;
}

EXPORT const char *
pmem_errormsg(void)
{
	return dax_errormsg();
}
