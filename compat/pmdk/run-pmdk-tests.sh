#!/bin/bash
# PMDK 1.12.1's own libpmem unit tests against a libpmem.so.1 (compat/pmdk/README.md).
#
# usage: run-pmdk-tests.sh PMDK_TREE WORK_DIR NAME=LIBDIR [NAME=LIBDIR...]
#
# PMDK_TREE: a PMDK 1.12.1 source tree, built by build-pmdk-tests.sh. WORK_DIR: scratch
# (test directories, logs, the loader's traces). Each NAME=LIBDIR runs every applicable
# case with LIBDIR/libpmem.so.1 first in the search path: on a non-pmem ext4 directory
# and on tmpfs forced to pmem, with the framework's open-file check on. The first NAME
# is the library under test; the others are references (Debian's libpmem): a case that
# fails on a reference too is marked "(fails on <ref> too: harness?)". Proves which
# libpmem.so.1 every test process loaded (LD_DEBUG=libs, one trace file per process).
# Prints one line a case and per library a closing "N passed, M failed"; the exit
# status is 1 when any case of the first library fails or loaded another library.
set -u
TREE=$(realpath "$1"); WORK=$2; shift 2
T=$TREE/src/test
[ -x "$T/pmem_memcpy/pmem_memcpy" ] || { echo "run-pmdk-tests: $TREE is not built (build-pmdk-tests.sh)"; exit 2; }
mkdir -p "$WORK"; WORK=$(realpath "$WORK")

# ---- directories: non-pmem ext4, tmpfs forced to pmem
cleanup() {
    [ -n "${LOOPMNT:-}" ] && umount "$LOOPMNT" 2>/dev/null
    [ -n "${TMPFSMNT:-}" ] && umount "$TMPFSMNT" 2>/dev/null
    [ -n "${SHMDIR:-}" ] && rm -rf "$SHMDIR"
}
trap cleanup EXIT
fstype() { stat -f -c %T "$1"; }
EXT4=$WORK/ext4
mkdir -p "$EXT4"
if [ "$(fstype "$EXT4")" != ext2/ext3 ]; then
    # Not on ext4: a loop-mounted ext4 image (root only), unmounted by the trap.
    [ "$(id -u)" = 0 ] || { echo "run-pmdk-tests: $EXT4 is not ext4 and making one needs root"; exit 2; }
    truncate -s 1G "$WORK/ext4.img" && mkfs.ext4 -q -F "$WORK/ext4.img" &&
        mount -o loop "$WORK/ext4.img" "$EXT4" || { echo "run-pmdk-tests: cannot mount an ext4 image"; exit 2; }
    LOOPMNT=$EXT4
fi
if [ "$(fstype /dev/shm)" = tmpfs ]; then
    SHMDIR=/dev/shm/daxpmem-pmdk-tests.$$; mkdir -p "$SHMDIR"; PMEMDIR=$SHMDIR
else
    PMEMDIR=$WORK/tmpfs; mkdir -p "$PMEMDIR"
    mount -t tmpfs -o size=1G tmpfs "$PMEMDIR" || { echo "run-pmdk-tests: no tmpfs"; exit 2; }
    TMPFSMNT=$PMEMDIR
fi
echo "run-pmdk-tests: non-pmem dir $EXT4 ($(fstype "$EXT4")), pmem dir $PMEMDIR ($(fstype "$PMEMDIR"), forced pmem)"

