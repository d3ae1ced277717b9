#include <gtest/gtest.h>

#include <cmath>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

// The vocabulary of `vocab` ids split into `shards` shards of ceil(vocab / shards) rows, the
// last ones padded, combined exactly as the model's vocab-parallel head does across TP ranks.
struct ShardedLogits {
  int n, vocab, shards, rows;
  std::vector<std::vector<float>> local;  // [shard][n, rows], padding columns filled with junk

  ShardedLogits(const std::vector<float>& full, int n_, int vocab_, int shards_)
      : n(n_), vocab(vocab_), shards(shards_), rows((vocab_ + shards_ - 1) / shards_) {
    for (int s = 0; s < shards; ++s) {
      std::vector<float> l(static_cast<std::size_t>(n * rows), 1e4f);  // junk must be ignored
      for (int i = 0; i < n; ++i)
        for (int v = 0; v < valid(s); ++v) l[i * rows + v] = full[i * vocab + start(s) + v];
      local.push_back(l);
    }
  }
  int start(int s) const { return std::min(vocab, s * rows); }
  int valid(int s) const { return std::clamp(vocab - start(s), 0, rows); }

  // Returns logprobs and fills lse, as the three kernels plus two all-reduces do.
  std::vector<float> logprobs(const CpuKernels& k, const std::vector<std::int32_t>& targets,
                              std::vector<float>& lse) const {
    std::vector<float> max(n, -INFINITY), sumexp(n, 0.0f), target(n, 0.0f), tmp(n), tmp2(n);
    for (int s = 0; s < shards; ++s) {
      k.logits_max(tmp.data(), local[s].data(), n, rows, valid(s));
      for (int i = 0; i < n; ++i) max[i] = std::max(max[i], tmp[i]);
    }
    for (int s = 0; s < shards; ++s) {
      k.logits_sumexp_target(tmp.data(), tmp2.data(), local[s].data(), max.data(), targets.data(),
                             n, rows, valid(s), start(s));
      for (int i = 0; i < n; ++i) sumexp[i] += tmp[i], target[i] += tmp2[i];
    }
    std::vector<float> out(n);
    lse.resize(n);
    for (int i = 0; i < n; ++i) {
      lse[i] = max[i] + std::log(sumexp[i]);
      out[i] = targets[i] < 0 ? 0.0f : target[i] - lse[i];
    }
    return out;
  }

  // d sum(g * logprob) / d logits over the whole vocabulary, each shard's logprob_backward put in
  // place (padding columns checked to be 0); `cap`: the logits are softcap_forward's output.
  std::vector<float> gradient(const CpuKernels& k, const std::vector<float>& lse,
  const std::vector<std::int32_t>& targets,
                              const std::vector<float>& g, float cap) const {
    std::vector<float> grad(static_cast<std::size_t>(n * vocab));
    for (int sh = 0; sh < shards; ++sh) {
      std::vector<float> d(static_cast<std::size_t>(n * rows), 3.0f);
      k.logprob_backward(d.data(), local[sh].data(), lse.data(), targets.data(), g.data(), n, rows, valid(sh),
                         start(sh), cap);
      for (int i = 0; i < n; ++i) {
        for (int v = 0; v < rows; ++v) {
          if (v < valid(sh)) grad[i * vocab + start(sh) + v] = d[i * rows + v];
          else EXPECT_EQ(d[i * rows + v], 0.0f) << "padding column";
        }
      }
    }
    return grad;
  }
};

// 23 ids over 4 shards of 6: the last shard holds 5 ids and a padding column.
// 5 ids over 4 shards of 2: the last shard holds none.
TEST(VocabParallelLogprob, ForwardMatchesFullLogSoftmax) {
  const CpuKernels k;
  for (auto [vocab, shards] : {std::pair{23, 4}, std::pair{5, 4}, std::pair{23, 1}}) {
    const int n = 6;
    const auto full = testing::random_vector(n * vocab, 1, 3.0f);
    auto targets = testing::random_ids(n, vocab, 2);
    targets[3] = -1;  // a sequence's last token: no target
    ShardedLogits s(full, n, vocab, shards);
    std::vector<float> lse;
    const auto got = s.logprobs(k, targets, lse);
    testing::expect_close(got, testing::ref::logprobs(testing::to_double(full), targets, n, vocab),
                          1e-5, 1e-5, "logprobs");
  }
}

TEST(VocabParallelLogprob, BackwardMatchesNaiveGradientAndFiniteDifferences) {
  const CpuKernels k;
  const int n = 5, vocab = 23, shards = 4;
  auto full = testing::random_vector(n * vocab, 3, 3.0f);
  auto targets = testing::random_ids(n, vocab, 4);
  targets[2] = -1;
  const auto g = testing::random_vector(n, 5);  // loss = sum(g * logprob)
  const auto ref_grad = testing::ref::numeric_gradient(testing::to_double(full), [&](const testing::ref::Vec& x) {
    return testing::ref::dot(testing::ref::logprobs(x, targets, n, vocab), g);
  });

  ShardedLogits s(full, n, vocab, shards);
  std::vector<float> lse;
  s.logprobs(k, targets, lse);
  const std::vector<float> grad = s.gradient(k, lse, targets, g, 0.0f);
  testing::expect_close(grad, ref_grad, 1e-4, 1e-6, "dlogits");
  for (int v = 0; v < vocab; ++v) EXPECT_EQ(grad[2 * vocab + v], 0.0f) << "row without target";

  const auto loss = [&] {
    ShardedLogits fresh(full, n, vocab, shards);
    std::vector<float> unused;
    return testing::weighted_sum(fresh.logprobs(k, targets, unused), g);
  };
  testing::check_gradient(full, grad, loss, 1e-2, 1e-2, 1e-4, "dlogits vs finite differences");
}

// Gemma 2's final_logit_softcapping: softcap_forward caps the logits (cap tanh(x / cap)), the
// log-softmax runs on them, and logprob_backward's gradient is the one of the logits before the
// cap (here 2: logits up to ~3 bend).
TEST(VocabParallelLogprob, CappedLogitsGradientMatchesFiniteDifferences) {
  const CpuKernels k;
  const int n = 5, vocab = 23, shards = 4;
  const float cap = 2.0f;
  const auto raw = testing::random_vector(n * vocab, 3, 3.0f);
  auto targets = testing::random_ids(n, vocab, 4);
  targets[2] = -1;
  const auto g = testing::random_vector(n, 5);
  using V = testing::ref::Vec;
  const auto capped = [&](V x) {
    for (double& v : x) v = cap * std::tanh(v / cap);
    return x;
  };
  std::vector<float> y = raw;
  k.softcap_forward(y.data(), n * vocab, cap);
  testing::expect_close(y, capped(testing::to_double(raw)), 1e-6, 1e-7, "capped logits");
  const auto ref_grad = testing::ref::numeric_gradient(testing::to_double(raw), [&](const V& x) {
    return testing::ref::dot(testing::ref::logprobs(capped(x), targets, n, vocab), g);
  });
  ShardedLogits s(y, n, vocab, shards);
  std::vector<float> lse;
  s.logprobs(k, targets, lse);
  testing::expect_close(s.gradient(k, lse, targets, g, cap), ref_grad, 1e-4, 1e-6, "dlogits through the cap");
}

}  // namespace
}  // namespace spin::kernels
