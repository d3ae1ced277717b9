// ShardedTensor (Megatron's name): a rank's local piece of a global tensor, and where it sits.
// The model describes its parameters this way; checkpoint/ reads and writes them by name
// without knowing what a layer is. A shard is a contiguous range along one dimension.
#pragma once

#include <cstdint>
#include <string>

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

}  // namespace spin
