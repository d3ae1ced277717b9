// TensorBoard event files, written without TensorFlow or protobuf: a file
// events.out.tfevents.<unix time>.<host> of records
//   uint64 length | uint32 masked CRC32C(length) | Event bytes | uint32 masked CRC32C(bytes)
// (TFRecord framing), the first Event carrying file_version "brain.Event:2" and each later one
// a wall time, a step and one scalar Summary.Value {tag, simple_value} (or a SessionLog),
// protobuf-encoded by hand.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace spin::train {

// CRC-32C (Castagnoli), and TFRecord's mask of it.
std::uint32_t crc32c(const void* data, std::size_t bytes);
std::uint32_t masked_crc32c(const void* data, std::size_t bytes);

class TensorBoardWriter {
 public:
  // Creates the event file in `dir` (created if needed); throws naming it if it cannot.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  const std::string& path() const { return path_; }
  void scalar(const std::string& tag, double value, std::int64_t step);
  // A SessionLog START at `step`: TensorBoard drops the events at `step` and later from earlier
  // files, so a resumed run's redone steps replace those of the run it resumes.
  void session_start(std::int64_t step);
  // Writes what is buffered; throws naming the file where that fails (a full disk), as scalar() and
  // session_start() do where their writes do.
  void flush();

 private:
  void write_event(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace spin::train
