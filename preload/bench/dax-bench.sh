#!/bin/sh
# preload/bench/dax-bench.sh (run in the fsdax guest by `make preload-bench-dax`): the
# msync benchmark of run_bench.sh on /mnt/dax (ext4 -o dax): pl_bench (writes k random
# 64-byte records into a 64 MiB shared mapping, msync after each group) without and with
# the preload, interleaved; medians; ratio plain / preload. With the preload the mapping
# is upgraded to MAP_SYNC and adopted with DAX_TRACK_AUTO, which is DAX_TRACK_KERNEL on
# DAX today (docs/tracking.md): the msync still reaches the kernel, so the ratio shows
# what the preload costs there, not a user-space win. The last column is the opt-in
# DAXPMEM_PRELOAD_TRACK=mprotect (with DAXPMEM_ALLOW_MPROTECT_ON_DAX=1): msync becomes a
# user-space write-back of the pages written since the last one. Under TCG: read ratios only.
cd /test || exit 2
PRE=/test/lib/libdaxpmem-preload.so
D=/mnt/dax/plbench; mkdir -p $D
REPS=${REPS:-11}
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| fs | k records/group | groups | plain µs/group | preload (default: MAP_SYNC upgrade) µs/group | plain/preload | preload, DAXPMEM_PRELOAD_MAP_SYNC=0 µs/group | plain/no-upgrade | preload, TRACK=mprotect µs/group | plain/mprotect |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for k in 1 64 1024; do
    g=$((60 / (1 + k / 256) + 10))
    : > /tmp/a; : > /tmp/b; : > /tmp/c; : > /tmp/d
    r=0
    while [ $r -lt "$REPS" ]; do
        env -u LD_PRELOAD ./pl_bench $D/b 64 $k $g >> /tmp/a || exit 1
        env LD_PRELOAD=$PRE ./pl_bench $D/b 64 $k $g >> /tmp/b || exit 1
        env LD_PRELOAD=$PRE DAXPMEM_PRELOAD_MAP_SYNC=0 ./pl_bench $D/b 64 $k $g >> /tmp/c || exit 1
        env LD_PRELOAD=$PRE DAXPMEM_PRELOAD_TRACK=mprotect DAXPMEM_ALLOW_MPROTECT_ON_DAX=1 ./pl_bench $D/b 64 $k $g >> /tmp/d || exit 1
        r=$((r+1))
    done
    a=$(med < /tmp/a); b=$(med < /tmp/b); c=$(med < /tmp/c); d=$(med < /tmp/d)
    echo "| ext4 -o dax | $k | $g | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}') | $c | $(awk -v a="$a" -v b="$c" 'BEGIN {printf "%.3f", a / b}') | $d | $(awk -v a="$a" -v b="$d" 'BEGIN {printf "%.3f", a / b}') |"
done
echo
env LD_PRELOAD=$PRE DAXPMEM_STATS=1 ./pl_bench $D/b 64 64 20 > /dev/null
env LD_PRELOAD=$PRE DAXPMEM_STATS=1 DAXPMEM_PRELOAD_TRACK=mprotect DAXPMEM_ALLOW_MPROTECT_ON_DAX=1 ./pl_bench $D/b 64 64 20 > /dev/null
echo "kernel $(uname -r) (QEMU TCG guest), $(date -u +%Y-%m-%d), medians of $REPS interleaved runs"
