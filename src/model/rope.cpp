#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace spin::model {

namespace {

// YaRN (_compute_yarn_parameters) over the unscaled frequencies `inv`: the dimension at which a
// frequency turns `rotations` times over the original context, (d ln(original / (2 pi
// rotations))) / (2 ln theta), bounds a ramp -- from beta_fast's dimension (floored, at least 0)
// to beta_slow's (ceiled, at most d - 1) -- along which the frequencies go from kept
// (extrapolated) to divided by `factor` (interpolated). The bounds in double precision as Python
// computes them, the ramp and the blend in float32 as torch does.
std::vector<float> yarn_inv_freq(std::vector<float> inv, std::int64_t rotary_dim, float theta, const RopeScaling& s) {
  const auto dim = static_cast<double>(rotary_dim);
  const auto original = static_cast<double>(s.original_max_position_embeddings);
  const auto correction_dim = [&](double rotations) {
    return (dim * std::log(original / (rotations * 2 * std::numbers::pi))) / (2 * std::log(static_cast<double>(theta)));
  };
  double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;  // as transformers does, against a zero-width ramp
  const auto low_f = static_cast<float>(low), width = static_cast<float>(high - low);
  for (std::size_t i = 0; i < inv.size(); ++i) {
    const float ramp = std::clamp((static_cast<float>(i) - low_f) / width, 0.0f, 1.0f);
    const float extrapolated = 1.0f - ramp;
    // 1 / pos_freq is `inv` (a float32 reciprocal); the interpolated one is 1 / (factor pos_freq).
    const float pos_freq = std::pow(theta, static_cast<float>(2 * static_cast<std::int64_t>(i)) / static_cast<float>(rotary_dim));
    const float interpolated = 1.0f / (s.factor * pos_freq);
    inv[i] = interpolated * (1.0f - extrapolated) + inv[i] * extrapolated;
  }
  return inv;
}

}  // namespace

std::vector<float> rope_inv_freq(std::int64_t rotary_dim, float theta, const std::optional<RopeScaling>& scaling,
                                 bool long_factors) {
  const std::int64_t half = rotary_dim / 2;
  std::vector<float> inv(static_cast<std::size_t>(half));
  for (std::int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    inv[static_cast<std::size_t>(i)] = 1.0f / std::pow(theta, exponent);
  }
  if (!scaling || scaling->type == RopeScaling::Type::Dynamic) return inv;  // within the lengths spin runs
  const RopeScaling& s = *scaling;
  if (s.type == RopeScaling::Type::Linear) {
    for (float& f : inv) f /= s.factor;
    return inv;
  }
  if (s.type == RopeScaling::Type::LongRope) {  // 1 / (factor_i theta^(2i / d)), in float32
    const std::vector<float>& factor = long_factors ? s.long_factor : s.short_factor;
    for (std::int64_t i = 0; i < half; ++i) {
      const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
      inv[static_cast<std::size_t>(i)] = 1.0f / (factor.at(static_cast<std::size_t>(i)) * std::pow(theta, exponent));
    }
    return inv;
  }
  if (s.type == RopeScaling::Type::Yarn) return yarn_inv_freq(inv, rotary_dim, theta, s);
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

RopeTable::RopeTable(std::int64_t rotary_dim, std::int64_t limit, float theta, Device device,
                     const std::optional<RopeScaling>& scaling)
    : rotary_dim_(rotary_dim), limit_(limit), theta_(theta), device_(device), scaling_(scaling) {
  require(limit >= 1, "RoPE tables for ", limit, " positions");
  long_from_ = scaling ? scaling->long_switch(limit) : 0;
  compute(long_from_ > 0 ? long_from_ : rows_for(0, limit), 0);
}

std::int64_t RopeTable::rows_for(std::int64_t n, std::int64_t limit) {
  std::int64_t rows = 4096;
  while (rows < n && rows < limit) rows *= 2;
  return std::min(rows, limit);
}

std::int64_t RopeTable::rows_held(std::int64_t n, std::int64_t limit, const std::optional<RopeScaling>& scaling) {
  const std::int64_t long_from = scaling ? scaling->long_switch(limit) : 0;
  if (long_from == 0) return rows_for(n, limit);
  return long_from + (n > long_from ? rows_for(n, limit) : 0);
}

void RopeTable::cover(std::int64_t n, std::int64_t long_n) {
  require(n <= limit_ && long_n <= limit_, "position ", std::max(n, long_n) - 1, " is beyond the RoPE tables' ", limit_,
          " positions");
  require(long_n == 0 || long_from_ > 0, "long RoPE factors asked of a table without them");
  require(long_from_ == 0 || n <= long_from_, "position ", n - 1, " is beyond LongRoPE's short factors' ", long_from_,
          " positions");
  const std::int64_t rows = long_from_ > 0 ? long_from_ : std::max(short_rows_, rows_for(n, limit_));
  const std::int64_t long_rows = long_n > long_rows_ ? rows_for(long_n, limit_) : long_rows_;
  if (rows > short_rows_ || long_rows > long_rows_) compute(rows, long_rows);
}

void RopeTable::compute(std::int64_t rows, std::int64_t long_rows) {
  const std::int64_t half = rotary_dim_ / 2;
  Tensor cos = Tensor::zeros({rows + long_rows, half});
  Tensor sin = Tensor::zeros({rows + long_rows, half});
  // YaRN and LongRoPE scale cos and sin (in float32, after their rounding), as transformers'
  // rotary embeddings do (attention_scaling).
  const bool scaled = scaling_ && (scaling_->type == RopeScaling::Type::Yarn || scaling_->type == RopeScaling::Type::LongRope);
  const float attention = scaled ? scaling_->attention_factor : 1.0f;
  // Positions [0, n) from table row `first` on, of the inverse frequencies `inv`.
  const auto fill = [&](const std::vector<float>& inv, std::int64_t first, std::int64_t n) {
    float* c = cos.f32() + first * half;
    float* s = sin.f32() + first * half;
    for (std::int64_t i = 0; i < half; ++i) {
      const float inv_freq = inv[static_cast<std::size_t>(i)];
      for (std::int64_t p = 0; p < n; ++p) {
        const float angle = static_cast<float>(p) * inv_freq;
        c[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle))) * attention;
        s[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle))) * attention;
      }
    }
  };
  fill(rope_inv_freq(rotary_dim_, theta_, scaling_), 0, rows);
  if (long_rows > 0) fill(rope_inv_freq(rotary_dim_, theta_, scaling_, true), rows, long_rows);
  cos_ = cos.to(device_);
  sin_ = sin.to(device_);
  short_rows_ = rows;
  long_rows_ = long_rows;
}

}  // namespace spin::model
