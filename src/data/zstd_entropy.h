// Zstandard's entropy stages (RFC 8878 section 4): the backward bit streams, FSE tables -- read from their
// compact description or built from a distribution -- and Huffman tables for literals. Every
// read is bounded: a corrupt stream or table is a spin::Error naming `where`, never a read out of
// bounds. Used by data/zstd.cpp only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/forward_bits.h"

namespace spin::data::zstd {

// A stream read from its end to its start, as Zstandard writes the sequences and Huffman streams:
// the last byte's highest set bit marks where the data begins. Bits before the stream's start
// read as zeros and leave left() negative -- the decoders check it where the format says the
// stream ends.
class BackwardBits {
 public:
  BackwardBits(std::string_view bytes, const std::string& where);
  // The next n <= 32 bits, the first read as the highest. Inline: the decoders' inner loops.
  std::uint32_t peek(int n) const {
    if (n == 0 || pos_ <= 0) return 0;
    const std::int64_t from = pos_ - n;
    if (from >= 0) return static_cast<std::uint32_t>(load(from) & ((std::uint64_t{1} << n) - 1));
    // The stream's first bits, then zeros for those before its start.
    return static_cast<std::uint32_t>((load(0) & ((std::uint64_t{1} << pos_) - 1)) << -from);
  }
  void skip(int n) { pos_ -= n; }
  std::uint32_t read(int n) {
    const std::uint32_t v = peek(n);
    skip(n);
    return v;
  }
  std::int64_t left() const { return pos_; }

 private:
  // 57 or more bits from bit `at` >= 0, zeros past the end.
  std::uint64_t load(std::int64_t at) const { return load_le64(bytes_, static_cast<std::size_t>(at / 8)) >> (at % 8); }
  std::string_view bytes_;
  std::int64_t pos_ = 0;
};

// A finite-state-entropy decoding table: state -> symbol, and the bits that make the next state.
struct FseEntry {
  std::uint16_t base = 0;
  std::uint8_t symbol = 0;
  std::uint8_t bits = 0;
};
struct FseTable {
  int log = 0;
  std::vector<FseEntry> entries;  // 1 << log
};

// The table of a normalized distribution (counts summing to 1 << log; -1: "less than one").
FseTable fse_table(std::span<const std::int16_t> counts, int log, const std::string& where);
// A table from its description (section 4.1.1) at the start of `in`; symbols above `max_symbol`
// or an accuracy above `max_log` are corrupt.
FseTable fse_read_table(ForwardBits& in, int max_log, int max_symbol, const std::string& where);
// The table of one symbol repeated (Zstandard's RLE mode): no bits read.
FseTable fse_rle_table(std::uint8_t symbol);

class FseState {
 public:
  void init(const FseTable& table, BackwardBits& in) {
    table_ = &table;
    state_ = in.read(table.log);
  }
  std::uint8_t symbol() const { return table_->entries[state_].symbol; }
  void update(BackwardBits& in) {
    const FseEntry& e = table_->entries[state_];
    state_ = e.base + in.read(e.bits);
  }

 private:
  const FseTable* table_ = nullptr;
  std::uint32_t state_ = 0;
};

// A Huffman decoding table of 1 << max_bits entries: the code's max_bits-bit prefix -> symbol, length.
struct HuffmanTable {
  int max_bits = 0;
  std::vector<std::uint8_t> symbols, lengths;
};

// The table described at the start of `in` (section 4.2.1: weights, direct or FSE-compressed);
// returns the bytes the description takes.
std::size_t huffman_read_table(std::string_view in, HuffmanTable& table, const std::string& where);
// Decodes `out.size()` literals from one stream, which they must use exactly.
void huffman_decode(const HuffmanTable& table, std::string_view stream, std::span<std::uint8_t> out,
                    const std::string& where);

}  // namespace spin::data::zstd
