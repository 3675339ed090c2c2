#!/bin/busybox sh
# /init of the daxvm guest (packed into the initramfs by run.sh).
# Loads the nvdimm/pmem + filesystem modules, makes a filesystem on the fsdax pmem device,
# mounts it -o dax at /mnt/dax, a non-DAX ext4 (loop on /tmp) at /mnt/nodax, optionally a
# device-DAX namespace (/dev/daxN.0), then runs /test/suite.sh (suite mode) or /test/prog
# with the arguments in /test/.args, in /mnt/dax.  Afterwards any kernel WARNING/BUG/Oops
# is printed and turns a passing run into a failure (121).  Prints "@@DAXVM_EXIT=<rc>@@"
# and powers the VM off.
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt/dax /mnt/nodax /usr/bin /usr/sbin /sbin
/bin/busybox --install -s 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
. /daxvm.conf      # DAXVM_FS, DAXVM_MODE, DAXVM_VERBOSE, DAXVM_MKFS_OPTS, DAXVM_SHELL, DAXVM_SUITE, DAXVM_TMP_SIZE
mount -t tmpfs -o size=${DAXVM_TMP_SIZE:-256m} tmpfs /tmp
mkdir -p /dev/shm && mount -t tmpfs -o size=64m tmpfs /dev/shm

say() { echo "daxvm: $*"; }
KPAT='WARNING:|BUG:|Oops|general protection fault|Kernel panic|kernel BUG|blocked for more than'
finish() {
    rc=$1
    sync
    echo "@@DAXVM_EXIT=${rc}@@"
    poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
}
# /dev/pmemN whose nd bus provider matches $1 (e820 = memmap=, ACPI.NFIT = qemu nvdimm)
pmem_of() {
    for b in /sys/block/pmem*; do
        [ -e "$b" ] || continue
        p=$(readlink -f "$b"); bus=$(echo "$p" | sed -n 's#^\(.*/ndbus[0-9]*\)/.*#\1#p')
        [ -n "$bus" ] && grep -q "$1" "$bus/provider" 2>/dev/null && { echo "/dev/${b##*/}"; return 0; }
    done
    return 1
}
# first namespace (X.0) on the nd bus whose provider matches $1
ns_of() {
    for n in /sys/bus/nd/devices/namespace*.0; do
        [ -e "$n" ] || continue
        p=$(readlink -f "$n"); bus=$(echo "$p" | sed -n 's#^\(.*/ndbus[0-9]*\)/.*#\1#p')
        [ -n "$bus" ] && grep -q "$1" "$bus/provider" 2>/dev/null && { echo "${n##*/}"; return 0; }
    done
    return 1
}

t0=$(cut -d' ' -f1 /proc/uptime)
while read -r ko; do
    [ -n "$ko" ] || continue
    insmod "/lib/modules/$ko" 2>/tmp/insmod.err || {
        grep -q 'File exists' /tmp/insmod.err || { say "insmod $ko failed: $(cat /tmp/insmod.err)"; }
    }
done < /lib/modules/load.order

# NFIT nvdimm (nvdimm and devdax modes): the label-less namespace comes up raw; reconfigure it.
if [ "$DAXVM_MODE" = nvdimm ] || [ "$DAXVM_MODE" = devdax ]; then
    i=0; while ! ns=$(ns_of NFIT) && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
    if [ -z "$ns" ]; then say "no NFIT namespace"; ls /sys/bus/nd/devices; dmesg | tail -30; finish 125; fi
    m=fsdax; [ "$DAXVM_MODE" = devdax ] && m=devdax
    /opt/daxvm/bin/ndctl create-namespace -f -e "$ns" -m $m -a 2M >/tmp/ndctl.out 2>&1 || { say "ndctl create-namespace -m $m failed:"; cat /tmp/ndctl.out; finish 125; }
    [ -n "$DAXVM_VERBOSE" ] && cat /tmp/ndctl.out
