// damaged_inputs DATA_DIR [STRIDE]: every data file fixture spin's own decoders read -- the Parquet files of
// tests/data/parquet (Snappy, ZSTD, GZIP, LZ4 and LZ4_RAW pages; dictionary, RLE and DELTA encodings; v1 and
// v2 pages; nested lists and structs) and the gzip and Zstandard files of tests/data/codecs --, each with every
// STRIDE-th byte changed in turn (three masks: the low bit, the high bit, all bits) and cut at 200 points, read
// to the end. Each must end in its rows or a spin::Error; any other exception fails the run (exit 1), and a
// crash, an out-of-bounds access or undefined behaviour is what jobs/local/asan_check.sh, which runs it under
// AddressSanitizer and UBSan, catches. Prints the counts. CTest runs it with a stride (a sample, in seconds);
// the sanitizer check every byte.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "data/decompress_stream.h"
#include "data/parquet.h"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct Counts {
  long inputs = 0, errors = 0, other = 0;
};

// Reads `path` with `read`; counts a spin::Error, reports any other exception.
void attempt(const std::function<void()>& read, const std::string& what, Counts& counts) {
  ++counts.inputs;
  try {
    read();
  } catch (const spin::Error&) {
    ++counts.errors;
  } catch (const std::exception& e) {
    ++counts.other;
    std::cout << "not a spin::Error: " << what << ": " << e.what() << "\n";
  }
}

// Every `stride`-th byte of `good` changed (three masks), then `good` cut at 200 points: each written to
// `scratch` and read with `read`.
void damage(const std::string& name, const std::string& good, std::size_t stride, const std::string& scratch,
            const std::function<void()>& read, Counts& counts) {
  for (std::size_t at = 0; at < good.size(); at += stride) {
    for (const unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ mask);
      write_file(scratch, bad);
      attempt(read, name + ": byte " + std::to_string(at) + " ^ " + std::to_string(mask), counts);
    }
  }
  for (std::size_t keep = 0; keep < good.size(); keep += std::max<std::size_t>(1, good.size() / 200)) {
    write_file(scratch, good.substr(0, keep));
    attempt(read, name + ": cut at " + std::to_string(keep), counts);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: damaged_inputs DATA_DIR [STRIDE]\n";
    return 2;
  }
  const std::string data = argv[1];
  const std::size_t stride = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  if (stride == 0) {
    std::cerr << "damaged_inputs: STRIDE must be at least 1\n";
    return 2;
  }
  const std::string scratch = "/tmp/spin_damaged_input_" + std::to_string(::getpid());
  // Each Parquet fixture with all its top-level columns.
  const std::vector<std::pair<std::string, std::vector<std::string>>> parquet = {
      {"delta", {"key", "prompt", "small", "big", "ids"}},
      {"gzip", {"prompt", "response", "messages"}},
      {"lz4", {"prompt", "response", "messages"}},
      {"lz4_legacy", {"prompt", "response", "messages"}},
      {"nested_types", {"id", "tokens", "nested", "flag", "score", "ratio", "meta", "messages"}},
      {"spin_iter", {"generated", "real"}},
      {"token_ids", {"prompt", "response"}},
      {"ultrachat", {"prompt", "prompt_id", "messages"}},
      {"zstd", {"prompt", "response", "messages"}},
      {"zstd_v2", {"prompt", "response", "messages"}},
  };
  const std::vector<std::string> compressed = {
      "dictionary.zst", "jsonl_level3.zst", "jsonl_level6.gz", "jsonl_streamed_checksum.zst", "members.gz",
      "runs.gz",        "text_level19.zst", "text_level9.gz",  "text_streamed_window1k.zst",  "zeros.zst",
      "zlib_level6.gz"};
  Counts counts;
  try {
    for (const auto& [name, columns] : parquet) {
      const auto read = [&, &columns = columns] {
        spin::data::parquet::for_each_row(scratch, columns, [](nlohmann::json&&, std::int64_t) { return true; });
      };
      damage(name + ".parquet", read_file(data + "/parquet/" + name + ".parquet"), stride, scratch, read, counts);
    }
    for (const std::string& name : compressed) {
      const auto read = [&] {
        const auto in = spin::data::open_data_file(scratch);
        char buffer[1 << 14];
        while (in->read(buffer, sizeof buffer) || in->gcount() > 0) {
        }
      };
      damage(name, read_file(data + "/codecs/" + name), stride, scratch, read, counts);
    }
  } catch (const std::exception& e) {
    std::remove(scratch.c_str());
    std::cerr << "damaged_inputs: " << e.what() << "\n";
    return 2;
  }
  std::remove(scratch.c_str());
  std::cout << "damaged_inputs: " << counts.inputs << " damaged inputs (every " << stride << " byte(s)), "
            << counts.errors << " refused with a spin::Error, " << counts.inputs - counts.errors - counts.other
            << " read as rows or bytes, " << counts.other << " other exceptions\n";
  return counts.other == 0 ? 0 : 1;
}
