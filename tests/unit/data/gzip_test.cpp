// GZIP pages: gzip members and zlib streams written by zlib (tests/data/make_codec_fixtures.py)
// decompress to the bytes whose size and XXH64 the manifest gives -- stored, fixed and dynamic
// blocks at levels 0-9, every optional gzip header field, several members. Preset dictionaries and
// wrong sizes are refused; corrupt streams (truncated, any byte changed) end in a spin::Error or
// bytes, never a crash.
#include "data/gzip.h"

#include <gtest/gtest.h>

#include "common/test_util.h"
#include "unit/data/codec_fixtures.h"

namespace spin::data {
namespace {

using spin::testing::error_of;
using codec_test::codec_fixture;
using codec_test::codec_manifest;

TEST(Gzip, ZlibStreamsDecompressToTheirBytes) {
  EXPECT_EQ(codec_test::expect_manifest_files(".gz", gzip_decompress), 12);
  EXPECT_EQ(gzip_decompress(codec_fixture("tiny.gz"), 12, "tiny"), "Hello, gzip!");
  // The CRC-32 of RFC 1952 (the check value of the CRC catalogue's "123456789"), and past the
  // eight bytes a step of its slicing takes.
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32("The quick brown fox jumps over the lazy dog"), 0x414FA339u);
}

TEST(Gzip, RefusesPresetDictionariesAndWrongSizes) {
  EXPECT_NE(error_of([] { gzip_decompress(codec_fixture("zlib_dictionary.gz"), 2000, "page"); })
                .find("page: zlib data compressed with a preset dictionary"),
            std::string::npos);
  const std::string tiny = codec_fixture("tiny.gz");
  EXPECT_NE(error_of([&] { gzip_decompress(tiny, 11, "page"); }).find("longer than the page header's 11"),
            std::string::npos);
  EXPECT_NE(error_of([&] { gzip_decompress(tiny, 13, "page"); }).find("decompresses to 12 of its 13"),
            std::string::npos);
  EXPECT_NE(error_of([&] { gzip_decompress(tiny, std::size_t{1} << 40, "page"); })
                .find("cannot hold the 1099511627776 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([] { gzip_decompress("PAR1 not gzip", 4, "page"); }).find("not gzip or zlib data"),
            std::string::npos);
}

TEST(Gzip, TruncatedStreamsAreRefused) {
  for (const char* name : {"members.gz", "zlib_level6.gz"}) {
    const std::string good = codec_fixture(name);
    const std::size_t size = codec_manifest()[name]["size"];
    for (std::size_t keep = 0; keep < good.size(); keep += (name[0] == 'z' ? 7 : 1)) {
      const std::string e = error_of([&] { gzip_decompress(good.substr(0, keep), size, "page"); });
      ASSERT_EQ(e.rfind("page: ", 0), 0u) << name << " cut at " << keep << ": " << e;
    }
  }
}

// gzip's CRC-32 and zlib's Adler-32 catch what the codes do not: only a change that leaves the
// bytes as they were passes.
TEST(Gzip, AnyChangedByteEndsInTheBytesOrAnError) {
  for (const char* name : {"members.gz", "runs.gz", "zlib_level6.gz"}) {
    SCOPED_TRACE(name);
    const auto [errors, changes] =
        codec_test::change_every_byte(name, gzip_decompress, codec_fixture(name).size() > 6000 ? 3 : 1, true);
    // Header fields gzip does not check (time, operating system, a name's bytes) pass unchanged.
    EXPECT_GT(errors, changes * 9 / 10);
  }
}

}  // namespace
}  // namespace spin::data
