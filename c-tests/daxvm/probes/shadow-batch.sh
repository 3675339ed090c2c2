#!/bin/bash
# probes/shadow-batch.sh [run.sh options] [SECONDS]
# The library's own MPROTECT shadow test (tests/seam.rs, shadow_mprotect: two writers,
# a syncer with random partial and whole syncs, 8 s a run) in a loop inside one guest
# boot, for SECONDS (default 1080): /mnt/dax twice (2 MiB-mapped MAP_SYNC), then
# /mnt/nodax and tmpfs. One "RUN n DIR rc=.. N writes, .. tracked faults, 0 lost" line a
# run; a failing run prints its test output, including the lost write's page history
# (handler opens, collector protects, writes, syncs). Used for issue 4's DAX question
# (docs/tracking.md). Run from the repository root (~1 min for SECONDS=30):
#   c-tests/daxvm/probes/shadow-batch.sh --smp 2 1080
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
SEC=1080
if [ $# -gt 0 ] && [[ "${!#}" =~ ^[0-9]+$ ]]; then SEC=${!#}; set -- "${@:1:$#-1}"; fi
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
(cd "$ROOT" && cargo test --release --features seam --test seam --no-run >/dev/null 2>&1)
cp "$(ls -t "$ROOT"/target/release/deps/seam-* | grep -v '\.d$' | head -1)" "$D/seam"
cat > "$D/suite.sh" <<SUITE
#!/bin/sh
END=\$(( \$(date +%s) + $SEC ))
SUITE
cat >> "$D/suite.sh" <<'SUITE'
export DAXPMEM_ALLOW_MPROTECT_ON_DAX=1
i=0; bad=0
while [ $(date +%s) -lt $END ]; do
  for where in /mnt/dax /mnt/dax /mnt/nodax /tmp; do
    i=$((i+1))
    out=$(env DAXPMEM_SHADOW_DIR=$where DAXPMEM_SHADOW_SECS=8 /test/seam shadow_mprotect --test-threads=1 --nocapture 2>&1)
    rc=$?
    echo "RUN $i $where rc=$rc $(echo "$out" | grep -oE 'shadow /.*' | sed 's/.*: //')"
    if [ $rc != 0 ]; then bad=$((bad+1)); echo "$out" | grep -vE '^ +[0-9]+: |^ +at ' | head -80; fi
  done
done
echo "shadow-batch: $i runs, $bad failed"
[ $bad = 0 ]
SUITE
chmod +x "$D/suite.sh"
"$ROOT/c-tests/daxvm/run-suite.sh" --timeout $((SEC + 300)) "$@" "$D"
