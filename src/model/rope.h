// The cos/sin tables of rotary embeddings, [max_positions, head_dim / 2], computed as Hugging
// Face's LlamaRotaryEmbedding does: inv_freq_i = 1 / theta^(2i / head_dim) (rescaled by the
// rope_scaling, as modeling_rope_utils does, in float32) and the angle position * inv_freq_i both
// in float32, then cos/sin of that float angle.
#pragma once

#include <cstdint>

#include <optional>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace spin::model {

// The head_dim / 2 inverse frequencies.
std::vector<float> rope_inv_freq(std::int64_t head_dim, float theta, const std::optional<RopeScaling>& scaling);

class RopeTable {
 public:
  // Computed on the host, then held on `device` (where the kernels read them).
  RopeTable(std::int64_t head_dim, std::int64_t max_positions, float theta, Device device = Device::Cpu,
            const std::optional<RopeScaling>& scaling = std::nullopt);

  const float* cos() const { return cos_.f32(); }
  const float* sin() const { return sin_.f32(); }
  std::int64_t max_positions() const { return cos_.size(0); }
  std::size_t bytes() const { return cos_.nbytes() + sin_.nbytes(); }

 private:
  Tensor cos_, sin_;
};

}  // namespace spin::model
