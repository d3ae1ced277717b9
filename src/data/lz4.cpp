#include "data/lz4.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "data/byte_cursor.h"

namespace spin::data {
namespace {

// A length of 15 in a token's nibble continues in bytes added to it, each 255 but the last.
std::size_t length(ByteCursor& in, std::size_t nibble) {
  if (nibble < 15) return nibble;
  for (std::uint8_t b = 255; b == 255;) {
    b = in.byte();
    nibble += b;
  }
  return nibble;
}

}  // namespace

std::string lz4_raw_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where) {
  // Each input byte gives at most 255 bytes of output: a copy's length grows by 255 a byte.
  require(expected_size <= 255 * (compressed.size() + 1), where, ": ", compressed.size(),
          " bytes of LZ4 data cannot hold the ", expected_size, " bytes the page header says (corrupt page)");
  std::string out;
  out.reserve(expected_size);
  ByteCursor in(compressed, where);
  for (;;) {
    const std::uint8_t token = in.byte();
    const std::size_t literals = length(in, token >> 4);
    require(literals <= in.left() && literals <= expected_size - out.size(), where,
            ": an LZ4 literal past the data's end (corrupt page)");
    out.append(in.take(literals));
    if (in.left() == 0) break;  // the last sequence is literals alone
    const std::size_t offset = in.le(2);
    const std::size_t match = length(in, token & 15) + 4;
    require(offset >= 1 && offset <= out.size() && match <= expected_size - out.size(), where, ": an LZ4 copy of ",
            match, " bytes from ", offset, " back at byte ", out.size(), " (corrupt page)");
    // Byte by byte: a copy may overlap what it writes (offset < length repeats a pattern).
    const std::size_t from = out.size() - offset;
    for (std::size_t i = 0; i < match; ++i) out.push_back(out[from + i]);
  }
  require(out.size() == expected_size, where, ": LZ4 data decompresses to ", out.size(), " of its ", expected_size,
          " bytes (corrupt page)");
  return out;
}

std::string lz4_hadoop_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where) {
  const auto be32 = [](std::string_view b) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(b[i]);
    return v;
  };
  // Hadoop's framing: every block behind its sizes, the blocks filling the page exactly.
  std::string out;
  std::string_view rest = compressed;
  while (rest.size() >= 8) {
    const std::size_t size = be32(rest), block = be32(rest.substr(4));
    if (block > rest.size() - 8 || size > expected_size - out.size()) break;
    try {
      out += lz4_raw_decompress(rest.substr(8, block), size, where);
    } catch (const Error&) {
      break;
    }
    rest.remove_prefix(8 + block);
  }
  if (rest.empty() && out.size() == expected_size) return out;
  return lz4_raw_decompress(compressed, expected_size, where);  // one raw block (Arrow before 9.0)
}

}  // namespace spin::data
