// Parquet's value and level encodings, decoded from a page's bytes: the RLE / bit-packed hybrid
// (levels, dictionary indices), PLAIN, DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY and
// DELTA_BYTE_ARRAY (parquet-format's Encodings.md). Values come out as JSON values -- strings,
// integers, floats, booleans -- for the rows they are assembled into. Every read is bounds-checked:
// a corrupt page is a spin::Error naming `where`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "data/byte_cursor.h"
#include "data/parquet_metadata.h"

namespace spin::data::parquet {

// Bits needed for values up to `max` (a level's bit width).
int bit_width(std::int64_t max);

// `count` values of `width` bits in the RLE / bit-packed hybrid, appended to `out`.
void decode_rle_hybrid(ByteCursor& in, int width, std::size_t count, std::vector<std::int32_t>& out);

// The values of one DELTA_BINARY_PACKED run (its header says how many), wrapping as the writer's
// integer type does; the cursor ends after it.
std::vector<std::int64_t> decode_delta_binary_packed(ByteCursor& in);

// `count` values of physical type `type` in `encoding` (a dictionary encoding looks them up in
// `dictionary`), appended to `out`.
void decode_values(ByteCursor& in, Type type, Encoding encoding, std::size_t count,
                   const std::vector<nlohmann::json>& dictionary, std::vector<nlohmann::json>& out);

}  // namespace spin::data::parquet
