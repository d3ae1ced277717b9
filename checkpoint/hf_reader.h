// Reads a Hugging Face model directory's weights: model.safetensors, or the shards listed by
// model.safetensors.index.json (another stem: a PEFT adapter's adapter_model.safetensors). Each
// rank reads only the slices of its own ShardedTensors; files are opened on first use. Every
// missing tensor, shape mismatch or malformed file is an error naming the file and the tensor. A
// block-scaled FP8 checkpoint's weights (HfLayout::fp8_block) are read dequantized to float32.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/hf_layout.h"
#include "core/sharded_tensor.h"

namespace spin::ckpt {

class HfReader {
 public:
  // `layout`: where the model's tensors sit in the files (model::hf_layout: a prefix, fused
  // tensors); by default each under its own name. `stem`: the files' name before ".safetensors".
  explicit HfReader(const std::string& model_dir, HfLayout layout = {}, const std::string& stem = "model");
  // Whether `model_dir` holds weights to read: `stem`.safetensors or its index (a directory of config.json
  // alone, as spin plan reads, has none).
  static bool has_weights(const std::string& model_dir, const std::string& stem = "model");

  // Fills every tensor's local shard (from its rows of a fused file tensor where the layout
  // fuses it); a bf16 shard (a frozen model's matrix, model::WeightStorage::FrozenBf16) with the
  // rounding of the float32 values, read a tensor at a time on the host.
  void load(const std::vector<ShardedTensor>& tensors);
  // Every tensor name in the files (the prefix included), sorted.
  std::vector<std::string> names();
  // The shape of tensor `name` (as the files name it), and the whole tensor as float32.
  Shape shape_of(const std::string& name);
  std::vector<float> read_all(const std::string& name);
  const std::string& dir() const { return dir_; }

 private:
  SafetensorsFile& file_for(const std::string& tensor_name);
  SafetensorsFile& open(const std::string& path);  // opened once, on first use
  // The block scales of FP8 weight `name` ([rows, cols] in the files): its `name`_scale_inv, in
  // HfLayout::fp8_block's blocks.
  BlockScales block_scales(const std::string& name, const Shape& shape);
  // A shard of `t` split along its columns where the files fuse its rows into another tensor.
  void read_columns_of_rows(const ShardedTensor& t, const HfLayout::Place& place);
  void load_float32(const ShardedTensor& t);  // one float32 shard

  std::string dir_;
  HfLayout layout_;
  std::string single_file_;                       // model.safetensors, when not sharded
  std::map<std::string, std::string> weight_map_;  // tensor -> file, when sharded
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open_;
};

}  // namespace spin::ckpt
