#include "data/parquet.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "data/gzip.h"
#include "data/lz4.h"
#include "data/parquet_encodings.h"
#include "data/parquet_metadata.h"
#include "data/snappy.h"
#include "data/zstd.h"

namespace spin::data::parquet {

namespace {

using nlohmann::json;

constexpr char kMagic[] = "PAR1";
constexpr std::int64_t kMaxRowsPerGroup = std::int64_t{1} << 28;  // pyarrow writes at most 2^20 by default

// One step from a row down to a leaf column's value, read off the schema: into a member of an
// object, past an optional level (absent -- null -- below its definition level), into the element
// of a repeated level (an empty list below its definition level). A leaf's values then go where
// its repetition and definition levels say (Dremel's record assembly; parquet-format's
// LogicalTypes.md for how lists nest).
struct Step {
  enum Kind { kMember, kNullable, kRepeated };
  Kind kind = kMember;
  std::string name;    // kMember
  int definition = 0;  // kNullable, kRepeated: the level at which it is present / has elements
  int repetition = 0;  // kRepeated
};

struct Leaf {
  std::vector<Step> steps;
  std::vector<std::string> path;  // as path_in_schema: messages, list, element, content
  int max_definition = 0;
  int max_repetition = 0;
};

struct SchemaNode {
  const SchemaElement* element;
  std::vector<SchemaNode> children;
};

SchemaNode build_tree(const std::vector<SchemaElement>& schema, std::size_t& at, const std::string& where,
                      int depth) {
  require(at < schema.size(), where, ": the schema ends early (corrupt file)");
  require(depth < 64, where, ": a schema nested deeper than 64 levels");
  SchemaNode n{&schema[at++], {}};
  if (!n.element->leaf) {
    for (std::int32_t i = 0; i < n.element->num_children; ++i) {
      n.children.push_back(build_tree(schema, at, where, depth + 1));
    }
  }
  return n;
}

// The leaves under a top-level column, each with the steps to its values.
class LeafBuilder {
 public:
  explicit LeafBuilder(std::vector<Leaf>& out) : out_(out) {}

  // `n` reached as a member of an object (or as a list's element: member false).
  void visit(const SchemaNode& n, Leaf leaf, bool member) {
    leaf.path.push_back(n.element->name);
    if (member) leaf.steps.push_back({Step::kMember, n.element->name});
    if (n.element->repetition == Repetition::kOptional) {
      leaf.steps.push_back({Step::kNullable, "", ++leaf.max_definition});
    } else if (n.element->repetition == Repetition::kRepeated) {  // a repeated field outside a LIST: a list
      repeated(leaf);
    }
    contents(n, std::move(leaf));
  }

 private:
  static void repeated(Leaf& leaf) {
    leaf.steps.push_back({Step::kRepeated, "", ++leaf.max_definition, ++leaf.max_repetition});
  }

  void contents(const SchemaNode& n, Leaf leaf) {
    if (n.element->leaf) {
      out_.push_back(std::move(leaf));
      return;
    }
    if (n.element->list && n.children.size() == 1 && n.children[0].element->repetition == Repetition::kRepeated) {
      const SchemaNode& list = n.children[0];
      leaf.path.push_back(list.element->name);
      repeated(leaf);
      // LogicalTypes.md's backward-compatibility rules: the repeated group is the element itself (two
      // levels) when it is a primitive, has several fields, or is named "array" or "<list>_tuple".
      const bool three_levels = !list.element->leaf && list.children.size() == 1 && list.element->name != "array" &&
                                list.element->name != n.element->name + "_tuple";
      if (three_levels) {
        visit(list.children[0], std::move(leaf), false);
      } else {
        contents(list, std::move(leaf));
      }
      return;
    }
    for (const SchemaNode& child : n.children) visit(child, leaf, true);
  }

