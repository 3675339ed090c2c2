#!/bin/sh
# run_compat_tests.sh PREFIX DISK_DIR BUILD_DIR
#
# The libpmem compatibility tests (make compat-test). PREFIX is a prefix where
# the core (lib/libdaxpmem.so.0) and the compat pieces (make compat-install) are
# installed: lib/daxpmem-libpmem/libpmem.so.1, include/daxpmem-libpmem/libpmem.h,
# lib/pkgconfig/daxpmem-libpmem.pc. DISK_DIR is a scratch directory on a disk
# file system (ext4 here); the tmpfs scratch directory is made under /dev/shm.
# BUILD_DIR receives the test binaries and transcripts. CC (default cc) is the
# C compiler.
#
#   (a) exported symbols, soname and symbol versions (check_symbols.sh), and
#       that the shim has no writable state and a RUNPATH that finds the core;
#   (b) the header against /usr/include/libpmem.h (check_header.sh);
#   (c) pmem_diff.c built once with -lpmem (Debian's libpmem) and once with
#       `pkg-config --cflags --libs daxpmem-libpmem`: transcripts on tmpfs and
#       on disk must be identical;
#   (d) the Debian-linked binaries run on the compat library through
#       LD_LIBRARY_PATH: the probe proves which libpmem.so.1 was loaded, and the
#       transcripts must be identical again;
#   (e) pmem_fds.c (descriptors: none held after pmem_map_file or a direct munmap,
#       one free is enough to map, none free still unmaps the middle), built with
#       -lpmem and run on Debian's library and on ours: identical transcripts;
#   (f) prints "compat-tests: N passed, M failed"; exit status 1 on failure.
set -u
prefix=$1
disk=$2
out=$3
CC=${CC:-cc}
here=$(cd "$(dirname "$0")" && pwd)
compat=$(cd "$here/.." && pwd)
syslib=/usr/lib/x86_64-linux-gnu/libpmem.so.1
[ -e "$syslib" ] || syslib=$(ldconfig -p 2>/dev/null | sed -n 's/.*libpmem.so.1 .*=> //p' | head -1)
libdir=$prefix/lib/daxpmem-libpmem
ourlib=$libdir/libpmem.so.1
shm=/dev/shm/daxpmem-compat-test.$$
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "PASS: $*"; }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }
skip() { echo "SKIP: $*"; }
cleanup() { rm -rf "$shm" "$disk/pmem_diff.d"; }
trap cleanup EXIT INT TERM

mkdir -p "$out" "$disk" "$shm" || { echo "compat-tests: 0 passed, 1 failed"; exit 1; }
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
unset LD_LIBRARY_PATH LD_PRELOAD PMEM_IS_PMEM_FORCE PMEM_NO_FLUSH PMEM_NO_CLWB \
	PMEM_NO_CLFLUSHOPT PMEM_NO_MOVNT PMEM_MOVNT_THRESHOLD DAXPMEM_FORCE_PMEM 2>/dev/null || true

# ---- (a) symbols, versions, no state, runpath -----------------------------
if [ -n "$syslib" ] && [ -e "$syslib" ]; then
	"$here/check_symbols.sh" "$ourlib" "$syslib" && ok "symbols/versions = $syslib" \
		|| ko "symbols/versions"
else
	"$here/check_symbols.sh" "$ourlib" && ok "symbols/versions (no system libpmem to compare)" \
		|| ko "symbols/versions"
fi

# the shim's own object: no data, no bss, no writable objects of any kind
if "$CC" -c -O2 -fPIC -fvisibility=hidden -I"$prefix/include" "$compat/libpmem.c" \
		-o "$out/libpmem.o"; then
	st=$(nm "$out/libpmem.o" | awk '$2 ~ /^[bBdDgGsSvVcC]$/ {print $3}' | tr '\n' ' ')
	db=$(size -A "$out/libpmem.o" | awk '$1 ~ /^\.(data|bss|tdata|tbss)/ {s += $2} END {print s + 0}')
	if [ -z "$st" ] && [ "$db" = 0 ]; then
		ok "shim holds no state (no data/bss objects in libpmem.o)"
	else
		ko "shim has writable state: symbols '$st', data+bss $db bytes"
	fi
else
	ko "compile libpmem.c"
fi