cat > "$T/testconfig.sh" <<EOF
# written by daxpmem's compat/pmdk/run-pmdk-tests.sh
NON_PMEM_FS_DIR=$EXT4
PMEM_FS_DIR=$PMEMDIR
PMEM_FS_DIR_FORCE_PMEM=1
TM=1
EOF
cat > "$T/testconfig.py" <<EOF
# written by daxpmem's compat/pmdk/run-pmdk-tests.sh
config = {
    'unittest_log_level': 1,
    'page_fs_dir': '$EXT4',
    'force_page': False,
    'cacheline_fs_dir': '$PMEMDIR',
    'force_cacheline': True,
    'byte_fs_dir': '$PMEMDIR',
    'force_byte': True,
    'tm': True,
    'test_type': 'check',
    'build': 'release',
    'granularity': 'all',
    'keep_going': True,
    'fail_on_skip': False,
    'timeout': '3m',
    'dump_lines': 30,
    'force_enable': None,
    'device_dax_path': [],
    'enable_admin_tests': False,
}
EOF

# ---- the cases
# Shell tests: "dir TESTn build" (each run on -f non-pmem and -f pmem; a test whose
# require_fs_type excludes one prints nothing there and is not a case there).
# pmem_movnt TEST0 and pmem_movnt_align TEST0/2 require the debug build type but call
# only public functions: they run as "debug" with the library under test as the debug
# library (PMDK_LIB_PATH_DEBUG).
SHELL_CASES="
pmem_is_pmem TEST0 nondebug
pmem_is_pmem TEST1 nondebug
pmem_is_pmem TEST2 nondebug
pmem_is_pmem TEST3 nondebug
pmem_is_pmem TEST4 nondebug
pmem_is_pmem TEST5 nondebug
pmem_map_file TEST0 nondebug
pmem_map_file TEST1 nondebug
pmem_map_file TEST3 nondebug
pmem_unmap TEST0 nondebug
pmem_memmove TEST0 nondebug
pmem_memset TEST0 nondebug
pmem_movnt TEST0 debug
pmem_movnt_align TEST0 debug
pmem_movnt_align TEST2 debug
"
# Python tests (granularity page = the ext4 dir, cacheline and byte = tmpfs forced).
PY_GROUPS="pmem_memcpy pmem_map_file_trunc"

strip() { sed -e 's/\x1b\[[0-9;]*m//g' -e 's/\t/ /g'; }

# run_lib NAME LIBPATH: writes WORK/NAME.results ("case fs result" lines) and
# WORK/NAME.loaded (which libpmem.so.1 and libdaxpmem.so.0 the processes loaded).
run_lib() {
    local name=$1 lib=$2 out=$WORK/$1
    rm -rf "$out"; mkdir -p "$out/ld"
    : > "$out.results"
    local d t b fs
    while read -r d t b; do
        [ -n "$d" ] || continue
        for fs in non-pmem pmem; do
            (cd "$T" && env LD_DEBUG=libs LD_DEBUG_OUTPUT="$out/ld/trace" \
                PMDK_LIB_PATH_NONDEBUG="$lib" PMDK_LIB_PATH_DEBUG="$lib" \
                ./RUNTESTS -b "$b" -f "$fs" -s "$t" "$d") < /dev/null > "$out/$d.$t.$fs.log" 2>&1
            local r
            r=$(strip < "$out/$d.$t.$fs.log" | sed -n "s%^$d/$t: \(PASS\|FAILED\|SKIP\).*%\1%p" | head -1)
            if [ -z "$r" ] && grep -q "failed, TEST=" "$out/$d.$t.$fs.log"; then r=FAILED; fi
            [ -n "$r" ] && echo "$d/$t $fs/$b $r" >> "$out.results"
        done
    done <<< "$SHELL_CASES"
    local g gran
    for g in $PY_GROUPS; do
        for gran in page cacheline byte; do
            (cd "$T" && env LD_DEBUG=libs LD_DEBUG_OUTPUT="$out/ld/trace" LD_LIBRARY_PATH="$lib" \
                python3 RUNTESTS.py -b release -g "$gran" -- "$g") < /dev/null > "$out/$g.$gran.log" 2>&1
            strip < "$out/$g.$gran.log" | awk -v g="$g" -v gran="$gran" '
                $2 == "SETUP" { next }
                $1 ~ "^" g "/TEST[0-9]+:$" && ($2 == "PASS" || $2 == "FAILED" || $2 == "FAIL" || $2 == "SKIP") {
                    c = $1; sub(":$", "", c); r = ($2 == "FAIL") ? "FAILED" : $2
                    fs = (gran == "page") ? "non-pmem" : "pmem"
                    print c, fs "/" gran, r }' >> "$out.results"
            if ! strip < "$out/$g.$gran.log" | grep -q "^$g/TEST[0-9]*: \(PASS\|FAIL\|SKIP\)"; then
                echo "$g/? $gran ERROR" >> "$out.results"
            fi
        done
    done
    # Which libpmem.so.1 each process loaded: the loader's "calling init" lines.
    grep -ho "calling init: [^ ]*\(libpmem\.so\.1\|libdaxpmem\.so\.0\)" "$out"/ld/trace.* 2>/dev/null |
        sed 's/calling init: //' | sort | uniq -c > "$out.loaded"
}

