// Decompression throughput of Parquet's page codecs (data/zstd.cpp, data/gzip.cpp): a .zst or .gz
// file decompressed whole, best of --repeat runs of at least 0.2 s each, as MB/s of output and input.
//   codec_bench --input FILE.zst|FILE.gz --size DECOMPRESSED_BYTES [--repeat 5]
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "bench/bench_options.h"
#include "core/error.h"
#include "data/gzip.h"
#include "data/zstd.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  std::string input;
  std::size_t size = 0;
  int repeat = 5;
  po::options_description desc("codec_bench options");
  desc.add_options()("help", "print this help")("input", po::value(&input)->required(),
                                                "a .zst (Zstandard) or .gz (gzip, zlib) file")(
      "size", po::value(&size)->required(), "its decompressed size in bytes")(
      "repeat", po::value(&repeat)->default_value(repeat), "timed runs (the best is printed)");
  try {
    if (!spin::bench::parse_or_help(desc, argc, argv)) return 0;
    std::ifstream file(input, std::ios::binary);
    spin::require(file.good(), input, ": cannot open");
    const std::string compressed = (std::ostringstream() << file.rdbuf()).str();
    const auto decompress = input.ends_with(".gz") ? spin::data::gzip_decompress : spin::data::zstd_decompress;
    double best = 1e30;
    for (int r = 0; r < repeat; ++r) {
      int calls = 0;
      const auto t0 = std::chrono::steady_clock::now();
      double seconds = 0;
      while (seconds < 0.2) {
        spin::require(decompress(compressed, size, input).size() == size, input, ": wrong size");
        ++calls;
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      best = std::min(best, seconds / calls);
    }
    std::printf("%s: %zu -> %zu bytes: %.1f MB/s of output, %.1f MB/s of input\n", input.c_str(), compressed.size(),
                size, size / best / 1e6, compressed.size() / best / 1e6);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "codec_bench: %s\n", e.what());
    return 1;
  }
}
