/*
 * daxpmem: persistent-memory write-back and DAX file mappings with a cache-line dirty
 * index. C API of libdaxpmem.so.0.
 *
 * Generated from the files of src/ffi/ by cbindgen: do not edit; run `make header`.
 *
 * Conventions: every int-returning call returns 0 (or a documented non-negative
 * value) on success and -1 with errno set on error; every pointer-returning call
 * returns NULL with errno set on error. After an error, dax_errormsg() returns a
 * message for this thread. len == 0 is never an error and does nothing.
 * The library picks the write-back instruction (CLWB, else CLFLUSHOPT, else CLFLUSH),
 * its stride and the non-temporal copy path once, at load time, from CPUID and the
 * environment: DAXPMEM_NO_CLWB=1, DAXPMEM_NO_CLFLUSHOPT=1, DAXPMEM_NO_MOVNT=1,
 * DAXPMEM_MOVNT_THRESHOLD=N, DAXPMEM_NO_AVX512F=1, DAXPMEM_NO_AVX=1,
 * DAXPMEM_FORCE_PMEM=1, DAXPMEM_NO_FLUSH=0/1 (and PMDK's PMEM_NO_CLWB,
 * PMEM_NO_CLFLUSHOPT, PMEM_NO_MOVNT, PMEM_MOVNT_THRESHOLD, PMEM_AVX512F=0, PMEM_AVX=0,
 * PMEM_IS_PMEM_FORCE=0/1, PMEM_NO_FLUSH=0/1).
 *
 * Threads: any call may be made from any thread at any time, also on one mapping from
 * several threads and racing dax_unmap() of it: such a call either completes on the
 * still-mapped mapping or fails with EBADF. A dax_map_t * is a number, never
 * dereferenced: a stale handle (unmapped any number of unmaps ago) or a forged one is
 * EBADF, and nothing is read or written through it.
 *
 * fork(): may be called from any thread at any moment; parent and child stay fully
 * usable (the library takes nothing across a fork, and the child frees whatever other
 * threads held). Mappings are MAP_SHARED, so both see the same data. Lines marked before
 * the fork are the child's to sync too: those another thread's dax_sync held at the
 * fork (marks a ranged sync kept for later, what it had taken and not yet written
 * back) are marked dirty again in the child; should any not be readable there, every
 * dax_sync of that mapping in the child fails with EIO. Not supported: fork() from a
 * signal handler that interrupted a daxpmem call on the same thread.
 *
 * Signal handlers: these calls are async-signal-safe (no lock, no allocation, also
 * when they fail) and may be called from a handler, also one that interrupted a
 * daxpmem call on the same thread: wb_cache_pmem, wmb_pmem, clear_pmem,
 * memcpy_to_pmem, daxpmem_flush, daxpmem_persist, daxpmem_memmove, daxpmem_memset,
 * daxpmem_cache_line_size, daxpmem_flush_name, daxpmem_nt_name, daxpmem_version,
 * dax_mark_dirty, dax_addr, dax_len, dax_is_pmem, dax_track_mode, dax_lookup,
 * daxpmem_counter, dax_errormsg. The others are not async-signal-safe (they may
 * allocate or take a mapping's lock); one called from a handler that interrupted a call
 * holding the same mapping's lock on the same thread fails with EDEADLK instead of
 * waiting for itself (dax_sync, dax_get_stats, dax_unmap, dax_unmap_range, dax_forget,
 * dax_punch_hole).
 */

#ifndef DAXPMEM_H
#define DAXPMEM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
struct sigaction;

/**
 * dax_map(): create the file if it is missing, and grow it to len if it is smaller
 * (never shrinks it).
 */
#define DAX_CREATE 1

/**
 * With DAX_CREATE: fail with EEXIST if the file exists.
 */
#define DAX_EXCL 2

/**
 * With DAX_CREATE: grow the file with ftruncate instead of allocating blocks up front.
 */
#define DAX_SPARSE 4

/**
 * Prefault the mapping (MAP_POPULATE).
 */
#define DAX_POPULATE 8

/**
 * Tracking: only marks made through the API (dax_mark_dirty, dax_memcpy, dax_memset)
 * count. The default (0).
 */
#define DAX_TRACK_EXPLICIT 0

