#include "data/parquet_metadata.h"

#include "core/error.h"

namespace spin::data::parquet {

namespace {

using thrift::CompactReader;

template <class Enum>
Enum read_enum(CompactReader& in) {
  return static_cast<Enum>(in.read_i32());
}

// LogicalType is a union of empty structs; spin needs to know only whether it is LIST (field 3).
bool read_logical_list(CompactReader& in) {
  bool list = false;
  in.read_struct([&](std::int16_t id, std::uint8_t t) {
    list = list || id == 3;
    in.skip(t);
  });
  return list;
}

SchemaElement read_schema_element(CompactReader& in) {
  SchemaElement e;
  in.read_struct([&](std::int16_t id, std::uint8_t t) {
    switch (id) {
      case 1: e.leaf = true, e.type = read_enum<Type>(in); break;
      case 3: e.repetition = read_enum<Repetition>(in); break;
      case 4: e.name = in.read_binary(); break;
      case 5: e.num_children = in.read_i32(); break;
      case 6: e.list = e.list || in.read_i32() == 3; break;  // ConvertedType LIST
      case 10: e.list = read_logical_list(in) || e.list; break;
      default: in.skip(t);
    }
  });
  const auto r = static_cast<std::int32_t>(e.repetition);
  require(r >= 0 && r <= 2, in.where(), ": column \"", e.name, "\" has repetition type ", r, " (corrupt file)");
  require(e.num_children >= 0, in.where(), ": column \"", e.name, "\" has ", e.num_children, " children");
  return e;
}

ColumnChunk read_column_chunk(CompactReader& in) {
  ColumnChunk c;
  const auto read_meta = [&] {
    in.read_struct([&](std::int16_t id, std::uint8_t t) {
      switch (id) {
        case 1: c.type = read_enum<Type>(in); break;
        case 3: in.read_list([&](std::uint8_t) { c.path.push_back(in.read_binary()); }); break;
        case 4: c.codec = read_enum<Codec>(in); break;
        case 5: c.num_values = in.read_int(); break;
        case 7: c.compressed_size = in.read_int(); break;
        case 9: c.data_page_offset = in.read_int(); break;
        case 11: c.dictionary_page_offset = in.read_int(); break;
        default: in.skip(t);
      }
    });
  };
  in.read_struct([&](std::int16_t id, std::uint8_t t) {
    if (id == 1) {
      c.external = true;
      in.skip(t);
    } else if (id == 3) {
      read_meta();
    } else {
      in.skip(t);
    }
  });
  return c;
}

RowGroup read_row_group(CompactReader& in) {
  RowGroup g;
  in.read_struct([&](std::int16_t id, std::uint8_t t) {
    if (id == 1) {
      in.read_list([&](std::uint8_t) { g.columns.push_back(read_column_chunk(in)); });
    } else if (id == 3) {
      g.num_rows = in.read_int();
    } else {
      in.skip(t);
    }
  });
  return g;
}

}  // namespace

std::string type_name(Type t) {
  switch (t) {
    case Type::kBoolean: return "BOOLEAN";
    case Type::kInt32: return "INT32";
    case Type::kInt64: return "INT64";
    case Type::kInt96: return "INT96";
    case Type::kFloat: return "FLOAT";
    case Type::kDouble: return "DOUBLE";
    case Type::kByteArray: return "BYTE_ARRAY";
    case Type::kFixedLenByteArray: return "FIXED_LEN_BYTE_ARRAY";
  }
  return cat("type ", static_cast<std::int32_t>(t));
}

std::string codec_name(Codec c) {
  switch (c) {
    case Codec::kUncompressed: return "UNCOMPRESSED";
    case Codec::kSnappy: return "SNAPPY";
    case Codec::kGzip: return "GZIP";
    case Codec::kLzo: return "LZO";
    case Codec::kBrotli: return "BROTLI";
    case Codec::kLz4: return "LZ4";
    case Codec::kZstd: return "ZSTD";
    case Codec::kLz4Raw: return "LZ4_RAW";
  }
  return cat("codec ", static_cast<std::int32_t>(c));
}

std::string encoding_name(Encoding e) {
  switch (e) {
    case Encoding::kPlain: return "PLAIN";
    case Encoding::kPlainDictionary: return "PLAIN_DICTIONARY";
    case Encoding::kRle: return "RLE";
    case Encoding::kBitPacked: return "BIT_PACKED";
    case Encoding::kDeltaBinaryPacked: return "DELTA_BINARY_PACKED";
    case Encoding::kDeltaLengthByteArray: return "DELTA_LENGTH_BYTE_ARRAY";
    case Encoding::kDeltaByteArray: return "DELTA_BYTE_ARRAY";
    case Encoding::kRleDictionary: return "RLE_DICTIONARY";
    case Encoding::kByteStreamSplit: return "BYTE_STREAM_SPLIT";
  }
  return cat("encoding ", static_cast<std::int32_t>(e));
}

FileMetaData read_file_metadata(std::string_view footer, const std::string& where) {
  CompactReader in(footer, where);
  FileMetaData m;
  in.read_struct([&](std::int16_t id, std::uint8_t t) {
    switch (id) {
      case 2: in.read_list([&](std::uint8_t) { m.schema.push_back(read_schema_element(in)); }); break;
      case 3: m.num_rows = in.read_int(); break;
      case 4: in.read_list([&](std::uint8_t) { m.row_groups.push_back(read_row_group(in)); }); break;
      default: in.skip(t);
    }
  });
  require(!m.schema.empty() && !m.schema.front().leaf, where, ": the footer has no schema (corrupt file)");
  return m;
}

PageHeader read_page_header(CompactReader& in) {
  PageHeader h;
  const auto data_page = [&](bool v2) {
    in.read_struct([&](std::int16_t id, std::uint8_t t) {
      if (id == 1) {
        h.num_values = in.read_i32();
      } else if (id == (v2 ? 4 : 2)) {
        h.encoding = read_enum<Encoding>(in);
      } else if (!v2 && id == 3) {
        h.definition_encoding = read_enum<Encoding>(in);
      } else if (!v2 && id == 4) {
        h.repetition_encoding = read_enum<Encoding>(in);
      } else if (v2 && id == 5) {
        h.definition_bytes = in.read_i32();
      } else if (v2 && id == 6) {
        h.repetition_bytes = in.read_i32();
      } else if (v2 && id == 7) {
        h.values_compressed = CompactReader::field_bool(t);
      } else {
        in.skip(t);
      }
    });
  };
  in.read_struct([&](std::int16_t id, std::uint8_t t) {
    switch (id) {
      case 1: h.type = read_enum<PageType>(in); break;
      case 2: h.uncompressed_size = in.read_i32(); break;
      case 3: h.compressed_size = in.read_i32(); break;
      case 5: data_page(false); break;
      case 7:  // DictionaryPageHeader: num_values, encoding, is_sorted
        in.read_struct([&](std::int16_t field, std::uint8_t type) {
          if (field == 1) {
            h.num_values = in.read_i32();
          } else if (field == 2) {
            h.encoding = read_enum<Encoding>(in);
          } else {
            in.skip(type);
          }
        });
        break;
      case 8: data_page(true); break;
      default: in.skip(t);
    }
  });
  require(h.uncompressed_size >= 0 && h.compressed_size >= 0 && h.num_values >= 0 && h.definition_bytes >= 0 &&
              h.repetition_bytes >= 0,
          in.where(), ": a page header with a negative size (corrupt file)");
  return h;
}

}  // namespace spin::data::parquet
