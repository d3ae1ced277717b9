// Zstandard frames written by libzstd (tests/data/make_codec_fixtures.py) decompress to the bytes
// whose size and XXH64 the manifest gives: levels 1-22, streamed frames without a content size,
// 1 KiB windows, checksums, several frames and a skippable one, raw and RLE blocks, blocks past
// 128 KiB (treeless literals, repeated FSE tables). Dictionaries and wrong sizes are refused;
// corrupt frames (truncated, any byte changed) end in a spin::Error or bytes, never a crash.
#include "data/zstd.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace spin::data {
namespace {

using nlohmann::json;

std::string fixture(const std::string& name) {
  std::ostringstream bytes;
  bytes << std::ifstream(std::string(SPIN_TEST_DATA_DIR) + "/codecs/" + name, std::ios::binary).rdbuf();
  return bytes.str();
}

std::string xxh64_hex(const std::string& bytes) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH64(bytes.data(), bytes.size(), 0)));
  return hex;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Zstd, LibzstdFramesDecompressToTheirBytes) {
  const json manifest = json::parse(fixture("manifest.json"));
  int checked = 0;
  for (const auto& [name, want] : manifest.items()) {
    if (!name.ends_with(".zst") || want.contains("error")) continue;
    SCOPED_TRACE(name);
    const std::string out = zstd_decompress(fixture(name), want["size"].get<std::size_t>(), name);
    EXPECT_EQ(out.size(), want["size"].get<std::size_t>());
    EXPECT_EQ(xxh64_hex(out), want["xxh64"].get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 14);
  EXPECT_EQ(zstd_decompress(fixture("tiny.zst"), 17, "tiny"), "Hello, Zstandard!");
}

TEST(Zstd, RefusesDictionariesAndWrongSizes) {
  const std::string e = error_of([] { zstd_decompress(fixture("dictionary.zst"), 2000, "page"); });
  EXPECT_NE(e.find("page: Zstandard data compressed with dictionary "), std::string::npos) << e;
  EXPECT_NE(error_of([] { zstd_decompress(fixture("tiny.zst"), 16, "page"); }).find("longer than the page header's 16"),
            std::string::npos);
  EXPECT_NE(error_of([] { zstd_decompress(fixture("tiny.zst"), 18, "page"); }).find("decompresses to 17 of its 18"),
            std::string::npos);
  // A size no block count of the input can reach is refused before anything is allocated.
  EXPECT_NE(error_of([] {
              zstd_decompress(fixture("tiny.zst"), std::size_t{1} << 40, "page");
            }).find("cannot hold the 1099511627776 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([] { zstd_decompress("PAR1 not zstd", 4, "page"); }).find("not Zstandard data"),
            std::string::npos);
}

TEST(Zstd, TruncatedFramesAreRefused) {
  const std::string good = fixture("frames.zst");
  for (std::size_t keep = 0; keep < good.size(); ++keep) {
    // The skippable frame's end and the second frame's start are frame boundaries: what stops there
    // is short of the size, not corrupt within.
    const std::string e = error_of([&] { zstd_decompress(good.substr(0, keep), 12000, "page"); });
    ASSERT_NE(e.find("page: "), std::string::npos) << keep;
  }
}

// Every byte of a frame changed in turn ends in bytes or a spin::Error naming the page -- never a
// read out of bounds (run under sanitizers to see it), a crash or another exception.
TEST(Zstd, AnyChangedByteEndsInBytesOrAnError) {
  const json manifest = json::parse(fixture("manifest.json"));
  for (const char* name : {"frames.zst", "runs.zst", "jsonl_level22_checksum.zst"}) {
    SCOPED_TRACE(name);
    const std::string good = fixture(name);
    const bool checksummed = std::string(name) == "jsonl_level22_checksum.zst";
    int errors = 0, changes = 0;
    for (std::size_t at = 0; at < good.size(); at += (good.size() > 8000 ? 3 : 1)) {
      for (const unsigned char mask : {0x01, 0x80, 0xff}) {
        std::string bad = good;
        bad[at] = static_cast<char>(bad[at] ^ mask);
        ++changes;
        try {
          const std::string out = zstd_decompress(bad, manifest[name]["size"], "page");
          // Under a checksum, only a change that leaves the bytes as they were passes (a padding bit).
          if (checksummed) {
            ASSERT_EQ(xxh64_hex(out), manifest[name]["xxh64"]) << "byte " << at;
          }
        } catch (const Error& e) {
          ++errors;
          ASSERT_EQ(std::string(e.what()).rfind("page: ", 0), 0u) << e.what();
        } catch (const std::exception& e) {
          FAIL() << "byte " << at << " ^ " << int{mask} << ": " << e.what();
        }
      }
    }
    // A change in a literal reads as other bytes; one in a header, a table or a bit stream is mostly
    // caught (41% of the changes of runs.zst, whose blocks are mostly literals; 99.96% under the checksum).
    EXPECT_GT(errors, changes / 3);
  }
}

}  // namespace
}  // namespace spin::data
