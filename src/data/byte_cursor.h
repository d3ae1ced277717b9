// Checked reads over bytes read from a file: every read past the end, and every varint longer than
// ten bytes, is a spin::Error naming `where` and saying the input is corrupt -- the one way the
// binary readers (Parquet's pages, Thrift's compact protocol, Snappy) touch their input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace spin::data {

class ByteCursor {
 public:
  // `where` names the input in errors; it must outlive the cursor.
  ByteCursor(std::string_view bytes, const std::string& where) : bytes_(bytes), where_(&where) {}

  std::uint8_t byte();
  std::uint64_t le(int bytes);  // a little-endian unsigned integer of 1-8 bytes
  std::uint64_t varint();       // ULEB128
  std::int64_t zigzag();        // a zigzag-encoded ULEB128
  std::string_view take(std::size_t n);
  std::string_view rest() const { return bytes_.substr(at_); }  // what is left, not consumed

  std::size_t consumed() const { return at_; }
  std::size_t left() const { return bytes_.size() - at_; }
  const std::string& where() const { return *where_; }

 private:
  std::string_view bytes_;
  const std::string* where_;
  std::size_t at_ = 0;
};

}  // namespace spin::data
