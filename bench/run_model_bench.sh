#!/usr/bin/env bash
# The model benchmark of docs/performance.md in one run: spin at TP = 1 (one rank, two BLAS
# threads), spin at TP = 2 (two ranks, one thread each), and the same step in PyTorch.
#   bench/run_model_bench.sh [build-dir] [model_bench options...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== spin, TP 1 (1 rank x 2 threads)"
OPENBLAS_NUM_THREADS=2 "$build/bench/model_bench" "$@"
echo "== spin, TP 2 (2 ranks x 1 thread)"
OPENBLAS_NUM_THREADS=1 mpirun -np 2 --oversubscribe -x OPENBLAS_NUM_THREADS "$build/bench/model_bench" --tp 2 "$@"
echo "== PyTorch (Debian python3-torch), 2 threads"
/usr/bin/python3 bench/torch_model_bench.py --threads 2 "$@"
