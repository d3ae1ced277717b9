#include "app/resumable_output.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "core/error.h"
#include "core/json_file.h"

namespace spin::app {

namespace {

std::string header(std::uint64_t fingerprint, std::int64_t lines) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "{\"spin_generate_partial\": 1, \"fingerprint\": \"%016llx\", \"lines\": %lld}\n",
                static_cast<unsigned long long>(fingerprint), static_cast<long long>(lines));
  return buf;
}

// The complete lines at the start of `path` (none if it does not exist): how many, and the bytes
// they take (what follows the last newline -- a line torn by a crash -- is not counted). Read in
// blocks: an output of many long responses need not fit in memory.
struct CompleteLines {
  std::int64_t lines = 0;
  std::uintmax_t bytes = 0;
};
CompleteLines complete_lines(const std::string& path) {
  CompleteLines out;
  if (!std::filesystem::exists(path)) return out;
  std::ifstream in(path, std::ios::binary);
  require(in.good(), path, ": cannot read");
  std::vector<char> block(std::size_t{1} << 20);
  std::uintmax_t offset = 0;
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    for (std::size_t i = 0; i < got; ++i) {
      if (block[i] != '\n') continue;
      ++out.lines;
      out.bytes = offset + i + 1;
    }
    offset += got;
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), path, ": cannot read");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Writes `text` to `f` and makes it durable (fflush, fsync); false if any of it failed.
bool write_synced(std::FILE* f, const std::string& text) {
  return std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
}

// Writes `text` to `path` and makes it durable.
void write_durably(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  require(f != nullptr, path, ": cannot create");
  const bool ok = write_synced(f, text);
  if (std::fclose(f) != 0 || !ok) write_failed(path);
}

}  // namespace

OutputTarget output_target(const std::string& path, const std::string& option) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);  // through symbolic links
  if (fs::exists(status)) {
    require(!fs::is_directory(status), option, " ", path, ": a directory, where the output is a file");
    if (!fs::is_regular_file(status)) return {path, true};
  }
  const std::string target = through_links(path);
  const fs::path parent = fs::absolute(target).parent_path();
  require(fs::is_directory(parent, ec), option, " ", path, ": the parent directory ", parent.string(),
          " does not exist");
  return {target, false};
}

std::string through_links(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // A loop ends at 40 hops, where the kernel's own limit is, and the output's open names it then.
  fs::path target = path;
  for (int hops = 0; hops < 40 && fs::is_symlink(fs::symlink_status(target, ec)); ++hops) {
    const fs::path to = fs::read_symlink(target, ec);
    if (ec) break;
    target = (to.is_absolute() ? to : target.parent_path() / to).lexically_normal();
  }
  return target.string();
}

std::uint64_t fnv1a(std::string_view text, std::uint64_t hash) {
  for (const unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

ResumableOutput::ResumableOutput(const OutputTarget& path, std::uint64_t fingerprint, std::int64_t lines)
    : path_(path.path),
      partial_(path.in_place ? path_ : path_ + ".partial"),
      run_(partial_ + ".run"),
      in_place_(path.in_place),
      lines_(lines) {
  if (in_place_) {
    file_ = std::fopen(path_.c_str(), "wb");
    require(file_ != nullptr, path_, ": cannot open for writing");
    return;
  }
  const std::string head = header(fingerprint, lines);
  // Complete lines are kept; the bytes after the last newline (a line torn by a crash) are not.
  const CompleteLines kept = complete_lines(partial_);
  if (kept.lines == 0) {  // nothing to go on from: a new output
    write_durably(run_, head);  // first: lines never exist without the run they belong to
    file_ = std::fopen(partial_.c_str(), "wb");
    require(file_ != nullptr, partial_, ": cannot create");
    return;
  }
  require(std::filesystem::exists(run_), partial_, ": exists without ", run_,
          " (the run that wrote it): move it away to write ", path_);
  const std::string written = read_file(run_);
  require(written == head, partial_, ": a partial output of another run (other inputs or settings: ", run_,
          " holds ", written.substr(0, written.find('\n')), ", this run is ", head.substr(0, head.size() - 1),
          "); remove both files to start again, or run the command that wrote them");
  done_ = kept.lines;
  require(done_ <= lines_, partial_, ": holds ", done_, " lines, more than the run's ", lines_);
  std::filesystem::resize_file(partial_, kept.bytes);
  file_ = std::fopen(partial_.c_str(), "ab");
  require(file_ != nullptr, partial_, ": cannot open for appending");
}

ResumableOutput::~ResumableOutput() {
  if (file_ != nullptr) std::fclose(file_);
}

void ResumableOutput::append(const std::string& text, std::int64_t count) {
  // (A device or a pipe cannot be synced -- fsync(/dev/null) is EINVAL -- and nothing resumes it.)
  const bool written = in_place_
                           ? std::fwrite(text.data(), 1, text.size(), file_) == text.size() && std::fflush(file_) == 0
                           : write_synced(file_, text);
  if (!written) write_failed(partial_);
  done_ += count;
}

void ResumableOutput::finish() {
  require(done_ == lines_, partial_, ": ", done_, " of ", lines_, " lines written");
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) write_failed(partial_);
  if (in_place_) return;
  std::filesystem::rename(partial_, path_);
  std::filesystem::remove(run_);
}

}  // namespace spin::app
