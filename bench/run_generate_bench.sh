#!/usr/bin/env bash
# The generation benchmark of docs/performance.md: prefill and decode tokens/s at batch 1, 8 and
# 32, then continuous batching against fixed batches and with chunked prefill, at TP 1 (one
# rank, two threads) and TP 2 (two ranks, one thread each).
#   bench/run_generate_bench.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== TP 1"
OPENBLAS_NUM_THREADS=2 "$build/bench/generate_bench"
echo "== TP 2"
OPENBLAS_NUM_THREADS=1 mpirun -np 2 --oversubscribe -x OPENBLAS_NUM_THREADS "$build/bench/generate_bench" --tp 2
