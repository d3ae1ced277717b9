#include "data/decompress_stream.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "data/gzip.h"
#include "data/zstd.h"

namespace spin::data {
namespace {

// What is dropped from the front at a time at least: a small window's data is not moved block by block.
constexpr std::size_t kMinDrop = std::size_t{16} << 10;

template <class Decoder>
class DecoderSource : public DecompressStreamBuf::Source {
 public:
  DecoderSource(std::string_view data, const std::string& where) : decoder_(data, where) {}
  bool next(std::string& out) override { return decoder_.next(out, std::string::npos); }
  std::uint64_t window() const override { return decoder_.window(); }
  void forget(std::size_t n) override { decoder_.forget(n); }

 private:
  Decoder decoder_;
};

class DecompressedFileStream : public std::istream {
 public:
  DecompressedFileStream(const std::string& path, bool zstd) : std::istream(nullptr), buf_(path, zstd) {
    rdbuf(&buf_);
    exceptions(std::ios::badbit);  // a corrupt file's spin::Error reaches the reader
  }

 private:
  DecompressStreamBuf buf_;
};

}  // namespace

DecompressStreamBuf::DecompressStreamBuf(const std::string& path, bool zstd) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  require(fd >= 0, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0 && st.st_size > 0;
  void* map = stat_ok ? ::mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  const int map_errno = errno;
  ::close(fd);
  require(map != MAP_FAILED, path, ": cannot map the file (", std::strerror(map_errno), ")");
  file_ = std::string_view(static_cast<const char*>(map), static_cast<std::size_t>(st.st_size));
  ::madvise(map, file_.size(), MADV_SEQUENTIAL);
  if (zstd) {
    source_ = std::make_unique<DecoderSource<ZstdDecoder>>(file_, path_);
  } else {
    source_ = std::make_unique<DecoderSource<GzipDecoder>>(file_, path_);
  }
}

DecompressStreamBuf::~DecompressStreamBuf() {
  source_.reset();
  ::munmap(const_cast<char*>(file_.data()), file_.size());
}

DecompressStreamBuf::int_type DecompressStreamBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  while (served_ == out_.size()) {
    // What was read needs keeping only as far back as a match may reach.
    const std::uint64_t keep = source_->window();
    if (out_.size() > keep && out_.size() - keep > std::max<std::uint64_t>(keep, kMinDrop)) {
      const std::size_t drop = out_.size() - static_cast<std::size_t>(keep);
      out_.erase(0, drop);
      served_ -= drop;
      source_->forget(drop);
    }
    if (!source_->next(out_)) return traits_type::eof();
  }
  setg(out_.data(), out_.data() + served_, out_.data() + out_.size());
  served_ = out_.size();
  return traits_type::to_int_type(*gptr());
}

std::unique_ptr<std::istream> open_data_file(const std::string& path) {
  auto in = std::make_unique<std::ifstream>(path, std::ios::binary);
  require(in->good(), path, ": cannot open");
  unsigned char magic[4] = {};
  in->read(reinterpret_cast<char*>(magic), 4);
  if (magic[0] == 0x1f && magic[1] == 0x8b) return std::make_unique<DecompressedFileStream>(path, false);
  if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
    return std::make_unique<DecompressedFileStream>(path, true);
  }
  in->clear();
  in->seekg(0);
  return in;
}

}  // namespace spin::data