status=0
first=
declare -A RES
for spec in "$@"; do
    name=${spec%%=*}; lib=$(realpath "${spec#*=}")
    [ -e "$lib/libpmem.so.1" ] || { echo "run-pmdk-tests: no $lib/libpmem.so.1"; exit 2; }
    [ -n "$first" ] || first=$name
    want=$(realpath "$lib/libpmem.so.1")
    # The library's own dependency on the core (RUNPATH), put first in the search path
    # too: the framework adds /usr/lib/x86_64-linux-gnu, which would beat RUNPATH.
    core=$(env -u LD_LIBRARY_PATH ldd "$want" | awk '$1 == "libdaxpmem.so.0" { print $3 }')
    [ -z "$core" ] || core=$(realpath "$core")
    run_lib "$name" "$lib${core:+:$(dirname "$core")}"
    bad=0; n=0; nc=0
    while read -r cnt path; do
        case $(realpath "$path") in
        "$want") n=$((n + cnt)) ;;
        "$core") nc=$((nc + cnt)) ;;
        *) bad=$((bad + cnt)); echo "run-pmdk-tests: $name: $cnt processes loaded $path" ;;
        esac
    done < "$WORK/$name.loaded"
    echo "run-pmdk-tests: $name: $n test processes loaded $want${core:+ ($nc with $core)} (LD_DEBUG=libs), $bad another libpmem.so.1/libdaxpmem.so.0"
    if [ "$n" = 0 ] || [ "$bad" != 0 ] || { [ -n "$core" ] && [ "$nc" != "$n" ]; }; then
        echo "run-pmdk-tests: $name: FAIL: the tests did not run on $want"
        [ "$name" = "$first" ] && status=1
    fi
    while read -r c fs r; do RES["$name|$c|$fs"]=$r; done < "$WORK/$name.results"
done

# ---- one line a case (the cases of the first library; references alongside)
while read -r c fs r; do
    line=$(printf '%-6s %-28s %-20s' "$r" "$c" "$fs")
    note=
    for spec in "${@:2}"; do
        ref=${spec%%=*}
        rr=${RES["$ref|$c|$fs"]:-absent}
        line="$line $ref=$rr"
        [ "$r" != PASS ] && [ "$rr" != PASS ] && note="$note (fails on $ref too: harness?)"
    done
    echo "$line$note"
    [ "$r" = PASS ] || [ "$r" = SKIP ] || status=1
done < "$WORK/$first.results"
summary() {
    local p f
    p=$(grep -c " PASS$" "$WORK/$1.results"); f=$(grep -vc " PASS$\| SKIP$" "$WORK/$1.results")
    echo "pmdk-tests $1: $p passed, $f failed"
}
for spec in "${@:2}"; do summary "${spec%%=*}"; done
summary "$first"
[ $status = 0 ] || echo "pmdk-tests: FAILED (logs: $WORK/$first/)"
exit $status
