/*
 * preload/preload.c -- libdaxpmem-preload.so.0: LD_PRELOAD it and programs that mmap
 * a file and call msync take daxpmem's path, without a rebuild.
 *
 * A thin C layer over libdaxpmem.so.0 (DT_NEEDED, found through RUNPATH $ORIGIN).
 * It holds no state of its own: the only writable global is `R`, written once by the
 * constructor (the real functions from dlsym(RTLD_NEXT), the page size and the
 * configuration read from the environment) and then made read-only with mprotect.
 * Mappings live in the core's registry; the counters, kept only with DAXPMEM_STATS=1,
 * in daxpmem_counter().
 *
 * Interposed: msync, mmap, mmap64, munmap, mremap, madvise, and sigaction/signal for
 * SIGSEGV/SIGBUS (through the core's dax_chain_sigaction).
 *
 * Rules every hook follows:
 *  - before the constructor has run: a raw system call (syscall(2)), nothing else;
 *  - DAXPMEM_PRELOAD_DISABLE=1: straight to the real function;
 *  - arguments the kernel would refuse go to the real function untouched, so the
 *    return value and errno are the kernel's by construction;
 *  - errno is saved and restored around every core call on the success paths;
 *  - when a core call fails, the real function decides (the program still works).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <daxpmem.h>

#define EXPORT __attribute__((visibility("default")))

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_TYPE
#define MAP_TYPE 0x0f
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif

/* Configuration bits, from the environment, read once by the constructor. */
#define CONF_DISABLE 1u    /* DAXPMEM_PRELOAD_DISABLE=1: pass everything through */
#define CONF_NO_MAP_SYNC 2u /* DAXPMEM_PRELOAD_MAP_SYNC=0: never upgrade mmap */
#define CONF_STATS 4u      /* DAXPMEM_STATS=1: one line on stderr at exit */
#define CONF_ADOPT_ALL 8u  /* DAXPMEM_PRELOAD_ADOPT=all: adopt non-DAX files too (tests) */
#define CONF_MPROTECT 16u  /* DAXPMEM_PRELOAD_TRACK=mprotect: adopt with DAX_TRACK_MPROTECT */
/* The counters cost an atomic add each: only kept when DAXPMEM_STATS=1 will print them. */
#define COUNT(id) do { if (R.conf & CONF_STATS) daxpmem_counter((id), 1); } while (0)

typedef int (*msync_fn)(void *, size_t, int);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);
typedef int (*madvise_fn)(void *, size_t, int);
typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*signal_fn)(int, sighandler_t);

struct real {
	int ready;      /* the constructor has run */
	unsigned conf;  /* CONF_* */
	size_t page;
	msync_fn msync;
	mmap_fn mmap;
	mmap_fn mmap64;
	munmap_fn munmap;
	mremap_fn mremap;
	madvise_fn madvise;
	sigaction_fn sigaction;
	signal_fn signal;
};

/* The one writable global: a page of its own, read-only once the constructor is done. */
static union {
	struct real r;
	char page[4096];
} R_ __attribute__((aligned(4096)));
#define R (R_.r)

static inline int ready(void)
{
	return __atomic_load_n(&R.ready, __ATOMIC_ACQUIRE);
}

/* ---- raw system calls (before the constructor, or when dlsym found nothing) ---- */

static int raw_msync(void *a, size_t l, int f)
{
	return (int)syscall(SYS_msync, a, l, f);
}
static void *raw_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	return (void *)syscall(SYS_mmap, a, l, p, f, fd, o);
}
static int raw_munmap(void *a, size_t l)
{
	return (int)syscall(SYS_munmap, a, l);
}
static void *raw_mremap(void *a, size_t ol, size_t nl, int f, void *na)
{
	return (void *)syscall(SYS_mremap, a, ol, nl, f, na);
}
static int raw_madvise(void *a, size_t l, int adv)
{
	return (int)syscall(SYS_madvise, a, l, adv);
}

