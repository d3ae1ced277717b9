#include "data/snappy.h"

#include <cstdint>

#include "core/error.h"

namespace spin::data {

std::string snappy_decompress(std::string_view in, std::size_t expected_size, const std::string& where) {
  std::size_t at = 0;
  const auto byte = [&]() -> std::uint32_t {
    require(at < in.size(), where, ": Snappy data ends early (corrupt page)");
    return static_cast<std::uint8_t>(in[at++]);
  };
  const auto little_endian = [&](int bytes) {
    std::uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= byte() << (8 * i);
    return v;
  };
  // The preamble: the decompressed length as a varint.
  std::uint64_t size = 0;
  for (int shift = 0;; shift += 7) {
    require(shift < 35, where, ": Snappy length varint too long (corrupt page)");
    const std::uint32_t b = byte();
    size |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
  }
  require(size == expected_size, where, ": Snappy data of ", size, " bytes where the page header says ", expected_size,
          " (corrupt page)");
  std::string out;
  out.reserve(size);
  while (at < in.size()) {
    const std::uint32_t tag = byte();
    if ((tag & 3) == 0) {  // a literal: its length - 1 in the tag, or in 1-4 bytes after it
      std::size_t length = (tag >> 2) + 1;
      if (length > 60) length = little_endian(static_cast<int>(length - 60)) + std::size_t{1};
      require(length <= in.size() - at && length <= size - out.size(), where,
              ": a Snappy literal past the data's end (corrupt page)");
      out.append(in.substr(at, length));
      at += length;
      continue;
    }
    std::size_t length = 0, offset = 0;
    switch (tag & 3) {
      case 1:  // 4-11 bytes back up to 2047
        length = ((tag >> 2) & 7) + 4;
        offset = ((tag >> 5) << 8) | byte();
        break;
      case 2: length = (tag >> 2) + 1, offset = little_endian(2); break;
      default: length = (tag >> 2) + 1, offset = little_endian(4); break;
    }
    require(offset >= 1 && offset <= out.size() && length <= size - out.size(), where,
            ": a Snappy copy of ", length, " bytes from ", offset, " back at byte ", out.size(), " (corrupt page)");
    // Byte by byte: a copy may overlap what it writes (offset < length repeats a pattern).
    const std::size_t from = out.size() - offset;
    for (std::size_t i = 0; i < length; ++i) out.push_back(out[from + i]);
  }
  require(out.size() == size, where, ": Snappy data decompresses to ", out.size(), " of its ", size,
          " bytes (corrupt page)");
  return out;
}

}  // namespace spin::data
