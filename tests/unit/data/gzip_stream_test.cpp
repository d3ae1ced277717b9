// gzip-compressed data files read as a stream: every gzip fixture of tests/data/codecs read through
// GzipFileStream, in reads of 1 byte and of 4 KiB, gives the bytes the manifest names (files past
// twice DEFLATE's 32 KiB window drop what was read as they go); data files compressed whole
// (ultrachat.jsonl.gz in two members, spin_iter.json.gz, a JSON array) give the examples their
// uncompressed records give; a truncated or changed file is a spin::Error naming it.
#include "data/gzip_stream.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/test_util.h"
#include "data/examples.h"
#include "unit/data/codec_fixtures.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;
using codec_test::codec_fixture;
using codec_test::codec_manifest;
using codec_test::xxh64_hex;
using spin::testing::error_of;

std::string codec_path(const std::string& name) { return std::string(SPIN_TEST_DATA_DIR) + "/codecs/" + name; }

std::string read_stream(const std::string& path, std::size_t chunk) {
  GzipFileStream in(path);
  std::string out, piece(chunk, '\0');
  while (in.read(piece.data(), static_cast<std::streamsize>(chunk)) || in.gcount() > 0) {
    out.append(piece, 0, static_cast<std::size_t>(in.gcount()));
  }
  return out;
}

TEST(GzipStream, FilesReadAsTheirBytesInAnyPieces) {
  int checked = 0;
  for (const auto& [name, want] : codec_manifest().items()) {
    if (!name.ends_with(".gz") || want.contains("error") || codec_fixture(name).rfind("\x1f\x8b", 0) != 0) continue;
    SCOPED_TRACE(name);
    for (const std::size_t chunk : {std::size_t{1}, std::size_t{4096}}) {
      const std::string out = read_stream(codec_path(name), chunk);
      EXPECT_EQ(out.size(), want["size"].get<std::size_t>());
      EXPECT_EQ(xxh64_hex(out), want["xxh64"].get<std::string>());
    }
    ++checked;
  }
  EXPECT_EQ(checked, 11);  // every .gz fixture but the zlib streams
}

class CorruptGzip : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove(path_); }
  void write(const std::string& bytes) { std::ofstream(path_, std::ios::binary) << bytes; }
  std::string path_ = (fs::temp_directory_path() / ("spin_gzip_" + std::to_string(::getpid()) + ".jsonl.gz")).string();
};

TEST_F(CorruptGzip, TruncatedOrChangedFilesEndInAnErrorNamingThem) {
  const std::string good = codec_fixture("text_level6.gz");
  for (const std::size_t keep : {good.size() - 1, good.size() - 8, good.size() / 2, std::size_t{12}}) {
    write(good.substr(0, keep));
    const std::string e = error_of([&] { read_stream(path_, 4096); });
    EXPECT_EQ(e.rfind(path_ + ": ", 0), 0u) << keep << ": " << e;
  }
  // Under the members' CRC-32s, only a change that leaves the bytes as they were passes.
  const std::string members = codec_fixture("members.gz");
  const std::string want = codec_manifest()["members.gz"]["xxh64"];
  int errors = 0;
  for (std::size_t at = 0; at < members.size(); at += 5) {
    std::string bad = members;
    bad[at] = static_cast<char>(bad[at] ^ 0x20);
    write(bad);
    try {
      EXPECT_EQ(xxh64_hex(read_stream(path_, 4096)), want) << "byte " << at;
    } catch (const Error& e) {
      ++errors;
      EXPECT_EQ(std::string(e.what()).rfind(path_ + ": ", 0), 0u) << e.what();
    }
  }
  EXPECT_GT(errors, static_cast<int>(members.size() / 5 * 9 / 10));
}

// What a data file compressed whole gives is what its records give uncompressed: the format is
// told by the bytes (gzip's magic), then JSONL or a JSON array by the first character.
TEST(GzipStream, CompressedDataFilesGiveTheExamplesOfTheirRecords) {
  const ByteTokenizer tok;
  const std::string parquet_dir = std::string(SPIN_TEST_DATA_DIR) + "/parquet/";
  for (const auto& [compressed, plain] :
       {std::pair{"ultrachat.jsonl.gz", "ultrachat.jsonl"}, std::pair{"spin_iter.json.gz", "spin_iter.jsonl"}}) {
    SCOPED_TRACE(compressed);
    const bool generated = std::string(plain) == "spin_iter.jsonl";
    const auto from = [&](const std::string& path) {
      return load_examples(path, &tok, PromptTemplate::Chat, {}, tok.vocab_size(), false, generated);
    };
    const LoadedExamples gz = from(codec_path(compressed)), want = from(parquet_dir + plain);
    EXPECT_EQ(gz.report.shape, want.report.shape);
    EXPECT_EQ(gz.report.records, want.report.records);
    ASSERT_EQ(gz.examples.size(), want.examples.size());
    for (std::size_t i = 0; i < gz.examples.size(); ++i) {
      EXPECT_EQ(gz.examples[i].prompt, want.examples[i].prompt);
      EXPECT_EQ(gz.examples[i].response, want.examples[i].response);
      EXPECT_EQ(gz.examples[i].generated, want.examples[i].generated);
      EXPECT_EQ(gz.examples[i].line, want.examples[i].line);
    }
  }
  // A Zstandard-compressed file is refused by name, not read as malformed JSON.
  const std::string e =
      error_of([&] { load_examples(codec_path("text_level3.zst"), &tok, PromptTemplate::Chat, {}, tok.vocab_size()); });
  EXPECT_NE(e.find("text_level3.zst: a Zstandard-compressed file"), std::string::npos) << e;
}

}  // namespace
}  // namespace spin::data
