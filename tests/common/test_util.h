// Helpers shared by spin's tests: error messages, seeded random inputs, tolerance comparisons
// and a central finite-difference gradient checker that accumulates in double.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace spin::testing {

// The message of the spin::Error `fn` throws ("" if it throws none).
template <class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline std::vector<float> random_vector(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

inline std::vector<float> random_uniform(std::size_t n, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

inline std::vector<std::int32_t> random_ids(std::size_t n, std::int32_t bound, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<std::int32_t> dist(0, bound - 1);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Element-wise |a - b| <= atol + rtol * |b|, reporting the first few violations.
template <class A, class B>
void expect_close(const A& actual, const B& expected, double rtol, double atol,
                  const char* what = "") {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  int reported = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual[i]);
    const double b = static_cast<double>(expected[i]);
    if (!(std::fabs(a - b) <= atol + rtol * std::fabs(b)) && reported++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << a << ", expected " << b
                    << " (|diff| " << std::fabs(a - b) << ")";
    }
  }
}

// ||a - b|| / ||b|| over whole vectors: the tolerance measure for sums of many float terms.
template <class A, class B>
double relative_error(const A& a, const B& b) {
  double num = 0.0;
  double den = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// Central differences of `loss` (a function of the current contents of x) with respect to the
// listed coordinates of x, step eps * max(1, |x_i|). x is restored afterwards.
inline std::vector<double> finite_difference(std::vector<float>& x,
                                             const std::vector<std::size_t>& coords,
                                             const std::function<double()>& loss,
                                             double eps) {
  std::vector<double> out;
  for (std::size_t i : coords) {
    const float saved = x[i];
    const float h = static_cast<float>(eps * std::max(1.0, std::fabs(static_cast<double>(saved))));
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    // The step actually taken, in float arithmetic.
    const double step = static_cast<double>(saved + h) - static_cast<double>(saved - h);
    out.push_back((up - down) / step);
  }
  return out;
}

// Up to `count` coordinates of [0, n), spread evenly (all of them when n <= count).
inline std::vector<std::size_t> sample_coords(std::size_t n, std::size_t count) {
  std::vector<std::size_t> out;
  if (n <= count) {
    for (std::size_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  for (std::size_t k = 0; k < count; ++k) out.push_back(k * n / count + (k * 7919) % (n / count));
  return out;
}

// Checks `grad` (the analytic d loss / d x) against central differences of `loss` at up to 40
// coordinates of x: |grad - fd| <= atol + rtol * |fd|.
inline void check_gradient(std::vector<float>& x, const std::vector<float>& grad,
                           const std::function<double()>& loss, double eps, double rtol,
                           double atol, const char* what) {
  ASSERT_EQ(x.size(), grad.size()) << what;
  const auto coords = sample_coords(x.size(), 40);
  const std::vector<double> fd = finite_difference(x, coords, loss, eps);
  std::vector<double> analytic;
  for (std::size_t i : coords) analytic.push_back(grad[i]);
  expect_close(analytic, fd, rtol, atol, what);
}

// max_i |a_i - b_i| (sizes must match).
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double out = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    out = std::max(out, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return out;
}

// Sum_i w_i y_i in double: the scalar loss of gradient checks.
inline double weighted_sum(const std::vector<float>& y, const std::vector<float>& w) {
  double s = 0.0;
  for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * w[i];
  return s;
}

}  // namespace spin::testing
