// GZIP pages: gzip members and zlib streams written by zlib (tests/data/make_codec_fixtures.py)
// decompress to the bytes whose size and XXH64 the manifest gives -- stored, fixed and dynamic
// blocks at levels 0-9, every optional gzip header field, several members. Preset dictionaries and
// wrong sizes are refused; corrupt streams (truncated, any byte changed) end in a spin::Error or
// bytes, never a crash.
#include "data/gzip.h"

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

TEST(Gzip, ZlibStreamsDecompressToTheirBytes) {
  const json manifest = json::parse(fixture("manifest.json"));
  int checked = 0;
  for (const auto& [name, want] : manifest.items()) {
    if (!name.ends_with(".gz") || want.contains("error")) continue;
    SCOPED_TRACE(name);
    const std::string out = gzip_decompress(fixture(name), want["size"].get<std::size_t>(), name);
    EXPECT_EQ(out.size(), want["size"].get<std::size_t>());
    EXPECT_EQ(xxh64_hex(out), want["xxh64"].get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 10);
  EXPECT_EQ(gzip_decompress(fixture("tiny.gz"), 12, "tiny"), "Hello, gzip!");
  // The CRC-32 of RFC 1952 (the check value of the CRC catalogue's "123456789").
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
}

TEST(Gzip, RefusesPresetDictionariesAndWrongSizes) {
  EXPECT_NE(error_of([] {
              gzip_decompress(fixture("zlib_dictionary.gz"), 2000, "page");
            }).find("page: zlib data compressed with a preset dictionary"),
            std::string::npos);
  EXPECT_NE(error_of([] { gzip_decompress(fixture("tiny.gz"), 11, "page"); }).find("longer than the page header's 11"),
            std::string::npos);
  EXPECT_NE(error_of([] { gzip_decompress(fixture("tiny.gz"), 13, "page"); }).find("decompresses to 12 of its 13"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              gzip_decompress(fixture("tiny.gz"), std::size_t{1} << 40, "page");
            }).find("cannot hold the 1099511627776 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([] { gzip_decompress("PAR1 not gzip", 4, "page"); }).find("not gzip or zlib data"),
            std::string::npos);
}

TEST(Gzip, TruncatedStreamsAreRefused) {
  for (const char* name : {"members.gz", "zlib_level6.gz"}) {
    const std::string good = fixture(name);
    const std::size_t size = json::parse(fixture("manifest.json"))[name]["size"];
    for (std::size_t keep = 0; keep < good.size(); keep += (name[0] == 'z' ? 7 : 1)) {
      const std::string e = error_of([&] { gzip_decompress(good.substr(0, keep), size, "page"); });
      ASSERT_EQ(e.rfind("page: ", 0), 0u) << name << " cut at " << keep << ": " << e;
    }
  }
}

// Every byte changed in turn ends in bytes or a spin::Error naming the page -- never a read out of
// bounds (run under sanitizers to see it), a crash or another exception. gzip's CRC-32 and zlib's
// Adler-32 catch what the codes do not: only a change that leaves the bytes as they were passes.
TEST(Gzip, AnyChangedByteEndsInTheBytesOrAnError) {
  const json manifest = json::parse(fixture("manifest.json"));
  for (const char* name : {"members.gz", "runs.gz", "zlib_level6.gz"}) {
    SCOPED_TRACE(name);
    const std::string good = fixture(name);
    int errors = 0, changes = 0;
    for (std::size_t at = 0; at < good.size(); at += (good.size() > 6000 ? 3 : 1)) {
      for (const unsigned char mask : {0x01, 0x80, 0xff}) {
        std::string bad = good;
        bad[at] = static_cast<char>(bad[at] ^ mask);
        ++changes;
        try {
          const std::string out = gzip_decompress(bad, manifest[name]["size"], "page");
          ASSERT_EQ(xxh64_hex(out), manifest[name]["xxh64"]) << "byte " << at << " ^ " << int{mask};
        } catch (const Error& e) {
          ++errors;
          ASSERT_EQ(std::string(e.what()).rfind("page: ", 0), 0u) << e.what();
        } catch (const std::exception& e) {
          FAIL() << "byte " << at << " ^ " << int{mask} << ": " << e.what();
        }
      }
    }
    // Header fields gzip does not check (time, operating system, a name's bytes) pass unchanged.
    EXPECT_GT(errors, changes * 9 / 10);
  }
}

}  // namespace
}  // namespace spin::data
