#!/bin/sh
# preload/bench/run_bench.sh TPREFIX OUTDIR DISKDIR TMPFSDIR [REPS]: pl_bench with and
# without the preload, interleaved, on a disk filesystem and on tmpfs; medians; a
# Markdown table of ratios (plain time / preload time: >= 0.95 means no measurable
# cost). Columns: the default preload (non-DAX files are left to the kernel: the msync
# hook looks the range up and passes it on) and DAXPMEM_PRELOAD_ADOPT=all (the file is
# adopted and msync goes through dax_sync, which issues the kernel's msync).
set -u
TPREFIX=$(cd "$1" && pwd); OUT=$2; DISK=$3; SHM=$4; REPS=${5:-7}
PRE=$TPREFIX/lib/libdaxpmem-preload.so
mkdir -p "$OUT" "$DISK" "$SHM" || exit 2
${CC:-cc} -std=c11 ${CWARN:--Wall -Wextra -Werror -pedantic} -O2 -o "$OUT/pl_bench" "$(dirname "$0")/pl_bench.c" || exit 2
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
echo "| fs | MiB | k records/group | groups | plain µs/group | preload µs/group | plain/preload | adopt=all µs/group | plain/adopt=all |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for fs in disk tmpfs; do
    [ $fs = disk ] && D=$DISK || D=$SHM
    for cfg in "64 1" "64 64" "64 1024"; do
        set -- $cfg; mib=$1; k=$2
        if [ $fs = disk ]; then g=$((200 / (1 + k / 64) + 20)); else g=$((20000 / (1 + k / 16) + 200)); fi
        : > "$OUT/a"; : > "$OUT/b"; : > "$OUT/c"
        r=0
        while [ $r -lt "$REPS" ]; do
            env -u LD_PRELOAD "$OUT/pl_bench" "$D/b" $mib $k $g >> "$OUT/a" || exit 1
            env LD_PRELOAD="$PRE" "$OUT/pl_bench" "$D/b" $mib $k $g >> "$OUT/b" || exit 1
            env LD_PRELOAD="$PRE" DAXPMEM_PRELOAD_ADOPT=all "$OUT/pl_bench" "$D/b" $mib $k $g >> "$OUT/c" || exit 1
            r=$((r+1))
        done
        a=$(med < "$OUT/a"); b=$(med < "$OUT/b"); c=$(med < "$OUT/c")
        echo "| $fs | $mib | $k | $g | $a | $b | $(ratio $a $b) | $c | $(ratio $a $c) |"
    done
done
echo
echo "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs; kernel $(uname -r); $(date -u +%Y-%m-%d); medians of $REPS interleaved runs"
rm -rf "$SHM"