fi
PROV=e820; [ "$DAXVM_MODE" = nvdimm ] && PROV=NFIT
i=0; while ! PMEM=$(pmem_of $PROV) && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
if [ -z "$PMEM" ]; then say "no fsdax pmem block device ($PROV)"; ls /sys/block; dmesg | tail -40; finish 125; fi
export DAXVM_PMEM=$PMEM
if [ "$DAXVM_MODE" = devdax ]; then
    i=0; while [ -z "$(ls /dev/dax* 2>/dev/null)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
    DAXVM_DEVDAX=$(ls -d /dev/dax* 2>/dev/null | head -1)
    [ -c "$DAXVM_DEVDAX" ] || { say "no /dev/daxN.M character device"; cat /tmp/ndctl.out; dmesg | tail -30; finish 125; }
    export DAXVM_DEVDAX
fi

case "$DAXVM_FS" in
    xfs)  /opt/daxvm/bin/mkfs.xfs -f -q $DAXVM_MKFS_OPTS $PMEM >/tmp/mkfs.out 2>&1 ;;
    *)    /opt/daxvm/bin/mke2fs -q -F -t ext4 -b 4096 $DAXVM_MKFS_OPTS $PMEM >/tmp/mkfs.out 2>&1 ;;
esac || { say "mkfs failed:"; cat /tmp/mkfs.out; finish 125; }

if ! mount -t "${DAXVM_FS:-ext4}" -o dax $PMEM /mnt/dax; then
    say "mount -o dax failed"; dmesg | tail -20; finish 125
fi
grep -q ' /mnt/dax .*dax' /proc/mounts || { say "mounted but no dax flag:"; grep /mnt/dax /proc/mounts; finish 125; }
# a non-DAX ext4 (loop device on tmpfs) for negative MAP_SYNC tests
if dd if=/dev/zero of=/tmp/.nodax.img bs=1M count=0 seek=32 2>/dev/null && /opt/daxvm/bin/mke2fs -q -F -t ext4 /tmp/.nodax.img >/dev/null 2>&1; then
    mount -t ext4 -o loop /tmp/.nodax.img /mnt/nodax 2>/dev/null || { say "no /mnt/nodax"; rmdir /mnt/nodax; }
fi
t1=$(cut -d' ' -f1 /proc/uptime)
say "kernel $(uname -r), $(nproc) cpu(s), $PMEM $(($(cat /sys/block/${PMEM#/dev/}/size)/2048)) MiB $(grep ' /mnt/dax ' /proc/mounts | cut -d' ' -f3,4)${DAXVM_DEVDAX:+, devdax $DAXVM_DEVDAX}, setup ${t0}s..${t1}s after boot"
[ -n "$DAXVM_VERBOSE" ] && dmesg | grep -iE 'pmem|dax|nvdimm|e820' | tail -20

export HOME=/tmp TMPDIR=/tmp PATH=/test:/opt/daxvm/bin:/bin:/sbin:/usr/bin:/usr/sbin
export DAXVM_DAX_DIR=/mnt/dax DAXVM_TEST_DIR=/test
[ -d /mnt/nodax ] && export DAXVM_NODAX_DIR=/mnt/nodax
[ -d /test/lib ] && export LD_LIBRARY_PATH=/test/lib

if [ -n "$DAXVM_SHELL" ]; then setsid cttyhack sh; finish 0; fi

cd /mnt/dax
if [ -n "$DAXVM_SUITE" ]; then
    /test/suite.sh
    rc=$?
else
    set --
    if [ -f /test/.args ]; then
        while IFS= read -r a; do set -- "$@" "$a"; done < /test/.args
    fi
    /test/prog "$@"
    rc=$?
fi
cd /
[ -n "$DAXVM_VERBOSE" ] && { say "dmesg tail:"; dmesg | tail -15; }
if dmesg | grep -qE "$KPAT"; then
    say "KERNEL WARNINGS during the run (treated as a failure):"
    dmesg | grep -E -A14 "$KPAT" | head -80 | sed 's/^/daxvm: kernel: /'
    [ "$rc" = 0 ] && rc=121
fi
umount /mnt/nodax 2>/dev/null
umount /mnt/dax 2>/dev/null || say "umount /mnt/dax failed (busy?)"
finish $rc
