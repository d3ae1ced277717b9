// Whole-model gradients against central finite differences of a float32 loss, for the model
// tests (transformer_test, lora_test). The tolerances' reasoning: the loss (a weighted sum of
// ~10 log-probabilities, |L| ~ 40) carries float32 rounding of ~1e-5 absolute, so with a step of
// 3e-3 the differences are good to ~2e-3 absolute, and curvature adds O(step^2) relative (a step
// of 1e-2 was visibly too coarse for weights of scale 0.3). Hence |analytic - fd| <= 3e-3 + 3e-2
// |fd| per coordinate, and the much tighter 2e-3 relative (plus 2e-2 absolute: the loss's
// rounding over 2 x 2e-4, ~1e-2 measured at every step from 2.5e-5 to 8e-4) for the directional
// derivative over all parameters at once (step 2e-4 along a unit-normal direction).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace spin::testing {

// A clamp (OLMo 1.7's clip_qkv) for finite differences: a limit in the widest gap between the
// unclamped q, k and v magnitudes of a forward (`acts`, run with a limit nothing reaches, so that
// the products are kept), from their 70th to their 95th percentile -- clamping a tenth or so of
// them -- so that no step of the differences moves a value across it: a kink inside a step
// averages two slopes (measured at a fixed limit of 3: steps of 1e-3 to 3e-2 gave 0.012 to
// -0.024 for an analytic 0.011).
inline float clip_in_a_gap(const model::Activations& acts) {
  std::vector<float> magnitudes;
  for (const model::LayerActivations& a : acts.layers) {
    for (const Tensor* t : {&a.q_raw, &a.k_raw, &a.v_raw}) {
      for (std::int64_t i = 0; i < t->numel(); ++i) magnitudes.push_back(std::fabs(t->f32()[i]));
    }
  }
  std::sort(magnitudes.begin(), magnitudes.end());
  const std::size_t n = magnitudes.size();
  std::size_t widest = n * 7 / 10;
  for (std::size_t i = widest; i + 1 < n * 95 / 100; ++i) {
    if (magnitudes[i + 1] - magnitudes[i] > magnitudes[widest + 1] - magnitudes[widest]) widest = i;
  }
  EXPECT_GT(magnitudes[widest + 1] - magnitudes[widest], 0.02f) << "no gap wider than a step's reach";
  return (magnitudes[widest] + magnitudes[widest + 1]) / 2;
}

// `grads` (of params' layout) against differences of `loss` in `params` (host memory): each
// tensor at 6 coordinates, then the directional derivative along a random direction.
inline void check_model_gradients(model::ModelWeights& params, const model::ModelWeights& grads,
                                  const std::function<double()>& loss, const std::string& what) {
  const auto& tensors = params.sharded_state_dict();
  const auto& grad_tensors = grads.sharded_state_dict();
  ASSERT_EQ(tensors.size(), grad_tensors.size()) << what;
  for (std::size_t p = 0; p < tensors.size(); ++p) {
    float* w = tensors[p].local.f32();
    const float* g = grad_tensors[p].local.f32();
    std::vector<double> fd;
    std::vector<float> analytic;
    for (std::size_t i : sample_coords(static_cast<std::size_t>(tensors[p].local.numel()), 6)) {
      const float saved = w[i];
      w[i] = saved + 3e-3f;
      const double up = loss();
      w[i] = saved - 3e-3f;
      const double down = loss();
      w[i] = saved;
      fd.push_back((up - down) / (static_cast<double>(saved + 3e-3f) - (saved - 3e-3f)));
      analytic.push_back(g[i]);
    }
    expect_close(analytic, fd, 3e-2, 3e-3, (what + ": " + tensors[p].name).c_str());
  }
  const Tensor& flat = params.flat();
  const auto u = random_vector(static_cast<std::size_t>(flat.numel()), 9);
  double g_dot_u = 0.0;
  for (std::int64_t i = 0; i < flat.numel(); ++i) g_dot_u += grads.flat().f32()[i] * u[static_cast<std::size_t>(i)];
  const Tensor saved = flat.clone();
  const float h = 2e-4f;
  for (std::int64_t i = 0; i < flat.numel(); ++i) flat.f32()[i] = saved.f32()[i] + h * u[static_cast<std::size_t>(i)];
  const double up = loss();
  for (std::int64_t i = 0; i < flat.numel(); ++i) flat.f32()[i] = saved.f32()[i] - h * u[static_cast<std::size_t>(i)];
  const double down = loss();
  flat.copy_from(saved);
  EXPECT_NEAR(g_dot_u, (up - down) / (2 * h), 2e-3 * std::fabs(g_dot_u) + 2e-2) << what;
}

}  // namespace spin::testing
