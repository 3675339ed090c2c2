#!/bin/bash
# Builds what PMDK 1.12.1's libpmem unit tests need (compat/pmdk/README.md).
#
# usage: build-pmdk-tests.sh TREE [TARBALL]
#
# TREE: a PMDK 1.12.1 source tree. When TREE does not exist it is unpacked from TARBALL
# (checked against the SHA-256 in compat/pmdk/pmdk-1.12.1.tar.xz.sha256). Builds
# libpmem, libpmem2, libpmemblk (for the pmemdetect tool), the common/core libraries,
# the test framework, tools/pmemdetect and tools/gran_detecto, and the test programs;
# a stamp file makes a second run free. JOBS (default 2) and NDCTL_ENABLE (default y,
# as Debian builds libpmem1: needs libndctl-dev and libdaxctl-dev; with n, 1.12.1 does
# not build with -Werror on gcc 12) come from the environment.
set -eu
TREE=$1; TARBALL=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
TESTS="pmem_is_pmem pmem_map_file pmem_unmap pmem_memmove pmem_memset pmem_movnt
pmem_movnt_align pmem_memcpy pmem_map_file_trunc"
if [ ! -d "$TREE" ]; then
    [ -n "$TARBALL" ] || { echo "build-pmdk-tests: no $TREE and no tarball"; exit 2; }
    (cd "$(dirname "$TARBALL")" && sha256sum -c --quiet "$HERE/pmdk-1.12.1.tar.xz.sha256") ||
        { echo "build-pmdk-tests: $TARBALL: checksum mismatch"; exit 2; }
    mkdir -p "$(dirname "$TREE")"
    tmp=$(mktemp -d "$(dirname "$TREE")/unpack.XXXXXX")
    tar -C "$tmp" -xJf "$TARBALL"
    mv "$tmp/pmdk-1.12.1" "$TREE"; rmdir "$tmp"
fi
stamp=$TREE/.daxpmem-tests-built
[ -e "$stamp" ] && { echo "build-pmdk-tests: $TREE already built"; exit 0; }
J=${JOBS:-2}
export NDCTL_ENABLE=${NDCTL_ENABLE:-y}
start=$(date +%s)
echo "build-pmdk-tests: building in $TREE (make -j$J, NDCTL_ENABLE=$NDCTL_ENABLE; log: $TREE/daxpmem-build.log)"
build() {
    make -C "$TREE/src" -j"$J" common core libpmem libpmem2 libpmemblk &&
        make -C "$TREE/src/test" -j"$J" unittest envconfig.sh envconfig.py &&
        make -C "$TREE/src/test/tools" -j"$J" pmemdetect gran_detecto || return 1
    local t
    for t in $TESTS; do make -C "$TREE/src/test/$t" -j"$J" || return 1; done
}
build > "$TREE/daxpmem-build.log" 2>&1 || { tail -30 "$TREE/daxpmem-build.log"; echo "build-pmdk-tests: build failed"; exit 1; }
touch "$stamp"
echo "build-pmdk-tests: built in $(( $(date +%s) - start )) s"
