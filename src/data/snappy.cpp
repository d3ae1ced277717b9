#include "data/snappy.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "data/byte_cursor.h"

namespace spin::data {

std::string snappy_decompress(std::string_view in, std::size_t expected_size, const std::string& where) {
  ByteCursor src(in, where);
  const std::uint64_t size = src.varint();  // the preamble: the decompressed length
  require(size == expected_size, where, ": Snappy data of ", size, " bytes where the page header says ", expected_size,
          " (corrupt page)");
  std::string out;
  out.reserve(std::min<std::uint64_t>(size, std::uint64_t{64} * in.size()));  // a copy expands 64x at most
  while (src.left() > 0) {
    const std::uint32_t tag = src.byte();
    if ((tag & 3) == 0) {  // a literal: its length - 1 in the tag, or in 1-4 bytes after it
      std::size_t length = (tag >> 2) + 1;
      if (length > 60) length = src.le(static_cast<int>(length - 60)) + std::size_t{1};
      require(length <= src.left() && length <= size - out.size(), where,
              ": a Snappy literal past the data's end (corrupt page)");
      out.append(src.take(length));
      continue;
    }
    std::size_t length = 0, offset = 0;
    switch (tag & 3) {
      case 1:  // 4-11 bytes back up to 2047
        length = ((tag >> 2) & 7) + 4;
        offset = ((tag >> 5) << 8) | src.byte();
        break;
      case 2: length = (tag >> 2) + 1, offset = src.le(2); break;
      default: length = (tag >> 2) + 1, offset = src.le(4); break;
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
