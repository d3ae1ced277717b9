#!/usr/bin/env bash
# Memory-safety check of spin's own data decoders (Parquet with its Thrift footer, page encodings and nesting;
# Snappy, LZ4, DEFLATE/gzip and Zstandard): builds tests/fuzz/damaged_inputs.cpp and data_test with
# AddressSanitizer and UBSan into build-asan/ and runs them -- every fixture with each byte changed in turn
# (three masks) and cut at 200 points, every unit test of the data library. An out-of-bounds read or write, a
# use after free or undefined behaviour (a shift too far, a signed overflow) fails it wherever it happens, not
# only when it crashes; a damaged input must end in rows or a spin::Error naming the file.
#
#   jobs/local/asan_check.sh [build-dir] [stride]   # stride 1 (every byte): ~5 minutes to build, ~40 to run
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-asan}
stride=${2:-1}
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPIN_CUDA=OFF \
      -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$build" --target damaged_inputs data_test
export ASAN_OPTIONS="detect_leaks=1 ${ASAN_OPTIONS:-}" UBSAN_OPTIONS="print_stacktrace=1 ${UBSAN_OPTIONS:-}"
"$build/tests/data_test" --gtest_color=no --gtest_brief=1
"$build/tests/damaged_inputs" tests/data "$stride"
echo "asan check: no memory error or undefined behaviour in the data decoders"
