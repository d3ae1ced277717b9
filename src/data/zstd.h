// Zstandard decompression (RFC 8878), as Parquet's ZSTD pages hold it (polars' default codec,
// pyarrow's and DuckDB's on request): one or more frames, skippable frames skipped, raw, RLE and
// compressed blocks, Huffman literals, FSE sequences, the content checksum checked where a frame
// has one. Dictionaries are refused by name. Every size, offset and table is checked against the
// input and the declared size, so a corrupt page is a spin::Error naming `where`.
#pragma once

#include <string>
#include <string_view>

namespace spin::data {

// The bytes `compressed` decompresses to; their length must be `expected_size` (the page header's).
std::string zstd_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

}  // namespace spin::data
