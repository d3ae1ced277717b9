// Block-scaled FP8 quantization throughput (spin ckpt export-hf --dtype fp8 and checkpoint.save_dtype = fp8:
// ckpt::quantize_fp8_blocks, as a writing rank quantizes each matrix of its files): a [rows, cols] matrix of normal
// values in blocks of [block, block] on --threads threads (0: the writer's default, one a CPU this process may run
// on, at most 16), best of --repeat runs; prints ns an element and GB/s of float32 read.
//   fp8_bench [--rows 7168] [--cols 2048] [--block 128] [--threads 1] [--repeat 5]
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "bench/bench_options.h"
#include "checkpoint/safetensors.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  std::int64_t rows = 7168, cols = 2048, block = 128;  // DeepSeek-V3's expert down_proj [7168, 2048]
  int repeat = 5, threads = 1;
  po::options_description desc("fp8_bench options");
  desc.add_options()("help", "print this help")("rows", po::value(&rows)->default_value(rows), "matrix rows")(
      "cols", po::value(&cols)->default_value(cols), "matrix columns")(
      "block", po::value(&block)->default_value(block), "square block size")(
      "threads", po::value(&threads)->default_value(threads), "threads (0: one a CPU, at most 16)")(
      "repeat", po::value(&repeat)->default_value(repeat), "timed runs (the best is printed)");
  if (!spin::bench::parse_or_help(desc, argc, argv)) return 0;
  std::vector<float> w(static_cast<std::size_t>(rows * cols));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (float& v : w) v = normal(rng);
  std::vector<std::uint8_t> codes(w.size());
  double best = 1e30;
  std::uint64_t check = 0;
  for (int r = 0; r < repeat; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const spin::ckpt::BlockScales scales =
        spin::ckpt::quantize_fp8_blocks("w", w.data(), rows, cols, block, block, codes.data(), threads);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    check += codes[static_cast<std::size_t>(r)] + static_cast<std::uint64_t>(scales.scales.size());
  }
  const double n = static_cast<double>(w.size());
  std::printf(
      "fp8_bench [%lld, %lld] in blocks of %lld, %d thread(s): %.2f ns an element, %.2f GB/s of float32 "
      "(check %llu)\n",
      static_cast<long long>(rows), static_cast<long long>(cols), static_cast<long long>(block), threads,
      best / n * 1e9, n * 4 / best / 1e9, static_cast<unsigned long long>(check));
}
