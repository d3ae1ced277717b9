// Parquet's GZIP pages (pyarrow's compression="gzip", older Spark and Hive files): gzip members
// (RFC 1952) -- one or more, each's CRC-32 and length checked -- or a zlib stream (RFC 1950, its
// Adler-32 checked), which some writers put in GZIP pages; DEFLATE inside (data/deflate.h). A
// corrupt page is a spin::Error naming `where`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace spin::data {

// The bytes `compressed` decompresses to; their length must be `expected_size` (the page header's).
std::string gzip_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

std::uint32_t crc32(std::string_view bytes);  // the gzip / PNG CRC-32 (reflected 0xEDB88320)

}  // namespace spin::data
