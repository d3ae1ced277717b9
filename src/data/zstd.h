// Zstandard decompression (RFC 8878), of Parquet's ZSTD pages (polars' default codec, pyarrow's
// and DuckDB's on request) and of data files compressed whole (.jsonl.zst): one or more frames,
// skippable frames skipped, raw, RLE and compressed blocks, Huffman literals, FSE sequences, the
// content checksum checked where a frame has one. Dictionaries are refused by name. Every size,
// offset and table is checked against the input and the declared size, so corrupt data is a
// spin::Error naming `where`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace spin::data {

// The bytes `compressed` decompresses to; their length must be `expected_size` (the page header's).
std::string zstd_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

// Zstandard data decoded a block at a time (a file read as a stream: data/decompress_stream.h).
class ZstdDecoder {
 public:
  ZstdDecoder(std::string_view compressed, const std::string& where);  // `where` must outlive the decoder
  ~ZstdDecoder();

  // Appends the next block's bytes to `out`, never past `limit` bytes (nothing for a frame's header
  // or a skippable frame); false once the data is done.
  bool next(std::string& out, std::size_t limit);
  // How far back the current frame's matches may reach: between calls, the caller may drop all but
  // the last window() bytes from the front of `out`, telling forget() how many it dropped.
  std::uint64_t window() const;
  void forget(std::size_t n);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace spin::data
