// Reads a Hugging Face model directory's weights: model.safetensors, or the shards listed by
// model.safetensors.index.json. Each rank reads only the slices of its own ShardedTensors;
// files are opened on first use. Every missing tensor, shape mismatch or malformed file is an
// error naming the file and the tensor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/sharded_tensor.h"

namespace spin::ckpt {

class HfReader {
 public:
  // `tensor_prefix` goes before every tensor's name in the files (ModelConfig::hf_weight_prefix:
  // "language_model." for the language model of a Gemma 3 multimodal checkpoint).
  explicit HfReader(const std::string& model_dir, std::string tensor_prefix = "");

  // Fills every tensor's local shard.
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

  std::string dir_;
  std::string prefix_;
  std::string single_file_;                       // model.safetensors, when not sharded
  std::map<std::string, std::string> weight_map_;  // tensor -> file, when sharded
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open_;
};

}  // namespace spin::ckpt
