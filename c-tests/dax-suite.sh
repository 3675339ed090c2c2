#!/bin/sh
# The fsdax suite (make test-dax), run inside the guest by c-tests/daxvm/run-suite.sh:
# /mnt/dax is ext4 -o dax on emulated pmem, /mnt/nodax a non-DAX ext4, /tmp tmpfs.
cd /test || exit 2
pass=0; fail=0
run() {
    name=$1; shift
    if "$@" > /tmp/out.txt 2>&1; then pass=$((pass+1)); echo "ok   $name"; sed 's/^/     /' /tmp/out.txt | grep -v 'checks, 0 failed' | head -8
    else fail=$((fail+1)); echo "FAIL $name"; sed 's/^/     /' /tmp/out.txt | tail -30; fi
}
mkdir -p /mnt/dax/t /mnt/nodax/t /tmp/t
run "daxpmem-info says DAX"          sh -c './daxpmem-info /mnt/dax /mnt/nodax /tmp | tee /tmp/info.txt && grep -A4 "^/mnt/dax:" /tmp/info.txt | grep -q "MAP_SYNC: works" && grep -A4 "^/mnt/nodax:" /tmp/info.txt | grep -q "MAP_SYNC: not supported"'
run "dax: pmem, MAP_SYNC, no msync"  ./test_dax_c /mnt/dax/t 1
run "nodax: page cache"              ./test_dax_c /mnt/nodax/t 0
run "tmpfs: page cache"              ./test_dax_c /tmp/t 0
run "flush primitives"               ./test_flush_c - -
run "map tests on /mnt/dax"          ./test_map_c /mnt/dax/t
run "map tests on /mnt/nodax"        ./test_map_c /mnt/nodax/t
run "map tests on /mnt/dax, clflush" env DAXPMEM_NO_CLWB=1 DAXPMEM_NO_CLFLUSHOPT=1 ./test_map_c /mnt/dax/t
# The shadow test (tests/seam.rs) on real DAX: writer threads store into random pages
# while a syncer syncs; a store left unwritten-back is a lost write. Explicit marks must
# be lossless. DAX_TRACK_MPROTECT is measured and recorded: DAX_TRACK_AUTO may pick a
# user-space mode on DAX only where this test proves it lossless (docs/tracking.md), so
# the suite checks that AUTO does not pick MPROTECT on DAX unless the run was lossless.
run "mprotect refused on /mnt/dax by default"        sh -c '! ./test_track_c /mnt/dax/t 2>&1 | grep -q "0 failed" && ./test_track_c /mnt/dax/t 2>&1 | grep -q "refused on a DAX mapping"'
# Allowed for measurement: DAXPMEM_ALLOW_MPROTECT_ON_DAX=1.
export DAXPMEM_ALLOW_MPROTECT_ON_DAX=1
run "mprotect tracking, one writer, /mnt/dax"          ./test_track_c /mnt/dax/t
run "mprotect tracking, one writer, /mnt/dax, 4 KiB"   ./test_track_c /mnt/dax/t nohuge
run "mprotect tracking, one writer, /mnt/nodax"        ./test_track_c /mnt/nodax/t
run "shadow, explicit marks, /mnt/dax: no lost write" env DAXPMEM_SHADOW_DIR=/mnt/dax/t DAXPMEM_SHADOW_SECS=4 ./seam shadow_explicit --test-threads=1 --nocapture
run "shadow, explicit marks, /mnt/nodax: no lost write" env DAXPMEM_SHADOW_DIR=/mnt/nodax/t DAXPMEM_SHADOW_SECS=2 ./seam shadow_explicit --test-threads=1 --nocapture
if env DAXPMEM_SHADOW_DIR=/mnt/dax/t DAXPMEM_SHADOW_SECS=8 ./seam shadow_mprotect --test-threads=1 --nocapture > /tmp/mp.txt 2>&1; then
    mp=lossless
else
    mp=lossy
fi
grep -E 'shadow /|writes lost' /tmp/mp.txt | sed 's/^/     /'
run "shadow, mprotect, /mnt/dax: $mp in this run; AUTO on DAX must not pick it unless lossless" \
    sh -c "./test_dax_c /mnt/dax/t 1 | grep 'DAX_TRACK_AUTO resolved to' | grep -q -e 0x300$( [ $mp = lossless ] && echo ' -e 0x100')"
run "mprotect on /mnt/dax: own SIGSEGV handler"      ./test_track_proc_c /mnt/dax/t mprotect segv
run "mprotect on /mnt/dax: NULL dereference dies"     ./test_track_proc_c /mnt/dax/t mprotect nullderef
run "mprotect on /mnt/dax: fork and exec"             ./test_track_proc_c /mnt/dax/t mprotect fork
run "file shrunk under a MAP_SYNC mapping on /mnt/dax: EIO, not SIGBUS" ./test_signals_c /mnt/dax/t truncate
run "mprotect on /mnt/dax: sent SIGSEGV, plain longjmp" sh -c './test_signals_c /mnt/dax/t killsegv && ./test_signals_c /mnt/dax/t longjmp'
run "dax_adopt checks on /mnt/dax"                     ./test_signals_c /mnt/dax/t adopt
run "uffd refused on /mnt/dax, works on /mnt/nodax"   sh -c './test_uffd_c /mnt/dax/t && ./test_uffd_c /mnt/nodax/t'
run "libpmem drop-in: pmem_map_file on /mnt/dax is pmem" ./pmem_dax /mnt/dax/t 1
run "libpmem drop-in: pmem_map_file on /mnt/nodax is not" ./pmem_dax /mnt/nodax/t 0
unset DAXPMEM_ALLOW_MPROTECT_ON_DAX
run "preload on /mnt/dax"            sh ./dax-part.sh
echo "test-dax: $pass passed, $fail failed"
[ "$fail" = 0 ]
