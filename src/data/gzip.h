// gzip data: Parquet's GZIP pages (pyarrow's compression="gzip", older Spark and Hive files) and
// data files compressed whole (train.jsonl.gz) -- gzip members (RFC 1952), one or more, each's
// CRC-32 and length checked -- or, in a page, a zlib stream (RFC 1950, its Adler-32 checked), which
// some writers put in GZIP pages; DEFLATE inside (data/deflate.h). Corrupt data is a spin::Error
// naming `where`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "data/byte_cursor.h"
#include "data/forward_bits.h"

namespace spin::data {

// The bytes `compressed` decompresses to; their length must be `expected_size` (the page header's).
std::string gzip_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

// gzip members (one or more) decoded a DEFLATE block at a time -- a page whole (gzip_decompress) or
// a file read as a stream (data/decompress_stream.h) -- each member's CRC-32 and length checked at
// its end.
class GzipDecoder {
 public:
  GzipDecoder(std::string_view compressed, const std::string& where);  // `where` must outlive the decoder

  // Appends the next block's bytes to `out`, never past `limit` bytes (nothing for a member's
  // header); false once the data is done.
  bool next(std::string& out, std::size_t limit);
  // How far back a match may reach (DEFLATE's 32 KiB): between calls, the caller may drop all but
  // the last window() bytes from the front of `out`, telling forget() how many it dropped.
  std::uint64_t window() const { return std::uint64_t{32} << 10; }
  void forget(std::size_t n);

 private:
  ByteCursor in_;                    // at the next member's header, between members
  std::optional<ForwardBits> bits_;  // the current member's DEFLATE data
  std::size_t member_start_ = 0;     // where the member's bytes start in `out` (0 once dropped)
  std::size_t checked_ = 0;          // bytes of `out` in crc_
  std::uint32_t crc_ = 0;
  std::uint64_t member_size_ = 0;
};

// The gzip / PNG CRC-32 (reflected 0xEDB88320) of `bytes`, continuing `crc`: crc32(b, crc32(a)) is
// the CRC-32 of a then b.
std::uint32_t crc32(std::string_view bytes, std::uint32_t crc = 0);

}  // namespace spin::data
