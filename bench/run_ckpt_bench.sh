#!/usr/bin/env bash
# The checkpoint benchmark of docs/performance.md in one run: the disk's sequential write
# (dd conv=fsync) and read (page cache dropped) bandwidth, then spin's checkpoint save and load
# of a 219 MB model at 1, 2 and 4 ranks on the same disk.
#   bench/run_ckpt_bench.sh [build-dir] [directory on the disk to measure]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
dir=${2:-$(mktemp -d)}
mkdir -p "$dir"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
drop=""
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then drop=--drop-caches; fi
drop_caches() { if [ -n "$drop" ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }

echo "== dd: 219 MB sequential write (conv=fsync), then read${drop:+ (page cache dropped)}"
for rep in 1 2 3 4 5; do
  dd if=/dev/zero of="$dir/dd.bin" bs=1M count=219 conv=fsync 2>&1 | tail -n 1
  drop_caches
  dd if="$dir/dd.bin" of=/dev/null bs=1M 2>&1 | tail -n 1
  rm -f "$dir/dd.bin"
done
bench="$build/bench/ckpt_bench"
for layout in "1 1 1" "2 2 1" "4 2 2"; do
  set -- $layout
  echo "== $1 rank(s): tp $2 x pp $3"
  mpirun -np "$1" --oversubscribe "$bench" --dir "$dir/ckpt" --tp "$2" --pp "$3" $drop
done
rmdir "$dir" 2>/dev/null || true
