// Thin RAII wrappers over the HDF5 C API (ids closed in destructors) and the few operations
// spin's checkpoints need. Every failure throws spin::Error naming the file and the object;
// HDF5's own error printing is silenced. The only place in spin that calls HDF5.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace spin::ckpt::h5 {

// An owned HDF5 identifier of any kind.
class Id {
 public:
  Id() = default;
  Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Id() { reset(); }
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Id& operator=(Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  hid_t get() const { return id_; }
  // The id, no longer closed here.
  hid_t release() { return std::exchange(id_, -1); }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

class File {
 public:
  static File create(const std::string& path);     // truncates
  static File open_read(const std::string& path);  // read-only
  hid_t id() const { return id_.get(); }
  const std::string& path() const { return path_; }
  // Closes the file, an error naming it where that fails: HDF5 writes the metadata it caches (object
  // headers, the groups' indexes) here, so a full disk may show only now. (The destructor closes
  // without a check: it runs when an error is already on its way.)
  void close();

  // A float32 dataset at `name` (intermediate groups created) holding `data` of `shape`,
  // with an "xxh3_64" checksum attribute of its bytes. Returns the checksum.
  std::uint64_t write_floats(const std::string& name, const Shape& shape, const float* data);
  // Reads the whole dataset (its shape must be `shape`) and checks its "xxh3_64" attribute;
  // a mismatch is an error naming file and dataset.
  void read_floats_verified(const std::string& name, const Shape& shape, float* out) const;
  Shape dataset_shape(const std::string& name) const;
  bool exists(const std::string& name) const;
  // Starts writing the file's dirty pages to the disk without waiting (sync_file_range), so
  // that the fsync at the end overlaps with the writes that follow.
  void start_writeback();

  void write_string_attribute(const std::string& name, const std::string& value);
  std::string read_string_attribute(const std::string& name) const;
  std::vector<std::string> attribute_names() const;

  // A virtual dataset `name` of `shape` whose rectangles come from datasets in other files
  // (file names relative to this file's directory).
  struct Source {
    std::string file, dataset;
    Shape start, count;
  };
  void write_virtual(const std::string& name, const Shape& shape, const std::vector<Source>& sources);

 private:
  File(Id id, std::string path) : id_(std::move(id)), path_(std::move(path)) {}
  Id id_;
  std::string path_;
};

std::uint64_t checksum(const void* data, std::size_t bytes);  // XXH3 64-bit (xxHash), seed 0: about 19 GB/s on one core

// Flushes a closed file's data (or a directory entry) to the disk.
void fsync_path(const std::string& path);

}  // namespace spin::ckpt::h5
