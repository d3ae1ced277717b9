// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then
// the raw bytes. The reader maps the file and checks every offset against the file size before
// touching data, so a truncated or malformed file is an error naming file and tensor, never a
// crash; reading a shard touches only that shard's pages.
#pragma once

#include <array>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/sharded_tensor.h"

namespace spin::ckpt {

struct SafetensorsEntry {
  std::string dtype_name;      // as written in the file
  std::optional<DType> dtype;  // empty for types spin cannot convert
  Shape shape;
  std::uint64_t begin = 0;  // byte range within the data section
  std::uint64_t end = 0;
  // An FP8 (E4M3) weight of a block-scaled checkpoint: read only with its BlockScales.
  bool fp8() const { return dtype_name == "F8_E4M3"; }
};

// The scales of a block-scaled FP8 weight [rows, cols] (its W_scale_inv: DeepSeek's weight_dequant multiplies
// by it): element (r, c) is its E4M3 value times scales[(r / block_rows) * scale_cols + c / block_cols].
struct BlockScales {
  std::vector<float> scales;
  std::int64_t block_rows = 0, block_cols = 0, scale_cols = 0;
};

// The name of weight `weight`'s scales in those checkpoints: "<weight>_scale_inv".
inline std::string scale_name(const std::string& weight) { return weight + "_scale_inv"; }
// The scale grid of a [rows, cols] matrix in blocks of [block_rows, block_cols]: [ceil(rows / block_rows),
// ceil(cols / block_cols)], the last blocks in each direction smaller.
inline Shape block_grid(std::int64_t rows, std::int64_t cols, std::int64_t block_rows, std::int64_t block_cols) {
  // Rounded up without forming rows + block - 1, which overflowed for a block of 2^63 - 1 (a grid of [0, 0]).
  return {rows / block_rows + (rows % block_rows != 0), cols / block_cols + (cols % block_cols != 0)};
}

// W [rows, cols] block-scaled to FP8 as those checkpoints hold it (DeepSeek-V3's quantization): each block of
// block_rows x block_cols (smaller at the last rows and columns) gets the scale s = amax / 448 in float32
// (an all-zero block 1: any scale dequantizes its zero codes to 0, and 1 keeps a loader that divides
// by it finite), each element the E4M3 code nearest w / s into `codes` (rows x cols). So a block's largest
// element becomes +-448 and read back (read_shard) is its code's value times s. Throws naming `name`
// and the first NaN or infinite element (row-major). The bands of block_rows rows are shared by `threads`
// threads (0: one a CPU this process may run on, at most 16; a matrix under 2^20 elements takes one): the
// same codes and scales, bit for bit, for any number.
BlockScales quantize_fp8_blocks(const std::string& name, const float* w, std::int64_t rows, std::int64_t cols,
                                std::int64_t block_rows, std::int64_t block_cols, std::uint8_t* codes, int threads = 0);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Reads this rank's shard of tensor `target.name` into target.local as float32. The file's
  // tensor must have target.global_shape -- or `file_shape`, where given: the same values in a shape
  // of its own (GraniteMoE's [experts, rows, cols] read as [experts x rows, cols]); padding beyond
  // target.length stays zero.
  // An FP8 tensor (SafetensorsEntry::fp8) is read dequantized by `scales`, which it needs.
  void read_shard(const ShardedTensor& target, const Shape& file_shape = {}, const BlockScales* scales = nullptr) const;
  // The whole tensor `name` as float32 (its shape: entry(name).shape).
  std::vector<float> read_all(const std::string& name) const;

 private:
  // Entry `e` (of tensor `name`)'s dtype, one of those spin converts to float32; else an error
  // naming the file and the tensor.
  DType float_dtype(const std::string& name, const SafetensorsEntry& e) const;

  std::string path_;
  int fd_ = -1;
  void* map_ = nullptr;
  std::size_t size_ = 0;
  const unsigned char* data_ = nullptr;  // start of the data section
  std::size_t data_size_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: float32 values stored as `dtype` (F32, BF16 or F16).
struct SafetensorsWrite {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const float* data = nullptr;  // unused by SafetensorsWriter
  // {rows, cols}: a matrix written block-scaled to FP8 instead (`dtype` unused): `name` of F8_E4M3 codes and,
  // right after it in the file, `name`_scale_inv [ceil(R / rows), ceil(C / cols)] of float32 scales
  // (quantize_fp8_blocks) -- two tensors of the file from one write_next.
  std::array<std::int64_t, 2> fp8_block{};
  bool fp8() const { return fp8_block[0] > 0; }
};

// Writes a safetensors file one tensor at a time (memory: one tensor): the header from the
// list of tensors, then each tensor's values in that order.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, std::vector<SafetensorsWrite> tensors,
                    const std::map<std::string, std::string>& metadata = {});
  // The next tensor's shape_numel(shape) values.
  void write_next(const float* data);
  // Checks that every tensor was written, flushes and closes.
  void finish();
  // Bytes of a tensor's values in the file (an FP8 one's codes and scales).
  static std::uint64_t data_bytes(const SafetensorsWrite& t);

 private:
  std::string path_;
  std::vector<SafetensorsWrite> tensors_;
  std::size_t next_ = 0;
  std::ofstream out_;
};

void write_safetensors(const std::string& path, const std::vector<SafetensorsWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace spin::ckpt
