// The fused SIMT attention kernels' own source (src/kernels/cuda/fused_attention_kernels.cuh) run
// on the CPU under tests/common/cuda_emulation.h -- real threads, barriers and warp shuffles --
// against CpuKernels: training attention forward and backward, cached attention over prefill,
// continuation and decode runs, and the decode kernel of grouped-query attention; float32 and
// bf16 q/k/v. The same float32 arithmetic on both sides, in another order: 1e-5 relative L2,
// and bf16 outputs within a bf16 rounding (5e-3).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/cuda/attention_lse.h"

// clang-format off
#include "common/cuda_emulation.h"
#include "kernels/cuda/fused_attention_kernels.cuh"
// clang-format on

namespace spin::kernels {
namespace {

namespace simt = cuda_detail::simt;
using bf16 = __nv_bfloat16;

// Values in the kernels' element type T (bf16: rounded once, here) and the same values in
// float32, for the CPU.
template <class T>
struct Values {
  std::vector<T> device;
  std::vector<float> f32;
  explicit Values(const std::vector<float>& x) {
    for (float v : x) {
      if constexpr (std::is_same_v<T, float>) {
        device.push_back(v);
        f32.push_back(v);
      } else {
        device.push_back(__float2bfloat16_rn(v));
        f32.push_back(__bfloat162float(device.back()));
      }
    }
  }
};
template <class T>
std::vector<T> poisoned(std::size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    return std::vector<float>(n, NAN);
  } else {
    return std::vector<bf16>(n, bf16{0xFFFF});
  }
}
template <class T>
std::vector<float> as_f32(const std::vector<T>& x) {
  if constexpr (std::is_same_v<T, float>) {
    return x;
  } else {
    std::vector<float> out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = __bfloat162float(x[i]);
    return out;
  }
}
// A bf16 output may differ from the CPU's by one rounding step where the float32 sums differ.
template <class T>
double output_tolerance() {
  return std::is_same_v<T, float> ? 1e-5 : 5e-3;
}

// `scores`: Llama's by default; with a cap (Gemma 2) a small one, where tanh bends the scores.
template <int HD, class T>
void training_attention(const std::vector<long long>& cu, int heads, int kv_heads,
                        AttentionScores scores = AttentionScores::standard(HD)) {
  const long long rows = cu.back(), seqs = static_cast<long long>(cu.size()) - 1;
  const long long q_w = heads * HD, kv_w = kv_heads * HD;
  const float scale = scores.scale, cap = scores.softcap;
  const long long window = scores.window;
  const Values<T> q(testing::random_uniform(rows * q_w, 1)), k(testing::random_uniform(rows * kv_w, 2)),
      v(testing::random_uniform(rows * kv_w, 3));
  const auto dout = testing::random_uniform(rows * q_w, 4);
  long long longest = 0;
  for (long long s = 0; s < seqs; ++s) longest = std::max(longest, cu[s + 1] - cu[s]);
  const unsigned blocks = static_cast<unsigned>((longest + simt::kWarps - 1) / simt::kWarps);
  const dim3 threads(32, simt::kWarps);

  auto out = poisoned<T>(rows * q_w);
  std::vector<float> lse(rows * heads, NAN), delta(rows * heads, NAN), dq(rows * q_w, NAN), dk(rows * kv_w, NAN),
      dv(rows * kv_w, NAN);
  cuda_emulation::launch(dim3(blocks, heads, seqs), threads, 0, [&] {
    simt::forward_kernel<HD, T>(out.data(), lse.data(), q.device.data(), k.device.data(), v.device.data(), cu.data(),
                                heads, kv_heads, scale, cap, window);
  });
  cuda_emulation::launch(dim3(blocks, heads, seqs), threads, 0, [&] {
    simt::dq_kernel<HD, T>(dq.data(), delta.data(), dout.data(), q.device.data(), k.device.data(), v.device.data(),
                           lse.data(), cu.data(), heads, kv_heads, scale, cap, window);
  });
  cuda_emulation::launch(dim3(blocks, kv_heads, seqs), threads, 0, [&] {
    simt::dkv_kernel<HD, T>(dk.data(), dv.data(), dout.data(), q.device.data(), k.device.data(), v.device.data(),
                            lse.data(), delta.data(), cu.data(), heads, kv_heads, scale, cap, window);
  });

  // The CPU reference on the same (widened) values, in float32.
  const CpuKernels cpu;
  const std::vector<Index> cu_index(cu.begin(), cu.end());
  std::vector<float> want_out(rows * q_w), probs(attention_probs_size(cu_index.data(), seqs, heads));
  cpu.attention_forward(want_out.data(), probs.data(), q.f32.data(), k.f32.data(), v.f32.data(), cu_index.data(), seqs,
                        heads, kv_heads, HD, scores);
  std::vector<float> want_dq(dq.size()), want_dk(dk.size()), want_dv(dv.size());
  cpu.attention_backward(want_dq.data(), want_dk.data(), want_dv.data(), dout.data(), q.f32.data(), k.f32.data(),
                         v.f32.data(), probs.data(), cu_index.data(), seqs, heads, kv_heads, HD, scores);
  const std::vector<float> want_lse = lse_from_cpu_probs(q.f32, k.f32, cu, heads, kv_heads, HD, scores, probs);
  const double errors[] = {testing::relative_error(as_f32(out), want_out), testing::relative_error(lse, want_lse),
                           testing::relative_error(dq, want_dq), testing::relative_error(dk, want_dk),
                           testing::relative_error(dv, want_dv)};
  EXPECT_LT(errors[0], output_tolerance<T>()) << "out";
  EXPECT_LT(errors[1], 1e-5) << "lse";
  EXPECT_LT(errors[2], 1e-5) << "dq";
  EXPECT_LT(errors[3], 1e-5) << "dk";
  EXPECT_LT(errors[4], 1e-5) << "dv";
  std::printf("  head_dim %d, heads %d/%d, %s, cap %g, window %lld: out %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n",
              HD, heads, kv_heads, std::is_same_v<T, float> ? "float32" : "bf16", cap, window, errors[0], errors[1],
              errors[2], errors[3], errors[4]);
}

// Generation: runs of rows in cache slots (cached_kernel), or every run one row (decode_kernel,
// grouped-query attention), against CpuKernels::cached_attention_forward on the same values.
// `capacity`: a slot's rows, position p at row p mod capacity (a ring where the runs reach past it).
template <int HD, class T>
void cached_attention(const std::vector<Index>& row_begin, const std::vector<Index>& slot,
                      const std::vector<Index>& first, int heads, int kv_heads, bool decode,
                      AttentionScores scores = AttentionScores::standard(HD), long long capacity = 48) {
  const long long runs = static_cast<long long>(slot.size()), rows = row_begin.back(), slots = 4;
  const long long q_w = heads * HD, kv_w = kv_heads * HD;
  const float scale = scores.scale, cap = scores.softcap;
  const long long window = scores.window;
  const Values<T> q(testing::random_uniform(rows * q_w, 5)), kc(testing::random_uniform(slots * capacity * kv_w, 6)),
      vc(testing::random_uniform(slots * capacity * kv_w, 7));
  std::vector<long long> table(row_begin.begin(), row_begin.end());  // row_begin, slots, first positions
  table.insert(table.end(), slot.begin(), slot.end());
  table.insert(table.end(), first.begin(), first.end());
  long long longest = 0;
  for (long long r = 0; r < runs; ++r) longest = std::max<long long>(longest, row_begin[r + 1] - row_begin[r]);
  auto out = poisoned<T>(rows * q_w);
  if (decode) {
    ASSERT_EQ(longest, 1);
    cuda_emulation::launch(dim3(kv_heads, runs), dim3(32, simt::kWarps), 0, [&] {
      simt::decode_kernel<HD, T>(out.data(), q.device.data(), kc.device.data(), vc.device.data(), table.data(), runs,
                                 capacity, heads, kv_heads, scale, cap, window);
    });
  } else {
    const unsigned blocks = static_cast<unsigned>((longest + simt::kWarps - 1) / simt::kWarps);
    cuda_emulation::launch(dim3(blocks, heads, runs), dim3(32, simt::kWarps), 0, [&] {
      simt::cached_kernel<HD, T>(out.data(), q.device.data(), kc.device.data(), vc.device.data(), table.data(), runs,
                                 capacity, heads, kv_heads, scale, cap, window);
    });
  }
  const CpuKernels cpu;
  std::vector<float> want(rows * q_w);
  cpu.cached_attention_forward(want.data(), q.f32.data(), kc.f32.data(), vc.f32.data(), row_begin.data(), slot.data(),
                               first.data(), runs, capacity, heads, kv_heads, HD, scores);
  const double error = testing::relative_error(as_f32(out), want);
  EXPECT_LT(error, output_tolerance<T>());
  std::printf("  %s head_dim %d, heads %d/%d, %s, cap %g, window %lld, %lld rows a slot: out %.1e\n",
              decode ? "decode" : "cached", HD, heads, kv_heads, std::is_same_v<T, float> ? "float32" : "bf16", cap,
              window, capacity, error);
}

// Sequences of 1, 13 and 35 tokens (32-row tiles and 8-row blocks partly filled). Small: every
// emulated thread is an OS thread, and every shuffle two barriers. Head size 256 (Gemma) with its
// 16-row tiles: 18 and 19 rows span two of them (the second partly filled), the dK/dV pass
// starting its tiles below its keys.
TEST(FusedAttentionEmulated, TrainingForwardAndBackwardMatchTheCpu) {
  const std::vector<long long> cu = {0, 1, 14, 49};
  training_attention<64, float>(cu, 2, 1);
  training_attention<64, bf16>(cu, 2, 1);
  training_attention<128, bf16>({0, 35}, 2, 1);
  training_attention<256, float>({0, 3, 21}, 2, 1);
  training_attention<256, bf16>({0, 19}, 2, 2);
  training_attention<192, bf16>({0, 19}, 2, 2);  // DeepSeek-V3's latent attention: 16-row tiles, 6 a lane
}

// Gemma 2's scores: another scale and a cap (0.5 here, so that tanh bends the scores of these
// inputs; Gemma 2's own is 50), in the forward, the recomputed probabilities and both backward
// passes.
TEST(FusedAttentionEmulated, CappedScoresMatchTheCpu) {
  training_attention<64, float>({0, 1, 14, 49}, 2, 1, {0.3f, 0.5f});
  training_attention<256, bf16>({0, 19}, 2, 1, {0.0625f, 0.5f});
  const std::vector<Index> row_begin = {0, 12, 13, 16, 17}, slot = {2, 0, 1, 3}, first = {0, 25, 7, 47};
  cached_attention<64, float>(row_begin, slot, first, 4, 2, false, {0.3f, 0.5f});
  cached_attention<256, float>({0, 1, 2, 3, 4}, {3, 0, 2, 1}, {47, 0, 33, 5}, 8, 1, true, {0.0625f, 0.5f});
}

// Sliding windows (Mistral; Gemma 2's local layers, with its cap): 5 keys, shorter than a tile,
// so that blocks start their key tiles mid-sequence and rows mask inside tiles; 20 keys at head
// size 256 (16-row tiles), where the dK/dV pass stops before the sequence's end; with a cap. The
// CPU reference masks the same keys (its own test checks it against a naive reference).
TEST(FusedAttentionEmulated, SlidingWindowsMatchTheCpu) {
  const std::vector<long long> cu = {0, 1, 14, 49};
  training_attention<64, float>(cu, 2, 1, {0.125f, 0.0f, 5});
  training_attention<64, bf16>(cu, 2, 1, {0.125f, 0.0f, 5});
  training_attention<256, float>({0, 3, 45}, 2, 1, {0.0625f, 0.5f, 20});
  const std::vector<Index> row_begin = {0, 12, 13, 16, 17}, slot = {2, 0, 1, 3}, first = {0, 25, 7, 47};
  cached_attention<64, float>(row_begin, slot, first, 4, 2, false, {0.125f, 0.0f, 6});
  cached_attention<256, bf16>(row_begin, slot, first, 2, 1, false, {0.0625f, 0.5f, 6});
  cached_attention<64, float>({0, 1, 2, 3, 4}, {3, 0, 2, 1}, {47, 0, 33, 5}, 16, 2, true, {0.125f, 0.0f, 10});
}

// A prefill of 12 rows into slot 2, a decode row at position 25 of slot 0, 3 rows continuing
// slot 1 from position 7, a decode row at the last position (47) of slot 3.
TEST(FusedAttentionEmulated, CachedRunsMatchTheCpu) {
  const std::vector<Index> row_begin = {0, 12, 13, 16, 17}, slot = {2, 0, 1, 3}, first = {0, 25, 7, 47};
  cached_attention<64, float>(row_begin, slot, first, 4, 2, false);
  cached_attention<64, bf16>(row_begin, slot, first, 4, 2, false);
  cached_attention<32, float>(row_begin, slot, first, 2, 2, false);
  cached_attention<256, bf16>(row_begin, slot, first, 2, 1, false);
  cached_attention<192, bf16>(row_begin, slot, first, 2, 2, false);
}

// Decode steps: groups of 2, 8 (the block's 8 warps once) and 16 (twice).
TEST(FusedAttentionEmulated, DecodeStepsMatchTheCpu) {
  const std::vector<Index> row_begin = {0, 1, 2, 3, 4}, slot = {3, 0, 2, 1}, first = {47, 0, 33, 5};
  cached_attention<64, float>(row_begin, slot, first, 4, 2, true);
  cached_attention<64, bf16>(row_begin, slot, first, 16, 2, true);
  cached_attention<32, float>(row_begin, slot, first, 16, 1, true);
  cached_attention<256, float>(row_begin, slot, first, 8, 1, true);  // Gemma-2B: 8 heads on one kv head
  cached_attention<192, bf16>(row_begin, slot, first, 4, 4, true);   // DeepSeek-V3: every head its own
}

// Ring caches (model/kv_cache.h: a windowed layer's slot of window + chunk - 1 rows, position p
// at row p mod capacity): runs whose keys wrap around their slot's end within a tile (a window
// of 6 in 17 rows) and across tiles (40 in 51 rows: head size 64's 32-row tiles, 256's 16-row
// ones), prefills, continuing chunks and decode steps.
TEST(FusedAttentionEmulated, RingCachesMatchTheCpu) {
  const std::vector<Index> row_begin = {0, 12, 13, 16, 17}, slot = {2, 0, 1, 3}, late = {0, 85, 60, 99};
  cached_attention<64, float>(row_begin, slot, {0, 25, 7, 47}, 4, 2, false, {0.125f, 0.0f, 6}, 17);
  cached_attention<64, bf16>(row_begin, slot, late, 4, 2, false, {0.125f, 0.0f, 40}, 51);
  cached_attention<256, bf16>(row_begin, slot, late, 2, 1, false, {0.0625f, 0.5f, 40}, 51);
  const std::vector<Index> decode_rows = {0, 1, 2, 3, 4};
  cached_attention<64, float>(decode_rows, slot, {47, 0, 33, 5}, 16, 2, true, {0.125f, 0.0f, 10}, 10);
  cached_attention<256, bf16>(decode_rows, slot, {99, 0, 70, 45}, 8, 1, true, {0.0625f, 0.5f, 40}, 40);
}

}  // namespace
}  // namespace spin::kernels
