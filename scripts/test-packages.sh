#!/bin/bash
# make test-packages: install the .debs of `make deb` on this machine (apt-get, root),
# then use them as a program would: man pages, a C program built with pkg-config and
# one built with CMake's find_package, daxpmem-info, the preload library, the libpmem
# drop-in next to a system libpmem. Removes the packages again at the end unless
# KEEP_PACKAGES=1. Last line: "test-packages: N passed, M failed".
#   usage: scripts/test-packages.sh DEB_DIR
set -uo pipefail
deb_dir=$(cd "${1:?usage: $0 DEB_DIR}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
pkgs=(libdaxpmem0 libdaxpmem-dev daxpmem-tools libdaxpmem-preload0 daxpmem-libpmem)
[ "$(id -u)" = 0 ] || { echo "test-packages: needs root (apt-get install)"; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -o DPkg::Lock::Timeout=600)   # wait for another apt/dpkg run instead of failing
work=$(mktemp -d /tmp/daxpmem-test-packages.XXXXXX)
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; [ -s "$work/out" ] && sed 's/^/     /' "$work/out" | tail -30; }
check() { local name=$1; shift; if "$@" >"$work/out" 2>&1; then ok "$name"; else bad "$name"; fi; }
cleanup() {
    if [ "${KEEP_PACKAGES:-0}" != 1 ]; then
        "${apt[@]}" purge -y "${pkgs[@]}" >/dev/null 2>&1 || true
    fi
    rm -rf "$work" /dev/shm/daxpmem-test-packages-*
}
trap cleanup EXIT

debs=()
for p in "${pkgs[@]}"; do
    f=$(ls "$deb_dir/${p}_${version}_"*.deb 2>/dev/null | head -1)
    [ -n "$f" ] || { echo "test-packages: no ${p}_${version}_*.deb in $deb_dir"; exit 1; }
    debs+=("$f")
done
# A fresh install of exactly these files (an earlier run may have left the same version).
"${apt[@]}" purge -y "${pkgs[@]}" >/dev/null 2>&1 || true
check "apt-get install ./*.deb (${#debs[@]} packages)" "${apt[@]}" install -y --no-install-recommends "${debs[@]}"
[ "$fail" = 0 ] || { echo "test-packages: $pass passed, $fail failed (not installed: nothing else tested)"; exit 1; }
check "installed version $version" sh -c "dpkg-query -W -f='\${Version}\n' libdaxpmem0 | grep -qx '$version'"

# Package metadata: shlibs/symbols and the dependencies they produce.
check "libdaxpmem0 ships a symbols file" test -s /var/lib/dpkg/info/libdaxpmem0:amd64.symbols
check "libdaxpmem-preload0 depends on libdaxpmem0 (>= $version)" sh -c \
    "dpkg-query -W -f='\${Depends}\n' libdaxpmem-preload0 | grep -q 'libdaxpmem0 (>= $version)'"
check "daxpmem-libpmem depends on libdaxpmem0 and claims no libpmem shlibs" sh -c \
    "dpkg-query -W -f='\${Depends}\n' daxpmem-libpmem | grep -q 'libdaxpmem0 (>= $version)' && \
     ! test -e /var/lib/dpkg/info/daxpmem-libpmem:amd64.shlibs"
check "the drop-in is in its own directory" sh -c \
    "dpkg -L daxpmem-libpmem | grep -qx '/usr/lib/x86_64-linux-gnu/daxpmem-libpmem/libpmem.so.1' && \
     ! dpkg -L daxpmem-libpmem | grep -qx '/usr/lib/x86_64-linux-gnu/libpmem.so.1'"
if dpkg -s libpmem1 >/dev/null 2>&1; then
    check "the system libpmem.so.1 is still libpmem1's" sh -c \
        "dpkg -S /usr/lib/x86_64-linux-gnu/libpmem.so.1 | grep -q '^libpmem1'"
fi

# Man pages: every page and alias is in the package; man finds them.
check "man pages in libdaxpmem-dev (one per exported function, as pages or links)" sh -c \
    "for f in \$(cat '$root/symbols/daxpmem.syms'); do dpkg -L libdaxpmem-dev | grep -qx /usr/share/man/man3/\$f.3.gz || { echo no page for \$f; exit 1; }; done"
