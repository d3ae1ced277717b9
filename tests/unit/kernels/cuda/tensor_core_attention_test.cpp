// The tensor-core attention kernels' own source (src/kernels/cuda/tensor_core_attention_kernels.cuh)
// run on the CPU under tests/common/cuda_emulation.h -- real threads and barriers, WMMA emulated
// with its alignment rules -- against CpuKernels' bf16 attention. No GPU has run them yet; this
// checks their indexing, masks, tile bounds and barriers now. Tolerance: METHOD.md's bf16 one
// (1e-2 relative L2); the kernels round P, dO and dS to bf16 for their products, which the CPU
// reference does not (the numpy mirror, tests/gpu/tensor_core_attention_mirror.py, measured
// 1.8e-3 to 2.6e-3 for the same algorithm).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/cuda/attention_lse.h"

// clang-format off
#include "common/cuda_emulation.h"
#include "kernels/cuda/tensor_core_attention_kernels.cuh"
// clang-format on

namespace spin::kernels {
namespace {

namespace tc = cuda_detail::tensor_core;
using bf16 = __nv_bfloat16;

std::vector<bf16> rounded(const std::vector<float>& x) {
  std::vector<bf16> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = __float2bfloat16_rn(x[i]);
  return out;
}
const std::uint16_t* bits(const std::vector<bf16>& x) { return reinterpret_cast<const std::uint16_t*>(x.data()); }
std::vector<float> widened(const std::vector<bf16>& x) {
  std::vector<float> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = __bfloat162float(x[i]);
  return out;
}

struct Case {
  std::vector<long long> cu;
  int heads, kv_heads;
  float softcap = 0.0f;  // Gemma 2's score cap (0.5 bends these inputs' scores)
  long long window = 0;  // a sliding window's keys
};

template <int HD>
void check_against_the_cpu(const Case& c) {
  const long long rows = c.cu.back(), seqs = static_cast<long long>(c.cu.size()) - 1;
  const int heads = c.heads, kv_heads = c.kv_heads;
  const long long q_w = heads * HD, kv_w = kv_heads * HD;
  const AttentionScores scores{AttentionScores::standard(HD).scale, c.softcap, c.window};
  const float scale = scores.scale;
  const auto q = rounded(testing::random_uniform(rows * q_w, 1)), k = rounded(testing::random_uniform(rows * kv_w, 2)),
             v = rounded(testing::random_uniform(rows * kv_w, 3));
  const auto dout = testing::random_uniform(rows * q_w, 4);
  long long longest = 0;
  for (long long s = 0; s < seqs; ++s) longest = std::max(longest, c.cu[s + 1] - c.cu[s]);
  const unsigned blocks = static_cast<unsigned>((longest + tc::kBlock - 1) / tc::kBlock);

  // Forward, outputs poisoned (NaN).
  std::vector<bf16> out(rows * q_w, bf16{0xFFFF});
  std::vector<float> lse(rows * heads, NAN);
  cuda_emulation::launch(dim3(blocks, heads, seqs), dim3(tc::kBlockThreads), sizeof(tc::ForwardShared<HD>), [&] {
    tc::tc_forward_kernel<HD>(out.data(), lse.data(), q.data(), k.data(), v.data(), c.cu.data(), nullptr, heads,
                              kv_heads, scale, c.softcap, c.window);
  });
  const CpuKernels cpu;
  const std::vector<Index> cu(c.cu.begin(), c.cu.end());
  std::vector<std::uint16_t> want_out(rows * q_w);
  std::vector<float> probs(attention_probs_size(cu.data(), seqs, heads));
  cpu.attention_forward_bf16(want_out.data(), probs.data(), bits(q), bits(k), bits(v), cu.data(), seqs, heads, kv_heads,
                             HD, scores);
  std::vector<float> want_out32(want_out.size());
  for (std::size_t i = 0; i < want_out.size(); ++i) want_out32[i] = bf16_to_f32(want_out[i]);
  const double out_error = testing::relative_error(widened(out), want_out32);
  EXPECT_LT(out_error, 1e-2);

  const std::vector<float> want_lse = lse_from_cpu_probs(widened(q), widened(k), c.cu, heads, kv_heads, HD, scores,
                                                         probs);
  const double lse_error = testing::relative_error(lse, want_lse);
  EXPECT_LT(lse_error, 1e-4);

  // Backward: D, then the dQ and dK/dV passes; gradients poisoned.
  std::vector<float> delta(rows * heads, NAN), dq(rows * q_w, NAN), dk(rows * kv_w, NAN), dv(rows * kv_w, NAN);
  const long long rows_heads = rows * heads;
  cuda_emulation::launch(dim3(static_cast<unsigned>((rows_heads + 7) / 8)), dim3(256), 0,
                         [&] { tc::tc_delta_kernel(delta.data(), dout.data(), out.data(), rows_heads, HD); });
  cuda_emulation::launch(dim3(blocks, heads, seqs), dim3(tc::kBlockThreads), sizeof(tc::DqShared<HD>), [&] {
    tc::tc_dq_kernel<HD>(dq.data(), dout.data(), q.data(), k.data(), v.data(), lse.data(), delta.data(), c.cu.data(),
                         heads, kv_heads, scale, c.softcap, c.window);
  });
  // As tensor_core_attention.cu launches them: one dK/dV pass, or at head_dim 256 a dV pass and
  // then a dK pass -- each writing only its own gradient (the other stays poisoned until its pass).
  const auto dkv_pass = [&]<tc::DkvPart Part>() {
    cuda_emulation::launch(dim3(blocks, kv_heads, seqs), dim3(tc::kBlockThreads), sizeof(tc::DkvShared<HD>), [&] {
      tc::tc_dkv_kernel<HD, Part>(dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), lse.data(),
                                  delta.data(), c.cu.data(), heads, kv_heads, scale, c.softcap, c.window);
    });
  };
  if constexpr (tc::kSplitDkv<HD>) {
    dkv_pass.template operator()<tc::DkvPart::Values>();
    EXPECT_TRUE(std::all_of(dk.begin(), dk.end(), [](float x) { return std::isnan(x); })) << "the dV pass wrote dK";
    EXPECT_FALSE(std::any_of(dv.begin(), dv.end(), [](float x) { return std::isnan(x); })) << "the dV pass left dV";
    dkv_pass.template operator()<tc::DkvPart::Keys>();
  } else {
    dkv_pass.template operator()<tc::DkvPart::Both>();
  }
  std::vector<float> want_dq(dq.size()), want_dk(dk.size()), want_dv(dv.size());
  cpu.attention_backward_bf16(want_dq.data(), want_dk.data(), want_dv.data(), dout.data(), bits(q), bits(k), bits(v),
                              want_out.data(), probs.data(), cu.data(), seqs, heads, kv_heads, HD, scores);
  const double dq_error = testing::relative_error(dq, want_dq), dk_error = testing::relative_error(dk, want_dk),
               dv_error = testing::relative_error(dv, want_dv);
  EXPECT_LT(dq_error, 1e-2);
  EXPECT_LT(dk_error, 1e-2);
  EXPECT_LT(dv_error, 1e-2);
  std::printf("  head_dim %d, heads %d/%d, cap %g, window %lld: out %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n", HD,
              heads, kv_heads, c.softcap, c.window, out_error, lse_error, dq_error, dk_error, dv_error);

