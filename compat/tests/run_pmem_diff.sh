#!/bin/sh
# run_pmem_diff.sh BINARY SCRATCH_DIR > transcript
# Runs every mode of pmem_diff (the env cases each in a fresh process, since
# libpmem reads PMEM_IS_PMEM_FORCE once) and prints one combined transcript.
set -eu
bin=$1
dir=$2
unset PMEM_IS_PMEM_FORCE || true
"$bin" "$dir" all
env -u PMEM_IS_PMEM_FORCE "$bin" "$dir" env
for v in 0 1 1x " 1" 01 2 -1 abc ""; do
	PMEM_IS_PMEM_FORCE="$v" "$bin" "$dir" env
done
"$bin" "$dir" latch
PMEM_IS_PMEM_FORCE=0 "$bin" "$dir" latch
"$bin" "$dir" setenv