/* The real function, or the raw system call if it could not be resolved. */
static int real_msync(void *a, size_t l, int f)
{
	return R.msync ? R.msync(a, l, f) : raw_msync(a, l, f);
}
static void *real_mmap(mmap_fn fn, void *a, size_t l, int p, int f, int fd, off_t o)
{
	return fn ? fn(a, l, p, f, fd, o) : raw_mmap(a, l, p, f, fd, o);
}
static int real_munmap(void *a, size_t l)
{
	return R.munmap ? R.munmap(a, l) : raw_munmap(a, l);
}
static void *real_mremap(void *a, size_t ol, size_t nl, int f, void *na)
{
	return R.mremap ? R.mremap(a, ol, nl, f, na) : raw_mremap(a, ol, nl, f, na);
}
static int real_madvise(void *a, size_t l, int adv)
{
	return R.madvise ? R.madvise(a, l, adv) : raw_madvise(a, l, adv);
}

/* ---- constructor / destructor ------------------------------------------------- */

static int env_on(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] && strcmp(v, "0") != 0;
}

static int env_is(const char *name, const char *want)
{
	const char *v = getenv(name);
	return v && strcmp(v, want) == 0;
}

__attribute__((constructor)) static void preload_init(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned conf = 0;

	R.page = pg > 0 ? (size_t)pg : 4096;
	if (env_on("DAXPMEM_PRELOAD_DISABLE"))
		conf |= CONF_DISABLE;
	if (env_is("DAXPMEM_PRELOAD_MAP_SYNC", "0"))
		conf |= CONF_NO_MAP_SYNC;
	if (env_on("DAXPMEM_STATS"))
		conf |= CONF_STATS;
	if (env_is("DAXPMEM_PRELOAD_ADOPT", "all"))
		conf |= CONF_ADOPT_ALL;
	if (env_is("DAXPMEM_PRELOAD_TRACK", "mprotect"))
		conf |= CONF_MPROTECT;
	R.conf = conf;
	/* dlsym returns void *; the conversion to a function pointer is what POSIX
	 * guarantees to work (pedantic C warns about the direct cast). */
#define RESOLVE(field, name) do { void *s_ = dlsym(RTLD_NEXT, name); \
		memcpy(&R.field, &s_, sizeof s_); } while (0)
	RESOLVE(msync, "msync");
	RESOLVE(mmap, "mmap");
	RESOLVE(mmap64, "mmap64");
	RESOLVE(munmap, "munmap");
	RESOLVE(mremap, "mremap");
	RESOLVE(madvise, "madvise");
	RESOLVE(sigaction, "sigaction");
	RESOLVE(signal, "signal");
#undef RESOLVE
	if (!R.mmap64)
		R.mmap64 = R.mmap;
	__atomic_store_n(&R.ready, 1, __ATOMIC_RELEASE);
	/* Set once: from here on the table is read-only (a stray write faults). */
	syscall(SYS_mprotect, (void *)&R_, sizeof R_, PROT_READ);
}

__attribute__((destructor)) static void preload_fini(void)
{
	char buf[256];
	int saved = errno, n;

	if (!ready() || !(R.conf & CONF_STATS))
		return;
	n = snprintf(buf, sizeof buf,
		     "daxpmem-preload[%ld]: msync calls %llu, handled in user space %llu, "
		     "passed to the kernel %llu, lines written back %llu\n",
		     (long)getpid(),
		     (unsigned long long)daxpmem_counter(DAXPMEM_COUNTER_MSYNC_SEEN, 0),
		     (unsigned long long)daxpmem_counter(DAXPMEM_COUNTER_MSYNC_USER, 0),
		     (unsigned long long)daxpmem_counter(DAXPMEM_COUNTER_MSYNC_KERNEL, 0),
		     (unsigned long long)daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0));
	if (n > 0) {
		size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
		ssize_t w = write(2, buf, len);
		(void)w;
	}
	errno = saved;
}

/* ---- helpers ---------------------------------------------------------------- */

static inline int page_aligned(uintptr_t a)
{
	return (a & (R.page - 1)) == 0;
}

/* [a, a+len) rounded up to pages; 0 when it wraps (or is empty). */
static inline uintptr_t page_end(uintptr_t a, size_t len)
{
	uintptr_t e;
	if (len == 0 || len > SIZE_MAX - (R.page - 1))
		return 0;
	e = a + ((len + R.page - 1) & ~(R.page - 1));
	return e > a ? e : 0;
}

