#!/bin/bash
# c-tests/daxvm/run-suite.sh [run.sh options] DIR
# Boot the daxvm guest once and run the executable DIR/suite.sh in it (cwd /mnt/dax, an ext4
# -o dax filesystem).  Every file of DIR is available under /test; ELF files in DIR get their
# shared libraries shipped, DIR/lib is on LD_LIBRARY_PATH.  Output is streamed; the exit
# status is suite.sh's (121: suite passed but the kernel logged a WARNING/BUG; 124: timeout;
# 125: guest failed to boot / set up).  See run.sh --help for the options, README.md for more.
# A guest that reports no status (125: under TCG the stock kernel now and then panics while
# booting, e.g. an int3 during text patching, 2026-12-03) is booted once more, said loudly;
# the result is that second run's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    sed -n '2,7p' "$0"; echo; "$HERE/run.sh" --help; exit 0
fi
DIR=${!#}
rc=0
"$HERE/run.sh" "${@:1:$#-1}" --suite "$DIR" || rc=$?
if [ "$rc" = 125 ]; then
    echo "daxvm: the guest reported no exit status (boot failure or panic): booting it once more" >&2
    rc=0
    "$HERE/run.sh" "${@:1:$#-1}" --suite "$DIR" || rc=$?
fi
exit "$rc"