/**
 * Tracking: keep the mapping read-only; the first store to a page after a sync faults
 * and is recorded (a SIGSEGV handler that passes other faults on; see
 * dax_chain_sigaction). Refused with EOPNOTSUPP on DAX, where it is not proven lossless,
 * unless DAXPMEM_ALLOW_MPROTECT_ON_DAX=1; DAX_TRACK_AUTO never picks it.
 *
 * Limits of write-protection (inherent; use explicit marks, DAX_TRACK_KERNEL or
 * DAX_TRACK_UFFD where they matter): a kernel write into a tracked page not stored to
 * since the last sync fails with EFAULT (read(), recv(), pread(), pipe and AIO reads
 * into the mapping); a store from a thread that blocks SIGSEGV kills the process; the
 * program's own mprotect of a tracked page is overridden (a store makes it read-write,
 * a sync read-only again; PROT_NONE becomes PROT_READ after a sync); a SIGSEGV handler
 * installed with plain sigaction (not dax_chain_sigaction or the preload library)
 * replaces the library's. A program handler the library chains to runs with its
 * sa_mask but never with SIGSEGV or SIGBUS blocked (so one left by plain longjmp
 * does not break tracking); a SIGSEGV sent with kill/raise/sigqueue is never taken for
 * a tracking fault.
 */
#define DAX_TRACK_MPROTECT 256

/**
 * Tracking: userfaultfd write-protect (async) collected with PAGEMAP_SCAN (kernel >= 6.7,
 * works unprivileged); refused with EOPNOTSUPP on DAX and where the self-test fails.
 */
#define DAX_TRACK_UFFD 512

/**
 * Tracking: leave it to the kernel: dax_sync issues msync for its range (plus the
 * write-back of explicit marks).
 */
#define DAX_TRACK_KERNEL 768

/**
 * Tracking: the best mode proven correct for this mapping on this kernel: today the
 * kernel's msync (DAX_TRACK_KERNEL) everywhere (docs/tracking.md says why).
 */
#define DAX_TRACK_AUTO 1024

/**
 * dax_stats.flags: a user-space write-back makes this mapping durable.
 */
#define DAX_STAT_PMEM 1

/**
 * dax_stats.flags: mapped with MAP_SYNC.
 */
#define DAX_STAT_MAP_SYNC 2

/**
 * dax_stats.flags: a device DAX mapping.
 */
#define DAX_STAT_DEVDAX 4

/**
 * dax_stats.flags: the file has the DAX attribute (statx STATX_ATTR_DAX).
 */
#define DAX_STAT_FILE_DAX 8

/**
 * dax_stats.flags: the CPU caches are persistent (eADR): syncs skip the write-back and
 * only fence.
 */
#define DAX_STAT_EADR 16

/**
 * dax_stats.flags: treated as pmem only because DAXPMEM_FORCE_PMEM=1 or
 * PMEM_IS_PMEM_FORCE=1.
 */
#define DAX_STAT_FORCED 32

/**
 * dax_stats.huge_mapped_bytes for a page-cache mapping, or when the kernel cannot tell.
 */
#define DAX_HUGE_UNKNOWN UINT64_MAX

/**
 * Flags of daxpmem_memmove() / daxpmem_memset(): skip the final fence.
 */
#define DAXPMEM_MEM_NODRAIN 1

/**
 * Use non-temporal stores whatever the length.
 */
#define DAXPMEM_MEM_NONTEMPORAL 2

/**
 * Use ordinary stores and write back.
 */
#define DAXPMEM_MEM_TEMPORAL 4

/**
 * As DAXPMEM_MEM_NONTEMPORAL.
 */
#define DAXPMEM_MEM_WC 8

/**
 * As DAXPMEM_MEM_TEMPORAL.
 */
#define DAXPMEM_MEM_WB 16

/**
 * Ordinary stores, no write-back, no fence.
 */
#define DAXPMEM_MEM_NOFLUSH 32

/**
 * dax_fd_kind(): fd is something else (a pipe, a socket, a directory, another
 * character device).
 */
#define DAX_FD_OTHER 0

/**
 * dax_fd_kind(): a regular file without the DAX attribute (page cache).
 */
#define DAX_FD_FILE 1

/**
 * dax_fd_kind(): a regular file with the DAX attribute (statx STATX_ATTR_DAX).
 */
#define DAX_FD_FSDAX 2

/**
 * dax_fd_kind(): a device DAX character device.
 */
#define DAX_FD_DEVDAX 3

/**
 * dax_adopt(): the range was mapped with MAP_SHARED_VALIDATE|MAP_SYNC.
 */
