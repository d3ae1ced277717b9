#!/usr/bin/env bash
# Race check of the hand-written CUDA kernels' source, without a GPU: builds the emulated-kernel tests
# (tests/common/cuda_emulation.h: every CUDA thread an OS thread, __syncthreads a barrier) with
# ThreadSanitizer into build-tsan/ and runs them. A read and a write of one shared- or global-memory
# location by two threads with no barrier between them is reported wherever it happens, not only when
# the threads' timing makes a result wrong -- what compute-sanitizer's racecheck does on a GPU
# (jobs/gpu/checks.sh runs that too). Known benign races: tests/tsan/cuda_emulation.supp.
# Also data loading's workers (src/data/examples.cpp): every kind of tokenizer shared by 4 threads; an FP8
# export's quantization threads (checkpoint/safetensors.cpp); the hang watchdog's thread (core/watchdog.cpp).
#
#   jobs/local/race_check.sh [build-dir]      # ~3 minutes to build, ~4 to run on 2 cores
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-tsan}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPIN_CUDA=OFF \
      -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
cmake --build "$build" --target cuda_emulation_test data_test ckpt_test core_test
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# One OpenBLAS thread: the CPU reference kernels' sgemm runs on its own worker threads otherwise, whose
# synchronisation (uninstrumented) ThreadSanitizer cannot see -- every product would be a report.
OPENBLAS_NUM_THREADS=1 \
TSAN_OPTIONS="suppressions=$PWD/tests/tsan/cuda_emulation.supp halt_on_error=0 exitcode=66 ${TSAN_OPTIONS:-}" \
  "$build/tests/cuda_emulation_test" --gtest_color=no >"$log" 2>&1 || status=$?
TSAN_OPTIONS="halt_on_error=0 exitcode=66 ${TSAN_OPTIONS:-}" \
  "$build/tests/data_test" --gtest_color=no \
  --gtest_filter='Tokenizers.WorkersTokenizeAsOneThreadDoes:Examples.WorkersGiveWhatOneRecordAtATimeGives' \
  >>"$log" 2>&1 || status=$?
TSAN_OPTIONS="halt_on_error=0 exitcode=66 ${TSAN_OPTIONS:-}" \
  "$build/tests/ckpt_test" --gtest_color=no --gtest_filter='Fp8Blocks.*' >>"$log" 2>&1 || status=$?
TSAN_OPTIONS="halt_on_error=0 exitcode=66 ${TSAN_OPTIONS:-}" \
  "$build/tests/core_test" --gtest_color=no --gtest_filter='WatchdogDeathTest.*' >>"$log" 2>&1 || status=$?
grep -E "^\[  (PASSED|FAILED) |^SUMMARY: ThreadSanitizer" "$log" | sort | uniq -c || true
if ((status != 0)); then
  grep -A12 "WARNING: ThreadSanitizer" "$log" | head -60 || true
  echo "race check: FAILED (exit $status)"
  exit 1
fi
echo "race check: no data race in the emulated CUDA kernels, data loading's workers, FP8 quantization's threads or the watchdog"
