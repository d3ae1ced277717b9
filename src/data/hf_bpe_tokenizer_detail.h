// What the byte-level BPE tokenizer's loading (hf_bpe_loader.cpp) and its encoding and decoding
// (hf_bpe_tokenizer.cpp) share: GPT-2's byte alphabet and the key of the merges' table.
#pragma once

#include <cstdint>
#include <vector>

namespace spin::data::detail {

namespace fs = std::filesystem;
// GPT-2's map of the 256 bytes to printable characters (bytes_to_unicode).
inline std::vector<char32_t> byte_chars() {
  std::vector<char32_t> map(256);
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

// The merges' key: the pair's (left, right) token ids.
inline std::uint64_t merge_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(left) << 32) | static_cast<std::uint32_t>(right);
}

}  // namespace spin::data::detail
