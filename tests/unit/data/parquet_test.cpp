// Parquet files against the rows pyarrow reads from them (tests/data/make_parquet_fixtures.py
// wrote both): the Hub's writer settings and others -- Snappy, ZSTD, LZ4_RAW, GZIP or none,
// dictionary, PLAIN, RLE and DELTA_* values, v1 and v2 pages, several row groups and pages, nulls
// and empty lists at every level -- and the readers of examples and token records over a Parquet
// file against the same records as JSONL. Corrupt files (truncated, any byte changed) end in a spin::Error or rows,
// never a crash or another exception.
#include "data/parquet.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/scratch_dir.h"
#include "core/error.h"
#include "data/examples.h"
#include "data/jsonl.h"
#include "data/lz4.h"
#include "data/snappy.h"
#include "data/token_jsonl.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string fixture(const std::string& name) { return std::string(SPIN_TEST_DATA_DIR) + "/parquet/" + name; }

std::vector<json> expected_rows(const std::string& name) {
  std::vector<json> rows;
  jsonl::for_each_line(fixture(name + ".jsonl"), [&](const std::string& text, const std::string&, std::int64_t) {
    rows.push_back(json::parse(text));
  });
  return rows;
}

std::vector<json> read_rows(const std::string& path, const std::vector<std::string>& columns) {
  std::vector<json> rows;
  parquet::for_each_row(path, columns, [&](json&& row, std::int64_t n) {
    EXPECT_EQ(n, static_cast<std::int64_t>(rows.size()) + 1);
    rows.push_back(std::move(row));
    return true;
  });
  return rows;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Parquet, RowsMatchPyarrows) {
  struct File {
    std::string name, rows;  // rows: the JSONL file of its rows
    std::vector<std::string> columns;
  };
  const std::vector<File> files = {
      {"ultrachat", "ultrachat", {"prompt", "prompt_id", "messages"}},
      {"spin_iter", "spin_iter", {"real", "generated"}},
      {"nested_types", "nested_types", {"id", "tokens", "nested", "flag", "score", "ratio", "meta", "messages"}},
      {"delta", "delta", {"key", "prompt", "small", "big", "ids"}},
      {"token_ids", "token_ids", {"prompt", "response"}},
      {"zstd", "zstd", {"prompt", "response", "messages"}},
      {"zstd_v2", "zstd", {"prompt", "response", "messages"}},
      {"lz4", "zstd", {"prompt", "response", "messages"}},
      {"lz4_legacy", "zstd", {"prompt", "response", "messages"}},  // codec LZ4 over raw blocks
      {"gzip", "zstd", {"prompt", "response", "messages"}},
  };
  for (const auto& [name, rows, columns] : files) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(parquet::is_parquet(fixture(name + ".parquet")));
    const std::vector<json> want = expected_rows(rows);
    const std::vector<json> got = read_rows(fixture(name + ".parquet"), columns);
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "row " << i + 1;
  }
  EXPECT_FALSE(parquet::is_parquet(fixture("ultrachat.jsonl")));
}

TEST(Parquet, ReadsOnlyTheColumnsAsked) {
  const std::vector<json> want = expected_rows("ultrachat");
  const std::vector<json> got = read_rows(fixture("ultrachat.parquet"), {"messages", "not_a_column"});
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], json({{"messages", want[i].at("messages")}}));
  const std::string e = error_of([] { read_rows(fixture("ultrachat.parquet"), {"chosen", "real"}); });
  EXPECT_NE(e.find("ultrachat.parquet: none of the columns spin reads (chosen, real); its columns: prompt, "
                   "prompt_id, messages"),
            std::string::npos)
      << e;
}

TEST(Parquet, StopsWhenAsked) {
  int calls = 0;
  parquet::for_each_row(fixture("ultrachat.parquet"), {"prompt"}, [&](json&&, std::int64_t) { return ++calls < 3; });
  EXPECT_EQ(calls, 3);
}

TEST(Parquet, RefusesOtherCodecsByName) {
  const std::string e = error_of([] { read_rows(fixture("brotli.parquet"), {"prompt", "response"}); });
  EXPECT_NE(e.find("brotli.parquet: column prompt, row group 1: BROTLI-compressed pages; spin reads uncompressed, "
                   "SNAPPY (pyarrow's default, the Hugging Face Hub's), ZSTD (polars'), GZIP, LZ4_RAW and LZ4 Parquet. "
                   "Rewrite it"),
            std::string::npos)
      << e;
}

