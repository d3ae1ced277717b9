#include "model/rope.h"

#include <cmath>

namespace spin::model {

RopeTable::RopeTable(std::int64_t head_dim, std::int64_t max_positions, float theta,
                     Device device) {
  const std::int64_t half = head_dim / 2;
  cos_ = Tensor::zeros({max_positions, half});
  sin_ = Tensor::zeros({max_positions, half});
  float* c = cos_.f32();
  float* s = sin_.f32();
  for (std::int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inv_freq = 1.0f / std::pow(theta, exponent);
    for (std::int64_t p = 0; p < max_positions; ++p) {
      const float angle = static_cast<float>(p) * inv_freq;
      c[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      s[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  cos_ = cos_.to(device);
  sin_ = sin_.to(device);
}

}  // namespace spin::model
