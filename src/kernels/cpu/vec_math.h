// Branch-free float math that GCC vectorises inside `#pragma omp simd` loops (glibc's expf and
// tanhf are scalar calls). exp_approx: Cephes' expf polynomial, within 2 ulp of expf over the
// range where the result is a normal float; 0 below -87 (where expf is denormal or 0).
// tanh_approx: Cephes' tanhf, within 2 ulp of tanh. softcap / softcap_slope: Gemma 2's caps,
// kernels::AttentionScores' formula.
#pragma once

#include <bit>
#include <cstdint>

namespace spin::kernels::cpu {

inline float exp_approx(float x) {
  const float clamped = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // n = round(x / ln 2) via the 1.5 * 2^23 trick (exact for |n| < 2^22), r = x - n ln 2 in two
  // parts so that r keeps full precision.
  constexpr float kShift = 12582912.0f;
  const float n = (clamped * 1.44269504088896341f + kShift) - kShift;
  const float r = (clamped - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e_r = p * r * r + r + 1.0f;
  // 2^n, built in the exponent field; n + 127 is in [1, 254] after the clamp.
  const float two_n = std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : e_r * two_n;
}

// Cephes' tanhf: x + x^3 P(x^2) below |x| = 0.625 (no cancellation near 0), else
// sign(x) (1 - 2 / (e^2|x| + 1)); both computed and one kept, so that loops vectorise.
inline float tanh_approx(float x) {
  const float z = x < 0.0f ? -x : x;
  const float s = x * x;
  const float small =
      ((((-5.70498872745e-3f * s + 2.06390887954e-2f) * s - 5.37397155531e-2f) * s + 1.33314422036e-1f) * s -
       3.33332819422e-1f) * s * x + x;
  const float large = 1.0f - 2.0f / (exp_approx(2.0f * z) + 1.0f);
  return z < 0.625f ? small : (x < 0.0f ? -large : large);
}

// x -> cap tanh(x / cap), and its derivative from the capped value y: 1 - (y / cap)^2.
inline float softcap(float x, float cap) { return cap * tanh_approx(x / cap); }
inline float softcap_slope(float y, float cap) {
  const float t = y / cap;
  return 1.0f - t * t;
}

}  // namespace spin::kernels::cpu
