#!/bin/sh
# preload/tests/dax-part.sh -- the preload's part of the fsdax suite (in the guest).
# Run it (sh dax-part.sh) with the current directory holding the test binaries
# pl_writer, pl_reader and pl_daxmap (built by make preload-test into
# target/tmp/preload-tests) and LD_LIBRARY_PATH naming the directory that holds
# libdaxpmem.so.0 and libdaxpmem-preload.so. /mnt/dax must be ext4 -o dax.
# Asserts correctness only: a preloaded program's msync of a file on /mnt/dax leaves
# data another process reads back with pread, with the same output as without the
# preload. Prints the DAXPMEM_STATS line (today the adopted mappings are
# DAX_TRACK_AUTO = DAX_TRACK_KERNEL, so each dax_sync still issues the kernel's msync).
# Last line: "preload-dax: N passed, M failed"; exit status 0 only if all passed.
pl_pass=0; pl_fail=0
PL_PRE=
for d in $(echo "${LD_LIBRARY_PATH:-}" | tr ':' ' '); do
    [ -f "$d/libdaxpmem-preload.so" ] && { PL_PRE=$d/libdaxpmem-preload.so; break; }
done
[ -n "$PL_PRE" ] || { echo "dax-part.sh: no libdaxpmem-preload.so on LD_LIBRARY_PATH"; echo "preload-dax: 0 passed, 1 failed"; exit 1; }
PL_D=/mnt/dax/preload; mkdir -p "$PL_D" /tmp/preload-dax
pl_run() {
    pl_name=$1; shift
    if "$@" > /tmp/preload-dax/out 2>&1; then pl_pass=$((pl_pass+1)); echo "ok   $pl_name"; sed 's/^/     /' /tmp/preload-dax/out | grep 'daxpmem-preload\|pmem\|page cache' | tail -3
    else pl_fail=$((pl_fail+1)); echo "FAIL $pl_name"; sed 's/^/     /' /tmp/preload-dax/out | tail -30; fi
}
# same COUNT ENV...: pl_writer's output (msync results + pread hashes after every msync) with
# the preload equals its output without
pl_same() {
    pl_n=$1; shift
    env -u LD_PRELOAD ./pl_writer "$PL_D/w" ./pl_reader > /tmp/preload-dax/base || return 1
    env LD_PRELOAD="$PL_PRE" DAXPMEM_STATS=1 "$@" ./pl_writer "$PL_D/w" ./pl_reader > /tmp/preload-dax/pre 2> /tmp/preload-dax/err || return 1
    diff -u /tmp/preload-dax/base /tmp/preload-dax/pre || return 1
    grep -q 'reader:' /tmp/preload-dax/pre || return 1
    grep 'daxpmem-preload' /tmp/preload-dax/err | tail -n 1
    # the writer's own line: every msync went through the preload
    grep 'daxpmem-preload' /tmp/preload-dax/err | tail -n 1 | grep -q "msync calls $pl_n,"
}
pl_run "preload: msync of a file on /mnt/dax, data read back (MAP_SYNC)" pl_same 41
pl_run "preload: same, DAXPMEM_PRELOAD_MAP_SYNC=0" pl_same 41 DAXPMEM_PRELOAD_MAP_SYNC=0
pl_run "preload: same, DAXPMEM_PRELOAD_DISABLE=1" pl_same 0 DAXPMEM_PRELOAD_DISABLE=1
# Opt-in mprotect tracking (not the default on DAX: docs/tracking.md): every MS_SYNC of
# an adopted mapping is a user-space write-back of the pages written since the last one,
# no system call, and another process still reads the data back (the 14 others are
# MS_INVALIDATE, a range over a hole, and one after mremap: the kernel's, as on the host).
pl_user() {
    pl_same 41 DAXPMEM_PRELOAD_TRACK=mprotect DAXPMEM_ALLOW_MPROTECT_ON_DAX=1 || return 1
    grep 'daxpmem-preload' /tmp/preload-dax/err | tail -n 1 | grep -Eq 'handled in user space 27, passed to the kernel 14, lines written back [1-9]'
}
pl_run "preload: DAXPMEM_PRELOAD_TRACK=mprotect on /mnt/dax: every MS_SYNC in user space, no real msync for them" pl_user
pl_run "preload: dax_map + plain msync on /mnt/dax becomes dax_sync" env LD_PRELOAD="$PL_PRE" DAXPMEM_STATS=1 ./pl_daxmap "$PL_D" 1
pl_run "no preload: dax_map + plain msync on /mnt/dax untouched" env -u LD_PRELOAD ./pl_daxmap "$PL_D" 0
rm -rf "$PL_D" /tmp/preload-dax
echo "preload-dax: $pl_pass passed, $pl_fail failed"
[ "$pl_fail" = 0 ]
