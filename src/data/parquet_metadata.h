// A Parquet file's footer (FileMetaData) and page headers, decoded from Thrift's compact protocol
// into the few fields spin reads: the schema, each row group's column chunks, each page's kind,
// sizes and encodings. Field ids and enum values are parquet-format's parquet.thrift; a value
// outside what spin reads is kept as it is and refused by name where it matters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/thrift_compact.h"

namespace spin::data::parquet {

enum class Type : std::int32_t {
  kBoolean = 0, kInt32 = 1, kInt64 = 2, kInt96 = 3, kFloat = 4, kDouble = 5, kByteArray = 6, kFixedLenByteArray = 7,
};
enum class Repetition : std::int32_t { kRequired = 0, kOptional = 1, kRepeated = 2 };
enum class Codec : std::int32_t {
  kUncompressed = 0, kSnappy = 1, kGzip = 2, kLzo = 3, kBrotli = 4, kLz4 = 5, kZstd = 6, kLz4Raw = 7,
};
enum class Encoding : std::int32_t {
  kPlain = 0, kPlainDictionary = 2, kRle = 3, kBitPacked = 4, kDeltaBinaryPacked = 5,
  kDeltaLengthByteArray = 6, kDeltaByteArray = 7, kRleDictionary = 8, kByteStreamSplit = 9,
};
enum class PageType : std::int32_t { kData = 0, kIndex = 1, kDictionary = 2, kDataV2 = 3 };

// "INT32", "SNAPPY", "RLE_DICTIONARY", ...; "codec 9" for a value parquet.thrift does not name.
std::string type_name(Type t);
std::string codec_name(Codec c);
std::string encoding_name(Encoding e);

struct SchemaElement {
  std::string name;
  bool leaf = false;  // a primitive column (has a type) rather than a group
  Type type = Type::kByteArray;
  Repetition repetition = Repetition::kRequired;
  std::int32_t num_children = 0;
  bool list = false;  // annotated LIST (converted type or logical type)
};

struct ColumnChunk {
  Type type = Type::kByteArray;
  std::vector<std::string> path;  // path_in_schema
  Codec codec = Codec::kUncompressed;
  std::int64_t num_values = 0;
  std::int64_t data_page_offset = 0;
  std::int64_t dictionary_page_offset = -1;  // -1: none
  std::int64_t compressed_size = 0;          // of all its pages, headers included
  bool external = false;                     // its pages in another file (file_path)
};

struct RowGroup {
  std::vector<ColumnChunk> columns;
  std::int64_t num_rows = 0;
};

struct FileMetaData {
  std::vector<SchemaElement> schema;  // depth first, the root first
  std::int64_t num_rows = 0;
  std::vector<RowGroup> row_groups;
};

FileMetaData read_file_metadata(std::string_view footer, const std::string& where);

struct PageHeader {
  PageType type = PageType::kData;
  std::int32_t uncompressed_size = 0;
  std::int32_t compressed_size = 0;
  std::int32_t num_values = 0;  // data or dictionary page
  Encoding encoding = Encoding::kPlain;
  Encoding definition_encoding = Encoding::kRle;  // v1 data page
  Encoding repetition_encoding = Encoding::kRle;  // v1 data page
  std::int32_t definition_bytes = 0;              // v2: the levels' lengths, stored uncompressed
  std::int32_t repetition_bytes = 0;
  bool values_compressed = true;  // v2's is_compressed
};

PageHeader read_page_header(thrift::CompactReader& in);

}  // namespace spin::data::parquet