/* What an fd maps. */
enum kind { K_OTHER, K_FSDAX, K_DEVDAX, K_PLAIN_FILE };

static enum kind fd_kind(int fd)
{
	/* The core's probe (statx's DAX attribute, device DAX through sysfs). */
	switch (dax_fd_kind(fd)) {
	case DAX_FD_FSDAX:
		return K_FSDAX;
	case DAX_FD_DEVDAX:
		return K_DEVDAX;
	case DAX_FD_FILE:
		return (R.conf & CONF_ADOPT_ALL) ? K_PLAIN_FILE : K_OTHER;
	default:
		return K_OTHER;
	}
}

/* Sync and forget every daxpmem mapping that overlaps [a, a+len): they become the
 * program's again (the kernel replaces or moves them; its msync is right for them).
 * dax_lookup(a, len) finds one at a time: the one holding a, else the first overlap. */
static void release_range(uintptr_t a, size_t len)
{
	dax_map_t *m;

	while ((m = dax_lookup((const void *)a, len)) != NULL) {
		dax_sync(m, NULL, 0);
		if (dax_forget(m) != 0)
			break; /* still registered: stop rather than find it again */
	}
}

/* ---- msync ------------------------------------------------------------------- */

EXPORT int msync(void *addr, size_t len, int flags)
{
	uintptr_t a = (uintptr_t)addr, end, base, mend;
	dax_map_t *m;
	int saved, pmem, rc;

	if (!ready())
		return raw_msync(addr, len, flags);
	if (R.conf & CONF_DISABLE)
		return real_msync(addr, len, flags);
	saved = errno;
	COUNT(DAXPMEM_COUNTER_MSYNC_SEEN);
	/* The kernel's checks, in its order, before looking anything up: whatever it
	 * refuses (EINVAL for unknown flags, an unaligned address, MS_ASYNC|MS_SYNC;
	 * ENOMEM for a wrapping range) or ignores (len 0) is its to answer. */
	if ((flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) || !page_aligned(a) ||
	    ((flags & MS_ASYNC) && (flags & MS_SYNC)) || (end = page_end(a, len)) == 0)
		goto kernel;
	m = dax_lookup(addr, 1); /* allocation-free, leaves errno and the message alone */
	if (!m)
		goto kernel;
	base = (uintptr_t)dax_addr(m);
	mend = base + dax_len(m);
	if (base == 0 || end > page_end(base, mend - base))
		goto kernel; /* not wholly inside one known mapping */
	if (end > mend)
		end = mend; /* the last page of a mapping of unaligned length */
	if (!(flags & MS_SYNC) && !(flags & MS_INVALIDATE)) {
		/* MS_ASYNC (or 0): Linux schedules nothing and returns 0 */
		COUNT(DAXPMEM_COUNTER_MSYNC_USER);
		errno = saved;
		return 0;
	}
	pmem = dax_is_pmem(m);
	if (flags & MS_SYNC) {
		rc = dax_sync(m, addr, end - a);
		if (rc != 0 && (errno == EINVAL || errno == EBADF))
			goto kernel; /* the mapping went away under us: the kernel answers */
		if (rc != 0 || !(flags & MS_INVALIDATE)) {
			/* In user space only when no kernel msync was needed: a pmem mapping
			 * that is not left to the kernel's tracking. */
			COUNT(pmem == 1 && dax_track_mode(m) != (int)DAX_TRACK_KERNEL
				      ? DAXPMEM_COUNTER_MSYNC_USER
				      : DAXPMEM_COUNTER_MSYNC_KERNEL);
			if (rc == 0)
				errno = saved;
			return rc;
		}
	}
	/* MS_INVALIDATE: synced above if asked, and the kernel invalidates. */
	errno = saved;
kernel:
	COUNT(DAXPMEM_COUNTER_MSYNC_KERNEL);
	errno = saved;
	return real_msync(addr, len, flags);
}

/* ---- mmap / mmap64 ------------------------------------------------------------ */