  std::vector<Leaf>& out_;
};

std::string join(const std::vector<std::string>& parts, const char* separator) {
  std::string s;
  for (const std::string& p : parts) s += (s.empty() ? "" : separator) + p;
  return s;
}

std::string read_bytes(std::ifstream& file, std::int64_t offset, std::int64_t size, const std::string& where) {
  std::string bytes(static_cast<std::size_t>(size), '\0');
  file.seekg(offset);
  file.read(bytes.data(), size);
  require(file.good(), where, ": cannot read ", size, " bytes at ", offset);
  return bytes;
}

std::string decompress(std::string_view data, Codec codec, std::int64_t size, const std::string& where) {
  switch (codec) {
    case Codec::kUncompressed:
      require(static_cast<std::int64_t>(data.size()) == size, where, ": an uncompressed page of ", data.size(),
              " bytes whose header says ", size, " (corrupt file)");
      return std::string(data);
    case Codec::kSnappy: return snappy_decompress(data, static_cast<std::size_t>(size), where);
    case Codec::kZstd: return zstd_decompress(data, static_cast<std::size_t>(size), where);
    case Codec::kGzip: return gzip_decompress(data, static_cast<std::size_t>(size), where);
    case Codec::kLz4Raw: return lz4_raw_decompress(data, static_cast<std::size_t>(size), where);
    case Codec::kLz4: return lz4_hadoop_decompress(data, static_cast<std::size_t>(size), where);
    default:
      fail(where, ": ", codec_name(codec),
           "-compressed pages; spin reads uncompressed, SNAPPY (pyarrow's default, the Hugging Face Hub's), ZSTD "
           "(polars'), GZIP, LZ4_RAW and LZ4 Parquet. "
           "Rewrite it: pyarrow.parquet.write_table(pyarrow.parquet.read_table(IN), OUT, compression=\"snappy\")");
  }
}

// A column chunk's levels and (non-null) values, all its pages'.
struct ColumnData {
  std::vector<std::int32_t> repetition;
  std::vector<std::int32_t> definition;
  std::vector<json> values;
};

void read_levels(ByteCursor in, int max, std::size_t count, std::vector<std::int32_t>& out) {
  if (max == 0) {
    out.insert(out.end(), count, 0);
  } else {
    decode_rle_hybrid(in, bit_width(max), count, out);
  }
}

void read_data_page(const PageHeader& h, std::string_view payload, const ColumnChunk& chunk, const Leaf& leaf,
                    const std::vector<json>& dictionary, const std::string& where, ColumnData& d) {
  const auto n = static_cast<std::size_t>(h.num_values);
  const std::size_t first = d.definition.size();
  std::string page;  // what `values` reads from, when decompressed
  ByteCursor values(payload, where);
  if (h.type == PageType::kData) {
    page = decompress(payload, chunk.codec, h.uncompressed_size, where);
    values = ByteCursor(page, where);
    // v1: the levels inside the compressed page, each run prefixed with its length in bytes (absent
    // where the level's maximum is 0).
    const auto levels = [&](int max, Encoding encoding, std::vector<std::int32_t>& out) {
      require(max == 0 || encoding == Encoding::kRle, where, ": levels in ", encoding_name(encoding),
              ", which spin does not read");
      read_levels(max == 0 ? ByteCursor({}, where) : ByteCursor(values.take(values.le(4)), where), max, n, out);
    };
    levels(leaf.max_repetition, h.repetition_encoding, d.repetition);
    levels(leaf.max_definition, h.definition_encoding, d.definition);
  } else {  // v2: the levels first, never compressed, their lengths in the header
    read_levels(ByteCursor(values.take(static_cast<std::size_t>(h.repetition_bytes)), where), leaf.max_repetition, n,
                d.repetition);
    read_levels(ByteCursor(values.take(static_cast<std::size_t>(h.definition_bytes)), where), leaf.max_definition, n,
                d.definition);
    if (h.values_compressed && chunk.codec != Codec::kUncompressed) {
      const std::int64_t size = std::int64_t{h.uncompressed_size} - h.repetition_bytes - h.definition_bytes;
      require(size >= 0, where, ": a page header whose levels outsize the page (corrupt file)");
      page = decompress(values.take(values.left()), chunk.codec, size, where);
      values = ByteCursor(page, where);
    }
  }
  const auto present = static_cast<std::size_t>(
      std::count(d.definition.begin() + static_cast<std::ptrdiff_t>(first), d.definition.end(), leaf.max_definition));
  decode_values(values, chunk.type, h.encoding, present, dictionary, d.values);
}

ColumnData read_column(std::ifstream& file, std::int64_t data_end, const ColumnChunk& chunk, const Leaf& leaf,
                       const std::string& where) {
  require(!chunk.external, where, ": its pages are in another file (file_path), which spin does not read");
  // Some writers put 0 for "no dictionary": a page there would overlap the magic bytes.
  const std::int64_t start = chunk.dictionary_page_offset >= 4 && chunk.dictionary_page_offset < chunk.data_page_offset
                                 ? chunk.dictionary_page_offset
                                 : chunk.data_page_offset;
  require(start >= 4 && chunk.compressed_size >= 0 && chunk.compressed_size <= data_end - start &&
              chunk.num_values >= 0,
          where, ": a column chunk of ", chunk.compressed_size, " bytes at ", start,
          " outside the file's data (corrupt file)");
  const std::string bytes = read_bytes(file, start, chunk.compressed_size, where);
  const std::string_view all(bytes);
  ColumnData d;
  std::vector<json> dictionary;
  std::size_t at = 0;
  for (std::int64_t seen = 0; seen < chunk.num_values;) {
    require(at < all.size(), where, ": the pages end after ", seen, " of the chunk's ", chunk.num_values,
            " values (corrupt file)");
    thrift::CompactReader header_reader(all.substr(at), where);
    const PageHeader h = read_page_header(header_reader);
    at += header_reader.consumed();
    require(static_cast<std::size_t>(h.compressed_size) <= all.size() - at, where, ": a page of ", h.compressed_size,
            " bytes past the chunk's end (corrupt file)");
    const std::string_view payload = all.substr(at, static_cast<std::size_t>(h.compressed_size));
    at += static_cast<std::size_t>(h.compressed_size);
    if (h.type == PageType::kDictionary) {
      require(h.encoding == Encoding::kPlain || h.encoding == Encoding::kPlainDictionary, where,
              ": a dictionary page in ", encoding_name(h.encoding));
      const std::string page = decompress(payload, chunk.codec, h.uncompressed_size, where);
      ByteCursor in(page, where);
      dictionary.clear();
      decode_values(in, chunk.type, Encoding::kPlain, static_cast<std::size_t>(h.num_values), {}, dictionary);
    } else if (h.type == PageType::kData || h.type == PageType::kDataV2) {
      require(h.num_values <= chunk.num_values - seen, where, ": pages of more than the chunk's ", chunk.num_values,
              " values (corrupt file)");
      read_data_page(h, payload, chunk, leaf, dictionary, where, d);
      seen += h.num_values;
    }  // index pages: nothing spin needs
  }
  return d;
}

// Puts a leaf's values into the row group's rows, where its levels say.
void assemble(const Leaf& leaf, ColumnData&& d, std::vector<json>& rows, const std::string& where) {
  std::vector<std::size_t> index(leaf.steps.size(), 0);
  std::size_t value = 0;
  std::size_t row = 0;
  bool started = false;
  try {
    for (std::size_t i = 0; i < d.definition.size(); ++i) {
      const std::int32_t r = d.repetition[i], def = d.definition[i];
      require(r <= leaf.max_repetition && def <= leaf.max_definition, where, ": levels (", r, ", ", def,
              ") past the schema's (", leaf.max_repetition, ", ", leaf.max_definition, ") (corrupt file)");
      if (r == 0) {  // a new row
        if (started) ++row;
        started = true;
      }
      require(started && row < rows.size(), where, ": more rows than the row group's ", rows.size(), " (corrupt file)");
      json* at = &rows[row];
      bool present = true;
      for (std::size_t s = 0; s < leaf.steps.size() && present; ++s) {
        const Step& step = leaf.steps[s];
        if (step.kind == Step::kMember) {
          at = &(*at)[step.name];
        } else if (def < step.definition) {
          if (step.kind == Step::kRepeated && at->is_null()) *at = json::array();  // an empty list, not null
          present = false;
        } else if (step.kind == Step::kRepeated) {
          if (at->is_null()) *at = json::array();
          // A new element where the triplet's repetition level is this list's, a new list below it.
          index[s] = r < step.repetition ? 0 : r == step.repetition ? index[s] + 1 : index[s];
          require(index[s] <= at->size(), where, ": a list element out of order (corrupt file)");
          at = &(*at)[index[s]];
        }
      }
      if (present) {
        require(value < d.values.size(), where, ": fewer values than its levels say (corrupt file)");
        *at = std::move(d.values[value++]);
      }
    }
  } catch (const json::exception&) {  // levels whose structure contradicts the schema's
    fail(where, ": levels that do not fit the schema (corrupt file)");
  }
  require(started ? row + 1 == rows.size() : rows.empty(), where, ": ", started ? row + 1 : 0,
          " rows where the row group has ", rows.size(), " (corrupt file)");
  require(value == d.values.size(), where, ": ", d.values.size() - value, " values no level places (corrupt file)");
}

}  // namespace

bool is_parquet(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  char head[4] = {};
  return file.read(head, 4) && std::equal(head, head + 4, kMagic);
}

void for_each_row(const std::string& path, const std::vector<std::string>& columns,
                  const std::function<bool(json&&, std::int64_t)>& fn) {
  std::ifstream file(path, std::ios::binary);
  require(file.good(), path, ": cannot open");
  file.seekg(0, std::ios::end);
  const std::int64_t size = file.tellg();
  require(size >= 12, path, ": ", size, " bytes, too short for a Parquet file");
  const std::string head = read_bytes(file, 0, 4, path), tail = read_bytes(file, size - 8, 8, path);
  require(head == kMagic && tail.substr(4) == kMagic, path, ": not a Parquet file (no \"PAR1\" at its ",
          head == kMagic ? "end: truncated?" : "start", ")");
  std::int64_t footer = 0;
  for (std::size_t i = 0; i < 4; ++i) footer |= std::int64_t{static_cast<std::uint8_t>(tail[i])} << (8 * i);
  require(footer <= size - 12, path, ": a footer of ", footer, " bytes in a file of ", size, " (corrupt file)");
  const std::int64_t data_end = size - 8 - footer;
  const FileMetaData meta = read_file_metadata(read_bytes(file, data_end, footer, path), cat(path, ": footer"));

  std::size_t at = 0;
  const SchemaNode root = build_tree(meta.schema, at, path, 0);
  require(at == meta.schema.size(), path, ": ", meta.schema.size() - at, " schema elements outside the root's tree");
  std::vector<Leaf> leaves;
  std::vector<std::string> names;
  LeafBuilder builder(leaves);
  for (const SchemaNode& column : root.children) {
    builder.visit(column, Leaf{}, true);
    names.push_back(column.element->name);
  }
  std::vector<std::size_t> wanted;
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (std::find(columns.begin(), columns.end(), leaves[i].path.front()) != columns.end()) wanted.push_back(i);
  }
  require(!wanted.empty(), path, ": none of the columns spin reads (", join(columns, ", "), "); its columns: ",
          join(names, ", "));

