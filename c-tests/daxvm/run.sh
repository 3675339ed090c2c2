#!/bin/bash
# c-tests/daxvm/run.sh — boot a throw-away QEMU guest with emulated persistent memory,
# make ext4 on /dev/pmem0, mount it -o dax at /mnt/dax (the cwd of the test), run a
# program (or, with --suite DIR, DIR/suite.sh), stream its output and exit with its status.
# Everything comes from Debian packages: qemu-system-x86, a Debian linux-image (default
# linux-image-6.12-amd64 from bookworm-security), busybox-static, e2fsprogs, kmod (+ ndctl
# for --mode nvdimm|devdax). Adapted from the workplace's shared daxvm recipe.
#
# usage: run.sh [options] PROGRAM [ARGS...]
#        run.sh [options] --suite DIR          (what run-suite.sh does)
#   --suite DIR          copy every file of DIR to /test in the guest (ELF ldd deps and DIR/lib
#                        included, LD_LIBRARY_PATH=/test/lib) and run /test/suite.sh in /mnt/dax
#   --tcg | --kvm        force the accelerator (default: KVM only if kvm_intel/kvm_amd is loaded)
#   --mode MODE          memmap (default): cmdline memmap=SIZE!4G + nd_e820 -> /dev/pmem0 (fsdax)
#                        nvdimm: qemu nvdimm=on + NFIT + ndctl fsdax namespace -> /dev/pmem0
#                        devdax: memmap fsdax as above PLUS an NFIT nvdimm turned into a device-DAX
#                                namespace (ndctl -m devdax) -> /dev/daxN.0 ($DAXVM_DEVDAX)
#   --fs ext4|xfs        filesystem on the pmem device (default ext4)
#   --pmem SIZE          fsdax pmem size, G or M suffix (default 1G)
#   --devdax-size SIZE   size of the devdax nvdimm (default 256M, --mode devdax only)
#   --mem SIZE           extra guest RAM above the 3G low RAM (default 0)
#   --tmp SIZE           size of the guest's /tmp tmpfs (default 256m)
#   --smp N              guest CPUs (default: min(2, nproc))
#   --timeout SEC        kill the VM after SEC seconds (default 600) -> exit 124
#   --kernel PKG         Debian kernel package or metapackage (default linux-image-6.12-amd64,
#                        falls back to linux-image-amd64 if the former cannot be resolved)
#   --add FILE           copy FILE into the guest's /test/ as well (repeatable)
#   --append STR         extra kernel command line
#   --cpu MODEL          qemu -cpu (default max under TCG, host under KVM)
#   --verbose            show kernel messages / pmem setup
#   --shell              interactive shell in the guest instead of running anything
# exit status: the program's / suite's; 121 if it passed but the kernel logged a
#   WARNING/BUG/Oops; 124 timeout; 125 guest setup failed or no status reported (crash, panic).
# environment: DAXVM_CACHE (default <project root>/.cache/daxvm), DAXVM_NO_APT=1 (never run
#   apt-get), DAXVM_KERNEL (default kernel package), DAXVM_CPU (qemu -cpu), DAXVM_MKFS_OPTS
#   (mkfs options; default for ext4: -E stride=512,stripe_width=512, i.e. 2 MiB-aligned extents).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${DAXVM_CACHE:-$ROOT/.cache/daxvm}
ACCEL=auto MODE=memmap FS=ext4 PMEM=1G DEVDAX=256M XMEM=0 TMPSZ=256m TIMEOUT=600 VERBOSE= SHELLMODE= APPEND= SUITE=
SMP=$(( $(nproc) < 2 ? $(nproc) : 2 ))
KPKG=${DAXVM_KERNEL:-linux-image-6.12-amd64}
CPU=${DAXVM_CPU:-}
ADD=()
die() { echo "daxvm: $*" >&2; exit 125; }
log() { echo "daxvm: $*" >&2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --tcg) ACCEL=tcg ;; --kvm) ACCEL=kvm ;;
        --suite) SUITE=$2; shift ;;
        --mode) MODE=$2; shift ;; --fs) FS=$2; shift ;;
        --pmem) PMEM=$2; shift ;; --devdax-size) DEVDAX=$2; shift ;;
        --mem) XMEM=$2; shift ;; --tmp) TMPSZ=$2; shift ;;
        --smp) SMP=$2; shift ;; --timeout) TIMEOUT=$2; shift ;;
        --kernel) KPKG=$2; shift ;; --add) ADD+=("$2"); shift ;;
        --append) APPEND=$2; shift ;;
        --cpu) CPU=$2; shift ;;
        --verbose) VERBOSE=1 ;; --shell) SHELLMODE=1 ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
    shift
