#include <gtest/gtest.h>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

using testing::to_double;

// Three packed sequences of lengths 1, 5 and 9, 4 query heads sharing 2 kv heads.
struct AttentionCase {
  int heads = 4, kvh = 2, hd = 8;
  std::vector<Index> cu = {0, 1, 6, 15};
  int rows() const { return static_cast<int>(cu.back()); }
  std::vector<float> q = testing::random_vector(15 * 4 * 8, 1);
  std::vector<float> k = testing::random_vector(15 * 2 * 8, 2);
  std::vector<float> v = testing::random_vector(15 * 2 * 8, 3);
  std::vector<float> r = testing::random_vector(15 * 4 * 8, 4);  // loss = sum(r * out)
  Index probs_size() const { return attention_probs_size(cu.data(), 3, heads); }
};

TEST(Attention, ForwardMatchesNaiveCausalGqa) {
  const CpuKernels kernels;
  AttentionCase c;
  std::vector<float> out(c.q.size()), probs(static_cast<std::size_t>(c.probs_size()));
  kernels.attention_forward(out.data(), probs.data(), c.q.data(), c.k.data(), c.v.data(),
                            c.cu.data(), 3, c.heads, c.kvh, c.hd, AttentionScores::standard(c.hd));
  testing::ref::Vec probs_ref;
  const auto want = testing::ref::attention(to_double(c.q), to_double(c.k), to_double(c.v), c.cu,
                                            c.heads, c.kvh, c.hd, &probs_ref);
  testing::expect_close(out, want, 1e-5, 1e-6, "out");
  testing::expect_close(probs, probs_ref, 1e-5, 1e-7, "probs");
}

TEST(Attention, SequencesDoNotSeeEachOther) {
  const CpuKernels kernels;
  AttentionCase c;
  std::vector<float> out(c.q.size()), probs(static_cast<std::size_t>(c.probs_size()));
  kernels.attention_forward(out.data(), probs.data(), c.q.data(), c.k.data(), c.v.data(),
                            c.cu.data(), 3, c.heads, c.kvh, c.hd, AttentionScores::standard(c.hd));
  // Changing the first two sequences' keys and values leaves the third one's output unchanged.
  for (int i = 0; i < 6 * c.kvh * c.hd; ++i) c.k[i] += 1.0f, c.v[i] -= 2.0f;
  std::vector<float> out2(c.q.size());
  kernels.attention_forward(out2.data(), probs.data(), c.q.data(), c.k.data(), c.v.data(),
                            c.cu.data(), 3, c.heads, c.kvh, c.hd, AttentionScores::standard(c.hd));
  for (std::size_t i = 6 * c.heads * c.hd; i < out.size(); ++i) EXPECT_EQ(out[i], out2[i]);
}

TEST(Attention, BackwardMatchesNaiveGradientAndFiniteDifferences) {
  const CpuKernels kernels;
  AttentionCase c;
  std::vector<float> out(c.q.size()), probs(static_cast<std::size_t>(c.probs_size()));
  kernels.attention_forward(out.data(), probs.data(), c.q.data(), c.k.data(), c.v.data(),
                            c.cu.data(), 3, c.heads, c.kvh, c.hd, AttentionScores::standard(c.hd));
  std::vector<float> dq(c.q.size(), 7.0f), dk(c.k.size(), 7.0f), dv(c.v.size(), 7.0f);
  kernels.attention_backward(dq.data(), dk.data(), dv.data(), c.r.data(), c.q.data(), c.k.data(),
                             c.v.data(), probs.data(), c.cu.data(), 3, c.heads, c.kvh, c.hd,
                             AttentionScores::standard(c.hd));

  // Reference gradients: double-precision central differences of the naive forward.
  const auto q = to_double(c.q), k = to_double(c.k), v = to_double(c.v);
  const auto ref_loss = [&](const testing::ref::Vec& qq, const testing::ref::Vec& kk,
                            const testing::ref::Vec& vv) {
    return testing::ref::dot(testing::ref::attention(qq, kk, vv, c.cu, c.heads, c.kvh, c.hd), c.r);
  };
  using V = testing::ref::Vec;
  testing::expect_close(dq, testing::ref::numeric_gradient(q, [&](const V& x) { return ref_loss(x, k, v); }),
                        1e-4, 1e-5, "dq");
  testing::expect_close(dk, testing::ref::numeric_gradient(k, [&](const V& x) { return ref_loss(q, x, v); }),
                        1e-4, 1e-5, "dk");
  testing::expect_close(dv, testing::ref::numeric_gradient(v, [&](const V& x) { return ref_loss(q, k, x); }),
                        1e-4, 1e-5, "dv");

  const auto loss = [&] {
    kernels.attention_forward(out.data(), probs.data(), c.q.data(), c.k.data(), c.v.data(),
                              c.cu.data(), 3, c.heads, c.kvh, c.hd, AttentionScores::standard(c.hd));
    return testing::weighted_sum(out, c.r);
  };
  testing::check_gradient(c.q, dq, loss, 1e-2, 1e-2, 2e-4, "dq vs finite differences");
  testing::check_gradient(c.k, dk, loss, 1e-2, 1e-2, 2e-4, "dk vs finite differences");
  testing::check_gradient(c.v, dv, loss, 1e-2, 1e-2, 2e-4, "dv vs finite differences");
}

