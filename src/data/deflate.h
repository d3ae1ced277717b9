// DEFLATE decompression (RFC 1951): stored, fixed-Huffman and dynamic-Huffman blocks. Every code,
// length and distance is checked against its table, the input and the output's limit, so a
// corrupt stream is a spin::Error naming the input, never a read or write out of bounds. Used by
// data/gzip.cpp (Parquet's GZIP pages, gzip-compressed data files).
#pragma once

#include <cstddef>
#include <string>

#include "data/forward_bits.h"

namespace spin::data {

// Appends the stream at `in` to `out` -- the bytes of `out` from `start` on are its window: a
// match may reach back to `start`, not before -- and leaves `in` after the final block. `out`
// may not grow past `limit` bytes.
void inflate(ForwardBits& in, std::string& out, std::size_t start, std::size_t limit);

// The same one block at a time (a stream read in pieces: data/gzip.h's GzipDecoder); true after the
// final block. Between blocks, the caller may drop all but the last 32 KiB of `out` (DEFLATE's
// window) and move `start` with it.
bool inflate_block(ForwardBits& in, std::string& out, std::size_t start, std::size_t limit);

}  // namespace spin::data