rp=$(readelf -d "$ourlib" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
core=$(env -u LD_LIBRARY_PATH ldd "$ourlib" | awk '$1 == "libdaxpmem.so.0" {print $3}')
if [ "$rp" = '$ORIGIN/..' ] && [ -n "$core" ] && \
		[ "$(readlink -f "$core")" = "$(readlink -f "$prefix/lib/libdaxpmem.so.0")" ]; then
	ok "RUNPATH $rp finds the core: $core"
else
	ko "RUNPATH '$rp', libdaxpmem.so.0 resolves to '$core'"
fi

if pkg-config --validate daxpmem-libpmem; then
	ok "daxpmem-libpmem.pc validates: $(pkg-config --cflags --libs daxpmem-libpmem)"
else
	ko "pkg-config --validate daxpmem-libpmem"
fi

# ---- (b) header -----------------------------------------------------------
if [ -e /usr/include/libpmem.h ]; then
	"$here/check_header.sh" && ok "header = /usr/include/libpmem.h" || ko "header"
else
	skip "header check: no /usr/include/libpmem.h (apt-get install libpmem-dev)"
fi

# ---- build the test programs ----------------------------------------------
cflags="-std=c11 -O2 -Wall -Wextra -Werror -pedantic"
have_deb=0
if [ -e /usr/include/libpmem.h ] && [ -n "$syslib" ]; then
	if "$CC" $cflags "$here/pmem_diff.c" -o "$out/pmem_diff.deb" -lpmem &&
			"$CC" $cflags "$here/which_libpmem.c" -o "$out/which_libpmem.deb" -lpmem &&
			"$CC" $cflags "$here/pmem_fds.c" -o "$out/pmem_fds.deb" -lpmem; then
		have_deb=1
		ok "build against Debian's libpmem (-lpmem)"
	else
		ko "build against Debian's libpmem (-lpmem)"
	fi
else
	skip "Debian's libpmem-dev is not installed: differential and binary tests skipped"
fi
# source compatibility: the same source, only the pkg-config name changes
if "$CC" $cflags "$here/pmem_diff.c" -o "$out/pmem_diff.ours" \
		$(pkg-config --cflags --libs daxpmem-libpmem); then
	got=$(env -u LD_LIBRARY_PATH ldd "$out/pmem_diff.ours" | awk '$1 == "libpmem.so.1" {print $3}')
	if [ "$(readlink -f "$got")" = "$(readlink -f "$ourlib")" ]; then
		ok "build with pkg-config daxpmem-libpmem; binds to $got"
	else
		ko "pkg-config build binds libpmem.so.1 to '$got', not $ourlib"
	fi
else
	ko "build with pkg-config daxpmem-libpmem"
fi

# ---- (c) + (d) transcripts -------------------------------------------------
# run_one NAME BINARY DIR [LD_LIBRARY_PATH]: transcript into $out/NAME.txt
run_one() {
	if [ -n "${4:-}" ]; then
		LD_LIBRARY_PATH=$4 "$here/run_pmem_diff.sh" "$2" "$3" > "$out/$1.txt" 2> "$out/$1.err"
	else
		"$here/run_pmem_diff.sh" "$2" "$3" > "$out/$1.txt" 2> "$out/$1.err"
	fi
	if [ $? -ne 0 ] || [ -s "$out/$1.err" ]; then
		echo "  $1: exit status or stderr:"; sed 's/^/    /' "$out/$1.err" | head -20
	fi
}

# compare REF CAND LABEL: the two transcripts must be identical
compare() {
	if [ -s "$out/$1.txt" ] && cmp -s "$out/$1.txt" "$out/$2.txt"; then
		ok "$3: identical ($(wc -l < "$out/$2.txt") lines)"
	else
		ko "$3: transcripts differ (diff $out/$1.txt $out/$2.txt):"
		diff "$out/$1.txt" "$out/$2.txt" | head -60 | sed 's/^/    /'
	fi
}

if [ $have_deb = 1 ]; then
	# (d) which library does a Debian-linked binary load?
	sysres=$("$out/which_libpmem.deb")
	ourres=$(LD_LIBRARY_PATH=$libdir "$out/which_libpmem.deb")
	case $ourres in
	"libpmem=$(readlink -f "$ourlib") daxpmem=1 "*|"libpmem=$ourlib daxpmem=1 "*)
		ok "Debian-linked binary with LD_LIBRARY_PATH=$libdir loads ours: $ourres" ;;
	*) ko "Debian-linked binary with LD_LIBRARY_PATH: $ourres" ;;
	esac
	case $sysres in
	*"daxpmem=0 "*) ok "without LD_LIBRARY_PATH it loads the system one: $sysres" ;;
	*) ko "without LD_LIBRARY_PATH: $sysres" ;;
	esac

	for fs in tmpfs disk; do
		if [ $fs = tmpfs ]; then dir=$shm; else dir=$disk; fi
		fstype=$(stat -f -c %T "$dir")
		run_one "deb.$fs" "$out/pmem_diff.deb" "$dir"
		run_one "ours.$fs" "$out/pmem_diff.ours" "$dir"
		run_one "deb-on-ours.$fs" "$out/pmem_diff.deb" "$dir" "$libdir"
		compare "deb.$fs" "ours.$fs" \
			"differential $fs ($fstype $dir): -lpmem vs pkg-config daxpmem-libpmem"
		compare "deb.$fs" "deb-on-ours.$fs" \
			"binary compat $fs ($fstype): Debian-linked binary, LD_LIBRARY_PATH=compat"
		# informational: the stored transcript of libpmem 1.12.1-2 (this kernel)
		refname=ext4
		[ "$fstype" = tmpfs ] && refname=tmpfs
		reff=$here/ref/debian-libpmem1-1.12.1-2.$refname.txt
		if [ -e "$reff" ]; then
			n=$(diff "$reff" "$out/deb.$fs.txt" | grep -c '^[<>]')
			echo "  note: Debian's libpmem here vs stored $(basename "$reff"): $n differing lines"
		fi
	done
fi

if [ $have_deb = 1 ]; then
	# (e) file descriptors, Debian's library against ours
	for fs in tmpfs disk; do
		if [ $fs = tmpfs ]; then dir=$shm; else dir=$disk; fi
		"$out/pmem_fds.deb" "$dir" > "$out/fds-deb.$fs.txt" 2>&1
		LD_LIBRARY_PATH=$libdir "$out/pmem_fds.deb" "$dir" > "$out/fds-ours.$fs.txt" 2>&1
		compare "fds-deb.$fs" "fds-ours.$fs" \
			"descriptors $fs ($(stat -f -c %T "$dir")): none held, EMFILE never fails an unmap"
	done
fi

echo "compat-tests: $pass passed, $fail failed"
[ $fail -eq 0 ]
