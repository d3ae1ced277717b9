// A gzip-compressed data file (train.jsonl.gz, a .json.gz array) read as the stream of its bytes,
// one DEFLATE block at a time: the file is mapped, not read, and a reader holds DEFLATE's 32 KiB
// window and one block's output, whatever the file's size. Each member's CRC-32 and length are
// checked at its end; a corrupt or truncated file is a spin::Error naming it, thrown from the
// stream's reads (its badbit exception on).
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <streambuf>
#include <string>
#include <string_view>

#include "data/forward_bits.h"

namespace spin::data {

class GzipStreamBuf : public std::streambuf {
 public:
  explicit GzipStreamBuf(const std::string& path);
  ~GzipStreamBuf() override;
  GzipStreamBuf(const GzipStreamBuf&) = delete;
  GzipStreamBuf& operator=(const GzipStreamBuf&) = delete;

 protected:
  int_type underflow() override;

 private:
  void decode_step();  // a member's header, one block, or the end

  std::string path_;
  std::string_view file_;            // the mapped file
  std::size_t at_ = 0;               // where the next member starts, between members
  std::optional<ForwardBits> bits_;  // the current member's DEFLATE data
  std::string out_;                  // decompressed: the window, then what is not yet read
  std::size_t served_ = 0;           // bytes of out_ handed to the reader
  std::size_t member_start_ = 0;     // where the current member's bytes start in out_ (0 once dropped)
  std::size_t checked_ = 0;          // bytes of out_ in crc_
  std::uint32_t crc_ = 0;
  std::uint64_t member_size_ = 0;
  bool done_ = false;
};

class GzipFileStream : public std::istream {
 public:
  explicit GzipFileStream(const std::string& path) : std::istream(nullptr), buf_(path) {
    rdbuf(&buf_);
    exceptions(std::ios::badbit);  // a corrupt file's spin::Error reaches the reader
  }

 private:
  GzipStreamBuf buf_;
};

}  // namespace spin::data
