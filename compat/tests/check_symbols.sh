#!/bin/sh
# check_symbols.sh LIB [REFERENCE_LIB]
# Exact-symbol-list check for the compat libpmem.so.1:
#  * the defined dynamic symbols of LIB are exactly compat/libpmem.syms, every
#    one at default version LIBPMEM_1.0 (plus the LIBPMEM_1.0 version symbol);
#  * the soname is libpmem.so.1 and the version definitions are
#    libpmem.so.1 (BASE) + LIBPMEM_1.0;
#  * if REFERENCE_LIB (e.g. /usr/lib/x86_64-linux-gnu/libpmem.so.1) is given,
#    its exported set is compared too.
set -eu
lib=$1
ref=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
syms=$here/libpmem.syms
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

exported() {
	readelf --dyn-syms -W "$1" | awk '$7 != "UND" && NR > 3 && $8 != "" {print $8}' | LC_ALL=C sort
}
exported "$lib" > "$tmp/got"
{ sed 's/$/@@LIBPMEM_1.0/' "$syms"; echo "LIBPMEM_1.0"; } | LC_ALL=C sort > "$tmp/want"
if ! diff -u "$tmp/want" "$tmp/got"; then
	echo "FAIL: exported symbols of $lib differ from $syms" >&2
	exit 1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libpmem.so.1 ] || { echo "FAIL: soname '$soname'" >&2; exit 1; }
readelf -V "$lib" | sed -n '/version_d/,/version_r/p' | grep -o 'Name: [^ ]*' > "$tmp/vd"
printf 'Name: libpmem.so.1\nName: LIBPMEM_1.0\n' | diff -u - "$tmp/vd" || { echo "FAIL: version definitions" >&2; exit 1; }
if [ -n "$ref" ]; then
	exported "$ref" > "$tmp/ref"
	diff -u "$tmp/ref" "$tmp/got" || { echo "FAIL: differs from $ref" >&2; exit 1; }
fi
echo "OK: $(wc -l < "$syms") functions @@LIBPMEM_1.0, soname libpmem.so.1${ref:+, same as $ref}"