#define DAX_ADOPT_MAP_SYNC 65536

/**
 * daxpmem_counter(): msync calls seen by the preload library.
 */
#define DAXPMEM_COUNTER_MSYNC_SEEN 0

/**
 * daxpmem_counter(): msync calls the preload library handled in user space.
 */
#define DAXPMEM_COUNTER_MSYNC_USER 1

/**
 * daxpmem_counter(): msync calls the preload library passed to the kernel.
 */
#define DAXPMEM_COUNTER_MSYNC_KERNEL 2

/**
 * daxpmem_counter(): lines written back by every dax_sync in the process (kept by the
 * core, per mapping, and summed when read; adding to it is refused).
 */
#define DAXPMEM_COUNTER_LINES_WRITTEN_BACK 3

/**
 * What `dax_map_t *` points to: never dereferenced.
 */
struct dax_map;

/**
 * An open mapping of a file or a device DAX (opaque).
 */
typedef struct dax_map dax_map_t;

/**
 * Statistics of one mapping. Versioned by size: set `size` to sizeof(struct dax_stats)
 * before the call; the library fills as many fields as both sides know and never
 * writes past `size`. Later versions only append fields.
 */
struct dax_stats {
  /**
   * In: sizeof(struct dax_stats) as the caller was compiled. Out: the bytes filled.
   */
  uint32_t size;
  /**
   * The tracking mode in effect (DAX_TRACK_*, after DAX_TRACK_AUTO was resolved).
   */
  uint32_t track_mode;
  /**
   * Lines marked and not yet written back (a line marked more than once since the
   * last sync may count more than once; exact when each was marked once).
   */
  uint64_t dirty_lines;
  /**
   * Total lines written back (pmem) or covered by msync (page cache) by dax_sync.
   */
  uint64_t lines_written_back;
  /**
   * dax_sync calls.
   */
  uint64_t syncs;
  /**
   * Real msync calls issued.
   */
  uint64_t msync_calls;
  /**
   * Write faults taken by automatic tracking.
   */
  uint64_t tracked_faults;
  /**
   * DAX_STAT_* bits.
   */
  uint64_t flags;
  /**
   * Bytes of the mapping the kernel currently maps with 2 MiB (PMD) entries, read
   * from the page tables for a DAX mapping (DAX_STAT_MAP_SYNC, _DEVDAX or
   * _FILE_DAX); DAX_HUGE_UNKNOWN for a page-cache mapping (not measured: that walk
   * would cost ~0.6 ms per populated GiB; see /proc/self/smaps) or when the kernel
   * cannot tell.
   */
  uint64_t huge_mapped_bytes;
};

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Write back every cache line overlapping [addr, addr+len) from the CPU caches
 * (CLWB, CLFLUSHOPT or CLFLUSH, chosen once at load). Unordered: call wmb_pmem()
 * before relying on durability.
 *
 * len == 0 does nothing, whatever addr is. A NULL addr with len > 0, or a range whose
 * end wraps around the address space, does nothing and sets errno to EINVAL with a
 * message for dax_errormsg(); no memory outside the range is ever touched.
 */
void wb_cache_pmem(const void *addr, size_t len);

/**
 * Order every earlier write-back and non-temporal store (SFENCE). One call covers any
 * number of wb_cache_pmem(), clear_pmem() and memcpy_to_pmem() calls before it.
 */
void wmb_pmem(void);

/**
 * Zero [addr, addr+len) and write it back: non-temporal stores for the 64-byte-aligned
 * body when len >= the threshold (DAXPMEM_MOVNT_THRESHOLD, default 256), ordinary
 * stores plus write-back for the unaligned head and tail and for short ranges.
 * Unordered until wmb_pmem().
 *
 * len == 0 does nothing. NULL with len > 0, or a wrapping range, does nothing and sets
 * errno to EINVAL.
 */
void clear_pmem(void *addr, size_t len);

/**
 * Copy len bytes from src to dst and write dst back (non-temporal stores above the
 * threshold, as clear_pmem()). Overlapping ranges are handled as by memmove.
 * Unordered until wmb_pmem(). Returns dst.
 *
 * len == 0 returns dst and does nothing. A NULL dst or src with len > 0, or a range
 * that wraps, copies nothing, returns NULL and sets errno to EINVAL.
 */
void *memcpy_to_pmem(void *dst, const void *src, size_t len);