static void *do_mmap(mmap_fn fn, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int type = flags & MAP_TYPE, saved, synced = 0;
	enum kind k;
	void *p = MAP_FAILED;

	if (R.conf & CONF_DISABLE)
		return real_mmap(fn, addr, len, prot, flags, fd, off);
	if (!(prot & PROT_WRITE) || (type != MAP_SHARED && type != MAP_SHARED_VALIDATE) ||
	    (flags & MAP_ANONYMOUS) || fd < 0 || len == 0) {
		/* Anonymous MAP_FIXED is what memory allocators do, under their locks:
		 * not looked at (dax_find allocates on a miss). */
		if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE) &&
		    !(flags & MAP_ANONYMOUS) && fd >= 0 && len &&
		    page_aligned((uintptr_t)addr) && page_end((uintptr_t)addr, len)) {
			/* MAP_FIXED replaces what is there: a daxpmem mapping there becomes
			 * the program's (synced first, so no explicit mark is lost). */
			saved = errno;
			release_range((uintptr_t)addr, len);
			errno = saved;
		}
		return real_mmap(fn, addr, len, prot, flags, fd, off);
	}
	saved = errno;
	k = fd_kind(fd);
	if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE) &&
	    page_aligned((uintptr_t)addr) && page_end((uintptr_t)addr, len))
		release_range((uintptr_t)addr, len);
	errno = saved;
	if (k == K_OTHER)
		return real_mmap(fn, addr, len, prot, flags, fd, off);
	if ((k == K_FSDAX || k == K_DEVDAX) && !(R.conf & CONF_NO_MAP_SYNC)) {
		p = real_mmap(fn, addr, len, prot,
			      (flags & ~MAP_TYPE) | MAP_SHARED_VALIDATE | MAP_SYNC, fd, off);
		synced = p != MAP_FAILED;
		errno = saved;
	}
	if (p == MAP_FAILED) {
		/* exactly as asked */
		p = real_mmap(fn, addr, len, prot, flags, fd, off);
		if (p == MAP_FAILED)
			return p;
		synced = type == MAP_SHARED_VALIDATE && (flags & MAP_SYNC);
	}
	/* If the core refuses, the mapping stays the program's: it still works. */
	/* DAX_TRACK_AUTO is the kernel's msync on DAX today (docs/tracking.md); the opt-in
	 * mprotect tracking is refused by the core on DAX unless
	 * DAXPMEM_ALLOW_MPROTECT_ON_DAX=1, and then the mapping simply stays the program's. */
	dax_adopt(p, len, fd, off,
		  ((R.conf & CONF_MPROTECT) ? DAX_TRACK_MPROTECT : DAX_TRACK_AUTO) |
			  (synced ? DAX_ADOPT_MAP_SYNC : 0));
	errno = saved;
	return p;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!ready())
		return raw_mmap(addr, len, prot, flags, fd, off);
	return do_mmap(R.mmap, addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	if (!ready())
		return raw_mmap(addr, len, prot, flags, fd, (off_t)off);
	return do_mmap(R.mmap64, addr, len, prot, flags, fd, (off_t)off);
}

/* ---- munmap ------------------------------------------------------------------- */

EXPORT int munmap(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	int saved;

	if (!ready())
		return raw_munmap(addr, len);
	if ((R.conf & CONF_DISABLE) || !page_aligned(a) || page_end(a, len) == 0)
		return real_munmap(addr, len); /* refused by the kernel: its errno */
	/* dax_unmap_range releases or splits the daxpmem mappings the range touches and
	 * then unmaps it with the same munmap system call glibc's wrapper makes; with no
	 * daxpmem mapping in the range it is exactly munmap (the core has no cheaper
	 * "does anything overlap?" query, and a partial check could leave the registry
	 * pointing at unmapped memory). */
	saved = errno;
	if (dax_unmap_range(addr, len) == 0) {
		errno = saved;
		return 0;
	}
	errno = saved;
	return real_munmap(addr, len); /* the kernel decides, and gives its errno */
}

/* ---- mremap ------------------------------------------------------------------- */

