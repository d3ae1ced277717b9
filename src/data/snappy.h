// Snappy decompression (the raw block format, as Parquet stores compressed pages): literals and
// back-references, every length and offset checked against the input and the declared size, so a
// corrupt page is a spin::Error naming `where`, never a read or write out of bounds.
// Format: github.com/google/snappy, format_description.txt.
#pragma once

#include <string>
#include <string_view>

namespace spin::data {

// The bytes `compressed` decompresses to; their length must be `expected_size` (the page header's).
std::string snappy_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

}  // namespace spin::data
