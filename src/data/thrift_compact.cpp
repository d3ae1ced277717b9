#include "data/thrift_compact.h"

#include <limits>

#include "core/error.h"

namespace spin::data::thrift {

namespace {
// Nesting deeper than this is corruption (a Parquet footer nests four or five structs).
constexpr int kMaxDepth = 64;
}  // namespace

void CompactReader::enter() {
  require(++depth_ <= kMaxDepth, where_, ": Thrift structures nested deeper than ", kMaxDepth, " (corrupt file)");
}

void CompactReader::read_struct(const std::function<void(std::int16_t, std::uint8_t)>& fn) {
  enter();
  std::int16_t id = 0;
  for (;;) {
    const std::uint8_t header = in_.byte();
    const auto type = static_cast<std::uint8_t>(header & 0x0f);
    if (type == kStop) break;
    require(type <= kStruct, where_, ": Thrift field type ", int{type}, " is not one of the compact protocol's");
    const int delta = header >> 4;
    const std::int64_t next = delta != 0 ? id + delta : in_.zigzag();
    require(next >= std::numeric_limits<std::int16_t>::min() && next <= std::numeric_limits<std::int16_t>::max(),
            where_, ": Thrift field id ", next, " out of range (corrupt file)");
    id = static_cast<std::int16_t>(next);
    fn(id, type);
  }
  --depth_;
}

void CompactReader::read_list(const std::function<void(std::uint8_t)>& fn) {
  enter();
  const std::uint8_t header = in_.byte();
  std::uint64_t size = header >> 4;
  if (size == 15) size = in_.varint();
  const auto type = static_cast<std::uint8_t>(header & 0x0f);
  // Every element takes a byte at least: a size past the bytes left is corruption, not a huge list.
  require(size <= in_.left(), where_, ": a Thrift list of ", size, " elements in ", in_.left(),
          " bytes (corrupt file)");
  for (std::uint64_t i = 0; i < size; ++i) fn(type);
  --depth_;
}

std::int64_t CompactReader::read_int() { return in_.zigzag(); }

std::int32_t CompactReader::read_i32() {
  const std::int64_t v = read_int();
  require(v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max(), where_,
          ": Thrift i32 value ", v, " out of range (corrupt file)");
  return static_cast<std::int32_t>(v);
}

std::string CompactReader::read_binary() {
  const std::uint64_t size = in_.varint();
  require(size <= in_.left(), where_, ": a Thrift string of ", size, " bytes past the metadata's end (corrupt file)");
  return std::string(in_.take(static_cast<std::size_t>(size)));
}

void CompactReader::skip_element(std::uint8_t type) {
  if (type == kTrue || type == kFalse) {
    in_.byte();  // a bool in a list or map is a byte of its own
  } else {
    skip(type);
  }
}

void CompactReader::skip(std::uint8_t type) {
  switch (type) {
    case kTrue:
    case kFalse: return;  // a field's bool is in its type
    case kByte: in_.byte(); return;
    case kI16:
    case kI32:
    case kI64: in_.varint(); return;
    case kDouble:
      for (int i = 0; i < 8; ++i) in_.byte();
      return;
    case kBinary: read_binary(); return;
    case kList:
    case kSet: read_list([&](std::uint8_t t) { skip_element(t); }); return;
    case kMap: {
      enter();
      const std::uint64_t size = in_.varint();
      require(size <= in_.left(), where_, ": a Thrift map of ", size, " entries past the metadata's end");
      if (size > 0) {
        const std::uint8_t types = in_.byte();
        for (std::uint64_t i = 0; i < size; ++i) {
          skip_element(static_cast<std::uint8_t>(types >> 4));
          skip_element(static_cast<std::uint8_t>(types & 0x0f));
        }
      }
      --depth_;
      return;
    }
    case kStruct: read_struct([&](std::int16_t, std::uint8_t t) { skip(t); }); return;
    default: fail(where_, ": Thrift type ", int{type}, " is not one of the compact protocol's (corrupt file)");
  }
}

}  // namespace spin::data::thrift
