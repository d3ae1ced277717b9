// Data files compressed whole -- gzip (train.jsonl.gz, a .json.gz array) or Zstandard
// (.jsonl.zst) -- read as the stream of their bytes, a block at a time: the file is mapped, not
// read, and a reader holds the format's window (DEFLATE's 32 KiB; a Zstandard frame's, 0.5-8 MiB
// as zstd writes files) and one block's output, whatever the file's size. Checksums are checked as
// each member or frame ends; a corrupt or truncated file is a spin::Error naming it, thrown from the
// stream's reads.
#pragma once

#include <istream>
#include <memory>
#include <streambuf>
#include <string>
#include <string_view>

namespace spin::data {

// The bytes of the data file at `path`: as they are, or decompressed as they are read where the file
// is gzip- or Zstandard-compressed -- told by its first bytes, not its name. The stream's badbit
// exception is on, so a corrupt file's spin::Error reaches the reader.
std::unique_ptr<std::istream> open_data_file(const std::string& path);

class DecompressStreamBuf : public std::streambuf {
 public:
  // A source of decompressed blocks: next() appends one (false once done), window() says how much
  // of what it appended must stay, forget(n) that n bytes were dropped from the front.
  class Source {
   public:
    virtual ~Source() = default;
    virtual bool next(std::string& out) = 0;
    virtual std::uint64_t window() const = 0;
    virtual void forget(std::size_t n) = 0;
  };

  DecompressStreamBuf(const std::string& path, bool zstd);
  ~DecompressStreamBuf() override;
  DecompressStreamBuf(const DecompressStreamBuf&) = delete;
  DecompressStreamBuf& operator=(const DecompressStreamBuf&) = delete;

 protected:
  int_type underflow() override;

 private:
  std::string path_;
  std::string_view file_;  // the mapped file
  std::unique_ptr<Source> source_;
  std::string out_;         // decompressed: the window, then what is not yet read
  std::size_t served_ = 0;  // bytes of out_ handed to the reader
};

}  // namespace spin::data
