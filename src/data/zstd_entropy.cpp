#include "data/zstd_entropy.h"

#include <algorithm>
#include <bit>

#include "core/error.h"

namespace spin::data::zstd {
namespace {

int highest_bit(std::uint32_t v) { return 31 - std::countl_zero(v); }  // v > 0

constexpr int kMaxHuffmanBits = 11;  // Max_Number_of_Bits (section 4.2.1)

}  // namespace

BackwardBits::BackwardBits(std::string_view bytes, const std::string& where) : bytes_(bytes) {
  require(!bytes.empty() && bytes.back() != 0, where, ": a Zstandard bit stream without its end mark (corrupt data)");
  pos_ = 8 * static_cast<std::int64_t>(bytes.size() - 1) + highest_bit(static_cast<std::uint8_t>(bytes.back()));
}

FseTable fse_table(std::span<const std::int16_t> counts, int log, const std::string& where) {
  const std::uint32_t size = std::uint32_t{1} << log;
  FseTable t{log, std::vector<FseEntry>(size)};
  std::vector<std::uint32_t> next(counts.size());
  // "Less than one" symbols take the last cells, one each; the others are spread by the step.
  std::uint32_t high = size - 1;
  for (std::size_t s = 0; s < counts.size(); ++s) {
    if (counts[s] == -1) {
      t.entries[high--].symbol = static_cast<std::uint8_t>(s);
      next[s] = 1;
    } else {
      next[s] = static_cast<std::uint32_t>(counts[s]);
    }
  }
  const std::uint32_t step = (size >> 1) + (size >> 3) + 3, mask = size - 1;
  std::uint32_t at = 0;
  for (std::size_t s = 0; s < counts.size(); ++s) {
    for (int i = 0; i < counts[s]; ++i) {
      t.entries[at].symbol = static_cast<std::uint8_t>(s);
      do at = (at + step) & mask;
      while (at > high);
    }
  }
  require(at == 0, where, ": a Zstandard FSE distribution that does not fill its table (corrupt data)");
  for (FseEntry& e : t.entries) {
    const std::uint32_t state = next[e.symbol]++;
    e.bits = static_cast<std::uint8_t>(log - highest_bit(state));
    e.base = static_cast<std::uint16_t>((state << e.bits) - size);
  }
  return t;
}

FseTable fse_read_table(ForwardBits& in, int max_log, int max_symbol, const std::string& where) {
  const int log = static_cast<int>(in.read(4)) + 5;
  require(log <= max_log, where, ": a Zstandard FSE table of accuracy ", log, " above ", max_log, " (corrupt data)");
  std::vector<std::int16_t> counts;
  // Each count is read in as few bits as the probability points still to share allow (4.1.1).
  std::int32_t remaining = std::int32_t{1} << log;
  while (remaining > 0) {
    require(static_cast<int>(counts.size()) <= max_symbol, where, ": a Zstandard FSE table with symbols past ",
            max_symbol, " (corrupt data)");
    const int bits = highest_bit(static_cast<std::uint32_t>(remaining + 1)) + 1;
    const std::uint32_t low_mask = (std::uint32_t{1} << (bits - 1)) - 1;
    const std::uint32_t threshold = (std::uint32_t{1} << bits) - 1 - static_cast<std::uint32_t>(remaining + 1);
    std::uint32_t v = in.peek(bits);
    if ((v & low_mask) < threshold) {
      v &= low_mask;
      in.skip(bits - 1);
    } else {
      if (v > low_mask) v -= threshold;
      in.skip(bits);
    }
    const std::int16_t count = static_cast<std::int16_t>(static_cast<int>(v) - 1);
    remaining -= count < 0 ? -count : count;
    counts.push_back(count);
    if (count == 0) {  // runs of zero counts: 2-bit repeat flags, 3 meaning "and more"
      for (std::uint32_t repeat = in.read(2);; repeat = in.read(2)) {
        require(static_cast<int>(counts.size() + repeat) <= max_symbol + 1, where,
                ": a Zstandard FSE table with symbols past ", max_symbol, " (corrupt data)");
        counts.insert(counts.end(), repeat, 0);
        if (repeat != 3) break;
      }
    }
  }
  require(remaining == 0, where, ": a Zstandard FSE table whose counts overshoot its size (corrupt data)");
  return fse_table(counts, log, where);
}

FseTable fse_rle_table(std::uint8_t symbol) { return FseTable{0, std::vector<FseEntry>{FseEntry{0, symbol, 0}}}; }

namespace {

// The weights of an FSE-compressed Huffman description: two interleaved states over one table,
// decoded until the stream is overrun (section 4.2.1.2).
std::vector<std::uint8_t> fse_weights(std::string_view in, const std::string& where) {
  ForwardBits header(in, where);
  const FseTable table = fse_read_table(header, 6, kMaxHuffmanBits, where);
  BackwardBits bits(in.substr(header.bytes_used()), where);
  FseState a, b;
  a.init(table, bits);
  b.init(table, bits);
  std::vector<std::uint8_t> weights;
  // A table whose states read no bits never overruns the stream: the count bounds the loop.
  const auto push = [&](const FseState& s) {
    require(weights.size() < 255, where, ": a Zstandard Huffman description of more than 255 weights (corrupt data)");
    weights.push_back(s.symbol());
  };
  for (;;) {
    push(a);
    a.update(bits);
    if (bits.left() < 0) {
      push(b);
      break;
    }
    push(b);
    b.update(bits);
    if (bits.left() < 0) {
      push(a);
      break;
    }
  }
  return weights;
}

}  // namespace

std::size_t huffman_read_table(std::string_view in, HuffmanTable& table, const std::string& where) {
  require(!in.empty(), where, ": a Zstandard literals section ends before its Huffman table (corrupt data)");
  const std::size_t header = static_cast<std::uint8_t>(in[0]);
  std::vector<std::uint8_t> weights;
  std::size_t used = 0;
  if (header < 128) {
    require(header > 0 && header < in.size(), where, ": a Zstandard Huffman description past its data (corrupt data)");
    weights = fse_weights(in.substr(1, header), where);
    used = 1 + header;
  } else {  // 4-bit weights, two a byte
    const std::size_t n = header - 127;
    used = 1 + (n + 1) / 2;
    require(used <= in.size(), where, ": a Zstandard Huffman description past its data (corrupt data)");
    for (std::size_t i = 0; i < n; ++i) {
      const auto byte = static_cast<std::uint8_t>(in[1 + i / 2]);
      weights.push_back(i % 2 == 0 ? byte >> 4 : byte & 15);
    }
  }
  // The last symbol's weight is implied: it completes the sum of 2^(w-1) to a power of two.
  std::uint32_t total = 0;
  for (std::uint8_t w : weights) {
    require(w <= kMaxHuffmanBits, where, ": a Zstandard Huffman weight of ", int{w}, " (corrupt data)");
    if (w > 0) total += std::uint32_t{1} << (w - 1);
  }
  require(total > 0, where, ": a Zstandard Huffman description without weights (corrupt data)");
  const int max_bits = highest_bit(total) + 1;
  const std::uint32_t rest = (std::uint32_t{1} << max_bits) - total;
  require(max_bits <= kMaxHuffmanBits && std::has_single_bit(rest), where,
          ": Zstandard Huffman weights that make no prefix code (corrupt data)");
  weights.push_back(static_cast<std::uint8_t>(highest_bit(rest) + 1));

  // Canonical codes: the longest codes first, symbols in order within a length.
  table.max_bits = max_bits;
  table.symbols.assign(std::size_t{1} << max_bits, 0);
  table.lengths.assign(std::size_t{1} << max_bits, 0);
  std::vector<std::uint32_t> rank_start(max_bits + 2, 0), rank_count(max_bits + 2, 0);
  for (std::uint8_t w : weights) {
    if (w > 0) ++rank_count[max_bits + 1 - w];
  }
  for (int length = max_bits; length >= 1; --length) {
    rank_start[length - 1] = rank_start[length] + (rank_count[length] << (max_bits - length));
  }
  for (std::size_t s = 0; s < weights.size(); ++s) {
    if (weights[s] == 0) continue;
    const int length = max_bits + 1 - weights[s];
    const std::uint32_t first = rank_start[length], cells = std::uint32_t{1} << (max_bits - length);
    std::fill_n(table.symbols.begin() + first, cells, static_cast<std::uint8_t>(s));
    std::fill_n(table.lengths.begin() + first, cells, static_cast<std::uint8_t>(length));
    rank_start[length] += cells;
  }
  return used;
}

void huffman_decode(const HuffmanTable& table, std::string_view stream, std::span<std::uint8_t> out,
                    const std::string& where) {
  BackwardBits bits(stream, where);
  for (std::uint8_t& symbol : out) {
    const std::uint32_t code = bits.peek(table.max_bits);
    symbol = table.symbols[code];
    bits.skip(table.lengths[code]);
  }
  require(bits.left() == 0, where, ": a Zstandard Huffman stream of ", stream.size(),
          " bytes that does not hold its literals exactly (corrupt data)");
}

}  // namespace spin::data::zstd
