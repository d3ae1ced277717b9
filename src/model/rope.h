// The cos/sin tables of rotary embeddings, [positions, rotary_dim / 2], computed as Hugging Face's
// LlamaRotaryEmbedding does: inv_freq_i = 1 / theta^(2i / rotary_dim) (rescaled by the
// rope_scaling, as modeling_rope_utils does, in float32) and the angle position * inv_freq_i both
// in float32, then cos/sin of that float angle. They hold the positions a run has used, not
// every position the model allows: Mistral NeMo allows 1,024,000 (512 MiB of tables at head_dim
// 128), a SPIN run uses a few thousand. rotary_dim is the dimensions of a head that rotate:
// head_dim, or its partial_rotary_factor's share (ModelConfig::rotary_dim).
#pragma once

#include <cstdint>

#include <optional>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace spin::model {

// The rotary_dim / 2 inverse frequencies.
std::vector<float> rope_inv_freq(std::int64_t rotary_dim, float theta, const std::optional<RopeScaling>& scaling);

class RopeTable {
 public:
  // Positions [0, limit) may be asked for; the first rows_for(0, limit) are computed now, on the
  // host, then held on `device` (where the kernels read them).
  RopeTable(std::int64_t rotary_dim, std::int64_t limit, float theta, Device device = Device::Cpu,
            const std::optional<RopeScaling>& scaling = std::nullopt);

  // The rows held once positions [0, n) are covered: 4096 doubled until at least n, at most
  // `limit` (what spin plan counts).
  static std::int64_t rows_for(std::int64_t n, std::int64_t limit);
  // Grows the tables to hold positions [0, n), n <= limit (computed again: the same values, and
  // new buffers -- pointers from cos() and sin() before are stale).
  void cover(std::int64_t n);

  const float* cos() const { return cos_.f32(); }
  const float* sin() const { return sin_.f32(); }
  std::int64_t positions() const { return cos_.size(0); }  // held
  std::int64_t rotary_dim() const { return rotary_dim_; }
  std::size_t bytes() const { return cos_.nbytes() + sin_.nbytes(); }

 private:
  void compute(std::int64_t rows);

  std::int64_t rotary_dim_, limit_;
  float theta_;
  Device device_;
  std::optional<RopeScaling> scaling_;
  Tensor cos_, sin_;
};

}  // namespace spin::model
