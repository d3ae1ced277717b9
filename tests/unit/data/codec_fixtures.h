// The compressed fixtures of tests/data/codecs (make_codec_fixtures.py: libzstd's and zlib's
// output, manifest.json giving each file's decompressed size and XXH64) and the checks every
// codec's test runs over them: whole files against the manifest, every byte changed in turn.
#pragma once

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>

#include "core/error.h"

namespace spin::data::codec_test {

inline std::string codec_fixture(const std::string& name) {
  std::ostringstream bytes;
  bytes << std::ifstream(std::string(SPIN_TEST_DATA_DIR) + "/codecs/" + name, std::ios::binary).rdbuf();
  return bytes.str();
}

inline const nlohmann::json& codec_manifest() {
  static const nlohmann::json manifest = nlohmann::json::parse(codec_fixture("manifest.json"));
  return manifest;
}

inline std::string xxh64_hex(std::string_view bytes) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH64(bytes.data(), bytes.size(), 0)));
  return hex;
}

using Decompress = std::function<std::string(std::string_view, std::size_t, const std::string&)>;

// Every manifest file ending in `ext` that is not refused decompresses to its size and XXH64;
// returns how many were checked.
inline int expect_manifest_files(const std::string& ext, const Decompress& decompress) {
  int checked = 0;
  for (const auto& [name, want] : codec_manifest().items()) {
    if (!name.ends_with(ext) || want.contains("error")) continue;
    SCOPED_TRACE(name);
    const std::string out = decompress(codec_fixture(name), want["size"].get<std::size_t>(), name);
    EXPECT_EQ(out.size(), want["size"].get<std::size_t>());
    EXPECT_EQ(xxh64_hex(out), want["xxh64"].get<std::string>());
    ++checked;
  }
  return checked;
}

// Every `stride`-th byte of the fixture changed by three masks in turn: each change ends in bytes or
// a spin::Error naming the page -- never a crash or another exception (run under sanitizers to see
// reads out of bounds). Where `checksummed`, bytes that come out must be the original ones.
// Returns the number of errors and of changes.
inline std::pair<int, int> change_every_byte(const std::string& name, const Decompress& decompress,
                                             std::size_t stride, bool checksummed) {
  const std::string good = codec_fixture(name);
  const nlohmann::json& want = codec_manifest()[name];
  int errors = 0, changes = 0;
  for (std::size_t at = 0; at < good.size(); at += stride) {
    for (const unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ mask);
      ++changes;
      try {
        const std::string out = decompress(bad, want["size"], "page");
        if (checksummed) {
          EXPECT_EQ(xxh64_hex(out), want["xxh64"]) << "byte " << at << " ^ " << int{mask};
        }
      } catch (const Error& e) {
        ++errors;
        EXPECT_EQ(std::string(e.what()).rfind("page: ", 0), 0u) << e.what();
      } catch (const std::exception& e) {
        ADD_FAILURE() << "byte " << at << " ^ " << int{mask} << ": " << e.what();
      }
    }
  }
  return {errors, changes};
}

}  // namespace spin::data::codec_test
