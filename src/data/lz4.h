// LZ4 block decompression (Parquet's LZ4_RAW codec: pyarrow's compression="lz4"): sequences of
// literals and back-references, every length and offset checked against the input and the
// declared size, so a corrupt page is a spin::Error naming `where`, never a read or write out of
// bounds. Format: github.com/lz4/lz4, doc/lz4_Block_format.md.
#pragma once

#include <string>
#include <string_view>

namespace spin::data {

// The bytes `compressed` decompresses to; their length must be `expected_size` (the page header's).
std::string lz4_raw_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

}  // namespace spin::data
