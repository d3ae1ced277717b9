// Branch-free float math that GCC vectorises inside `#pragma omp simd` loops (glibc's expf and
// tanhf are scalar calls). exp_approx: Cephes' expf polynomial, within 2 ulp of expf over the
// range where the result is a normal float; 0 below -87 (where expf is denormal or 0).
// tanh_approx: Cephes' tanhf, within 2 ulp of tanh. normal_cdf_approx: Phi(x), the exact GELU's
// factor, through Numerical Recipes' erfc (erfcc: Chebyshev fit of fractional error < 1.2e-7) --
// relative precision in both tails. softcap / softcap_slope: Gemma 2's caps,
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

// Phi(x) = erfc(-x / sqrt(2)) / 2: erfc(z) for z = |x| / sqrt(2) as t e^(-z^2 + P(t)), t = 1 / (1 +
// z / 2) (no cancellation for x < 0, where Phi is that alone), 1 - erfc(z) / 2 for x >= 0. e^(-x^2 / 2)
// is formed as Cephes' expx2f does, from x split into 12-bit halves (Veltkamp): e^(-h^2 / 2), whose
// argument is exact, times e^(-h l - l^2 / 2), so the tail keeps float's relative precision.
inline float normal_cdf_approx(float x) {
  const float z = (x < 0.0f ? -x : x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float c = 4097.0f * x;
  const float h = c - (c - x), l = x - h;  // x = h + l, h * h exact
  const float half_erfc = 0.5f * t * exp_approx(-0.5f * (h * h)) * exp_approx(p - (h * l + 0.5f * (l * l)));
  return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

// x -> cap tanh(x / cap), and its derivative from the capped value y: 1 - (y / cap)^2.
inline float softcap(float x, float cap) { return cap * tanh_approx(x / cap); }
inline float softcap_slope(float y, float cap) {
  const float t = y / cap;
  return 1.0f - t * t;
}

}  // namespace spin::kernels::cpu