/**
 * The write-back instruction in use: "clwb", "clflushopt" or "clflush". Chosen once
 * from CPUID; DAXPMEM_NO_CLWB=1 / DAXPMEM_NO_CLFLUSHOPT=1 (or PMDK's PMEM_NO_CLWB,
 * PMEM_NO_CLFLUSHOPT) veto the first two. A static string.
 */
const char *daxpmem_flush_name(void);

/**
 * The non-temporal store path of clear_pmem() and memcpy_to_pmem(): "avx512f", "avx2",
 * "sse2", or "none" when non-temporal stores are off (DAXPMEM_NO_MOVNT=1). A static
 * string.
 */
const char *daxpmem_nt_name(void);

/**
 * The write-back stride in bytes: the CLFLUSH line size from CPUID leaf 1
 * (EBX[15:8] * 8), 64 on every current x86-64 CPU.
 */
size_t daxpmem_cache_line_size(void);

/**
 * The library version, e.g. "0.1.0". A static string.
 */
const char *daxpmem_version(void);

/**
 * Map the file at path, read-write and shared, and return a handle (NULL with errno on
 * error). len 0 maps the whole file (an error for an empty file or with DAX_CREATE).
 * Without DAX_CREATE the file must exist and be at least len bytes (EINVAL otherwise).
 * `mode` is used when the file is created. Also maps device DAX (/dev/daxN.M): len 0
 * or a multiple of the device alignment, at most the device size.
 *
 * The mapping tries MAP_SHARED_VALIDATE|MAP_SYNC first (it works on a DAX filesystem)
 * and falls back to MAP_SHARED; it is placed at a 2 MiB-aligned address (1 GiB for 2
 * GiB and more) so the kernel can map huge pages, where libpmem's pmem_map_file would
 * place it (a reservation of len + the alignment; what is left free after the mapping
 * is what libpmem leaves). Flags: DAX_CREATE, DAX_EXCL, DAX_SPARSE, DAX_POPULATE, and
 * one DAX_TRACK_* mode.
 *
 * File descriptors: the file is closed before dax_map returns; no mapping keeps a
 * descriptor of its file (dax_punch_hole works through the memory), and splitting a
 * mapping (dax_unmap_range) opens none, so it cannot fail for want of descriptors.
 * The one exception is DAX_TRACK_UFFD (and DAX_TRACK_AUTO when it picks it): such a
 * mapping holds its userfaultfd and a /proc/self/pagemap descriptor (two, close-on-exec)
 * until it is unmapped; the pieces of a split share them.
 *
 * Errors: EINVAL (NULL path, unknown flags, DAX_EXCL/DAX_SPARSE without DAX_CREATE,
 * len 0 with DAX_CREATE or an empty file, len beyond the end of the file, not a regular
 * file or device DAX), EEXIST (DAX_EXCL and the file exists), ENOENT (missing without
 * DAX_CREATE), EISDIR, EACCES, ENOSPC, EOPNOTSUPP (a tracking mode unavailable here),
 * ENOMEM.
 */
dax_map_t *dax_map(const char *path, size_t len, unsigned int flags, mode_t mode);

/**
 * Map len bytes of the open file or device DAX `fd` from `offset` (a multiple of the
 * page size); len 0 maps to the end of the file. The fd must be open read-write; the
 * mapping keeps no descriptor (not even a duplicate: as dax_map), so the caller may
 * close its own as soon as this returns. Flags:
 * DAX_POPULATE and one DAX_TRACK_* mode (EINVAL for DAX_CREATE/EXCL/SPARSE).
 * Errors as dax_map(): EINVAL when offset + len lies beyond the end of the file (or
 * the device), for a character device that is not device DAX (/dev/zero), for anything
 * that is not a regular file or device DAX (a socket, a FIFO), for a device-DAX length
 * that is not a multiple of its alignment; and EBADF for a bad fd, EACCES for an fd not
 * open read-write.
 */
dax_map_t *dax_map_fd(int fd, off_t offset, size_t len, unsigned int flags);

/**
 * Unmap and release a mapping. Does not sync: dirty data not yet synced is left to the
 * kernel's own write-back (page cache) or the CPU caches (pmem), as after munmap.
 * If another thread is still inside a call on this mapping, the memory is unmapped when
 * that call returns (the address range stays reserved until then; after one of the
 * async-signal-safe calls, at the next daxpmem call that is not one).
 * Returns 0, or -1 with errno EINVAL (NULL), EBADF (not a live handle: unmapped already,
 * however long ago, or never returned by dax_map; nothing is touched through it), or
 * EDEADLK (called from a signal handler that interrupted a dax_sync of this mapping on
 * the same thread).
 */
