#!/bin/bash
# probes/run-mprotect.sh [run.sh options] [SECONDS]
# Builds mprotect_shadow2.c and runs it in the daxvm guest on every mapping kind
# (ext4 -o dax MAP_SYNC 2 MiB-mapped / MADV_NOHUGEPAGE / plain MAP_SHARED, non-DAX ext4, tmpfs),
# first in "orig" mode (the workplace reproducer's behaviour, which reports false losses),
# then fixed, then fixed+strict.  One "RUN <n>cpu [label] RESULT ..." line per run.
# Example: c-tests/daxvm/probes/run-mprotect.sh --smp 1 5
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SEC=5
if [ $# -gt 0 ] && [[ "${!#}" =~ ^[0-9]+$ ]]; then SEC=${!#}; set -- "${@:1:$#-1}"; fi
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
gcc -O2 -Wall -pthread -o "$D/mprotect_shadow2" "$HERE/mprotect_shadow2.c"
cat > "$D/suite.sh" <<SUITE
#!/bin/sh
SEC=$SEC
SUITE
cat >> "$D/suite.sh" <<'SUITE'
r() { label=$1; shift; out=$("$@" 2>&1); echo "$out" | grep -E '^LOST' | head -2 | sed "s/^/   [$label] /"
      echo "$out" | grep -E 'RESULT|STRICT' | sed "s/^/RUN $(nproc)cpu [$label] /"; }
r orig-dax2M /test/mprotect_shadow2 /mnt/dax/a.dat 16 $SEC orig
for m in dax2M daxNH daxNOSYNC nodax tmpfs; do
  case $m in
    dax2M) f=/mnt/dax/f1.dat; x= ;; daxNH) f=/mnt/dax/f2.dat; x=nohuge ;; daxNOSYNC) f=/mnt/dax/f3.dat; x=nosync ;;
    nodax) f=/mnt/nodax/f.dat; x= ;; tmpfs) f=/tmp/f.dat; x= ;;
  esac
  r fixed-$m /test/mprotect_shadow2 $f 16 $SEC $x
  r strict-$m /test/mprotect_shadow2 $f 16 $SEC $x strict
  rm -f $f
done
SUITE
chmod +x "$D/suite.sh"
"$HERE/../run-suite.sh" "$@" "$D" | tee "$D/out.log"
# non-zero if any fixed/strict run lost a page (orig mode is expected to "lose" some)
runs=$(grep -cE '\[(fixed|strict)-.*RESULT' "$D/out.log" || true)
bad=$(grep -E '\[(fixed|strict)-.*RESULT' "$D/out.log" | grep -v 'lost_pages=0 .*strict_violations=0' || true)
[ "$runs" -gt 0 ] && [ -z "$bad" ]