// Sequences longer than the kernel's 64-row blocks (70 and 130 tokens: partial last blocks), under
// `scores`.
void expect_long_sequences_match_naive(AttentionScores scores) {
  const CpuKernels kernels;
  const int heads = 2, kvh = 1, hd = 4;
  const std::vector<Index> cu = {0, 70, 200};
  const auto q = testing::random_vector(200 * heads * hd, 5);
  const auto k = testing::random_vector(200 * kvh * hd, 6);
  const auto v = testing::random_vector(200 * kvh * hd, 7);
  const auto r = testing::random_vector(200 * heads * hd, 8);
  std::vector<float> out(q.size()), probs(static_cast<std::size_t>(attention_probs_size(cu.data(), 2, heads)));
  kernels.attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), cu.data(), 2,
                            heads, kvh, hd, scores);
  testing::ref::Vec probs_ref;
  const auto qd = to_double(q), kd = to_double(k), vd = to_double(v);
  testing::expect_close(out, testing::ref::attention(qd, kd, vd, cu, heads, kvh, hd, &probs_ref, scores.scale,
                                                     scores.softcap, static_cast<int>(scores.window)),
                        1e-5, 1e-6, "out");
  testing::expect_close(probs, probs_ref, 1e-5, 1e-7, "probs");

  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  kernels.attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(),
                             v.data(), probs.data(), cu.data(), 2, heads, kvh, hd, scores);
  using V = testing::ref::Vec;
  const auto loss = [&](const V& qq, const V& kk, const V& vv) {
    return testing::ref::dot(
        testing::ref::attention(qq, kk, vv, cu, heads, kvh, hd, nullptr, scores.scale, scores.softcap,
                                static_cast<int>(scores.window)),
        r);
  };
  const auto pick = [](const std::vector<float>& g, const std::vector<std::size_t>& at) {
    std::vector<float> picked;
    for (std::size_t i : at) picked.push_back(g[i]);
    return picked;
  };
  const auto cq = testing::sample_coords(q.size(), 30), ck = testing::sample_coords(k.size(), 30);
  testing::expect_close(pick(dq, cq), testing::ref::numeric_gradient_at(qd, cq, [&](const V& x) { return loss(x, kd, vd); }),
                        1e-4, 1e-5, "dq");
  testing::expect_close(pick(dk, ck), testing::ref::numeric_gradient_at(kd, ck, [&](const V& x) { return loss(qd, x, vd); }),
                        1e-4, 1e-5, "dk");
  testing::expect_close(pick(dv, ck), testing::ref::numeric_gradient_at(vd, ck, [&](const V& x) { return loss(qd, kd, x); }),
                        1e-4, 1e-5, "dv");
}

TEST(Attention, LongSequencesAcrossQueryBlocksMatchNaiveForwardAndBackward) {
  expect_long_sequences_match_naive(AttentionScores::standard(4));
}

