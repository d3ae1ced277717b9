#include "data/decompress_stream.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <streambuf>
#include <string_view>

#include "core/error.h"
#include "data/gzip.h"
#include "data/zstd.h"

namespace spin::data {
namespace {

// What is dropped from the front at a time at least: a small window's data is not moved block by block.
constexpr std::size_t kMinDrop = std::size_t{16} << 10;

// A file mapped read-only for as long as the object lives.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    require(fd >= 0, path, ": cannot open (", std::strerror(errno), ")");
    struct stat st {};
    const bool stat_ok = ::fstat(fd, &st) == 0 && st.st_size > 0;
    void* map = stat_ok ? ::mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    const int map_errno = errno;
    ::close(fd);
    require(map != MAP_FAILED, path, ": cannot map the file (", std::strerror(map_errno), ")");
    bytes_ = std::string_view(static_cast<const char*>(map), static_cast<std::size_t>(st.st_size));
    ::madvise(map, bytes_.size(), MADV_SEQUENTIAL);
  }
  ~MappedFile() { ::munmap(const_cast<char*>(bytes_.data()), bytes_.size()); }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view bytes() const { return bytes_; }

 private:
  std::string_view bytes_;
};

// The decompressed bytes of a mapped file, a block of `Decoder` (GzipDecoder, ZstdDecoder) at a
// time: what was read is kept only as far back as the decoder's window.
template <class Decoder>
class DecompressStreamBuf : public std::streambuf {
 public:
  explicit DecompressStreamBuf(const std::string& path) : path_(path), file_(path_), decoder_(file_.bytes(), path_) {}

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    while (served_ == out_.size()) {
      const std::uint64_t keep = decoder_.window();
      if (out_.size() > keep && out_.size() - keep > std::max<std::uint64_t>(keep, kMinDrop)) {
        const std::size_t drop = out_.size() - static_cast<std::size_t>(keep);
        out_.erase(0, drop);
        served_ -= drop;
        decoder_.forget(drop);
      }
      if (!decoder_.next(out_, std::string::npos)) return traits_type::eof();
    }
    setg(out_.data(), out_.data() + served_, out_.data() + out_.size());
    served_ = out_.size();
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::string path_;  // errors name it; the decoder holds a reference
  MappedFile file_;
  Decoder decoder_;
  std::string out_;         // decompressed: the window, then what is not yet read
  std::size_t served_ = 0;  // bytes of out_ handed to the reader
};

template <class Decoder>
class DecompressedFileStream : public std::istream {
 public:
  explicit DecompressedFileStream(const std::string& path) : std::istream(nullptr), buf_(path) {
    rdbuf(&buf_);
    exceptions(std::ios::badbit);  // a corrupt file's spin::Error reaches the reader
  }

 private:
  DecompressStreamBuf<Decoder> buf_;
};

}  // namespace

std::unique_ptr<std::istream> open_data_file(const std::string& path) {
  // (A directory opens and fails at its first read; a pipe -- `<(zcat f.jsonl.gz)` -- is read up to its format's
  // first bytes, which a second open no longer sees.)
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  require(!std::filesystem::is_directory(status), path, ": a directory, not a data file");
  require(!std::filesystem::exists(status) || std::filesystem::is_regular_file(status), path,
          ": a pipe or a device, not a data file: every rank reads the data, more than once (write it to a file)");
  auto in = std::make_unique<std::ifstream>(path, std::ios::binary);
  require(in->good(), path, ": cannot open");
  unsigned char magic[4] = {};
  in->read(reinterpret_cast<char*>(magic), 4);
  if (magic[0] == 0x1f && magic[1] == 0x8b) return std::make_unique<DecompressedFileStream<GzipDecoder>>(path);
  if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
    return std::make_unique<DecompressedFileStream<ZstdDecoder>>(path);
  }
  in->clear();
  in->seekg(0);
  return in;
}

}  // namespace spin::data
