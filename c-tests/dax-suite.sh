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
echo "test-dax: $pass passed, $fail failed"
[ "$fail" = 0 ]
