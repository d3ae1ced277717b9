// Data files compressed whole, read as a stream: every gzip and Zstandard fixture of tests/data/codecs
// read through open_data_file, in reads of 1 byte and of 4 KiB, gives the bytes the manifest names
// (files past the window and 16 KiB drop what was read as they go: DEFLATE's 32 KiB, a streamed
// Zstandard frame's 1 KiB); data files compressed whole (ultrachat.jsonl.gz in two gzip members,
// ultrachat.jsonl.zst in two frames, spin_iter.json.gz, a JSON array) give the examples their
// uncompressed records give; a truncated or changed file is a spin::Error naming it.
#include "data/decompress_stream.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/scratch_dir.h"
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
  const std::unique_ptr<std::istream> in = open_data_file(path);
  std::string out, piece(chunk, '\0');
  while (in->read(piece.data(), static_cast<std::streamsize>(chunk)) || in->gcount() > 0) {
    out.append(piece, 0, static_cast<std::size_t>(in->gcount()));
  }
  return out;
}

TEST(DecompressStream, FilesReadAsTheirBytesInAnyPieces) {
  int checked = 0;
  for (const auto& [name, want] : codec_manifest().items()) {
    // zlib streams (GZIP pages some writers make) are not a file format spin reads.
    if (want.contains("error") || name.starts_with("zlib_")) continue;
    SCOPED_TRACE(name);
    for (const std::size_t chunk : {std::size_t{1}, std::size_t{4096}}) {
      const std::string out = read_stream(codec_path(name), chunk);
      EXPECT_EQ(out.size(), want["size"].get<std::size_t>());
      EXPECT_EQ(xxh64_hex(out), want["xxh64"].get<std::string>());
    }
    ++checked;
  }
  EXPECT_EQ(checked, 26);  // every fixture but the zlib streams and the refused ones
  // A file that is neither is read as it is.
  EXPECT_EQ(read_stream(codec_path("manifest.json"), 4096), codec_fixture("manifest.json"));
}

class CorruptFile : public ::testing::Test {
 protected:
  void write(const std::string& bytes) { std::ofstream(path_, std::ios::binary) << bytes; }
  testing::ScratchDir scratch_{"spin_stream"};
  std::string path_ = scratch_.file("corrupt.jsonl.gz");
};

TEST_F(CorruptFile, TruncatedOrChangedFilesEndInAnErrorNamingThem) {
  for (const char* name : {"text_level6.gz", "jsonl_streamed_checksum.zst"}) {
    const std::string good = codec_fixture(name);
    for (const std::size_t keep : {good.size() - 1, good.size() - 8, good.size() / 2, std::size_t{12}}) {
      write(good.substr(0, keep));
      const std::string e = error_of([&] { read_stream(path_, 4096); });
      EXPECT_EQ(e.rfind(path_ + ": ", 0), 0u) << name << " cut at " << keep << ": " << e;
    }
  }
  // Under the members' CRC-32s and the frame's checksum, only a change that leaves the bytes as they
  // were passes (past the magic bytes: a file without them is read as it is).
  for (const char* name : {"members.gz", "jsonl_level22_checksum.zst"}) {
    const std::string good = codec_fixture(name);
    const std::string want = codec_manifest()[name]["xxh64"];
    int errors = 0, changes = 0;
    for (std::size_t at = 4; at < good.size(); at += 23, ++changes) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ 0x20);
      write(bad);
      try {
        EXPECT_EQ(xxh64_hex(read_stream(path_, 4096)), want) << name << " byte " << at;
      } catch (const Error& e) {
        ++errors;
        EXPECT_EQ(std::string(e.what()).rfind(path_ + ": ", 0), 0u) << e.what();
      }
    }
    EXPECT_GT(errors, changes * 9 / 10) << name;
  }
}

// What a data file compressed whole gives is what its records give uncompressed: the format is
// told by the bytes (gzip's or Zstandard's magic), then JSONL or a JSON array by the first character.
TEST(DecompressStream, CompressedDataFilesGiveTheExamplesOfTheirRecords) {
  const ByteTokenizer tok;
  const std::string parquet_dir = std::string(SPIN_TEST_DATA_DIR) + "/parquet/";
  for (const auto& [compressed, plain] :
       {std::pair{"ultrachat.jsonl.gz", "ultrachat.jsonl"}, std::pair{"ultrachat.jsonl.zst", "ultrachat.jsonl"},
        std::pair{"spin_iter.json.gz", "spin_iter.jsonl"}}) {
    SCOPED_TRACE(compressed);
    const bool generated = std::string(plain) == "spin_iter.jsonl";
    const auto from = [&](const std::string& path) {
      return load_examples(path, &tok, PromptTemplate::Chat, {}, tok.vocab_size(), {.read_generated = generated, .columns = {}});
    };
    const LoadedExamples got = from(codec_path(compressed)), want = from(parquet_dir + plain);
    EXPECT_EQ(got.report.shape, want.report.shape);
    EXPECT_EQ(got.report.records, want.report.records);
    ASSERT_EQ(got.examples.size(), want.examples.size());
    for (std::size_t i = 0; i < got.examples.size(); ++i) {
      EXPECT_EQ(got.examples[i].prompt, want.examples[i].prompt);
      EXPECT_EQ(got.examples[i].response, want.examples[i].response);
      EXPECT_EQ(got.examples[i].generated, want.examples[i].generated);
      EXPECT_EQ(got.examples[i].line, want.examples[i].line);
    }
  }
}

}  // namespace
}  // namespace spin::data
