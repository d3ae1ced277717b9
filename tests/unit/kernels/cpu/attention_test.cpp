#include <gtest/gtest.h>

#include "common/test_util.h"
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
                            c.cu.data(), 3, c.heads, c.kvh, c.hd);
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
                            c.cu.data(), 3, c.heads, c.kvh, c.hd);
  // Changing the first two sequences' keys and values leaves the third one's output unchanged.
  for (int i = 0; i < 6 * c.kvh * c.hd; ++i) c.k[i] += 1.0f, c.v[i] -= 2.0f;
  std::vector<float> out2(c.q.size());
  kernels.attention_forward(out2.data(), probs.data(), c.q.data(), c.k.data(), c.v.data(),
                            c.cu.data(), 3, c.heads, c.kvh, c.hd);
  for (std::size_t i = 6 * c.heads * c.hd; i < out.size(); ++i) EXPECT_EQ(out[i], out2[i]);
}

TEST(Attention, BackwardMatchesNaiveGradientAndFiniteDifferences) {
  const CpuKernels kernels;
  AttentionCase c;
  std::vector<float> out(c.q.size()), probs(static_cast<std::size_t>(c.probs_size()));
  kernels.attention_forward(out.data(), probs.data(), c.q.data(), c.k.data(), c.v.data(),
                            c.cu.data(), 3, c.heads, c.kvh, c.hd);
  std::vector<float> dq(c.q.size(), 7.0f), dk(c.k.size(), 7.0f), dv(c.v.size(), 7.0f);
  kernels.attention_backward(dq.data(), dk.data(), dv.data(), c.r.data(), c.q.data(), c.k.data(),
                             c.v.data(), probs.data(), c.cu.data(), 3, c.heads, c.kvh, c.hd);

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
                              c.cu.data(), 3, c.heads, c.kvh, c.hd);
    return testing::weighted_sum(out, c.r);
  };
  testing::check_gradient(c.q, dq, loss, 1e-2, 1e-2, 2e-4, "dq vs finite differences");
  testing::check_gradient(c.k, dk, loss, 1e-2, 1e-2, 2e-4, "dk vs finite differences");
  testing::check_gradient(c.v, dv, loss, 1e-2, 1e-2, 2e-4, "dv vs finite differences");
}

// Sequences longer than the kernel's 64-row blocks (70 and 130 tokens: partial last blocks).
TEST(Attention, LongSequencesAcrossQueryBlocksMatchNaiveForwardAndBackward) {
  const CpuKernels kernels;
  const int heads = 2, kvh = 1, hd = 4;
  const std::vector<Index> cu = {0, 70, 200};
  const auto q = testing::random_vector(200 * heads * hd, 5);
  const auto k = testing::random_vector(200 * kvh * hd, 6);
  const auto v = testing::random_vector(200 * kvh * hd, 7);
  const auto r = testing::random_vector(200 * heads * hd, 8);
  std::vector<float> out(q.size()), probs(static_cast<std::size_t>(attention_probs_size(cu.data(), 2, heads)));
  kernels.attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), cu.data(), 2,
                            heads, kvh, hd);
  testing::ref::Vec probs_ref;
  const auto qd = to_double(q), kd = to_double(k), vd = to_double(v);
  testing::expect_close(out, testing::ref::attention(qd, kd, vd, cu, heads, kvh, hd, &probs_ref),
                        1e-5, 1e-6, "out");
  testing::expect_close(probs, probs_ref, 1e-5, 1e-7, "probs");

  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  kernels.attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(),
                             v.data(), probs.data(), cu.data(), 2, heads, kvh, hd);
  using V = testing::ref::Vec;
  const auto loss = [&](const V& qq, const V& kk, const V& vv) {
    return testing::ref::dot(testing::ref::attention(qq, kk, vv, cu, heads, kvh, hd), r);
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

}  // namespace
}  // namespace spin::kernels
