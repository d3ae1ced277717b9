#include "data/deflate.h"

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "core/error.h"

namespace spin::data {
namespace {

constexpr int kMaxCodeLength = 15;

// A canonical Huffman code as a table over its longest code's bits: DEFLATE packs codes starting
// from their most significant bit into a stream read from the least, so an entry's index is its
// code reversed (and every extension of it to the table's width).
struct Huffman {
  int bits = 0;
  std::vector<std::uint16_t> symbols;
  std::vector<std::uint8_t> lengths;  // 0: no code reaches this entry
};

Huffman huffman(std::span<const std::uint8_t> lengths, const std::string& where) {
  std::array<int, kMaxCodeLength + 1> count{};
  for (std::uint8_t l : lengths) ++count[l];
  count[0] = 0;
  Huffman h;
  int left = 1;  // codes of the current length still free
  for (int l = 1; l <= kMaxCodeLength; ++l) {
    left = 2 * left - count[l];
    require(left >= 0, where, ": a DEFLATE Huffman code with more codes than its lengths allow (corrupt data)");
    if (count[l] > 0) h.bits = l;
  }
  std::array<std::uint32_t, kMaxCodeLength + 1> next{};
  for (int l = 1, code = 0; l <= kMaxCodeLength; ++l) {
    code = (code + count[l - 1]) << 1;
    next[l] = static_cast<std::uint32_t>(code);
  }
  h.symbols.assign(std::size_t{1} << h.bits, 0);
  h.lengths.assign(std::size_t{1} << h.bits, 0);
  for (std::size_t s = 0; s < lengths.size(); ++s) {
    const int l = lengths[s];
    if (l == 0) continue;
    std::uint32_t code = next[l]++, reversed = 0;
    for (int i = 0; i < l; ++i, code >>= 1) reversed = (reversed << 1) | (code & 1);
    for (std::size_t at = reversed; at < h.symbols.size(); at += std::size_t{1} << l) {
      h.symbols[at] = static_cast<std::uint16_t>(s);
      h.lengths[at] = static_cast<std::uint8_t>(l);
    }
  }
  return h;
}

int decode(const Huffman& h, ForwardBits& in) {
  const std::uint32_t entry = in.peek(h.bits);
  require(h.lengths[entry] > 0, in.where(), ": a DEFLATE code its block's table does not have (corrupt data)");
  in.skip(h.lengths[entry]);
  return h.symbols[entry];
}

// The fixed codes of block type 1 (section 3.2.6).
const std::array<Huffman, 2>& fixed_codes() {
  static const std::array<Huffman, 2> codes = [] {
    std::array<std::uint8_t, 288> literal{};
    for (int s = 0; s < 288; ++s) literal[s] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
    std::array<std::uint8_t, 30> distance{};
    distance.fill(5);
    const std::string where = "DEFLATE's fixed codes";
    return std::array<Huffman, 2>{huffman(literal, where), huffman(distance, where)};
  }();
  return codes;
}

// A dynamic block's two codes, themselves Huffman-coded lengths (section 3.2.7).
std::array<Huffman, 2> dynamic_codes(ForwardBits& in) {
  const std::string& where = in.where();
  const std::size_t literals = in.read(5) + 257, distances = in.read(5) + 1, code_lengths = in.read(4) + 4;
  require(literals <= 286 && distances <= 30, where, ": a DEFLATE block of ", literals, " literal/length and ",
          distances, " distance codes (corrupt data)");
  static constexpr std::array<int, 19> kOrder = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  std::array<std::uint8_t, 19> lengths_of_lengths{};
  for (std::size_t i = 0; i < code_lengths; ++i) lengths_of_lengths[kOrder[i]] = static_cast<std::uint8_t>(in.read(3));
  const Huffman length_code = huffman(lengths_of_lengths, where);
  std::vector<std::uint8_t> lengths(literals + distances, 0);
  for (std::size_t i = 0; i < lengths.size();) {
    const int symbol = decode(length_code, in);
    if (symbol < 16) {
      lengths[i++] = static_cast<std::uint8_t>(symbol);
      continue;
    }
    std::uint8_t value = 0;
    std::size_t repeat = 0;
    if (symbol == 16) {  // the previous length, 3-6 times
      require(i > 0, where, ": a DEFLATE length repeat before any length (corrupt data)");
      value = lengths[i - 1];
      repeat = 3 + in.read(2);
    } else {
      repeat = symbol == 17 ? 3 + in.read(3) : 11 + in.read(7);  // zeros
    }
    require(repeat <= lengths.size() - i, where, ": DEFLATE code lengths past their count (corrupt data)");
    for (std::size_t k = 0; k < repeat; ++k) lengths[i++] = value;
  }
  require(lengths[256] > 0, where, ": a DEFLATE block without an end-of-block code (corrupt data)");
  const std::span<const std::uint8_t> all(lengths);
  return {huffman(all.first(literals), where), huffman(all.subspan(literals), where)};
}

constexpr std::array<std::uint16_t, 29> kLengthBase = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                                       31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr std::array<std::uint8_t, 29> kLengthExtra = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                       2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr std::array<std::uint16_t, 30> kDistanceBase = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                                         33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                                         1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr std::array<std::uint8_t, 30> kDistanceExtra = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                                         6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

}  // namespace

bool inflate_block(ForwardBits& in, std::string& out, std::size_t start, std::size_t limit) {
  const std::string& where = in.where();
  const auto room = [&](std::size_t n) {
    require(n <= limit - out.size(), where, ": DEFLATE data longer than the page header's ", limit,
            " bytes (corrupt data)");
  };
  const bool last = in.read(1);
  const std::uint32_t type = in.read(2);
  if (type == 0) {  // stored: a length, its complement, the bytes
    in.align();
    const std::uint32_t length = in.read(16), complement = in.read(16);
    require(length == (~complement & 0xffff), where, ": a DEFLATE stored block whose length ", length,
            " and its complement disagree (corrupt data)");
    room(length);
    out.append(in.take(length));
    return last;
  }
  require(type != 3, where, ": a DEFLATE block of the reserved type (corrupt data)");
  const std::array<Huffman, 2> dynamic = type == 2 ? dynamic_codes(in) : std::array<Huffman, 2>{};
  const std::array<Huffman, 2>& codes = type == 2 ? dynamic : fixed_codes();
  for (;;) {
    const int symbol = decode(codes[0], in);
    if (symbol < 256) {
      room(1);
      out.push_back(static_cast<char>(symbol));
      continue;
    }
    if (symbol == 256) return last;  // end of block
    require(symbol <= 285, where, ": a DEFLATE length code of ", symbol, " (corrupt data)");
    const std::size_t length = kLengthBase[symbol - 257] + in.read(kLengthExtra[symbol - 257]);
    const int d = decode(codes[1], in);
    require(d < 30, where, ": a DEFLATE distance code of ", d, " (corrupt data)");
    const std::size_t distance = kDistanceBase[d] + in.read(kDistanceExtra[d]);
    require(distance <= out.size() - start, where, ": a DEFLATE match ", distance, " bytes back where ",
            out.size() - start, " are decompressed (corrupt data)");
    room(length);
    // Byte by byte: a match may overlap what it writes (distance < length repeats a pattern).
    const std::size_t from = out.size() - distance;
    for (std::size_t i = 0; i < length; ++i) out.push_back(out[from + i]);
  }
}

void inflate(ForwardBits& in, std::string& out, std::size_t start, std::size_t limit) {
  while (!inflate_block(in, out, start, limit)) {
  }
}

}  // namespace spin::data