done
PROG=
if [ -n "$SUITE" ]; then
    [ -d "$SUITE" ] || die "--suite $SUITE: not a directory"
    [ -f "$SUITE/suite.sh" ] && [ -x "$SUITE/suite.sh" ] || die "$SUITE/suite.sh is missing or not executable"
    SUITE=$(cd "$SUITE" && pwd)
    [ $# -eq 0 ] || die "--suite takes no PROGRAM arguments"
elif [ -z "$SHELLMODE" ]; then
    [ $# -ge 1 ] || die "usage: run.sh [options] PROGRAM [ARGS...] | run.sh [options] --suite DIR (see --help)"
    PROG=$1; shift
    [ -x "$PROG" ] || die "$PROG is not an executable file"
fi
case "$MODE" in memmap|nvdimm|devdax) ;; *) die "--mode must be memmap, nvdimm or devdax";; esac
case "$FS" in ext4|xfs) ;; *) die "--fs must be ext4 or xfs";; esac
# ext4: a 2 MiB stripe, so mballoc starts large allocations on 2 MiB device boundaries (a
# PMD fault needs the extent 2 MiB-aligned; without it a 64 MiB file often starts 516 KiB
# past a group's backup superblock and is mapped with 4 KiB entries only).
# DAXVM_MKFS_OPTS (even empty) overrides.
if [ "$FS" = ext4 ]; then MKFS_OPTS=${DAXVM_MKFS_OPTS--E stride=512,stripe_width=512}; else MKFS_OPTS=${DAXVM_MKFS_OPTS-}; fi

to_mib() { case "$1" in *G|*g) echo $(( ${1%?} * 1024 ));; *M|*m) echo "${1%?}";; *) echo $(( $1 / 1048576 ));; esac; }
PMEM_MIB=$(to_mib "$PMEM"); XMEM_MIB=$(to_mib "$XMEM"); DEVDAX_MIB=$(to_mib "$DEVDAX")

can_apt() { [ -z "${DAXVM_NO_APT:-}" ] && [ "$(id -u)" = 0 ]; }
APT_UPDATED=
apt_update() { [ -n "$APT_UPDATED" ] && return 0; APT_UPDATED=1; log "apt-get update"; apt-get update >/dev/null 2>&1 || true; }

# ---------------------------------------------------------------- host packages
export PATH=$PATH:/sbin:/usr/sbin
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v xz >/dev/null || need_pkgs+=(xz-utils)
command -v depmod >/dev/null || need_pkgs+=(kmod)
command -v dpkg-deb >/dev/null || need_pkgs+=(dpkg)
command -v mke2fs >/dev/null || need_pkgs+=(e2fsprogs)
command -v ldd >/dev/null || need_pkgs+=(libc-bin)
if [ "$FS" = xfs ] && ! command -v mkfs.xfs >/dev/null; then need_pkgs+=(xfsprogs); fi
if [ "$MODE" != memmap ] && ! command -v ndctl >/dev/null; then need_pkgs+=(ndctl); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    can_apt || die "missing host packages: ${need_pkgs[*]} (install them, or run as root)"
    log "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null 2>&1 \
        || { apt_update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null; } \
        || die "apt-get install ${need_pkgs[*]} failed"
fi

