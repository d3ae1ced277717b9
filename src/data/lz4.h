// LZ4 block decompression (Parquet's LZ4_RAW codec: pyarrow's compression="lz4"; and its older LZ4
// codec, Hadoop's framing of blocks as parquet-mr writes it): sequences of literals and
// back-references, every length and offset checked against the input and the declared size, so a
// corrupt page is a spin::Error naming `where`, never a read or write out of bounds. Format:
// github.com/lz4/lz4, doc/lz4_Block_format.md.
#pragma once

#include <string>
#include <string_view>

namespace spin::data {

// The bytes `compressed` decompresses to; their length must be `expected_size` (the page header's).
std::string lz4_raw_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

// Parquet's LZ4 codec: blocks each behind its big-endian decompressed and compressed sizes (Hadoop's
// Lz4Codec, parquet-mr's files), or -- where the page is not so framed -- one raw block, as Arrow
// before 9.0 wrote the codec; Arrow's readers try the two in this order too.
std::string lz4_hadoop_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where);

}  // namespace spin::data