EXPORT void *mremap(void *old, size_t old_size, size_t new_size, int flags, ...)
{
	void *new_addr = NULL;
	int saved;

	if (flags & MREMAP_FIXED) {
		va_list ap;
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	if (!ready())
		return raw_mremap(old, old_size, new_size, flags, new_addr);
	if (R.conf & CONF_DISABLE)
		return real_mremap(old, old_size, new_size, flags, new_addr);
	saved = errno;
	/* Adopted mappings the old range touches move or change size: sync them whole and
	 * hand them back to the program (not re-adopted: the kernel's msync stays correct). old_size 0
	 * duplicates a shared mapping and leaves the old one in place. */
	if (old_size && page_aligned((uintptr_t)old) && page_end((uintptr_t)old, old_size))
		release_range((uintptr_t)old, old_size);
	/* MREMAP_FIXED replaces whatever is at the destination. */
	if ((flags & MREMAP_FIXED) && new_size && page_aligned((uintptr_t)new_addr) &&
	    page_end((uintptr_t)new_addr, new_size))
		release_range((uintptr_t)new_addr, new_size);
	errno = saved;
	return real_mremap(old, old_size, new_size, flags, new_addr);
}

/* ---- madvise ------------------------------------------------------------------ */

EXPORT int madvise(void *addr, size_t len, int advice)
{
	uintptr_t a = (uintptr_t)addr, end;

	if (!ready())
		return raw_madvise(addr, len, advice);
	if (R.conf & CONF_DISABLE)
		return real_madvise(addr, len, advice);
	if ((advice == MADV_DONTNEED || advice == MADV_DONTNEED_LOCKED || advice == MADV_REMOVE) &&
	    page_aligned(a) && (end = page_end(a, len)) != 0) {
		/* Pages about to be dropped: record them as dirty in the mappings that hold
		 * them, so a later sync cannot miss what a page-level tracker saw there.
		 * Memory allocators call madvise(MADV_DONTNEED) while holding their own
		 * locks, and dax_find allocates its error message on a miss, so only ranges
		 * the core reports as pmem mappings (dax_range_is_pmem: no allocation) are
		 * looked up; on the page cache the kernel keeps the dirty state itself. */
		int saved = errno;
		uintptr_t pts[2] = { a, end - 1 };
		dax_map_t *first = NULL;
		for (int i = 0; i < 2; i++) {
			dax_map_t *m;
			uintptr_t base, mend, lo, hi;
			if (!dax_range_is_pmem((const void *)pts[i], 1))
				continue;
			m = dax_lookup((const void *)pts[i], 1);
			if (!m || m == first)
				continue; /* none, or the one holding both ends: marked already */
			first = m;
			base = (uintptr_t)dax_addr(m);
			mend = base + dax_len(m);
			lo = a > base ? a : base;
			hi = end < mend ? end : mend;
			if (lo < hi)
				dax_mark_dirty(m, (const void *)lo, hi - lo);
		}
		errno = saved;
	}
	return real_madvise(addr, len, advice);
}

/* ---- sigaction / signal --------------------------------------------------------
 * The core's SIGSEGV (DAX_TRACK_MPROTECT) and SIGBUS handlers stay first: a program's
 * action for them is stored by dax_chain_sigaction and chained to. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);
extern sighandler_t bsd_signal(int, sighandler_t);

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
	int saved, rc;

	/* before the constructor: glibc's own entry (a raw rt_sigaction would lack the
	 * sa_restorer glibc adds) */
	if (!ready())
		return __sigaction(sig, act, oldact);
	if (!R.sigaction)
		return __sigaction(sig, act, oldact);
	if ((R.conf & CONF_DISABLE) || (sig != SIGSEGV && sig != SIGBUS))
		return R.sigaction(sig, act, oldact);
	saved = errno;
	rc = dax_chain_sigaction(sig, act, oldact);
	if (rc == 1) {
		errno = saved;
		return R.sigaction(sig, act, oldact);
	}
	if (rc == 0)
		errno = saved;
	return rc;
}

EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction sa, old;
	int saved, rc;

	if (!ready() || !R.signal)
		return bsd_signal(sig, handler);
	if ((R.conf & CONF_DISABLE) || (sig != SIGSEGV && sig != SIGBUS))
		return R.signal(sig, handler);
	/* glibc's signal(): BSD semantics */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, sig);
	sa.sa_flags = SA_RESTART;
	saved = errno;
	rc = dax_chain_sigaction(sig, &sa, &old);
	if (rc == 1) {
		errno = saved;
		return R.signal(sig, handler);
	}
	if (rc != 0)
		return SIG_ERR;
	errno = saved;
	return old.sa_handler;
}
