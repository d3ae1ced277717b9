#include "data/gzip_stream.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "core/error.h"
#include "data/byte_cursor.h"
#include "data/deflate.h"
#include "data/gzip.h"

namespace spin::data {
namespace {

constexpr std::size_t kWindow = std::size_t{32} << 10;  // the farthest a DEFLATE match reaches

}  // namespace

GzipStreamBuf::GzipStreamBuf(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  require(fd >= 0, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  void* map = stat_ok && st.st_size > 0 ? ::mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  ::close(fd);
  require(map != MAP_FAILED, path, ": cannot map the file (", std::strerror(errno), ")");
  file_ = std::string_view(static_cast<const char*>(map), static_cast<std::size_t>(st.st_size));
  ::madvise(map, file_.size(), MADV_SEQUENTIAL);
}

GzipStreamBuf::~GzipStreamBuf() { ::munmap(const_cast<char*>(file_.data()), file_.size()); }

GzipStreamBuf::int_type GzipStreamBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  while (served_ == out_.size() && !done_) {
    // What was read needs keeping only as far back as a match may reach.
    if (out_.size() > 2 * kWindow) {
      const std::size_t drop = out_.size() - kWindow;
      out_.erase(0, drop);
      served_ -= drop;
      checked_ -= drop;
      member_start_ = member_start_ > drop ? member_start_ - drop : 0;
    }
    decode_step();
  }
  if (served_ == out_.size()) return traits_type::eof();
  setg(out_.data(), out_.data() + served_, out_.data() + out_.size());
  served_ = out_.size();
  return traits_type::to_int_type(*gptr());
}

void GzipStreamBuf::decode_step() {
  if (!bits_) {  // between members
    if (at_ == file_.size()) {
      done_ = true;
      return;
    }
    ByteCursor header(file_.substr(at_), path_);
    skip_gzip_header(header);
    at_ += header.consumed();
    bits_.emplace(file_.substr(at_), path_);
    member_start_ = checked_ = out_.size();
    crc_ = 0;
    member_size_ = 0;
    return;
  }
  const bool last = inflate_block(*bits_, out_, member_start_, std::string::npos);
  crc_ = crc32(std::string_view(out_).substr(checked_), crc_);
  member_size_ += out_.size() - checked_;
  checked_ = out_.size();
  if (last) {
    at_ += bits_->bytes_used();
    ByteCursor trailer(file_.substr(at_), path_);
    check_gzip_trailer(trailer, crc_, member_size_);
    at_ += trailer.consumed();
    bits_.reset();
  }
}

}  // namespace spin::data
