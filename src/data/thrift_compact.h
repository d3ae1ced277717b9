// Apache Thrift's compact protocol, read only: the encoding of a Parquet file's footer and page
// headers. A reader walks a struct field by field (the caller reads the fields it knows and skips
// the rest, as Thrift's generated code does); every overrun, bad type or excessive nesting is a
// spin::Error naming `where` -- a corrupt file is refused, never read past its bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "data/byte_cursor.h"

namespace spin::data::thrift {

// Compact protocol type codes (a field header's low nibble, a list header's element type).
enum Type : std::uint8_t {
  kStop = 0, kTrue = 1, kFalse = 2, kByte = 3, kI16 = 4, kI32 = 5, kI64 = 6, kDouble = 7,
  kBinary = 8, kList = 9, kSet = 10, kMap = 11, kStruct = 12,
};

class CompactReader {
 public:
  CompactReader(std::string_view bytes, std::string where) : where_(std::move(where)), in_(bytes, where_) {}

  // Calls fn(field id, type) for each field of the struct at the cursor, up to its stop byte; fn
  // reads the value (read_* below) or skip(type)s it.
  void read_struct(const std::function<void(std::int16_t, std::uint8_t)>& fn);
  // fn(type) for each element of the list (or set) at the cursor.
  void read_list(const std::function<void(std::uint8_t)>& fn);

  std::int64_t read_int();  // i16, i32 or i64 (zigzag varints; an i8 is a byte: skip reads it)
  std::int32_t read_i32();  // read_int, refused outside int32
  std::string read_binary();
  static bool field_bool(std::uint8_t type) { return type == kTrue; }  // a bool field's value is its type
  void skip(std::uint8_t type);  // a field's value
  void skip_element(std::uint8_t type);  // a list's or map's element

  std::size_t consumed() const { return in_.consumed(); }
  const std::string& where() const { return where_; }

  CompactReader(const CompactReader&) = delete;  // in_ points at where_
  CompactReader& operator=(const CompactReader&) = delete;

 private:
  void enter();

  std::string where_;
  ByteCursor in_;
  int depth_ = 0;
};

}  // namespace spin::data::thrift