int dax_unmap(dax_map_t *m);

/**
 * The mapping's address (NULL with errno EINVAL/EBADF for a bad handle).
 */
void *dax_addr(const dax_map_t *m);

/**
 * The mapping's length in bytes (0 with errno EINVAL/EBADF for a bad handle).
 */
size_t dax_len(const dax_map_t *m);

/**
 * 1 if a user-space write-back makes this mapping's data durable (MAP_SYNC on a DAX
 * filesystem, device DAX, or forced by DAXPMEM_FORCE_PMEM=1 / PMEM_IS_PMEM_FORCE=1),
 * 0 if durability needs msync, -1 with errno for a bad handle.
 */
int dax_is_pmem(const dax_map_t *m);

/**
 * Record that [addr, addr+len) was written: the next dax_sync covering it writes those
 * lines back. Lock-free; any thread. len 0 does nothing. Returns 0, or -1 with errno
 * EINVAL (NULL handle, NULL addr with len > 0, range not inside the mapping) or EBADF
 * (not a live handle, or unmapped or split by another thread during the call: mark
 * through the handle of the part, from dax_find()).
 */
int dax_mark_dirty(dax_map_t *m, const void *addr, size_t len);

/**
 * Make [addr, addr+len) durable: every line marked (or tracked) there before the call
 * is written back and fenced (pmem: no system call), or covered by one msync(MS_SYNC)
 * over the span of the dirty pages (page cache; none when nothing is dirty).
 * (NULL, 0) syncs the whole mapping; a non-NULL addr with len 0 does nothing.
 * Returns 0, or -1 with errno: EINVAL (bad handle, range not inside the mapping), or
 * msync's error (ENOSPC, EIO, ...). A failed write-back is sticky: the kernel may have
 * marked the pages clean although their data is not on disk, so a retry that succeeded
 * would prove nothing; every later dax_sync of the mapping (any range) returns -1 with
 * EIO, saying why in dax_errormsg(), until it is unmapped. The same holds when the file
 * was shrunk under a pmem mapping with dirty lines past the new end: every line still
 * backed by the file is written back, the pages past the end are lost (replaced by
 * zero pages, never a SIGBUS that kills the process), and the call returns -1 with EIO.
 * On the page cache a sync of a truncated range is one msync, which succeeds.
 */
int dax_sync(dax_map_t *m, const void *addr, size_t len);

/**
 * Punch a hole: [addr, addr+len) reads as zeros afterwards and the blocks of its whole
 * pages are freed (madvise MADV_REMOVE, the kernel's fallocate PUNCH_HOLE|KEEP_SIZE on
 * the mapped file: no descriptor needed); the parts of pages at the edges are zeroed
 * through the mapping. Dirty lines inside are dropped; the edges are synced; then an
 * msync(MS_SYNC) of the range commits the file's metadata as fdatasync would, so the
 * hole and the data around it are durable on return. len 0 does nothing. Returns 0, or
 * -1 with errno: EINVAL (bad handle or range; also a range locked with mlock, which
 * MADV_REMOVE refuses), EOPNOTSUPP (device DAX, or a filesystem without hole
 * punching), or the error of madvise/msync.
 */
int dax_punch_hole(dax_map_t *m, const void *addr, size_t len);

/**
 * Copy len bytes from src into the mapping at dst and mark them for the next dax_sync
 * (on pmem the body is written with non-temporal stores and needs only the sync's
 * fence). Overlap is handled as by memmove. len 0 does nothing. Returns 0, or -1 with
 * errno EINVAL (bad handle, NULL pointer, dst range not inside the mapping), EBADF
 * (not a live handle, or the mapping was unmapped or split by another thread during
 * the call: the bytes were written, but may be marked in no mapping: mark them again
 * through the handle of the part, from dax_find()), or EIO when part of dst lies past
 * the end of a file shrunk under the mapping (what was written there is lost; the rest
 * is copied; every later dax_sync fails, as there).
 */
int dax_memcpy(dax_map_t *m, void *dst, const void *src, size_t len);

/**
 * Fill len bytes of the mapping at dst with (unsigned char)c and mark them, as
 * dax_memcpy(). Returns 0, or -1 with errno EINVAL, EBADF or EIO (as dax_memcpy()).
 */
