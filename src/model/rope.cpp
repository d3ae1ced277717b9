#include "model/rope.h"

#include <cmath>
#include <numbers>

namespace spin::model {

std::vector<float> rope_inv_freq(std::int64_t head_dim, float theta, const std::optional<RopeScaling>& scaling) {
  const std::int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<std::size_t>(half));
  for (std::int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[static_cast<std::size_t>(i)] = 1.0f / std::pow(theta, exponent);
  }
  if (!scaling) return inv;
  const RopeScaling& s = *scaling;
  if (s.type == RopeScaling::Type::Linear) {
    for (float& f : inv) f /= s.factor;
    return inv;
  }
  if (s.type == RopeScaling::Type::LongRope) {  // 1 / (short_factor_i theta^(2i / d)), in float32
    for (std::int64_t i = 0; i < half; ++i) {
      const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
      inv[static_cast<std::size_t>(i)] = 1.0f / (s.short_factor.at(static_cast<std::size_t>(i)) * std::pow(theta, exponent));
    }
    return inv;
  }
  // llama3 (_compute_llama3_parameters): wavelengths shorter than original / high_freq_factor
  // keep their frequency, longer than original / low_freq_factor are divided by `factor`, and
  // those between are interpolated -- each step in float32 as torch computes it, a number divided
  // by a tensor being the tensor's reciprocal times the number (Tensor.__rtruediv__).
  const auto original = static_cast<float>(s.original_max_position_embeddings);
  const float low_freq_wavelen = original / s.low_freq_factor;
  const float high_freq_wavelen = original / s.high_freq_factor;
  const auto two_pi = static_cast<float>(2.0 * std::numbers::pi);
  for (float& f : inv) {
    const float wavelen = (1.0f / f) * two_pi;
    if (wavelen > low_freq_wavelen) {
      f = f / s.factor;
    } else if (!(wavelen < high_freq_wavelen)) {
      const float smooth = ((1.0f / wavelen) * original - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = (1.0f - smooth) * f / s.factor + smooth * f;
    }
  }
  return inv;
}

RopeTable::RopeTable(std::int64_t head_dim, std::int64_t max_positions, float theta, Device device,
                     const std::optional<RopeScaling>& scaling) {
  const std::int64_t half = head_dim / 2;
  cos_ = Tensor::zeros({max_positions, half});
  sin_ = Tensor::zeros({max_positions, half});
  float* c = cos_.f32();
  float* s = sin_.f32();
  const std::vector<float> inv = rope_inv_freq(head_dim, theta, scaling);
  // LongRoPE scales cos and sin (in float32, after their rounding), as Phi-3's embedding does.
  const float attention = scaling && scaling->type == RopeScaling::Type::LongRope ? scaling->attention_factor : 1.0f;
  for (std::int64_t i = 0; i < half; ++i) {
    const float inv_freq = inv[static_cast<std::size_t>(i)];
    for (std::int64_t p = 0; p < max_positions; ++p) {
      const float angle = static_cast<float>(p) * inv_freq;
      c[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle))) * attention;
      s[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle))) * attention;
    }
  }
  cos_ = cos_.to(device);
  sin_ = sin_.to(device);
}

}  // namespace spin::model