  std::int64_t row_number = 0;
  for (std::size_t g = 0; g < meta.row_groups.size(); ++g) {
    const RowGroup& group = meta.row_groups[g];
    require(group.columns.size() == leaves.size(), path, ": row group ", g + 1, " has ", group.columns.size(),
            " columns where the schema has ", leaves.size(), " (corrupt file)");
    require(group.num_rows >= 0 && group.num_rows <= kMaxRowsPerGroup, path, ": row group ", g + 1, " of ",
            group.num_rows, " rows (corrupt file)");
    std::vector<json> rows(static_cast<std::size_t>(group.num_rows), json::object());
    for (std::size_t i : wanted) {
      const Leaf& leaf = leaves[i];
      const ColumnChunk& chunk = group.columns[i];
      const std::string where = cat(path, ": column ", join(leaf.path, "."), ", row group ", g + 1);
      require(chunk.path == leaf.path, where, ": the row group's chunk is ", join(chunk.path, "."), " (corrupt file)");
      // Every row has a level in every column at least.
      require(chunk.num_values >= group.num_rows, where, ": ", chunk.num_values, " values for ", group.num_rows,
              " rows (corrupt file)");
      assemble(leaf, read_column(file, data_end, chunk, leaf, where), rows, where);
    }
    for (json& row : rows) {
      for (auto it = row.begin(); it != row.end();) it = it->is_null() ? row.erase(it) : std::next(it);
      if (!fn(std::move(row), ++row_number)) return;
    }
  }
}

}  // namespace spin::data::parquet
