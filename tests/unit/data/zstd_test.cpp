// Zstandard frames written by libzstd (tests/data/make_codec_fixtures.py) decompress to the bytes
// whose size and XXH64 the manifest gives: levels 1-22, streamed frames without a content size,
// 1 KiB windows, checksums, several frames and a skippable one, raw and RLE blocks, blocks past
// 128 KiB (treeless literals, repeated FSE tables). Dictionaries and wrong sizes are refused;
// corrupt frames (truncated, any byte changed) end in a spin::Error or bytes, never a crash.
#include "data/zstd.h"

#include <gtest/gtest.h>

#include "common/test_util.h"
#include "unit/data/codec_fixtures.h"

namespace spin::data {
namespace {

using spin::testing::error_of;
using codec_test::codec_fixture;

TEST(Zstd, LibzstdFramesDecompressToTheirBytes) {
  EXPECT_EQ(codec_test::expect_manifest_files(".zst", zstd_decompress), 15);
  EXPECT_EQ(zstd_decompress(codec_fixture("tiny.zst"), 17, "tiny"), "Hello, Zstandard!");
}

TEST(Zstd, RefusesDictionariesAndWrongSizes) {
  const std::string e = error_of([] { zstd_decompress(codec_fixture("dictionary.zst"), 2000, "page"); });
  EXPECT_NE(e.find("page: Zstandard data compressed with dictionary "), std::string::npos) << e;
  const std::string tiny = codec_fixture("tiny.zst");
  EXPECT_NE(error_of([&] { zstd_decompress(tiny, 16, "page"); }).find("longer than the page header's 16"),
            std::string::npos);
  EXPECT_NE(error_of([&] { zstd_decompress(tiny, 18, "page"); }).find("decompresses to 17 of its 18"),
            std::string::npos);
  // A size no block count of the input can reach is refused before anything is allocated.
  EXPECT_NE(error_of([&] { zstd_decompress(tiny, std::size_t{1} << 40, "page"); })
                .find("cannot hold the 1099511627776 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([] { zstd_decompress("PAR1 not zstd", 4, "page"); }).find("not Zstandard data"),
            std::string::npos);
}

TEST(Zstd, TruncatedFramesAreRefused) {
  const std::string good = codec_fixture("frames.zst");
  for (std::size_t keep = 0; keep < good.size(); ++keep) {
    const std::string e = error_of([&] { zstd_decompress(good.substr(0, keep), 12000, "page"); });
    ASSERT_EQ(e.rfind("page: ", 0), 0u) << keep << ": " << e;
  }
}

TEST(Zstd, AnyChangedByteEndsInBytesOrAnError) {
  for (const char* name : {"frames.zst", "runs.zst", "jsonl_level22_checksum.zst"}) {
    SCOPED_TRACE(name);
    const bool checksummed = std::string(name) == "jsonl_level22_checksum.zst";
    const auto [errors, changes] =
        codec_test::change_every_byte(name, zstd_decompress, codec_fixture(name).size() > 8000 ? 3 : 1, checksummed);
    // A change in a literal reads as other bytes; one in a header, a table or a bit stream is mostly
    // caught (41% of the changes of runs.zst, whose blocks are mostly literals). Under the checksum
    // only a change that leaves the bytes as they were passes (a padding bit: 5 of 12,510).
    EXPECT_GT(errors, changes / 3);
  }
}

}  // namespace
}  // namespace spin::data
