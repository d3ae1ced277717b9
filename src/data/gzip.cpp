#include "data/gzip.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/error.h"
#include "data/byte_cursor.h"
#include "data/deflate.h"
#include "data/forward_bits.h"

namespace spin::data {
namespace {

std::uint32_t adler32(std::string_view bytes) {
  std::uint32_t a = 1, b = 0;
  for (std::size_t i = 0; i < bytes.size();) {
    // 5552 bytes keep b below 2^32 before the modulus (zlib's NMAX).
    for (const std::size_t end = std::min(bytes.size(), i + 5552); i < end; ++i) {
      a += static_cast<std::uint8_t>(bytes[i]);
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return (b << 16) | a;
}

void skip_zero_terminated(ByteCursor& in) {
  while (in.byte() != 0) {
  }
}

// A gzip member's header (RFC 1952 section 2.3), every optional field skipped.
void skip_gzip_header(ByteCursor& in) {
  const std::string& where = in.where();
  require(in.le(2) == 0x8b1f && in.byte() == 8, where, ": a gzip member that is not DEFLATE data (corrupt data)");
  const std::uint8_t flags = in.byte();
  require((flags & 0xe0) == 0, where, ": a gzip header with its reserved flags set (corrupt data)");
  in.take(6);                                // modification time, extra flags, operating system
  if (flags & 4) in.take(in.le(2));          // FEXTRA
  if (flags & 8) skip_zero_terminated(in);   // FNAME
  if (flags & 16) skip_zero_terminated(in);  // FCOMMENT
  if (flags & 2) in.take(2);                 // FHCRC
}

// A member's trailer: the CRC-32 and the length (mod 2^32) of what it decompressed to.
void check_gzip_trailer(ByteCursor& in, std::uint32_t crc, std::uint64_t size) {
  require(in.le(4) == crc, in.where(), ": a gzip member whose CRC-32 does not match (corrupt data)");
  require(in.le(4) == (size & 0xffffffffu), in.where(),
          ": a gzip member whose length does not match its trailer (corrupt data)");
}

}  // namespace

std::uint32_t crc32(std::string_view bytes, std::uint32_t crc) {
  // Slicing by 8 (Intel's, 2008): table k gives a byte's CRC shifted through k more zero bytes, so
  // eight bytes take eight independent lookups instead of a chain of eight.
  static const std::array<std::array<std::uint32_t, 256>, 8> table = [] {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][n] = c;
    }
    for (int k = 1; k < 8; ++k) {
      for (std::uint32_t n = 0; n < 256; ++n) t[k][n] = (t[k - 1][n] >> 8) ^ t[0][t[k - 1][n] & 0xff];
    }
    return t;
  }();
  std::uint32_t c = crc ^ 0xFFFFFFFFu;
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint32_t lo, hi;  // little-endian hosts (x86-64, aarch64)
    std::memcpy(&lo, bytes.data() + i, 4);
    std::memcpy(&hi, bytes.data() + i + 4, 4);
    lo ^= c;
    c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
        table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
  }
  for (; i < bytes.size(); ++i) c = table[0][(c ^ static_cast<std::uint8_t>(bytes[i])) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

GzipDecoder::GzipDecoder(std::string_view compressed, const std::string& where) : in_(compressed, where) {}

bool GzipDecoder::next(std::string& out, std::size_t limit) {
  if (!bits_) {  // between members
    if (in_.left() == 0) return false;
    skip_gzip_header(in_);
    bits_.emplace(in_.rest(), in_.where());
    member_start_ = checked_ = out.size();
    crc_ = 0;
    member_size_ = 0;
    return true;
  }
  const bool last = inflate_block(*bits_, out, member_start_, limit);
  crc_ = crc32(std::string_view(out).substr(checked_), crc_);
  member_size_ += out.size() - checked_;
  checked_ = out.size();
  if (last) {
    in_.take(bits_->bytes_used());
    check_gzip_trailer(in_, crc_, member_size_);
    bits_.reset();
  }
  return true;
}

void GzipDecoder::forget(std::size_t n) {
  member_start_ = member_start_ > n ? member_start_ - n : 0;
  checked_ -= n;
}

std::string gzip_decompress(std::string_view compressed, std::size_t expected_size, const std::string& where) {
  // DEFLATE's largest expansion: a 258-byte match from one or two bits, about 1032 to 1.
  require(expected_size <= 1032 * (compressed.size() + 1), where, ": ", compressed.size(),
          " bytes of GZIP data cannot hold the ", expected_size, " bytes the page header says (corrupt data)");
  std::string out;
  out.reserve(expected_size);
  require(compressed.size() >= 2, where, ": not gzip or zlib data (corrupt data)");
  const auto b0 = static_cast<std::uint8_t>(compressed[0]), b1 = static_cast<std::uint8_t>(compressed[1]);
  if (b0 == 0x1f && b1 == 0x8b) {
    GzipDecoder decoder(compressed, where);
    while (decoder.next(out, expected_size)) {
    }
  } else {  // a zlib stream
    ByteCursor in(compressed, where);
    const std::uint8_t method = in.byte(), flags = in.byte();
    require((method & 15) == 8 && (method >> 4) <= 7 && (method * 256 + flags) % 31 == 0, where,
            ": not gzip or zlib data (corrupt data)");
    require((flags & 0x20) == 0, where, ": zlib data compressed with a preset dictionary; spin reads it without one");
    ForwardBits bits(in.rest(), where);
    inflate(bits, out, 0, expected_size);
    in.take(bits.bytes_used());
    require(in.le(4) == __builtin_bswap32(adler32(out)), where,
            ": a zlib stream whose Adler-32 does not match (corrupt data)");
    require(in.left() == 0, where, ": bytes after a zlib stream (corrupt data)");
  }
  require(out.size() == expected_size, where, ": GZIP data decompresses to ", out.size(), " of its ", expected_size,
          " bytes (corrupt data)");
  return out;
}

}  // namespace spin::data
