#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/json_file.h"

namespace spin::train {

namespace {

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;  // reflected Castagnoli
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

// Protobuf wire format, only what Event needs.
void varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void key(std::string& out, int field, int wire_type) { varint(out, static_cast<std::uint64_t>(field << 3 | wire_type)); }
template <class T>
void fixed(std::string& out, int field, T value) {  // double (wire type 1) or float (5)
  key(out, field, sizeof(T) == 8 ? 1 : 5);
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out.append(bytes, sizeof(T));
}
void bytes_field(std::string& out, int field, const std::string& value) {
  key(out, field, 2);
  varint(out, value.size());
  out += value;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An Event holding one message field (`field`, e.g. summary or session_log) at `step`.
std::string event_at(std::int64_t step, int field, const std::string& message) {
  std::string event;
  fixed(event, 1, now_seconds());                   // Event.wall_time
  key(event, 2, 0);                                 // Event.step
  varint(event, static_cast<std::uint64_t>(step));
  bytes_field(event, field, message);
  return event;
}

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < bytes; ++i) c = kCrcTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::uint32_t masked_crc32c(const void* data, std::size_t bytes) {
  const std::uint32_t c = crc32c(data, bytes);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  // events.out.tfevents.<time>.<host>.<pid>[.<n>]: a new file per run (a resumed run adds
  // one), never overwriting another ("x": exclusive creation).
  const std::string stem = cat("events.out.tfevents.", static_cast<long long>(now_seconds()), ".", host, ".", ::getpid());
  for (int n = 0; file_ == nullptr && n < 100; ++n) {
    path_ = (fs::path(dir) / (n == 0 ? stem : cat(stem, ".", n))).string();
    file_ = std::fopen(path_.c_str(), "wbx");
    if (file_ == nullptr && errno != EEXIST) break;
  }
  require(file_ != nullptr, path_, ": cannot create the TensorBoard event file (", std::strerror(errno), ")");
  std::string event;
  fixed(event, 1, now_seconds());             // wall_time
  bytes_field(event, 3, "brain.Event:2");     // file_version
  write_event(event);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::scalar(const std::string& tag, double value, std::int64_t step) {
  std::string v;
  bytes_field(v, 1, tag);                      // Summary.Value.tag
  fixed(v, 2, static_cast<float>(value));      // Summary.Value.simple_value
  std::string summary;
  bytes_field(summary, 1, v);                  // Summary.value
  write_event(event_at(step, 5, summary));     // Event.summary
}

void TensorBoardWriter::session_start(std::int64_t step) {
  std::string log;
  key(log, 1, 0);                              // SessionLog.status
  varint(log, 1);                              // START
  write_event(event_at(step, 7, log));         // Event.session_log
}

void TensorBoardWriter::write_event(const std::string& event) {
  const std::uint64_t length = event.size();
  char header[12];
  std::memcpy(header, &length, 8);
  const std::uint32_t length_crc = masked_crc32c(header, 8);
  std::memcpy(header + 8, &length_crc, 4);
  const std::uint32_t data_crc = masked_crc32c(event.data(), event.size());
  const bool ok = std::fwrite(header, 1, 12, file_) == 12 &&
                  std::fwrite(event.data(), 1, event.size(), file_) == event.size() &&
                  std::fwrite(&data_crc, 1, 4, file_) == 4;
  if (!ok) write_failed(path_);
}

void TensorBoardWriter::flush() {
  if (std::fflush(file_) != 0) write_failed(path_);
}

}  // namespace spin::train
