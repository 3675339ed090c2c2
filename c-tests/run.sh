#!/bin/bash
# Runs the C and C++ test programs in BIN (built against the installed library) over
# the environment variants that force every write-back instruction and copy path, and
# the mapping tests in each directory given. Prints "N passed, M failed" last.
#
# usage: c-tests/run.sh BIN DIR [DIR...]
set -u
BIN=$1; shift
pass=0; fail=0
run() {   # run NAME ENV... -- PROG ARGS...
    local name=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    if out=$(env "${envs[@]}" "$@" 2>&1); then
        pass=$((pass+1)); echo "ok   $name"
    else
        fail=$((fail+1)); echo "FAIL $name"; echo "$out" | sed 's/^/     /' | tail -30
    fi
}
has() { grep -qw "$1" /proc/cpuinfo; }
best=clflush; has clflushopt && best=clflushopt; has clwb && best=clwb
second=clflush; has clflushopt && second=clflushopt
nt=sse2; has avx2 && nt=avx2; has avx512f && nt=avx512f
for lang in c cxx; do
    t=$BIN/test_flush_$lang
    run "$lang flush default ($best, $nt)"        -- "$t" "$best" "$nt"
    run "$lang flush DAXPMEM_NO_CLWB"             DAXPMEM_NO_CLWB=1 -- "$t" "$second" -
    run "$lang flush PMEM_NO_CLWB"                PMEM_NO_CLWB=1 -- "$t" "$second" -
    run "$lang flush no clwb, no clflushopt"      DAXPMEM_NO_CLWB=1 DAXPMEM_NO_CLFLUSHOPT=1 -- "$t" clflush -
    run "$lang flush PMEM_NO_CLWB+CLFLUSHOPT"     PMEM_NO_CLWB=1 PMEM_NO_CLFLUSHOPT=1 -- "$t" clflush -
    has avx512f && has avx2 && run "$lang nt DAXPMEM_NO_AVX512F (avx2)" DAXPMEM_NO_AVX512F=1 -- "$t" - avx2
    run "$lang nt DAXPMEM_NO_AVX (sse2)"          DAXPMEM_NO_AVX=1 -- "$t" - sse2
    run "$lang nt DAXPMEM_NO_MOVNT (none)"        DAXPMEM_NO_MOVNT=1 -- "$t" - none
    run "$lang nt PMEM_NO_MOVNT (none)"           PMEM_NO_MOVNT=1 -- "$t" - none
    run "$lang nt threshold 0"                    DAXPMEM_MOVNT_THRESHOLD=0 -- "$t" - "$nt"
    run "$lang nt threshold 1 MiB"                PMEM_MOVNT_THRESHOLD=1048576 -- "$t" - "$nt"
    for d in "$@"; do
        run "$lang map in $d"                     -- "$BIN/test_map_$lang" "$d"
        run "$lang map in $d, forced pmem"        DAXPMEM_FORCE_PMEM=1 -- "$BIN/test_map_$lang" "$d"
        run "$lang map in $d, forced pmem, no flush" DAXPMEM_FORCE_PMEM=1 DAXPMEM_NO_FLUSH=1 -- "$BIN/test_map_$lang" "$d"
        run "$lang map in $d, clflush"            DAXPMEM_FORCE_PMEM=1 DAXPMEM_NO_CLWB=1 DAXPMEM_NO_CLFLUSHOPT=1 -- "$BIN/test_map_$lang" "$d"
        run "$lang descriptors and placement in $d" -- "$BIN/test_fds_$lang" "$d"
        run "$lang mprotect tracking in $d"       -- "$BIN/test_track_$lang" "$d"
        run "$lang uffd tracking in $d"           -- "$BIN/test_uffd_$lang" "$d"
        run "$lang uffd tracking in $d, forced pmem" DAXPMEM_FORCE_PMEM=1 -- "$BIN/test_uffd_$lang" "$d"
        for w in killsegv longjmp truncate mapfd adopt; do
            run "$lang signals in $d: $w"          -- "$BIN/test_signals_$lang" "$d" $w
        done
        run "$lang signals in $d: truncate, forced pmem" DAXPMEM_FORCE_PMEM=1 -- "$BIN/test_signals_$lang" "$d" truncate
        [ $lang = c ] && run "c signals in $d: nested" -- "$BIN/test_signals_c" "$d" nested
        for md in mprotect uffd; do
            for w in segv nullderef fork; do
                run "$lang $md tracking in $d: $w"   -- "$BIN/test_track_proc_$lang" "$d" $md $w
            done
        done
    done
done
# vm.max_map_count scale: >= 100 000 scattered pages in a 1 GiB sparse file (tmpfs dir).
for md in mprotect uffd; do
    run "c $md tracking: 131072 scattered pages" -- "$BIN/test_track_proc_c" "$1" $md scatter
done
echo "c-tests: $pass passed, $fail failed"
[ "$fail" = 0 ]