// Gemma 2's scores: scaled by its own factor and capped (cap 0.7 bends these inputs' scores,
// up to ~2 before it; the gradients then carry the cap's slope, recomputed in the backward).
TEST(Attention, CappedScoresMatchNaiveForwardAndFiniteDifferences) {
  expect_long_sequences_match_naive({1.1f, 0.7f});
}

// Sliding windows (Mistral, Gemma 2's local layers) against the naive reference, which masks
// per key: 5 keys (within one 64-row block); 90 keys (in the 130-token sequence the block of rows
// 128-129 multiplies keys from 39 on, row 128's first, and row 129 masks key 39 itself); 20 keys
// with a cap.
TEST(Attention, SlidingWindowsMatchNaiveForwardAndFiniteDifferences) {
  expect_long_sequences_match_naive({0.5f, 0.0f, 5});
  expect_long_sequences_match_naive({0.5f, 0.0f, 90});
  expect_long_sequences_match_naive({1.1f, 0.7f, 20});
}

// Mixed precision: q, k, v in bf16 are read as their exact float32 values (the naive reference
// on the widened values, to float32 accuracy); the output is that result rounded to bf16 (half
// an ulp of bf16's 8-bit significand: at most 2^-8 relative); the saved values and gradients
// are the float32 kernels'.
TEST(Attention, Bf16InputsAreWidenedAndTheOutputRounded) {
  const CpuKernels kernels;
  AttentionCase c;
  std::vector<std::uint16_t> q16(c.q.size()), k16(c.k.size()), v16(c.v.size());
  kernels.to_bf16(q16.data(), c.q.data(), static_cast<Index>(c.q.size()));
  kernels.to_bf16(k16.data(), c.k.data(), static_cast<Index>(c.k.size()));
  kernels.to_bf16(v16.data(), c.v.data(), static_cast<Index>(c.v.size()));
  const auto widen = [](const std::vector<std::uint16_t>& x) {
    std::vector<float> out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = bf16_to_f32(x[i]);
    return out;
  };
  const auto q = widen(q16), k = widen(k16), v = widen(v16);
  std::vector<std::uint16_t> out16(c.q.size());
  std::vector<float> saved(static_cast<std::size_t>(c.probs_size())), probs(saved.size());
  kernels.attention_forward_bf16(out16.data(), saved.data(), q16.data(), k16.data(), v16.data(), c.cu.data(), 3,
                                 c.heads, c.kvh, c.hd, AttentionScores::standard(c.hd));
  const auto want = testing::ref::attention(to_double(q), to_double(k), to_double(v), c.cu, c.heads, c.kvh, c.hd);
  testing::expect_close(widen(out16), want, 1.0 / 256 + 1e-5, 1e-6, "bf16 out");
  std::vector<float> out(c.q.size());
  kernels.attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), c.cu.data(), 3, c.heads, c.kvh,
                            c.hd, AttentionScores::standard(c.hd));
  EXPECT_EQ(saved, probs);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out16[i], f32_to_bf16(out[i])) << i;

  std::vector<float> dq(c.q.size(), 7.0f), dk(c.k.size(), 7.0f), dv(c.v.size(), 7.0f);
  std::vector<float> want_dq = dq, want_dk = dk, want_dv = dv;
  kernels.attention_backward_bf16(dq.data(), dk.data(), dv.data(), c.r.data(), q16.data(), k16.data(), v16.data(),
                                  out16.data(), saved.data(), c.cu.data(), 3, c.heads, c.kvh, c.hd,
                                  AttentionScores::standard(c.hd));
  kernels.attention_backward(want_dq.data(), want_dk.data(), want_dv.data(), c.r.data(), q.data(), k.data(),
                             v.data(), probs.data(), c.cu.data(), 3, c.heads, c.kvh, c.hd,
                             AttentionScores::standard(c.hd));
  EXPECT_EQ(dq, want_dq);
  EXPECT_EQ(dk, want_dk);
  EXPECT_EQ(dv, want_dv);
}

}  // namespace
}  // namespace spin::kernels
