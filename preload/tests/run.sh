#!/bin/sh
# preload/tests/run.sh TPREFIX TBIN DISKDIR -- the tests of libdaxpmem-preload.so
# (make preload-test). TPREFIX holds the installed core and preload (lib/), TBIN is
# where the test programs are built, DISKDIR a scratch directory on a disk filesystem;
# tmpfs scratch is /dev/shm. Ends with "preload-tests: N passed, M failed".
# Env: CC, CWARN, PRELOAD_EXPORTS (the symbols the library must export, space-separated).
set -u
[ $# = 3 ] || { echo "usage: $0 TPREFIX TBIN DISKDIR" >&2; exit 2; }
mkdir -p "$2" "$3" || exit 2
TPREFIX=$(cd "$1" && pwd); TBIN=$(cd "$2" && pwd); DISK=$(cd "$3" && pwd)
SRC=$(cd "$(dirname "$0")" && pwd)
LIB=$TPREFIX/lib
PRE=$LIB/libdaxpmem-preload.so
SHM=/dev/shm/daxpmem-preload-tests
CC=${CC:-cc}
CWARN=${CWARN:--Wall -Wextra -Werror -pedantic}
EXPORTS=${PRELOAD_EXPORTS:-madvise mmap mmap64 mremap msync munmap}
pass=0; fail=0
ulimit -c 0 2>/dev/null

[ -f "$PRE" ] || { echo "no $PRE" >&2; exit 2; }
rm -rf "$TBIN"/* "$DISK"/* "$SHM"
mkdir -p "$SHM" || exit 2
PC="env PKG_CONFIG_PATH=$LIB/pkgconfig pkg-config"
DAXFLAGS="$($PC --cflags --libs daxpmem) -Wl,-rpath,$LIB"
build() { # name [extra flags]
    n=$1; shift
    $CC -std=c11 $CWARN -O1 -o "$TBIN/$n" "$SRC/$n.c" "$@" || { echo "build of $n failed"; exit 2; }
}
build pl_reader
build pl_writer
build pl_fork
build pl_segv
build pl_threads -pthread
build pl_errno $DAXFLAGS
build pl_daxmap $DAXFLAGS
$CC -std=c11 $CWARN -O1 -fPIC -shared -o "$TBIN/libpl_early.so" "$SRC/pl_early.c" || exit 2

run() { # name command...: passes when the command exits 0
    name=$1; shift
    if "$@" > "$TBIN/out.txt" 2>&1; then
        pass=$((pass+1)); echo "ok   $name"
    else
        fail=$((fail+1)); echo "FAIL $name"; sed 's/^/     /' "$TBIN/out.txt" | tail -25
    fi
}
P() { env LD_PRELOAD="$PRE" "$@"; }        # with the preload
N() { env -u LD_PRELOAD "$@"; }            # without
# same_output NAME-OF-FILE "ENV..." PROGRAM ARGS: stdout (+ exit status) with the
# preload and ENV equals stdout without the preload; stderr is kept apart.
same() {
    envs=$1; shift
    N "$@" > "$TBIN/base.out" 2> "$TBIN/base.err"; echo "exit $?" >> "$TBIN/base.out"
    env LD_PRELOAD="$PRE" $envs "$@" > "$TBIN/pre.out" 2> "$TBIN/pre.err"; echo "exit $?" >> "$TBIN/pre.out"
    if ! diff -u "$TBIN/base.out" "$TBIN/pre.out"; then cat "$TBIN/pre.err"; return 1; fi
    if grep 'ERROR: ld.so' "$TBIN/pre.err"; then return 1; fi
    grep -q . "$TBIN/base.out"
}

# --- the library itself ----------------------------------------------------------
check_symbols() {
    got=$(nm -D --defined-only "$PRE" | awk '{print $3}' | sort | tr '\n' ' ')
    want=$(for s in $EXPORTS; do echo $s; done | sort | tr '\n' ' ')
    echo "exported: $got"; [ "$got" = "$want" ] || { echo "want:     $want"; return 1; }
    # the core must not interpose anything itself
    if nm -D --defined-only "$LIB/libdaxpmem.so.0" | awk '{print $3}' | grep -Exq 'msync|mmap|mmap64|munmap|mremap|madvise|sigaction|signal'; then
        echo "the core exports an interposable libc function"; return 1; fi
    readelf -d "$PRE" | grep -q 'SONAME.*\[libdaxpmem-preload.so.0\]' &&
    readelf -d "$PRE" | grep -q 'NEEDED.*\[libdaxpmem.so.0\]' &&
    readelf -d "$PRE" | grep -q 'RUNPATH.*\[\$ORIGIN\]' || { readelf -d "$PRE"; return 1; }
    # no state of its own: the only data/bss object of the code is the table R_
    $CC -std=c11 $CWARN -O2 -fPIC -fvisibility=hidden -I"$TPREFIX/include" -c "$SRC/../preload.c" -o "$TBIN/preload.o" || return 1
    objs=$(nm "$TBIN/preload.o" | awk '$2 ~ /^[bBdDgGsS]$/ {print $3}' | tr '\n' ' ')
    echo "data objects: $objs"; [ "$objs" = "R_ " ]
}
run "exported symbols, soname, DT_NEEDED, RUNPATH \$ORIGIN, no state" check_symbols
run "loads by itself (core found through \$ORIGIN)" sh -c "env -u LD_LIBRARY_PATH LD_PRELOAD=$PRE /bin/true"

# --- unmodified programs: same output, same file contents after every msync ----------
for fs in disk shm; do
    [ $fs = disk ] && D=$DISK || D=$SHM
    for envs in "" "DAXPMEM_PRELOAD_ADOPT=all" "DAXPMEM_PRELOAD_ADOPT=all DAXPMEM_FORCE_PMEM=1" \
                "DAXPMEM_PRELOAD_DISABLE=1" "DAXPMEM_PRELOAD_MAP_SYNC=0"; do
        run "writer on $fs, same output and file contents ${envs:-(defaults)}" \
            same "$envs" "$TBIN/pl_writer" "$D/w" "$TBIN/pl_reader"
    done
done

# --- msync/munmap/madvise/mremap/mmap return values and errno --------------------------
for envs in "" "DAXPMEM_PRELOAD_ADOPT=all" "DAXPMEM_FORCE_PMEM=1" "DAXPMEM_PRELOAD_ADOPT=all DAXPMEM_FORCE_PMEM=1"; do
    run "errno matrix identical ${envs:-(defaults)}" same "$envs" "$TBIN/pl_errno" "$SHM"
done
run "errno matrix identical on disk, adopt=all" same "DAXPMEM_PRELOAD_ADOPT=all" "$TBIN/pl_errno" "$DISK"

# --- the known-mapping path: dax_map + plain msync -----------------------------------
run "dax_map + msync without the preload: no dax_sync" N "$TBIN/pl_daxmap" "$SHM" 0
run "dax_map + msync with the preload: dax_sync (tmpfs)" P env DAXPMEM_STATS=1 "$TBIN/pl_daxmap" "$SHM" 1
run "dax_map + msync with the preload: dax_sync (disk)" P env DAXPMEM_STATS=1 "$TBIN/pl_daxmap" "$DISK" 1
run "dax_map + msync, FORCE_PMEM: dax_sync, zero msync" P env DAXPMEM_STATS=1 DAXPMEM_FORCE_PMEM=1 "$TBIN/pl_daxmap" "$SHM" 1
run "dax_map + msync, DAXPMEM_PRELOAD_DISABLE=1: untouched" P env DAXPMEM_PRELOAD_DISABLE=1 "$TBIN/pl_daxmap" "$SHM" 0

# --- signals ----------------------------------------------------------------------------
for mode in sigaction signal; do
    run "own SIGSEGV handler ($mode)" same "" "$TBIN/pl_segv" $mode "$SHM/segv"
    run "own SIGSEGV handler ($mode), adopt=all" same "DAXPMEM_PRELOAD_ADOPT=all" "$TBIN/pl_segv" $mode "$SHM/segv"
done
null_deref() {
    same "" "$TBIN/pl_segv" null "$SHM/segv" || return 1
    cat "$TBIN/pre.out"; grep -q '^exit 139$' "$TBIN/pre.out"
}
run "NULL dereference dies with SIGSEGV the same way" null_deref

# --- fork, exec, threads ----------------------------------------------------------------
run "fork + exec from a preloaded process" same "DAXPMEM_PRELOAD_ADOPT=all" "$TBIN/pl_fork" "$SHM/f" "$TBIN/pl_reader"
fork_stats() {
    same "DAXPMEM_STATS=1" "$TBIN/pl_fork" "$SHM/f" "$TBIN/pl_reader" || return 1
    cat "$TBIN/pre.err"
    # the parent, the child that exits, and the two exec'ed readers
    [ "$(grep -c '^daxpmem-preload\[[0-9]*\]: msync calls' "$TBIN/pre.err")" = 4 ]
}
run "fork + exec: each process prints its stats line" fork_stats
run "threads msync + mmap/munmap concurrently" same "" "$TBIN/pl_threads" "$SHM/t"
run "threads, adopt=all" same "DAXPMEM_PRELOAD_ADOPT=all" "$TBIN/pl_threads" "$SHM/t"
run "threads on disk, adopt=all" same "DAXPMEM_PRELOAD_ADOPT=all" "$TBIN/pl_threads" "$DISK/t"

# --- configuration ------------------------------------------------------------------
stats_line() {
    same "DAXPMEM_STATS=1 $1" "$TBIN/pl_writer" "$SHM/w" "$TBIN/pl_reader" || return 1
    # the readers print theirs too (0 msync calls); the writer exits last
    l=$(grep '^daxpmem-preload\[[0-9]*\]: msync calls' "$TBIN/pre.err" | tail -n 1)
    echo "$l"
    echo "$l" | grep -Eq "$2"
}
run "DAXPMEM_STATS=1 prints the line" stats_line "" \
    'msync calls 41, handled in user space 0, passed to the kernel 41, lines written back 0$'
run "DAXPMEM_STATS=1, adopt=all: handled through dax_sync" stats_line "DAXPMEM_PRELOAD_ADOPT=all" \
    'msync calls 41, handled in user space 8, passed to the kernel 33, lines written back [0-9]+$'
run "DAXPMEM_PRELOAD_TRACK=mprotect, adopt=all, FORCE_PMEM: every MS_SYNC in user space (the 14 MS_INVALIDATE, hole and after-mremap ones: kernel)" stats_line \
    "DAXPMEM_PRELOAD_ADOPT=all DAXPMEM_FORCE_PMEM=1 DAXPMEM_PRELOAD_TRACK=mprotect" \
    'msync calls 41, handled in user space 27, passed to the kernel 14, lines written back [1-9][0-9]*$'
run "DAXPMEM_PRELOAD_DISABLE=1: nothing seen" stats_line "DAXPMEM_PRELOAD_DISABLE=1" \
    'msync calls 0, handled in user space 0, passed to the kernel 0, lines written back 0$'
early() {
    env LD_PRELOAD="$PRE $TBIN/libpl_early.so" DAXPMEM_STATS=1 /bin/true > "$TBIN/e.out" 2>&1
    N env LD_PRELOAD="$TBIN/libpl_early.so" /bin/true > "$TBIN/e0.out" 2>&1
    cat "$TBIN/e.out"
    grep -q '^early: msync bad flags -1/22, msync 0, unaligned -1/22, madvise 0, mremap+munmap 0$' "$TBIN/e.out" &&
    grep -q 'msync calls 0,' "$TBIN/e.out" && grep -q '^early:' "$TBIN/e0.out"
}
run "hooks called before the constructor: raw system calls" early

# --- a third-party program: gdbmtool (Debian package gdbmtool, libgdbm6) ---------------
gdbm() {
    if ! command -v gdbmtool > /dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdbmtool > "$TBIN/apt.log" 2>&1 || { tail "$TBIN/apt.log"; return 1; }
        else
            echo "gdbmtool not installed (apt-get install gdbmtool)"; return 1
        fi
    fi
    i=0; : > "$TBIN/gdbm.in"
    echo "open $1/g.db" >> "$TBIN/gdbm.in"
    while [ $i -lt 400 ]; do echo "store key$i value-$i-$(($i * 7919 % 1000))" >> "$TBIN/gdbm.in"; i=$((i+1)); done
    echo "delete key17" >> "$TBIN/gdbm.in"; echo "sync" >> "$TBIN/gdbm.in"
    echo "count" >> "$TBIN/gdbm.in"; echo "fetch key399" >> "$TBIN/gdbm.in"; echo "close" >> "$TBIN/gdbm.in"
    for mode in base pre; do
        rm -f "$1/g.db" "$1/g.dump"
        if [ $mode = base ]; then N gdbmtool -N -q -n -s -f "$TBIN/gdbm.in" "$1/g.db" > "$TBIN/g.$mode" 2> "$TBIN/g.$mode.err"
        else env LD_PRELOAD="$PRE" DAXPMEM_STATS=1 $2 gdbmtool -N -q -n -s -f "$TBIN/gdbm.in" "$1/g.db" > "$TBIN/g.$mode" 2> "$TBIN/g.$mode.err"; fi
        echo "exit $?" >> "$TBIN/g.$mode"
        # another process reads the database back (without the preload)
        N gdbmtool -N -q -r "$1/g.db" list | sort >> "$TBIN/g.$mode"
    done
    diff -u "$TBIN/g.base" "$TBIN/g.pre" || return 1
    cat "$TBIN/g.pre.err"; grep -c . "$TBIN/g.pre" | sed 's/^/lines: /'
    grep -q '^There are 399 items' "$TBIN/g.pre" &&
    grep -Eq 'msync calls [1-9][0-9]*,' "$TBIN/g.pre.err"
}
run "third party: gdbmtool -s (msync per write) on tmpfs" gdbm "$SHM" ""
run "third party: gdbmtool on disk, adopt=all (dax_sync path)" gdbm "$DISK" "DAXPMEM_PRELOAD_ADOPT=all"

rm -rf "$SHM"
echo "preload-tests: $pass passed, $fail failed"
[ "$fail" = 0 ]