int dax_memset(dax_map_t *m, void *dst, int c, size_t len);

/**
 * Fill *out (whose `size` field the caller sets to sizeof(struct dax_stats)). Cheap
 * (no lock, a few loads per field; a page-table walk for huge_mapped_bytes of a DAX
 * mapping only) and without effect on what the next dax_sync costs.
 * Returns 0, or -1 with errno EINVAL (bad handle, NULL out, size smaller than the
 * first version of the struct).
 */
int dax_get_stats(const dax_map_t *m, struct dax_stats *out);

/**
 * The thread-local message of this thread's last failed daxpmem call ("" if none).
 * Valid until this thread's next failing call.
 */
const char *dax_errormsg(void);

/**
 * The mapping containing addr, or NULL with errno ENOENT.
 */
dax_map_t *dax_find(const void *addr);

/**
 * 1 if all of [addr, addr+len) lies in daxpmem mappings that are pmem (see
 * dax_is_pmem), else 0; len 0 gives 0. PMEM_IS_PMEM_FORCE=1 / DAXPMEM_FORCE_PMEM=1
 * make it 1 and PMEM_IS_PMEM_FORCE=0 makes it 0 for every non-empty range; as in
 * libpmem, PMEM_IS_PMEM_FORCE is read (with atoi) at the first call, not at load.
 */
int dax_range_is_pmem(const void *addr, size_t len);

/**
 * Write back [addr, addr+len) unless the CPU caches are persistent (eADR) or
 * DAXPMEM_NO_FLUSH=1 / PMEM_NO_FLUSH=1 (=0 forces the write-back): libpmem's
 * pmem_flush(). wb_cache_pmem() always writes back. Errors as wb_cache_pmem().
 */
void daxpmem_flush(const void *addr, size_t len);

/**
 * daxpmem_flush() then wmb_pmem() in one call: libpmem's pmem_persist(). The fence is
 * issued in every case (len 0 and errors included). Errors as wb_cache_pmem().
 */
void daxpmem_persist(const void *addr, size_t len);

/**
 * 1 if every NVDIMM region's persistence domain is the CPU cache (eADR), 0 if not or
 * if there is no NVDIMM bus, -1 if sysfs could not be read: libpmem's
 * pmem_has_auto_flush().
 */
int daxpmem_has_auto_flush(void);

/**
 * Copy len bytes (any overlap) and make them durable as the DAXPMEM_MEM_* flags say:
 * by default ordinary stores below the threshold and non-temporal stores above it,
 * write-back of what ordinary stores wrote, then a fence. Returns dst (also for len 0
 * or dst == src, which do nothing); NULL with errno EINVAL for unknown flags or a
 * NULL/wrapping range.
 */
void *daxpmem_memmove(void *dst, const void *src, size_t len, unsigned int flags);

/**
 * Fill len bytes with (unsigned char)c and make them durable as daxpmem_memmove().
 * Returns dst; NULL with errno EINVAL for unknown flags or a NULL/wrapping range.
 */
void *daxpmem_memset(void *dst, int c, size_t len, unsigned int flags);

/**
 * Unmap [addr, addr+len) like munmap(2) (len rounded up to pages), keeping the
 * registry true: daxpmem mappings wholly inside are released and their handles retired;
 * mappings partly inside are split, and the parts outside stay mapped and registered
 * under new handles (find them with dax_find), with their dirty lines. Dirty lines
 * inside the range are dropped. Returns 0, or -1 with errno EINVAL (unaligned addr, len
 * 0, wrapping range), ENOMEM (no registry room for the parts of a split mapping: nothing
 * is changed; or protecting them for DAX_TRACK_MPROTECT failed: that mapping stays
 * whole, under its handle) or munmap's error.
 */
int dax_unmap_range(void *addr, size_t len);

/**
 * 1 if path names a device DAX character device (/dev/daxN.M), 0 if it names anything
 * else, -1 with errno if it cannot be inspected (stat's errno; EINVAL for NULL).
 */
int dax_is_devdax(const char *path);

/**
 * What the open descriptor fd is (DAX_FD_*), as dax_map would see it: for layers that
 * decide how to map a descriptor (the preload library's mmap hook). Returns a DAX_FD_*
 * value, or -1 with errno (fstat's: EBADF for a descriptor that is not open).
 */
