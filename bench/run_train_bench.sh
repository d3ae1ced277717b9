#!/usr/bin/env bash
# The training-engine benchmark of docs/performance.md in one run: a fixed global batch at
# PP = 1, 2, 4, and the optimizer state with and without the distributed optimizer at DP = 1, 2, 4.
#   bench/run_train_bench.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bench="$build/bench/train_bench"
echo "== PP 1 (1 rank x 2 threads)"
OPENBLAS_NUM_THREADS=2 "$bench" --pp 1
for pp in 2 4; do
  echo "== PP $pp ($pp ranks x 1 thread)"
  OPENBLAS_NUM_THREADS=1 mpirun -np "$pp" --oversubscribe -x OPENBLAS_NUM_THREADS "$bench" --pp "$pp"
done
for dp in 2 4; do
  for opt in "" --distributed-optimizer; do
    echo "== DP $dp ${opt:-(plain optimizer)}"
    OPENBLAS_NUM_THREADS=1 mpirun -np "$dp" --oversubscribe -x OPENBLAS_NUM_THREADS "$bench" $opt | tail -n 3
  done
done
