#!/bin/bash
# The torture suite of issue 13: every case is one run of a program built against the
# installed library, under `timeout` (a hang is a failure), reported as
#   ok   NAME | FAIL NAME (why: hang / killed by SIGxxx / exit N) | skip NAME: reason
# and a closing line "torture: N passed, M failed". Exits non-zero when a case failed.
#
# usage: c-tests/torture/run.sh BIN DIR
#   BIN   holds `torture` and `plfork` (make torture builds them)
#   DIR   a scratch directory on tmpfs (the tracking cases need a non-DAX tmpfs)
# env:   TORTURE_PRELOAD  libdaxpmem-preload.so (the preload cases skip without it)
#        TORTURE_TIMEOUT  seconds per case (default 10)
#        TORTURE_ONLY     an extended regex: run only the cases whose name matches
# The root-only case (a failed msync on a full loop device) skips when not root.
set -u
[ $# -ge 2 ] || { echo "usage: $0 BIN DIR" >&2; exit 2; }
BIN=$1; DIR=$2
T=${TORTURE_TIMEOUT:-10}
ONLY=${TORTURE_ONLY:-}
PRE=${TORTURE_PRELOAD:-}
pass=0; fail=0; skipped=0
ulimit -c 0 2>/dev/null
mkdir -p "$DIR" || exit 2
OUT=$(mktemp "${TMPDIR:-/tmp}/torture-out.XXXXXX") || exit 2
trap 'rm -f "$OUT"' EXIT

why() { # exit status of `timeout` -> words
    local rc=$1
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "hang: killed after ${T}s"
    elif [ "$rc" -gt 128 ]; then echo "killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
    else echo "exit $rc"; fi
}
# run NAME [VAR=VALUE...] -- PROGRAM ARGS...
run() {
    local name=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    if [ -n "$ONLY" ] && ! [[ $name =~ $ONLY ]]; then return; fi
    rm -rf "${DIR:?}"/* 2>/dev/null
    # (the group's 2>/dev/null takes bash's own "Segmentation fault" job notice)
    { timeout -s KILL "$T" env "${envs[@]}" "$@" > "$OUT" 2>&1; } 2>/dev/null
    local rc=$?
    if [ $rc = 0 ]; then
        pass=$((pass+1)); echo "ok   $name"
    elif [ $rc = 77 ]; then
        skipped=$((skipped+1)); echo "skip $name: $(tail -1 "$OUT")"
    else
        fail=$((fail+1)); echo "FAIL $name ($(why $rc))"
        echo "     reproduce: ${envs[*]}${envs[*]:+ }timeout -s KILL $T $*"
        sed 's/^/     /' "$OUT" | tail -12
    fi
}
skip() {
    if [ -n "$ONLY" ] && ! [[ $1 =~ $ONLY ]]; then return; fi
    skipped=$((skipped+1)); echo "skip $1: $2"
}
X=$BIN/torture

# 1. every handle call racing dax_unmap of the same handle; dax_unmap_range racing it
for op in mark sync memcpy memset stats addr len is_pmem track_mode; do
    run "race_$op" -- "$X" "race_$op" "$DIR"
done
for op in sync mark memset; do   # the same against dax_unmap_range of a middle part (a split)
    run "race_${op}_split" -- "$X" "race_${op}_split" "$DIR"
done
run unmap_range_whole -- "$X" unmap_range_whole "$DIR"
run unmap_range_middle -- "$X" unmap_range_middle "$DIR"

# 2. stale and forged handles
run stale_handle -- "$X" stale_handle "$DIR"
for k in literal roprot heap one unmapped; do
    for call in unmap sync addr; do run "forged_${k}_$call" -- "$X" "forged_${k}_$call" "$DIR"; done
done

# 3. fork storms against unmap, mark, lookup and sync on other threads
for v in a-map-unmap b-mark c-lookup d-sync-stats; do run "fork_$v" -- "$X" "fork_$v" "$DIR"; done

# 4. signal handlers re-entering the library on the interrupted thread
for v in sync_in_sync stats_in_sync sync_in_mark map_in_find async_safe; do
    run "signal_$v" -- "$X" "signal_$v" "$DIR"
done

# 5. DAX_TRACK_MPROTECT against the program's own signal use
run mp_kill_segv -- "$X" mp_kill_segv "$DIR"
run mp_own_siglongjmp -- "$X" mp_own_siglongjmp "$DIR"
run mp_own_longjmp -- "$X" mp_own_longjmp "$DIR"
if [ -n "$PRE" ] && [ -f "$PRE" ]; then  # plain sigaction: the preload chains it
    run mp_own_plain-siglongjmp_preload LD_PRELOAD="$PRE" -- "$X" mp_own_plain-siglongjmp "$DIR"
    run mp_own_plain-longjmp_preload LD_PRELOAD="$PRE" -- "$X" mp_own_plain-longjmp "$DIR"
else
    skip mp_own_plain-longjmp_preload "no TORTURE_PRELOAD library"
fi
run mp_store_in_handler -- "$X" mp_store_in_handler "$DIR"

# 6. kernel writes (read from a pipe, recv from a socketpair) into each tracking mode
for how in read recv; do
    for mode in mprotect uffd kernel explicit; do run "kw_${how}_$mode" -- "$X" "kw_${how}_$mode" "$DIR"; done
done

# 7. a failed msync, then a retry: ext4 on a loop device whose image lives on a tmpfs
#    too small for it (the fs accepts the writes, the device fails them). Root only.
enospc() {
    local name=enospc_retry
    if [ -n "$ONLY" ] && ! [[ $name =~ $ONLY ]]; then return; fi
    if [ "$(id -u)" != 0 ]; then skip $name "not root (needs a loop device and mount)"; return; fi
    for tool in mkfs.ext4 losetup mount umount truncate; do
        command -v $tool >/dev/null || { skip $name "no $tool"; return; }
    done
    local W
    W=$(mktemp -d /tmp/daxpmem-torture-enospc.XXXXXX) || { skip $name "mktemp"; return; }
    # in a subshell whose EXIT trap always unmounts and detaches
    (
        LOOP=
        cleanup() {
            mountpoint -q "$W/mnt" && umount -l "$W/mnt"
            [ -n "$LOOP" ] && losetup -d "$LOOP"
            mountpoint -q "$W/back" && umount -l "$W/back"
            rm -rf "$W"
        }
        trap cleanup EXIT
        mkdir -p "$W/back" "$W/mnt" &&
        mount -t tmpfs -o size=16m tmpfs "$W/back" &&
        truncate -s 64M "$W/back/img" &&
        mkfs.ext4 -q -F -O ^has_journal "$W/back/img" &&
        LOOP=$(losetup -f --show "$W/back/img") &&
        mount "$LOOP" "$W/mnt" && chmod 1777 "$W/mnt" || exit 90
        echo "ext4 on $LOOP: $(df -h "$W/mnt" | tail -1)"
        timeout -s KILL "$T" "$X" enospc_retry "$W/mnt"
    ) > "$OUT" 2>&1
    local rc=$?
    if [ $rc = 0 ]; then pass=$((pass+1)); echo "ok   $name"
    elif [ $rc = 90 ]; then skip $name "could not set up the loop device: $(tail -1 "$OUT")"
    else
        fail=$((fail+1)); echo "FAIL $name ($(why $rc))"
        echo "     reproduce (root): loop-mounted ext4 with a 16 MiB tmpfs under its 64 MiB image, then $X enospc_retry MOUNTPOINT"
        sed 's/^/     /' "$OUT" | tail -12
    fi
}
enospc

# 8. the file shrinks under the mapping (another fd, another process)
#    pmem (DAXPMEM_FORCE_PMEM=1): the sync must fail with EIO/ENXIO/EFAULT; page cache
#    (no forcing): 0 or -1; dax_memset/dax_memcpy into the cut-off part: -1 in both
for tag in pmem pagecache; do
    if [ $tag = pmem ]; then envs=(DAXPMEM_FORCE_PMEM=1); else envs=(-u DAXPMEM_FORCE_PMEM -u PMEM_IS_PMEM_FORCE); fi
    for how in fd child; do
        for op in sync rsync; do run "trunc_${how}_${op}_$tag" "${envs[@]}" -- "$X" "trunc_${how}_$op" "$DIR"; done
    done
    for op in memset memcpy; do run "trunc_fd_${op}_$tag" "${envs[@]}" -- "$X" "trunc_fd_$op" "$DIR"; done
done

# 9. input that cannot be mapped or adopted
for w in mapfd_len mapfd_off mapfd_devzero adopt_anon adopt_stack adopt_ro adopt_private \
         adopt_pastend adopt_ok; do
    run "input_$w" -- "$X" "input_$w" "$DIR"
done

# 10. the preload under an unmodified threaded program that forks
run preload_fork_control_no_preload -- "$BIN/plfork" "$DIR" 200
if [ -n "$PRE" ] && [ -f "$PRE" ]; then
    run preload_fork_adopt_all LD_PRELOAD="$PRE" DAXPMEM_PRELOAD_ADOPT=all -- "$BIN/plfork" "$DIR" 200
    run preload_fork_adopt_all_force_pmem LD_PRELOAD="$PRE" DAXPMEM_PRELOAD_ADOPT=all DAXPMEM_FORCE_PMEM=1 \
        -- "$BIN/plfork" "$DIR" 200
else
    skip preload_fork "no TORTURE_PRELOAD library"
fi

rm -rf "${DIR:?}"/* 2>/dev/null
[ $skipped = 0 ] || echo "torture: $skipped skipped"
echo "torture: $pass passed, $fail failed"
[ $fail = 0 ]