int dax_fd_kind(int fd);

/**
 * Set this thread's dax_errormsg() text (truncated to 1023 bytes) without touching
 * errno: for libraries layered on daxpmem (the libpmem compatibility library) that
 * report their own errors through it. NULL sets the empty message.
 */
void dax_set_errormsg(const char *msg);

/**
 * Adopt a shared, writable mapping the caller made with mmap(2): [addr, addr+len)
 * maps `fd` at `offset`. Afterwards it is a daxpmem mapping like one from dax_map():
 * dax_find() finds it, dax_sync() syncs it (user-space write-back if it is pmem, else
 * msync), and dax_unmap() unmaps it. Pass DAX_ADOPT_MAP_SYNC if it was mapped with
 * MAP_SYNC (the library cannot tell), plus one DAX_TRACK_* mode. The library only
 * looks at fd (keeps no duplicate): the caller may close it. The range is checked against what the kernel maps there
 * (/proc/self/maps): every page of it must be mapped shared, readable and writable,
 * from that very file (device and inode of fd) at the file offset matching `offset`.
 * Returns a handle, or NULL with errno EINVAL (unaligned or NULL addr, len 0,
 * unaligned offset, unknown flags, not a regular file or device DAX, a range that is
 * not such a mapping: private or anonymous memory, a stack, a read-only or private
 * mapping, another file or offset, a length past the mapping), EBADF, EACCES (fd not
 * open read-write), EEXIST (the range overlaps a daxpmem mapping). Device DAX: only
 * shared, read-write and no gap are checked.
 */
dax_map_t *dax_adopt(void *addr,
                     size_t len,
                     int fd,
                     off_t offset,
                     unsigned int flags);

/**
 * Drop a mapping from daxpmem without unmapping it: the handle is retired, the dirty
 * index discarded (sync first if it matters), and the memory stays mapped and becomes
 * the caller's again (writable and no longer tracked, also after DAX_TRACK_MPROTECT). Returns 0, or -1 with errno EINVAL/EBADF as dax_unmap().
 */
int dax_forget(dax_map_t *m);

/**
 * Process-wide counters kept by the core for the libraries layered on it (they hold no
 * state of their own): adds n to counter `id` and returns the new value (n = 0 reads
 * it). Returns UINT64_MAX with errno EINVAL for an unknown id or an add to a counter the
 * core keeps itself. Lock-free and async-signal-safe. Reading
 * DAXPMEM_COUNTER_LINES_WRITTEN_BACK sums the mappings' counts: exact, unless unmaps keep
 * overlapping the read (then it may miss the lines of a mapping being unmapped).
 */
uint64_t daxpmem_counter(unsigned int id, uint64_t n);

/**
 * Install a signal action through daxpmem when its handler is in place: for SIGSEGV
 * once a DAX_TRACK_MPROTECT mapping was made, and for SIGBUS once any mapping was made
 * (the library's SIGBUS handler turns a page lost under dax_sync/dax_memcpy/dax_memset
 * to a file shrunk under the mapping into EIO), the library's handler stays first and
 * passes every signal it does not own to `act` (stored, not installed), and *oldact
 * gets the action it passed them to before. Returns 0 when handled that way, 1 when
 * daxpmem has no handler for `sig` (then call the real sigaction yourself), -1 with
 * errno on error. For programs that install SIGSEGV or SIGBUS handlers after mapping,
 * and for the LD_PRELOAD library's sigaction/signal. The chained action runs with the
 * mask the kernel would give it (the interrupted mask and its sa_mask) except that
 * SIGSEGV and SIGBUS are never blocked; to SIG_DFL a fault is passed by restoring the
 * default (the access faults again), a signal sent by kill/raise/sigqueue by
 * restoring the default and sending it again.
 */
int dax_chain_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact);

/**
 * The daxpmem mapping that contains addr, or else the first one that overlaps
 * [addr, addr+len), or NULL. Unlike dax_find() it sets neither errno nor the message,
 * and never allocates: for hot paths such as the preload library's hooks.
 */
dax_map_t *dax_lookup(const void *addr, size_t len);

/**
 * The tracking mode in effect for the mapping (a DAX_TRACK_* value, DAX_TRACK_AUTO
 * already resolved), or -1 with errno for a bad handle. Cheap (dax_get_stats reads
 * the page tables).
 */
int dax_track_mode(const dax_map_t *m);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* DAXPMEM_H */
