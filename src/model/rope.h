// The cos/sin tables of rotary embeddings, [max_positions, head_dim / 2], computed as Hugging
// Face's LlamaRotaryEmbedding does: inv_freq_i = 1 / theta^(2i / head_dim) and the angle
// position * inv_freq_i both in float32, then cos/sin of that float angle.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace spin::model {

class RopeTable {
 public:
  // Computed on the host, then held on `device` (where the kernels read them).
  RopeTable(std::int64_t head_dim, std::int64_t max_positions, float theta,
            Device device = Device::Cpu);

  const float* cos() const { return cos_.f32(); }
  const float* sin() const { return sin_.f32(); }
  std::int64_t max_positions() const { return cos_.size(0); }

 private:
  Tensor cos_, sin_;
};

}  // namespace spin::model