if [ -e /usr/share/man/man3/dax_sync.3.gz ] && command -v man >/dev/null; then
    check "man dax_sync" sh -c "MANPAGER=cat MANWIDTH=80 man dax_sync | grep -q 'dax_sync, dax_mark_dirty'"
    check "man dax_unmap (an alias of dax_map(3))" sh -c "MANPAGER=cat man dax_unmap | grep -q 'dax_map, dax_map_fd'"
    check "man 7 daxpmem" sh -c "MANPAGER=cat man 7 daxpmem | grep -q 'WHICH CALL TO USE WHEN'"
    check "man daxpmem-info" sh -c "MANPAGER=cat man 1 daxpmem-info | grep -q -- '--json'"
    check "man daxpmem-libpmem" sh -c "MANPAGER=cat man 7 daxpmem-libpmem | grep -q pmem_persist"
else
    echo "note: man or /usr/share/man is not installed here (dpkg path-exclude?): pages checked in the package only"
fi

# pkg-config and CMake builds against the installed packages.
check "pkg-config --modversion daxpmem = $version" sh -c "pkg-config --modversion daxpmem | grep -qx '$version'"
check "cc \$(pkg-config --cflags --libs daxpmem) builds" sh -c \
    "cc -std=c11 -Wall -Wextra -Werror -pedantic -o '$work/consumer-pc' '$root/cmake/test/consumer.c' \$(pkg-config --cflags --libs daxpmem)"
check "the pkg-config build runs against the installed libdaxpmem.so.0" sh -c \
    "ldd '$work/consumer-pc' | grep -q 'lib/x86_64-linux-gnu/libdaxpmem.so.0' && '$work/consumer-pc' /dev/shm/daxpmem-test-packages-pc"
if command -v cmake >/dev/null; then
    check "cmake: find_package(daxpmem 0.1 REQUIRED) + daxpmem::daxpmem builds" sh -c \
        "cmake -S '$root/cmake/test' -B '$work/cmake' && cmake --build '$work/cmake'"
    check "the CMake build runs" "$work/cmake/consumer" /dev/shm/daxpmem-test-packages-cmake
    check "cmake: find_package(daxpmem 1) is refused (version file)" sh -c \
        "mkdir -p '$work/v1' && printf 'cmake_minimum_required(VERSION 3.16)\nproject(v C)\nfind_package(daxpmem 1 REQUIRED)\n' > '$work/v1/CMakeLists.txt' && ! cmake -S '$work/v1' -B '$work/v1/b'"
else
    bad "cmake is not installed (apt-get install cmake)"
fi

# The tool.
check "daxpmem-info --version" sh -c "daxpmem-info --version | grep -qx 'daxpmem-info $version'"
check "daxpmem-info --json /dev/shm" sh -c "daxpmem-info --json /dev/shm > '$work/info.json' && grep -q '\"verdict\": \"msync\"' '$work/info.json' && \
    if command -v python3 >/dev/null; then python3 -m json.tool '$work/info.json' >/dev/null; fi"
check "daxpmem-info --bogus exits 2" sh -c "daxpmem-info --bogus; test \$? = 2"

# The preload library, by soname.
check "LD_PRELOAD=libdaxpmem-preload.so.0" sh -c \
    "LD_PRELOAD=libdaxpmem-preload.so.0 DAXPMEM_STATS=1 /bin/true 2>&1 | grep -q 'daxpmem-preload\\[[0-9]*\\]: msync calls 0'"

# The libpmem drop-in: source compatibility through pkg-config, binary through LD_LIBRARY_PATH.
cat > "$work/pm.c" <<'C'
#include <libpmem.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    size_t mapped; int is_pmem;
    char *p = pmem_map_file("/dev/shm/daxpmem-test-packages-pmem", 1 << 20, PMEM_FILE_CREATE, 0600, &mapped, &is_pmem);
    if (!p || pmem_check_version(PMEM_MAJOR_VERSION, PMEM_MINOR_VERSION)) { fprintf(stderr, "%s\n", pmem_errormsg()); return 1; }
    strcpy(p, "hello");
    if (is_pmem) pmem_persist(p, 6); else if (pmem_msync(p, 6)) return 1;
    printf("mapped %zu is_pmem %d\n", mapped, is_pmem);
    return pmem_unmap(p, mapped);
}
C
check "cc \$(pkg-config --cflags --libs daxpmem-libpmem) builds and runs" sh -c \
    "cc -std=c11 -Wall -Werror -o '$work/pm' '$work/pm.c' \$(pkg-config --cflags --libs daxpmem-libpmem) && '$work/pm'"
check "it loads the drop-in, which loads libdaxpmem.so.0" sh -c \
    "ldd '$work/pm' | grep -q '/usr/lib/x86_64-linux-gnu/daxpmem-libpmem/libpmem.so.1' && ldd '$work/pm' | grep -q libdaxpmem.so.0"

echo "test-packages: $pass passed, $fail failed"
[ "$fail" = 0 ]
