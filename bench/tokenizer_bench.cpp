// Tokenizer throughput: encodes a text file (or a built-in mix of English, digits, accented and
// CJK words, newlines and special tokens) with a model directory's tokenizer and prints MB/s and
// tokens/s of encode and decode -- what data loading costs per rank at start-up.
//   tokenizer_bench --model DIR [--input FILE] [--repeat 3]
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "bench/bench_options.h"
#include "core/error.h"
#include "data/tokenizer.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  std::string model, input;
  int repeat = 3;
  po::options_description desc("tokenizer_bench options");
  desc.add_options()("help", "print this help")("model", po::value(&model)->required(), "model directory")(
      "input", po::value(&input), "text file to encode (default: a built-in mix, 2.4 MB)")(
      "repeat", po::value(&repeat)->default_value(repeat), "timed runs (the best is printed)");
  try {
    if (!spin::bench::parse_or_help(desc, argc, argv)) return 0;
    const auto tokenizer = spin::data::Tokenizer::load(model);
    std::string text;
    if (!input.empty()) {
      std::ifstream in(input);
      spin::require(in.good(), input, ": cannot be read");
      text.assign(std::istreambuf_iterator<char>(in), {});
    } else {
      const char* words[] = {"The ", "quick ", "brown ", "fox's ", "12345 ", "naïve ", "日本 ", "\n\n",
                             "don't ", "<|eot_id|>", "x=1; "};
      for (int i = 0; i < 400000; ++i) text += words[(i * 7) % 11];
    }
    double encode = 1e30, decode = 1e30;
    std::size_t tokens = 0;
    for (int r = 0; r < repeat; ++r) {
      const auto a = std::chrono::steady_clock::now();
      const std::vector<std::int32_t> ids = tokenizer->encode(text);
      const auto b = std::chrono::steady_clock::now();
      const std::string back = tokenizer->decode(ids);
      const auto c = std::chrono::steady_clock::now();
      encode = std::min(encode, std::chrono::duration<double>(b - a).count());
      decode = std::min(decode, std::chrono::duration<double>(c - b).count());
      tokens = ids.size();
    }
    const double mb = static_cast<double>(text.size()) / 1e6;
    std::printf("%s: %.2f MB -> %zu tokens (%.2f bytes per token)\n", model.c_str(), mb, tokens,
                static_cast<double>(text.size()) / static_cast<double>(tokens));
    std::printf("encode: %.1f MB/s, %.2f M tokens/s; decode: %.1f MB/s (best of %d, one core)\n", mb / encode,
                static_cast<double>(tokens) / encode / 1e6, mb / decode, repeat);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
