// Parquet's GZIP pages (pyarrow's compression="gzip", older Spark and Hive files): gzip members
// (RFC 1952) -- one or more, each's CRC-32 and length checked -- or a zlib stream (RFC 1950, its
// Adler-32 checked), which some writers put in GZIP pages; DEFLATE inside (data/deflate.h). A
// corrupt page is a spin::Error naming `where`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "data/byte_cursor.h"

namespace spin::data {

// The bytes `compressed` decompresses to; their length must be `expected_size` (the page header's).
std::string gzip_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

// The gzip / PNG CRC-32 (reflected 0xEDB88320) of `bytes`, continuing `crc`: crc32(b, crc32(a)) is
// the CRC-32 of a then b.
std::uint32_t crc32(std::string_view bytes, std::uint32_t crc = 0);

// A gzip member's header (RFC 1952 section 2.3): checked and skipped, every optional field included.
void skip_gzip_header(ByteCursor& in);
// A member's trailer: the CRC-32 and the length (mod 2^32) of what it decompressed to.
void check_gzip_trailer(ByteCursor& in, std::uint32_t crc, std::uint64_t size);

}  // namespace spin::data