// Examples and token records read from a Parquet file are those of the same records as JSONL,
// their locations the rows.
TEST(Parquet, ExamplesAndTokenRecordsAsFromJsonl) {
  const ByteTokenizer tok;
  for (const std::string name : {"ultrachat", "spin_iter", "token_ids"}) {
    SCOPED_TRACE(name);
    const bool generated = name == "spin_iter";
    const auto from = [&](const std::string& ext) {
      return load_examples(fixture(name + ext), &tok, PromptTemplate::Chat, {}, tok.vocab_size(), {.read_generated = generated, .columns = {}});
    };
    const LoadedExamples parquet = from(".parquet"), jsonl = from(".jsonl");
    EXPECT_EQ(parquet.report.shape, jsonl.report.shape);
    EXPECT_EQ(parquet.report.records, jsonl.report.records);
    ASSERT_EQ(parquet.examples.size(), jsonl.examples.size());
    for (std::size_t i = 0; i < parquet.examples.size(); ++i) {
      const Example &p = parquet.examples[i], &j = jsonl.examples[i];
      EXPECT_EQ(p.prompt, j.prompt);
      EXPECT_EQ(p.response, j.response);
      EXPECT_EQ(p.generated, j.generated);
      EXPECT_EQ(p.line, static_cast<std::int64_t>(i) + 1);
    }
    EXPECT_EQ(holds_text(fixture(name + ".parquet")), name != "token_ids");
  }
  const auto records = read_token_jsonl(fixture("token_ids.parquet"));
  const auto want = read_token_jsonl(fixture("token_ids.jsonl"));
  ASSERT_EQ(records.size(), want.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].tokens, want[i].tokens);
    EXPECT_EQ(records[i].mask_from, want[i].mask_from);
    EXPECT_EQ(records[i].line, want[i].line);
  }
  // Columns named by data.columns are decoded though no shape reads them (prompt_id): the rows give what
  // the JSONL records give.
  const auto by_columns = [&](const std::string& ext) {
    return load_examples(fixture("ultrachat" + ext), &tok, PromptTemplate::Chat, {}, tok.vocab_size(),
                         {.skip_bad_lines = true, .columns = RecordColumns::parse("prompt_id,prompt", "--columns")});
  };
  const LoadedExamples parquet = by_columns(".parquet"), jsonl = by_columns(".jsonl");
  EXPECT_EQ(parquet.report.shape, DataShape::Columns);
  EXPECT_EQ(parquet.report.skipped, jsonl.report.skipped);  // the rows with an empty prompt
  ASSERT_EQ(parquet.examples.size(), jsonl.examples.size());
  for (std::size_t i = 0; i < parquet.examples.size(); ++i) {
    EXPECT_EQ(parquet.examples[i].prompt, jsonl.examples[i].prompt);
    EXPECT_EQ(parquet.examples[i].response, jsonl.examples[i].response);
  }
  // A record's error names the file and its row.
  const std::string e = error_of([&] {
    load_examples(fixture("nested_types.parquet"), &tok, PromptTemplate::Chat, {}, tok.vocab_size());
  });
  EXPECT_NE(e.find("nested_types.parquet:1: \"messages\" must be a non-empty list"), std::string::npos) << e;
}

class CorruptParquet : public ::testing::Test {
 protected:
  void write(const std::string& bytes) { std::ofstream(path_, std::ios::binary) << bytes; }
  testing::ScratchDir scratch_{"spin_parquet"};
  std::string path_ = scratch_.file("corrupt.parquet");
};

TEST_F(CorruptParquet, TruncatedFilesAreRefused) {
  std::ostringstream bytes;
  bytes << std::ifstream(fixture("spin_iter.parquet"), std::ios::binary).rdbuf();
  const std::string good = bytes.str();
  for (std::size_t keep : {good.size() - 1, good.size() / 2, std::size_t{20}, std::size_t{4}}) {
    write(good.substr(0, keep));
    const std::string e = error_of([&] { read_rows(path_, {"real"}); });
    EXPECT_NE(e.find(path_ + ": "), std::string::npos) << keep << ": " << e;
    EXPECT_TRUE(e.find("truncated") != std::string::npos || e.find("too short") != std::string::npos) << e;
  }
}