# ---------------------------------------------------------------- kernel + busybox debs
mkdir -p "$CACHE/debs"
resolve_pkg() {   # metapackage -> concrete linux-image-X package
    local p=$1 dep
    if [[ "$p" =~ ^linux-image-[0-9].*[0-9]-(amd64|cloud-amd64)$ ]] && ! [[ "$p" =~ ^linux-image-[0-9]+\.[0-9]+-(amd64|cloud-amd64)$ ]]; then echo "$p"; return; fi
    dep=$(apt-cache depends "$p" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    echo "${dep:-}"
}
# a concrete kernel already in the cache for this request (offline re-runs)
KREAL=
[ -f "$CACHE/kernel-$KPKG" ] && KREAL=$(cat "$CACHE/kernel-$KPKG") && [ -e "$CACHE/$KREAL/.ok" ] || KREAL=
if [ -z "$KREAL" ]; then
    KREAL=$(resolve_pkg "$KPKG")
    if [ -z "$KREAL" ] && can_apt; then apt_update; KREAL=$(resolve_pkg "$KPKG"); fi
    if [ -z "$KREAL" ]; then
        log "$KPKG not found in apt sources; falling back to linux-image-amd64"
        KREAL=$(resolve_pkg linux-image-amd64)
    fi
fi
[ -n "$KREAL" ] || die "cannot resolve a Debian kernel package (apt-get update? bookworm-security in sources?)"
KDIR="$CACHE/$KREAL"
apt_download() {  # PKG -> .deb in $CACHE/debs
    ( cd "$CACHE/debs" && apt-get download "$1" >/dev/null 2>&1 ) && return 0
    can_apt || return 1
    apt_update; ( cd "$CACHE/debs" && apt-get download "$1" >/dev/null 2>&1 )
}
if [ ! -e "$KDIR/.ok" ]; then
    log "downloading $KREAL"
    rm -rf "$KDIR"; mkdir -p "$KDIR"
    apt_download "$KREAL" || die "apt-get download $KREAL failed"
    dpkg-deb -x "$(ls -t "$CACHE"/debs/"${KREAL}"_*.deb | head -1)" "$KDIR"
    touch "$KDIR/.ok"
fi
echo "$KREAL" > "$CACHE/kernel-$KPKG"
KVER=$(ls "$KDIR/lib/modules" | head -1)
VMLINUZ="$KDIR/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "no kernel image in $KDIR"
BB="$CACHE/busybox/bin/busybox"
if [ ! -x "$BB" ]; then
    apt_download busybox-static || die "apt-get download busybox-static failed"
    rm -rf "$CACHE/busybox"; dpkg-deb -x "$(ls -t "$CACHE"/debs/busybox-static_*.deb | head -1)" "$CACHE/busybox"
fi

# copy the shared libraries of ELF file $1 into $2 (LD_LIBRARY_PATH=$3 for the lookup; libs under $3 skipped)
copy_libs() {
    local f=$1 dst=$2 lp=${3:-} out lib
    out=$(LD_LIBRARY_PATH=$lp ldd "$f" 2>/dev/null) || return 0   # static or not loadable
    if grep -q 'not found' <<<"$out"; then log "warning: $f: $(grep 'not found' <<<"$out" | tr -d '\t' | tr '\n' ' ')"; fi
    awk '/=> \//{print $3} /^\t\/lib64/{print $1}' <<<"$out" | while read -r lib; do
        [ -f "$lib" ] || continue
        if [ -n "$lp" ]; then case "$(readlink -f "$lib")" in "$(readlink -f "$lp")"/*) continue ;; esac; fi
        [ -e "$dst/$(basename "$lib")" ] || cp -L "$lib" "$dst/"
    done
}
is_elf() { [ -f "$1" ] && [ "$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' ')" = 7f454c46 ]; }

# ---------------------------------------------------------------- base initramfs (cached)
MODS_memmap="nd_e820 nd_pmem"
MODS_nvdimm="nfit nd_pmem dax_pmem"
MODS_devdax="nd_e820 nd_pmem nfit dax_pmem device_dax"
eval "MODS=\"\$MODS_$MODE crc32c_generic crc32c-intel $FS loop\""
KEY=$(echo "$KREAL $MODE $FS v4 $(md5sum < "$HERE/init.sh" | cut -c1-8) $(md5sum < "$0" | cut -c1-8)" | md5sum | cut -c1-12)
BASE="$CACHE/initrd-base-$KEY.cpio"
if [ ! -f "$BASE" ]; then
    log "building base initramfs ($KREAL, $MODE, $FS)"
    [ -f "$KDIR/lib/modules/$KVER/modules.dep" ] || depmod -b "$KDIR" "$KVER"
    R=$(mktemp -d "$CACHE/root.XXXXXX")
    mkdir -p "$R"/{bin,sbin,etc,lib/modules,lib64,lib/x86_64-linux-gnu,opt/daxvm/bin,test,.noconf}
    cp "$BB" "$R/bin/busybox"
    : > "$R/lib/modules/load.order"
    for m in $MODS; do
        # -C <empty dir>: ignore the host's /etc/modprobe.d (ndctl installs an "install libnvdimm" hook there)
        modprobe -C "$R/.noconf" -d "$KDIR" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}'
    done | awk '!seen[$0]++' | while read -r ko; do
        b=$(basename "$ko" .xz); b=${b%.zst}
        case "$ko" in *.xz) xz -dc "$ko" > "$R/lib/modules/$b" ;; *.zst) zstd -dqc "$ko" > "$R/lib/modules/$b" ;; *) cp "$ko" "$R/lib/modules/$b" ;; esac
        echo "$b" >> "$R/lib/modules/load.order"
    done
    # dynamically linked host tools + their libraries (bash too, for suites written in bash)
    tools=("$(command -v mke2fs)")
    if [ "$FS" = xfs ]; then tools+=("$(command -v mkfs.xfs)"); fi
    if [ "$MODE" != memmap ]; then tools+=("$(command -v ndctl)"); fi
    for t in "${tools[@]}"; do cp -L "$t" "$R/opt/daxvm/bin/"; copy_libs "$t" "$R/lib/x86_64-linux-gnu"; done
    if [ -x /bin/bash ]; then cp -L /bin/bash "$R/bin/bash"; copy_libs /bin/bash "$R/lib/x86_64-linux-gnu"; fi
    cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
    [ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$R/etc/"
    rmdir "$R/.noconf"
    cp "$HERE/init.sh" "$R/init"; chmod 755 "$R/init"
    ( cd "$R" && find . | cpio -o -H newc --quiet ) > "$BASE.$$.tmp" && mv "$BASE.$$.tmp" "$BASE"   # atomic for concurrent runs
    rm -rf "$R"
fi

# ---------------------------------------------------------------- per-run initramfs part
RUN=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf "$RUN"' EXIT
mkdir -p "$RUN/root/test" "$RUN/root/lib/x86_64-linux-gnu" "$RUN/root/lib64"
LIBDIR=/dev/null/none
if [ -n "$SUITE" ]; then
    cp -a "$SUITE/." "$RUN/root/test/"
    LIBDIR=$SUITE/lib
    [ -d "$LIBDIR" ] || LIBDIR=
    # every ELF file of the suite (programs and DIR/lib/*.so*): ship its shared libraries
    while IFS= read -r -d '' f; do
        if is_elf "$f"; then copy_libs "$f" "$RUN/root/lib/x86_64-linux-gnu" "$LIBDIR"; fi
    done < <(find -L "$SUITE" -type f -print0)
    [ -n "$LIBDIR" ] || LIBDIR=/dev/null/none
else
    if [ -n "$PROG" ]; then cp "$PROG" "$RUN/root/test/prog"; copy_libs "$PROG" "$RUN/root/lib/x86_64-linux-gnu"; fi
fi
for f in "${ADD[@]}"; do cp -a "$f" "$RUN/root/test/"; if is_elf "$f"; then copy_libs "$f" "$RUN/root/lib/x86_64-linux-gnu"; fi; done
: > "$RUN/root/test/.args"; for a in "$@"; do printf '%s\n' "$a" >> "$RUN/root/test/.args"; done
cat > "$RUN/root/daxvm.conf" <<CONF
DAXVM_FS=$FS
DAXVM_MODE=$MODE
DAXVM_VERBOSE=$VERBOSE
DAXVM_SHELL=$SHELLMODE
DAXVM_SUITE=${SUITE:+1}
DAXVM_TMP_SIZE=$TMPSZ
DAXVM_MKFS_OPTS="$MKFS_OPTS"
CONF
( cd "$RUN/root" && find . | cpio -o -H newc --quiet ) > "$RUN/extra.cpio"
cat "$BASE" "$RUN/extra.cpio" > "$RUN/initrd.cpio"

# ---------------------------------------------------------------- qemu
if [ "$ACCEL" = auto ]; then
    # Only trust hardware KVM (kvm_intel/kvm_amd). Nested sandboxes may expose a /dev/kvm backed
    # by kvm_pvm, which cannot run an unmodified Debian kernel ("KVM internal error").
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
        ACCEL=kvm
    else
        ACCEL=tcg
        [ -d /sys/module/kvm_pvm ] && log "/dev/kvm is kvm_pvm (nested PVM): using TCG"
    fi
fi
MACH="pc,accel=$ACCEL"; [ "$MODE" != memmap ] && MACH="$MACH,nvdimm=on"
if [ "$ACCEL" = kvm ]; then ACC=(-machine "$MACH" -cpu "${CPU:-host}"); else ACC=(-machine "$MACH" -cpu "${CPU:-max}"); fi
QUIET="quiet loglevel=3"; [ -n "$VERBOSE" ] && QUIET="loglevel=6"
nvdimm_args() {  # $1 = MiB; label-less NFIT nvdimm backed by a sparse file in the run dir
    truncate -s "${1}M" "$RUN/pmem.img"
    echo "-object memory-backend-file,id=pmem1,share=on,mem-path=$RUN/pmem.img,size=${1}M,align=2M -device nvdimm,id=nvdimm1,memdev=pmem1"
}
case "$MODE" in
memmap)   # 'pc' machine: with >= 3.5G RAM the low 3G sit below 4G, the rest starts at 4G.
    TOTAL_MIB=$(( 3072 + PMEM_MIB + XMEM_MIB ))
    MEMARGS=(-m "${TOTAL_MIB}M"); KAPPEND="memmap=${PMEM_MIB}M!4G" ;;
devdax)
    TOTAL_MIB=$(( 3072 + PMEM_MIB + XMEM_MIB ))
    read -r -a NV <<<"$(nvdimm_args "$DEVDAX_MIB")"
    MEMARGS=(-m "${TOTAL_MIB}M,slots=2,maxmem=$(( TOTAL_MIB + DEVDAX_MIB ))M" "${NV[@]}"); KAPPEND="memmap=${PMEM_MIB}M!4G" ;;
nvdimm)
    TOTAL_MIB=$(( 2048 + XMEM_MIB ))
    read -r -a NV <<<"$(nvdimm_args "$PMEM_MIB")"
    MEMARGS=(-m "${TOTAL_MIB}M,slots=2,maxmem=$(( TOTAL_MIB + PMEM_MIB ))M" "${NV[@]}"); KAPPEND="" ;;
esac
CMD=(qemu-system-x86_64 "${ACC[@]}" -smp "$SMP" "${MEMARGS[@]}" -nodefaults -no-user-config
     -display none -monitor none -serial stdio -no-reboot -nic none
     -kernel "$VMLINUZ" -initrd "$RUN/initrd.cpio"
     -append "console=ttyS0 $QUIET panic=-1 rdinit=/init transparent_hugepage=madvise $KAPPEND $APPEND")
[ -n "$VERBOSE" ] && log "${CMD[*]}"
log "booting $KVER ($ACCEL, $SMP vCPU, $MODE, $FS, pmem ${PMEM_MIB}M)"
T0=$(date +%s%N)
set +e
if [ -n "$SHELLMODE" ]; then "${CMD[@]}"; exit $?; fi
# stream the console: strip CRs and the exit marker, line-buffered (CI logs are pipes)
timeout --foreground -k 5 "$TIMEOUT" "${CMD[@]}" < /dev/null 2>&1 | tee "$RUN/console.log" \
    | sed -u -e 's/\r$//' -e '/^@@DAXVM_EXIT=[0-9]*@@$/d' -e '/reboot: Power down/d'
QRC=${PIPESTATUS[0]}
set -e
T1=$(date +%s%N)
RC=$(tr -d '\r' < "$RUN/console.log" | sed -n 's/^@@DAXVM_EXIT=\([0-9]*\)@@$/\1/p' | tail -1)
log "$(awk -v a="$T0" -v b="$T1" -v q="$QRC" 'BEGIN{printf "VM wall time %.2fs (qemu rc %s)", (b-a)/1e9, q}')"
if [ -z "$RC" ]; then
    [ "$QRC" = 124 ] && { log "timeout after ${TIMEOUT}s"; exit 124; }
    log "guest did not report an exit status (boot failure, panic or crash)"; exit 125
fi
exit "$RC"
