// ShardedTensor (Megatron's name): a rank's local piece of a global tensor, and where it sits.
// The model describes its parameters this way; checkpoint/ reads and writes them by name
// without knowing what a layer is. A shard is a contiguous range along one dimension.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace spin {

struct ShardedTensor {
  std::string name;     // Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight"
  Tensor local;         // this rank's piece; may be longer than `length` along split_dim (padding)
  Shape global_shape;   // the unsharded tensor
  int split_dim = -1;   // -1: replicated, `local` is the whole tensor
  std::int64_t offset = 0;  // first global index along split_dim held here
  std::int64_t length = 0;  // global entries held here along split_dim (<= local.size(split_dim))
  // Whether this copy is the one that counts where a tensor lives on several ranks of one model
  // replica (a replicated norm on every TP rank, a tied embedding on the first and the last
  // pipeline stage): exactly one copy is primary. Saving and global norms use primary copies.
  bool primary = true;

  bool replicated() const { return split_dim < 0; }
};

// How a model's tensors sit in its Hugging Face files where that is not one file tensor under
// each ShardedTensor name: a prefix before every name (the language model of Gemma 3's multimodal
// checkpoints sits under "language_model."), and tensors the files hold as consecutive row
// blocks of one (Phi-3's qkv_proj = [q_proj; k_proj; v_proj], gate_up_proj = [gate_proj;
// up_proj]). checkpoint/ reads and writes through it.
struct HfLayout {
  std::string prefix;
  struct Fusion {
    std::string fused;  // the file tensor's name suffix, e.g. "self_attn.qkv_proj.weight"
    // Suffixes of the names of the tensors it holds, with their rows, first rows first.
    std::vector<std::pair<std::string, std::int64_t>> parts;
  };
  std::vector<Fusion> fusions;

  // Where tensor `name` (a ShardedTensor's) sits in the files: the file tensor (prefix included),
  // the first of its rows that belongs to `name`, and the file tensor's rows (0: not fused, the
  // whole file tensor is `name`'s).
  struct Place {
    std::string name;
    std::int64_t row = 0;
    std::int64_t rows = 0;
  };
  Place place(const std::string& name) const {
    for (const Fusion& f : fusions) {
      std::int64_t row = 0, rows = 0;
      for (const auto& [suffix, n] : f.parts) rows += n;
      for (const auto& [suffix, n] : f.parts) {
        if (name.size() > suffix.size() && name.ends_with(suffix) && name[name.size() - suffix.size() - 1] == '.') {
          return {prefix + name.substr(0, name.size() - suffix.size()) + f.fused, row, rows};
        }
        row += n;
      }
    }
    return {prefix + name, 0, 0};
  }
};

}  // namespace spin
