#include "data/byte_cursor.h"

#include "core/error.h"

namespace spin::data {

std::uint8_t ByteCursor::byte() {
  require(at_ < bytes_.size(), *where_, ": the data ends early (corrupt or truncated file)");
  return static_cast<std::uint8_t>(bytes_[at_++]);
}

std::uint64_t ByteCursor::le(int bytes) {
  const std::string_view b = take(static_cast<std::size_t>(bytes));
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(b[i])) << (8 * i);
  return v;
}

std::uint64_t ByteCursor::varint() {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    const std::uint8_t b = byte();
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  fail(*where_, ": a varint longer than 10 bytes (corrupt file)");
}

std::int64_t ByteCursor::zigzag() {
  const std::uint64_t v = varint();
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

std::string_view ByteCursor::take(std::size_t n) {
  require(n <= left(), *where_, ": ", n, " bytes wanted where ", left(), " are left (corrupt or truncated file)");
  const std::string_view s = bytes_.substr(at_, n);
  at_ += n;
  return s;
}

}  // namespace spin::data
