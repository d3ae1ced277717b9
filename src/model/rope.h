// The cos/sin tables of rotary embeddings, [positions, rotary_dim / 2], computed as Hugging Face's
// LlamaRotaryEmbedding does: inv_freq_i = 1 / theta^(2i / rotary_dim) (rescaled by the
// rope_scaling, as modeling_rope_utils does, in float32) and the angle position * inv_freq_i both
// in float32, then cos/sin of that float angle. They hold the positions a run has used, not
// every position the model allows: Mistral NeMo allows 1,024,000 (512 MiB of tables at head_dim
// 128), a SPIN run uses a few thousand. rotary_dim is the dimensions of a head that rotate:
// head_dim, or its partial_rotary_factor's share (ModelConfig::rotary_dim).
//
// LongRoPE (Phi-3's and Phi-4-mini's 128k models) has two tables in one: the short factors' for
// positions [0, L) in rows [0, L), L = original_max_position_embeddings, and the long factors' for
// positions [0, limit) from row L on (long_row), the long part grown only as long sequences need
// it. A sequence longer than L takes every position from the long part (ModelConfig::long_rope_context).
#pragma once

#include <cstdint>

#include <optional>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace spin::model {

// The rotary_dim / 2 inverse frequencies (LongRoPE's from its long factors where `long_factors`).
std::vector<float> rope_inv_freq(std::int64_t rotary_dim, float theta, const std::optional<RopeScaling>& scaling,
                                 bool long_factors = false);

class RopeTable {
 public:
  // Positions [0, limit) may be asked for; the first rows_for(0, limit) are computed now, on the
  // host, then held on `device` (where the kernels read them).
  RopeTable(std::int64_t rotary_dim, std::int64_t limit, float theta, Device device = Device::Cpu,
            const std::optional<RopeScaling>& scaling = std::nullopt);

  // The rows held once positions [0, n) are covered: 4096 doubled until at least n, at most
  // `limit`.
  static std::int64_t rows_for(std::int64_t n, std::int64_t limit);
  // Rows held once sequences of up to `n` positions are served, of either table (what spin plan
  // counts): rows_for(n, limit), or with LongRoPE L, plus rows_for(n, limit) once n > L.
  static std::int64_t rows_held(std::int64_t n, std::int64_t limit, const std::optional<RopeScaling>& scaling);
  // Grows the tables to hold positions [0, n) of the short (or only) table and [0, long_n) of
  // LongRoPE's long one; n, long_n <= limit, and n <= L with LongRoPE (computed again: the same
  // values, and new buffers -- pointers from cos() and sin() before are stale).
  void cover(std::int64_t n, std::int64_t long_n = 0);

  const float* cos() const { return cos_.f32(); }
  const float* sin() const { return sin_.f32(); }
  std::int64_t positions() const { return short_rows_; }      // held of the short (or only) table
  std::int64_t long_positions() const { return long_rows_; }  // held of LongRoPE's long one
  // LongRoPE: the row of position p in the long table (L + p); 0 for other tables.
  std::int64_t long_row(std::int64_t p) const { return long_from_ > 0 ? long_from_ + p : 0; }
  std::int64_t rotary_dim() const { return rotary_dim_; }
  std::size_t bytes() const { return cos_.nbytes() + sin_.nbytes(); }

 private:
  void compute(std::int64_t rows, std::int64_t long_rows);

  std::int64_t rotary_dim_, limit_;
  float theta_;
  Device device_;
  std::optional<RopeScaling> scaling_;
  std::int64_t long_from_ = 0;  // LongRoPE's L (its short table's fixed rows); 0 otherwise
  std::int64_t short_rows_ = 0, long_rows_ = 0;
  Tensor cos_, sin_;
};

}  // namespace spin::model
