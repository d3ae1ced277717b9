// Data file reading throughput: every record of a JSONL or Parquet file read as a JSON object (what
// data loading does before tokenizing, on every rank at start-up), best of --repeat runs, as MB/s of
// the file and of its text, and records/s.
//   data_read_bench --data FILE [--columns messages,prompt] [--repeat 3]
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>

#include "bench/bench_options.h"
#include "core/error.h"
#include "data/records.h"

namespace po = boost::program_options;

namespace {
// Bytes of string values in a record: the text the file holds, whatever its encoding.
std::size_t text_bytes(const nlohmann::json& j) {
  if (j.is_string()) return j.get_ref<const std::string&>().size();
  std::size_t n = 0;
  if (j.is_structured()) {
    for (const auto& v : j) n += text_bytes(v);
  }
  return n;
}
}  // namespace

int main(int argc, char** argv) {
  std::string data, columns = "prompt,response,messages,system,conversations,real,generated,chosen,rejected";
  int repeat = 3;
  po::options_description desc("data_read_bench options");
  desc.add_options()("help", "print this help")("data", po::value(&data)->required(), "JSONL or Parquet file")(
      "columns", po::value(&columns)->default_value(columns), "top-level keys read (a Parquet file's others are not)")(
      "repeat", po::value(&repeat)->default_value(repeat), "timed runs (the best is printed)");
  try {
    if (!spin::bench::parse_or_help(desc, argc, argv)) return 0;
    std::vector<std::string> keys;
    for (std::stringstream in(columns); in.good();) {
      std::string key;
      std::getline(in, key, ',');
      if (!key.empty()) keys.push_back(key);
    }
    double best = 1e30;
    std::size_t records = 0, text = 0;
    for (int r = 0; r < repeat; ++r) {
      records = text = 0;
      const auto t0 = std::chrono::steady_clock::now();
      spin::data::for_each_record(data, keys, [&](const spin::data::Record& record) {
        text += text_bytes(record.object());
        ++records;
      });
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double file_mb = static_cast<double>(std::filesystem::file_size(data)) / 1e6;
    std::printf("%s: %zu records, %.1f MB file, %.1f MB text: %.3f s, %.1f MB/s of file, %.1f MB/s of text, "
                "%.0f records/s\n",
                data.c_str(), records, file_mb, static_cast<double>(text) / 1e6, best, file_mb / best,
                static_cast<double>(text) / 1e6 / best, static_cast<double>(records) / best);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "data_read_bench: %s\n", e.what());
    return 1;
  }
}