// Every byte of a file changed in turn: the reader ends in rows or a spin::Error naming the file,
// never reads out of bounds (run under sanitizers to see it), crashes or throws another exception.
TEST_F(CorruptParquet, AnyChangedByteEndsInRowsOrAnError) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> files = {
      {"spin_iter", {"real", "generated"}},  // Snappy
      {"zstd_v2", {"prompt", "messages"}},
  };
  for (const auto& [name, columns] : files) {
    SCOPED_TRACE(name);
    std::ostringstream bytes;
    bytes << std::ifstream(fixture(name + ".parquet"), std::ios::binary).rdbuf();
    const std::string good = bytes.str();
    int errors = 0;
    for (std::size_t at = 0; at < good.size(); ++at) {
      for (const unsigned char mask : {0x01, 0x80, 0xff}) {
        std::string bad = good;
        bad[at] = static_cast<char>(bad[at] ^ mask);
        write(bad);
        try {
          read_rows(path_, columns);
        } catch (const Error& e) {
          ++errors;
          ASSERT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
        } catch (const std::exception& e) {
          FAIL() << "byte " << at << " ^ " << int{mask} << ": " << e.what();
        }
      }
    }
    // A change in a string's bytes reads as other text; one in the footer, a page header, a Snappy or
    // Zstandard stream or the levels is caught (4,366 of spin_iter's 14,241 changes when written).
    EXPECT_GT(errors, static_cast<int>(good.size() / 2));
  }
}

TEST(Snappy, LiteralsAndOverlappingCopies) {
  // "abc" as a literal, then 9 bytes copied from 3 back: the copy overlaps what it writes.
  const std::string compressed = std::string("\x0c\x08" "abc" "\x15\x03", 7);
  EXPECT_EQ(snappy_decompress(compressed, 12, "t"), "abcabcabcabc");
  EXPECT_NE(error_of([&] { snappy_decompress(compressed, 13, "t"); }).find("t: Snappy data of 12 bytes"),
            std::string::npos);
  const std::string far_back = std::string("\x0c\x08" "abc" "\x15\x04", 7);  // 4 back from 3 written
  EXPECT_NE(error_of([&] { snappy_decompress(far_back, 12, "t"); }).find("a Snappy copy of 9 bytes from 4 back"),
            std::string::npos);
  EXPECT_NE(error_of([&] { snappy_decompress(compressed.substr(0, 4), 12, "t"); }).find("past the data's end"),
            std::string::npos);
}

TEST(Lz4, LiteralsAndOverlappingCopies) {
  // "abc" as literals, then 9 bytes (5 + 4) copied from 3 back, overlapping what they write; then
  // the last sequence, literals alone ("!").
  const std::string compressed = std::string(
      "\x35"
      "abc"
      "\x03\x00"
      "\x10"
      "!",
      8);
  EXPECT_EQ(lz4_raw_decompress(compressed, 13, "t"), "abcabcabcabc!");
  EXPECT_NE(error_of([&] { lz4_raw_decompress(compressed, 14, "t"); }).find("t: LZ4 data decompresses to 13 of its 14"),
            std::string::npos);
  const std::string far_back = std::string(
      "\x35"
      "abc"
      "\x04\x00"
      "\x10"
      "!",
      8);  // 4 back from 3 written
  EXPECT_NE(error_of([&] { lz4_raw_decompress(far_back, 13, "t"); }).find("an LZ4 copy of 9 bytes from 4 back"),
            std::string::npos);
  // Parquet's older LZ4 codec: Hadoop's framing (each block behind its big-endian decompressed and
  // compressed sizes), or one raw block where the page is not so framed.
  const std::string block = compressed;
  // The second block: a token of 2 literals and no match (0x20), "ok".
  const std::string hadoop =
      std::string("\0\0\0\x0d\0\0\0\x08", 8) + block + std::string("\0\0\0\x02\0\0\0\x03", 8) + " ok";
  EXPECT_EQ(lz4_hadoop_decompress(hadoop, 15, "t"), "abcabcabcabc!ok");
  EXPECT_EQ(lz4_hadoop_decompress(block, 13, "t"), "abcabcabcabc!");
  EXPECT_NE(error_of([&] { lz4_hadoop_decompress(hadoop.substr(0, 20), 15, "t"); }).find("t: "), std::string::npos);
  // A length continued in bytes: 15 + 255 + 10 literals.
  const std::string long_literals = "\xf0\xff\x0a" + std::string(280, 'x');
  EXPECT_EQ(lz4_raw_decompress(long_literals, 280, "t"), std::string(280, 'x'));
  EXPECT_NE(error_of([&] { lz4_raw_decompress(long_literals.substr(0, 200), 280, "t"); }).find("past the data's end"),
            std::string::npos);
}

}  // namespace
}  // namespace spin::data