  // A prefill reads each sequence's keys and values elsewhere (its KV-cache slot, kv_starts):
  // the same output, bitwise, from a cache holding them in another order at other rows.
  const long long capacity = longest + 5;
  std::vector<bf16> k_cache(seqs * capacity * kv_w, bf16{0xFFFF}), v_cache(k_cache.size(), bf16{0xFFFF});
  std::vector<long long> starts(seqs);
  for (long long s = 0; s < seqs; ++s) {
    const long long slot = seqs - 1 - s, start = c.cu[s], len = c.cu[s + 1] - start;
    starts[s] = slot * capacity;
    for (long long i = 0; i < len * kv_w; ++i) {
      k_cache[slot * capacity * kv_w + i] = k[start * kv_w + i];
      v_cache[slot * capacity * kv_w + i] = v[start * kv_w + i];
    }
  }
  std::vector<bf16> prefill_out(rows * q_w, bf16{0xFFFF});
  std::vector<float> prefill_lse(rows * heads, NAN);
  cuda_emulation::launch(dim3(blocks, heads, seqs), dim3(tc::kBlockThreads), sizeof(tc::ForwardShared<HD>), [&] {
    tc::tc_forward_kernel<HD>(prefill_out.data(), prefill_lse.data(), q.data(), k_cache.data(), v_cache.data(),
                              c.cu.data(), starts.data(), heads, kv_heads, scale, c.softcap, c.window);
  });
  EXPECT_EQ(widened(prefill_out), widened(out));
  EXPECT_EQ(prefill_lse, lse);
}

// Sequences of 1, 17 and 82 tokens (a partial second tile), two query heads per kv head.
TEST(TensorCoreAttentionEmulated, HeadDim64MatchesTheCpu) { check_against_the_cpu<64>({{0, 1, 18, 100}, 4, 2}); }

// 70 tokens (a second tile of 6 rows), four query heads sharing one kv head.
TEST(TensorCoreAttentionEmulated, HeadDim128MatchesTheCpu) { check_against_the_cpu<128>({{0, 70}, 4, 1}); }

// Gemma 2's score cap (Gemma-2-27B's head size is 128): capped in the forward's softmax, the
// recomputed probabilities and dS's slope in both backward passes.
TEST(TensorCoreAttentionEmulated, CappedScoresMatchTheCpu) {
  check_against_the_cpu<64>({{0, 1, 18, 100}, 4, 2, 0.5f});
  check_against_the_cpu<128>({{0, 70}, 4, 1, 0.5f});
}

// Sliding windows: 20 keys over 150 tokens (three 64-row blocks: the last starts its key tiles at
// key 109, mid-tile; the first's dK/dV pass stops at query 83; whole warps skip tiles), and
// Gemma 2's local layers at head size 128 with the cap and Gemma-2-27B's 4096 scaled to 40.
TEST(TensorCoreAttentionEmulated, SlidingWindowsMatchTheCpu) {
  check_against_the_cpu<64>({{0, 1, 18, 150}, 4, 2, 0.0f, 20});
  check_against_the_cpu<128>({{0, 100}, 4, 1, 0.5f, 40});
}

// Gemma's head size (256): 32-row key (dK/dV: query) tiles, two to a block of 64 rows, the
// forward's output accumulated 128 columns at a time, and dV and dK in two passes. Sequences of 1, 17 and 82 tokens with two query heads per kv head (Gemma-2-9B's
// grouping); Gemma 2's cap and window; one kv head for four (Gemma-3-1B's) over three blocks
// with a window of 40 keys, as Gemma 3's local layers.
TEST(TensorCoreAttentionEmulated, HeadDim256MatchesTheCpu) {
  check_against_the_cpu<256>({{0, 1, 18, 100}, 4, 2});
  check_against_the_cpu<256>({{0, 1, 18, 100}, 4, 2, 0.5f, 20});
  check_against_the_cpu<256>({{0, 150}, 4, 1, 0.0f, 40});
}

}  // namespace
}  // namespace spin::kernels
