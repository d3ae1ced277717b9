// CudaKernels' own kernels (src/kernels/cuda/cuda_kernels_device.cuh and
// attention_softmax_kernels.cuh) and the sampler's (sampling_kernels.cuh) run on the CPU under
// tests/common/cuda_emulation.h, with the launch shapes CudaKernels uses, against their CpuKernels
// twins: the block reductions (the log-softmax pieces, the causal softmax and dS of the cuBLAS
// attention path, the sampler's row statistics in double and top-p's mass histograms; the norms'
// in norm_kernels_device_test.cpp), the element-wise kernels (RoPE and SwiGLU in bf16, the
// embedding with its atomics, the bf16 conversions, the KV cache's scatter), the optimizer's range
// tables (AdamW with its bf16 copy, the sum of squares) and the sampler's choices (Gumbel-max with
// Philox noise, top-k). Float32 arithmetic in another order on both sides: 1e-5 relative L2;
// choices, integers and bf16 copies exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/test_util.h"
#include "core/mass_histogram.h"
#include "kernels/cpu/cpu_kernels.h"

// clang-format off
#include "common/cuda_emulation.h"
#include "kernels/cuda/attention_softmax_kernels.cuh"
#include "kernels/cuda/cuda_kernels_device.cuh"
#include "kernels/cuda/sampling_kernels.cuh"
#include "unit/kernels/cuda/emulated_launch.h"
// clang-format on

namespace spin::kernels {
namespace {

namespace dev = cuda_detail::device;
namespace smp = cuda_detail::sampling;
using cuda_detail::blocks_for;
using cuda_detail::kThreads;

using emulated::run;

// OLMo 1.7's clip_qkv: the clamp on float32 and bf16 (in place), its gradient from either input.
TEST(CudaKernelsEmulated, Clamp) {
  const CpuKernels cpu;
  const long long n = 1000;
  auto x = testing::random_uniform(n, 31);
  for (float& v : x) v *= 3.0f;
  x[0] = 1.0f, x[1] = -1.0f;  // on the bounds: kept, and the gradient passes
  const auto dy = testing::random_uniform(n, 32);
  std::vector<float> out(n, NAN), want(n), dx(n, NAN), want_dx(n);
  cpu.clamp(want.data(), x.data(), n, 1.0f);
  run(blocks_for(n), [&] { dev::clamp_kernel<float>(out.data(), x.data(), n, 1.0f); });
  EXPECT_EQ(out, want);
  cpu.clamp_backward(want_dx.data(), dy.data(), x.data(), n, 1.0f);
  run(blocks_for(n), [&] { dev::clamp_backward_kernel<float>(dx.data(), dy.data(), x.data(), n, 1.0f); });
  EXPECT_EQ(dx, want_dx);
  std::vector<std::uint16_t> x16(n), want16(n);
  cpu.to_bf16(x16.data(), x.data(), n);
  cpu.clamp_bf16(want16.data(), x16.data(), n, 1.0f);
  std::vector<__nv_bfloat16> inout(n);
  for (long long i = 0; i < n; ++i) inout[i].bits = x16[i];
  run(blocks_for(n), [&] { dev::clamp_kernel<__nv_bfloat16>(inout.data(), inout.data(), n, 1.0f); });
  for (long long i = 0; i < n; ++i) ASSERT_EQ(inout[i].bits, want16[i]) << i;
  std::vector<__nv_bfloat16> x16_dev(n);
  for (long long i = 0; i < n; ++i) x16_dev[i].bits = x16[i];
  cpu.clamp_backward_bf16_in(want_dx.data(), dy.data(), x16.data(), n, 1.0f);
  run(blocks_for(n), [&] { dev::clamp_backward_kernel<__nv_bfloat16>(dx.data(), dy.data(), x16_dev.data(), n, 1.0f); });
  EXPECT_EQ(dx, want_dx);
}

// The element-wise kernels on bf16 and float32: RoPE in place on bf16 q/k (positions up to the
// table's end), SwiGLU and GeGLU over bf16 gate and up (forward rounded, backward float32), and
// the vocab-parallel embedding, scaled or not, with ids outside the shard and repeated ones (atomics).
TEST(CudaKernelsEmulated, RopeGluAndEmbedding) {
  const CpuKernels cpu;
  const long long n = 9, heads = 3, hd = 16, half = hd / 2, positions_max = 40;
  const auto cos = testing::random_uniform(positions_max * half, 1),
             sin = testing::random_uniform(positions_max * half, 2);
  const std::vector<std::int32_t> pos = {0, 1, 5, 39, 7, 7, 2, 30, 11};
  const auto x = testing::random_uniform(n * heads * hd, 3);
  std::vector<__nv_bfloat16> x16(x.size());
  std::vector<std::uint16_t> want16(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x16[i] = __float2bfloat16_rn(x[i]), want16[i] = x16[i].bits;
  __nv_bfloat16* const null16 = nullptr;
  run(blocks_for(n * heads * half), [&] {
    dev::rope_kernel(x16.data(), null16, pos.data(), cos.data(), sin.data(), n, heads, 0, hd, hd, false, 1.0f);
  });
  cpu.rope_forward_bf16(want16.data(), pos.data(), cos.data(), sin.data(), n, heads, hd, hd, RopePairs::Halves);
  long long differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i) differ += x16[i].bits != want16[i];
  EXPECT_LE(differ, static_cast<long long>(x.size()) / 50) << "rounding ties of float32 order only";
  // A partial rotary factor: 10 of 16 dimensions rotate (a table of 5 columns), float32 forward
  // and backward, in rotate-half and in interleaved pairs (Cohere's); the other 6 are left as they were.
  const long long rotary = 10;
  for (const auto& [sign, pairs] :
       {std::pair{1.0f, RopePairs::Halves}, std::pair{-1.0f, RopePairs::Halves},
        std::pair{1.0f, RopePairs::Interleaved}, std::pair{-1.0f, RopePairs::Interleaved}}) {
    auto got = x, want = x;
    const bool interleaved = pairs == RopePairs::Interleaved;
    run(blocks_for(n * heads * (rotary / 2)), [&] {
      dev::rope_kernel(got.data(), static_cast<float*>(nullptr), pos.data(), cos.data(), sin.data(), n, heads, 0, hd,
                       rotary, interleaved, sign);
    });
    if (sign > 0) {
      cpu.rope_forward(want.data(), pos.data(), cos.data(), sin.data(), n, heads, hd, rotary, pairs);
    } else {
      cpu.rope_backward(want.data(), pos.data(), cos.data(), sin.data(), n, heads, hd, rotary, pairs);
    }
    EXPECT_LT(testing::relative_error(got, want), 1e-6) << interleaved;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (static_cast<long long>(i) % hd >= rotary) {
        ASSERT_EQ(got[i], x[i]) << i;
      }
    }
  }
  // Attention's q (3 heads) and k (2 kv heads) in one launch: each as rope_forward of it alone, bitwise.
  {
    const long long kv_heads = 2, rotary_qk = 12;
    auto q = x, k = testing::random_uniform(n * kv_heads * hd, 9);
    auto want_q = q, want_k = k;
    run(blocks_for(n * (heads + kv_heads) * (rotary_qk / 2)), [&] {
      dev::rope_kernel(q.data(), k.data(), pos.data(), cos.data(), sin.data(), n, heads, kv_heads, hd, rotary_qk, true,
                       1.0f);
    });
    cpu.rope_qk_forward(want_q.data(), want_k.data(), pos.data(), cos.data(), sin.data(), n, heads, kv_heads, hd,
                        rotary_qk, RopePairs::Interleaved);
    EXPECT_LT(testing::relative_error(q, want_q), 1e-6);
    EXPECT_LT(testing::relative_error(k, want_k), 1e-6);
    EXPECT_GT(testing::relative_error(k, testing::random_uniform(n * kv_heads * hd, 9)), 1e-2);  // k rotated
  }

  const long long m = 1000;
  for (const Activation act : {Activation::Silu, Activation::GeluTanh, Activation::Gelu}) {
    SCOPED_TRACE(static_cast<int>(act));
    const auto gate = testing::random_uniform(m, 4, -4.0f, 4.0f), up = testing::random_uniform(m, 5),
               dout = testing::random_uniform(m, 6);
    std::vector<__nv_bfloat16> g16(m), u16(m), out16(m, __nv_bfloat16{0xFFFF});
    std::vector<std::uint16_t> gb(m), ub(m), want_out(m);
    for (long long i = 0; i < m; ++i) {
      g16[i] = __float2bfloat16_rn(gate[i]), u16[i] = __float2bfloat16_rn(up[i]);
      gb[i] = g16[i].bits, ub[i] = u16[i].bits;
    }
    run(blocks_for(m), [&] { dev::glu_forward_kernel(out16.data(), g16.data(), u16.data(), m, act); });
    cpu.glu_forward_bf16(want_out.data(), gb.data(), ub.data(), m, act);
    differ = 0;
    for (long long i = 0; i < m; ++i) differ += out16[i].bits != want_out[i];
    EXPECT_LE(differ, m / 50);
    std::vector<float> dgate(m, NAN), dup(m, NAN), want_dgate(m), want_dup(m);
    run(blocks_for(m),
        [&] { dev::glu_backward_kernel(dgate.data(), dup.data(), dout.data(), g16.data(), u16.data(), m, act); });
    cpu.glu_backward_bf16(want_dgate.data(), want_dup.data(), dout.data(), gb.data(), ub.data(), m, act);
    EXPECT_LT(testing::relative_error(dgate, want_dgate), 1e-6);
    EXPECT_LT(testing::relative_error(dup, want_dup), 1e-6);
    // Plain (up null): act(x) and dout act'(x).
    const __nv_bfloat16* none = nullptr;
    run(blocks_for(m), [&] { dev::glu_forward_kernel(out16.data(), g16.data(), none, m, act); });
    cpu.glu_forward_bf16(want_out.data(), gb.data(), nullptr, m, act);
    differ = 0;
    for (long long i = 0; i < m; ++i) differ += out16[i].bits != want_out[i];
    EXPECT_LE(differ, m / 50);
    run(blocks_for(m), [&] {
      dev::glu_backward_kernel(dgate.data(), static_cast<float*>(nullptr), dout.data(), g16.data(), none, m, act);
    });
    cpu.glu_backward_bf16(want_dgate.data(), nullptr, dout.data(), gb.data(), nullptr, m, act);
    EXPECT_LT(testing::relative_error(dgate, want_dgate), 1e-6);
  }

  // scale: Gemma's sqrt(hidden_size) on the lookup and its gradient.
  for (const float scale : {1.0f, 45.254834f}) {
    SCOPED_TRACE(scale);
    const long long hidden = 24, vocab_start = 100, shard = 30;
    const std::vector<std::int32_t> ids = {100, 129, 130, 99, 105, 105, 105, 0, 128, 110, 110, 101};
    const long long count = static_cast<long long>(ids.size());
    const auto table = testing::random_uniform(shard * hidden, 7), grad = testing::random_uniform(count * hidden, 8);
    std::vector<float> out(count * hidden, NAN), want(count * hidden);
    run(blocks_for(count * hidden),
        [&] { dev::embedding_forward_kernel(out.data(), ids.data(), table.data(), count, hidden, vocab_start, shard, scale); });
    cpu.embedding_forward(want.data(), ids.data(), table.data(), count, hidden, vocab_start, shard, scale);
    EXPECT_EQ(out, want);
    auto dtable = testing::random_uniform(shard * hidden, 9);
    auto want_dtable = dtable;
    run(blocks_for(count * hidden), [&] {
      dev::embedding_backward_kernel(dtable.data(), ids.data(), grad.data(), count, hidden, vocab_start, shard, scale);
    });
    cpu.embedding_backward(want_dtable.data(), ids.data(), grad.data(), count, hidden, vocab_start, shard, scale);
    EXPECT_LT(testing::relative_error(dtable, want_dtable), 1e-6);
  }
}

// Latent attention's strided sum of a block of columns (Kernels::add_2d): the CPU's bits.
TEST(CudaKernelsEmulated, StridedAdd) {
  const CpuKernels cpu;
  const long long rows = 13, src_ld = 40, dst_ld = 24, cols = 9;
  const auto src = testing::random_uniform(rows * src_ld, 1);
  auto dst = testing::random_uniform(rows * dst_ld, 2);
  auto want = dst;
  run(blocks_for(rows * cols), [&] { dev::add_2d_kernel(dst.data() + 3, dst_ld, src.data() + 11, src_ld, rows, cols); });
  cpu.add_2d(want.data() + 3, dst_ld, src.data() + 11, src_ld, rows, cols);
  EXPECT_EQ(dst, want);
}

// Three tensors of a flat buffer with gaps between them, one without weight decay; the launch's
// table and factors as CudaKernels::adamw_update builds them (flat_ranges, AdamW's factors).
// The bias kernels (Qwen2's q/k/v): the addition in place in float32 and into a bf16 output
// (linear_forward_bf16_out's epilogue), and the column sums of the gradient -- the CPU's
// arithmetic in the CPU's order, so bitwise.
TEST(CudaKernelsEmulated, BiasAddAndBackward) {
  const CpuKernels cpu;
  const long long n = 7, width = 300;  // two blocks of columns
  const auto y = testing::random_uniform(n * width, 1), bias = testing::random_uniform(width, 2),
             dy = testing::random_uniform(n * width, 3);
  auto out = y, want = y;
  run(blocks_for(n * width), [&] { dev::bias_add_kernel<float>(out.data(), out.data(), bias.data(), n, width); });
  cpu.add_bias(want.data(), bias.data(), n, width);
  EXPECT_EQ(out, want);
  std::vector<__nv_bfloat16> out16(n * width, __nv_bfloat16{0xFFFF});
  std::vector<std::uint16_t> want16(n * width);
  run(blocks_for(n * width), [&] { dev::bias_add_kernel(out16.data(), y.data(), bias.data(), n, width); });
  cpu.to_bf16(want16.data(), want.data(), n * width);
  for (std::size_t i = 0; i < want16.size(); ++i) ASSERT_EQ(out16[i].bits, want16[i]) << i;
  auto dbias = testing::random_uniform(width, 4);
  auto want_dbias = dbias;
  run(blocks_for(width), [&] { dev::bias_backward_kernel(dbias.data(), dy.data(), n, width); });
  cpu.bias_backward(want_dbias.data(), dy.data(), n, width);
  EXPECT_EQ(dbias, want_dbias);
}

// A mixture of experts' kernels with CudaKernels' launch shapes: the grouped rows gathered (bf16),
// the weighted join (each row's slots summed in order: bitwise the CPU's), its backward's d/d y
// (bitwise) and d/d weights (a block reduction per slot: 1e-5) -- also with every third slot -1, an
// output of another rank's experts (expert parallelism).
class CudaKernelsEmulatedMoe : public ::testing::TestWithParam<bool> {};
TEST_P(CudaKernelsEmulatedMoe, GatherAndJoin) {
  const CpuKernels cpu;
  const long long n = 9, k = 2, width = 300;
  std::vector<long long> slots(n * k), sources(n * k);
  for (long long s = 0; s < n * k; ++s) slots[s] = (s * 7) % (n * k);  // 7 coprime with 18
  for (long long s = 0; s < n * k; ++s) sources[slots[s]] = s / k;
  if (GetParam()) {
    for (long long s = 0; s < n * k; s += 3) slots[s] = -1;
  }
  const auto y = testing::random_uniform(n * k * width, 1), dout = testing::random_uniform(n * width, 2);
  const auto weights = testing::random_uniform(n * k, 3);
  std::vector<Index> cpu_slots(slots.begin(), slots.end()), cpu_sources(sources.begin(), sources.end());
  std::vector<float> out(n * width, NAN), want(n * width);
  run(blocks_for(n * width),
      [&] { dev::moe_combine_kernel(out.data(), y.data(), slots.data(), weights.data(), n, k, width); });
  cpu.moe_combine(want.data(), y.data(), cpu_slots.data(), weights.data(), n, k, width);
  EXPECT_EQ(out, want);
  // (The rows of y no slot names keep what they held.)
  std::vector<float> dy(n * k * width, -7.0f), dw(n * k, NAN), want_dy(n * k * width, -7.0f), want_dw(n * k);
  run(blocks_for(n * k * width),
      [&] { dev::moe_combine_dy_kernel(dy.data(), dout.data(), slots.data(), weights.data(), n, k, width); });
  run(static_cast<unsigned>(n * k),
      [&] { dev::moe_combine_dweights_kernel(dw.data(), dout.data(), y.data(), slots.data(), k, width); });
  cpu.moe_combine_backward(want_dy.data(), want_dw.data(), dout.data(), y.data(), cpu_slots.data(), weights.data(), n,
                           k, width);
  EXPECT_EQ(dy, want_dy);
  testing::expect_close(dw, want_dw, 1e-5, 1e-6, "dweights");
  std::vector<__nv_bfloat16> x16(n * width), grouped(n * k * width, __nv_bfloat16{0xFFFF});
  std::vector<std::uint16_t> x_bits(n * width), want_grouped(n * k * width);
  cpu.to_bf16(x_bits.data(), dout.data(), n * width);
  for (std::size_t i = 0; i < x_bits.size(); ++i) x16[i].bits = x_bits[i];
  run(blocks_for(n * k * width),
      [&] { dev::gather_rows_kernel(grouped.data(), x16.data(), sources.data(), n * k, width); });
  cpu.gather_rows_bf16(want_grouped.data(), x_bits.data(), cpu_sources.data(), n * k, width);
  for (std::size_t i = 0; i < want_grouped.size(); ++i) ASSERT_EQ(grouped[i].bits, want_grouped[i]) << i;
}
INSTANTIATE_TEST_SUITE_P(CudaKernelsEmulated, CudaKernelsEmulatedMoe, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? std::string("OtherRanksSlots") : std::string("All"); });

// LoRA's dropout: a thread per row and group of four global columns, the shard starting inside a
// group (col_offset 6) and ending inside one; float32 (written and accumulated) and bf16, bitwise.
TEST(CudaKernelsEmulated, Dropout) {
  const CpuKernels cpu;
  const long long rows = 5, cols = 301, offset = 6;
  std::vector<long long> keys;
  for (long long i = 0; i < rows; ++i) keys.push_back((i + 40) << 24 | i);
  const Kernels::DropoutMask mask{reinterpret_cast<const std::int64_t*>(keys.data()), 0xFEEDull, 9, 0.25f, offset};
  const long long threads = rows * dropout_groups(offset, cols);
  const auto x = testing::random_uniform(rows * cols, 1);
  for (const bool accumulate : {false, true}) {
    auto y = testing::random_uniform(rows * cols, 2), want = y;
    run(blocks_for(threads), [&] {
      dev::dropout_kernel(y.data(), x.data(), keys.data(), rows, cols, offset, mask.seed, mask.site, mask.p,
                          mask.scale(), accumulate);
    });
    cpu.dropout(want.data(), x.data(), rows, cols, mask, accumulate);
    EXPECT_EQ(y, want) << accumulate;
  }
  std::vector<__nv_bfloat16> x16(rows * cols), y16(rows * cols, __nv_bfloat16{0xFFFF});
  std::vector<std::uint16_t> x16_bits(rows * cols), want16(rows * cols);
  cpu.to_bf16(x16_bits.data(), x.data(), rows * cols);
  for (std::size_t i = 0; i < x16.size(); ++i) x16[i].bits = x16_bits[i];
  run(blocks_for(threads), [&] {
    dev::dropout_kernel(y16.data(), x16.data(), keys.data(), rows, cols, offset, mask.seed, mask.site, mask.p,
                        mask.scale(), false);
  });
  cpu.dropout_bf16(want16.data(), x16_bits.data(), rows, cols, mask);
  for (std::size_t i = 0; i < want16.size(); ++i) ASSERT_EQ(y16[i].bits, want16[i]) << i;
}

TEST(CudaKernelsEmulated, AdamWAndSumOfSquaresOverRangeTables) {
  const CpuKernels cpu;
  const std::vector<Kernels::UpdateRange> ranges = {{3, 700, true}, {710, 5, false}, {800, 1300, true}};
  const long long size = 2200;
  const Kernels::AdamW h{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 7};
  auto param = testing::random_uniform(size, 1), grad = testing::random_uniform(size, 2),
       m = testing::random_uniform(size, 3), v = testing::random_uniform(size, 4, 0.0f, 1.0f);
  auto want_param = param, want_m = m, want_v = v;
  long long total = 0;
  const std::vector<dev::FlatRange> table = dev::flat_ranges(ranges.data(), 3, total);
  std::vector<__nv_bfloat16> copy(size, __nv_bfloat16{0});
  run(blocks_for(total), [&] {
    dev::adamw_kernel(param.data(), copy.data(), grad.data(), m.data(), v.data(), table.data(),
                      static_cast<int>(table.size()), total, h.step_size(), h.decay(), h.beta1, h.beta2, h.eps,
                      h.grad_scale, h.bias2_sqrt());
  });
  std::vector<std::uint16_t> want_copy(size, 0);
  cpu.adamw_update(want_param.data(), want_copy.data(), grad.data(), want_m.data(), want_v.data(), ranges.data(), 3, h);
  EXPECT_LT(testing::relative_error(param, want_param), 1e-6);
  EXPECT_LT(testing::relative_error(m, want_m), 1e-6);
  EXPECT_LT(testing::relative_error(v, want_v), 1e-6);
  // The bf16 copy of every updated parameter, bitwise; nothing written in the gaps.
  std::vector<bool> inside(size, false);
  for (const auto& r : ranges) std::fill(inside.begin() + r.offset, inside.begin() + r.offset + r.length, true);
  for (long long i = 0; i < size; ++i) {
    ASSERT_EQ(copy[i].bits, inside[i] ? f32_to_bf16(param[i]) : std::uint16_t{0}) << i;
  }
  double sum = 0.0;
  run(blocks_for(total),
      [&] { dev::sum_squares_kernel(&sum, grad.data(), table.data(), static_cast<int>(table.size()), total); });
  std::vector<Kernels::Range> plain;
  for (const auto& r : ranges) plain.push_back({r.offset, r.length});
  EXPECT_NEAR(sum, cpu.sum_squares(grad.data(), plain.data(), 3), 1e-9 * sum);
}

// RMSprop over the same kind of table: the CPU kernel's values, the bf16 copy bitwise, the gaps
// untouched.
TEST(CudaKernelsEmulated, RmsPropOverRangeTables) {
  const CpuKernels cpu;
  const std::vector<Kernels::UpdateRange> ranges = {{3, 700, true}, {710, 5, false}, {800, 1300, true}};
  const long long size = 2200;
  const Kernels::RmsProp h{1e-3f, 0.99f, 1e-8f, 0.1f, 0.5f};
  auto param = testing::random_uniform(size, 1), grad = testing::random_uniform(size, 2),
       v = testing::random_uniform(size, 4, 0.0f, 1.0f);
  auto want_param = param, want_v = v;
  long long total = 0;
  const std::vector<dev::FlatRange> table = dev::flat_ranges(ranges.data(), 3, total);
  std::vector<__nv_bfloat16> copy(size, __nv_bfloat16{0});
  run(blocks_for(total), [&] {
    dev::rmsprop_kernel(param.data(), copy.data(), grad.data(), v.data(), table.data(), static_cast<int>(table.size()),
                        total, h.lr, h.alpha, h.eps, h.weight_decay, h.grad_scale);
  });
  cpu.rmsprop_update(want_param.data(), nullptr, grad.data(), want_v.data(), ranges.data(), 3, h);
  EXPECT_LT(testing::relative_error(param, want_param), 1e-6);
  EXPECT_LT(testing::relative_error(v, want_v), 1e-6);
  std::vector<bool> inside(size, false);
  for (const auto& r : ranges) std::fill(inside.begin() + r.offset, inside.begin() + r.offset + r.length, true);
  for (long long i = 0; i < size; ++i) {
    ASSERT_EQ(copy[i].bits, inside[i] ? f32_to_bf16(param[i]) : std::uint16_t{0}) << i;
    if (!inside[i]) {
      ASSERT_EQ(param[i], want_param[i]) << i;
    }
  }
}

// A vocabulary shard of 300 columns starting at 1000 in rows of 320 (padding), targets inside,
// outside and missing (-1).
TEST(CudaKernelsEmulated, VocabParallelLogSoftmaxPieces) {
  const CpuKernels cpu;
  const long long n = 6, ld = 320, valid = 300, start = 1000;
  auto logits = testing::random_uniform(n * ld, 1, -8.0f, 8.0f);
  const std::vector<std::int32_t> targets = {1000, 1299, 1150, 999, 1300, -1};
  std::vector<float> row_max(n, NAN), sumexp(n, NAN), target_logit(n, NAN), want_max(n), want_sum(n), want_target(n);
  run(n, [&] { dev::logits_max_kernel(row_max.data(), logits.data(), ld, valid); });
  run(n, [&] {
    dev::logits_sumexp_target_kernel(sumexp.data(), target_logit.data(), logits.data(), row_max.data(), targets.data(),
                                     ld, valid, start);
  });
  cpu.logits_max(want_max.data(), logits.data(), n, ld, valid);
  cpu.logits_sumexp_target(want_sum.data(), want_target.data(), logits.data(), want_max.data(), targets.data(), n, ld,
                           valid, start);
  EXPECT_EQ(row_max, want_max);
  EXPECT_LT(testing::relative_error(sumexp, want_sum), 1e-5);
  EXPECT_EQ(target_logit, want_target);
  std::vector<float> lse(n), dlogprob = testing::random_uniform(n, 2);
  for (long long i = 0; i < n; ++i) lse[i] = want_max[i] + std::log(want_sum[i]);
  for (float cap : {0.0f, 5.0f}) {  // without and through Gemma 2's logit cap
    std::vector<float> dlogits(n * ld, NAN), want_dlogits(n * ld);
    run(n, [&] {
      dev::logprob_backward_kernel(dlogits.data(), logits.data(), lse.data(), targets.data(), dlogprob.data(), ld,
                                   valid, start, cap);
    });
    cpu.logprob_backward(want_dlogits.data(), logits.data(), lse.data(), targets.data(), dlogprob.data(), n, ld, valid,
                         start, cap);
    EXPECT_LT(testing::relative_error(dlogits, want_dlogits), 1e-5) << "cap " << cap;
  }
  auto capped = logits, want_capped = logits;
  cuda_emulation::launch(dim3(blocks_for(n * ld)), dim3(kThreads), 0,
                         [&] { dev::softcap_kernel(capped.data(), n * ld, 5.0f); });
  cpu.softcap_forward(want_capped.data(), n * ld, 5.0f);
  EXPECT_LT(testing::relative_error(capped, want_capped), 1e-6);
  // Granite's logit scaling, in place as the LM head runs it: the CPU's bits.
  auto scaled = logits, want_scaled = logits;
  cuda_emulation::launch(dim3(blocks_for(n * ld)), dim3(kThreads), 0,
                         [&] { dev::scale_kernel(scaled.data(), scaled.data(), 0.0625f, n * ld); });
  cpu.scale(want_scaled.data(), want_scaled.data(), 0.0625f, n * ld);
  EXPECT_EQ(scaled, want_scaled);
}

// The last step of the log-probabilities (from the all-reduced row maxima and sums; a row without
// a target gives 0), y += x, the float32 <-> bf16 conversions (rounding ties, a NaN, an overflow
// to infinity) and the KV cache's row scatter, float32 and bf16: the CPU's values -- the
// conversions, the addition and the scatter bit for bit.
TEST(CudaKernelsEmulated, LogprobFromSumsConversionsAndScatter) {
  const CpuKernels cpu;
  const long long n = 300;
  const std::vector<std::int32_t> targets = [] {
    std::vector<std::int32_t> t(300, 7);
    t[3] = t[200] = -1;
    return t;
  }();
  auto sums = testing::random_uniform(2 * n, 3, 0.5f, 40.0f);
  const auto row_max = testing::random_uniform(n, 4, -3.0f, 3.0f);
  std::vector<float> logprob(n, NAN), lse = row_max, want_logprob(n), want_lse = row_max;
  run(blocks_for(n),
      [&] { dev::logprob_from_sums_kernel(logprob.data(), lse.data(), sums.data(), targets.data(), n); });
  cpu.logprob_from_sums(want_logprob.data(), want_lse.data(), sums.data(), targets.data(), n);
  EXPECT_LT(testing::relative_error(lse, want_lse), 1e-6);
  EXPECT_LT(testing::relative_error(logprob, want_logprob), 1e-6);
  EXPECT_EQ(logprob[3], 0.0f);

  auto y = testing::random_uniform(n, 5), want_y = y;
  const auto x = testing::random_uniform(n, 6);
  run(blocks_for(n), [&] { dev::add_kernel(y.data(), x.data(), n); });
  cpu.add_inplace(want_y.data(), x.data(), n);
  EXPECT_EQ(y, want_y);

  auto wide = testing::random_uniform(n, 7, -4.0f, 4.0f);
  wide[0] = 1.00390625f;  // halfway between two bf16 values: ties to even
  wide[1] = 1.01171875f;  // halfway, rounding up to the even one
  wide[2] = NAN;
  wide[3] = 3.4e38f;  // rounds past bf16's largest finite value: infinity
  std::vector<std::uint16_t> want16(n);
  cpu.to_bf16(want16.data(), wide.data(), n);
  std::vector<__nv_bfloat16> narrow(n);
  run(blocks_for(n), [&] { dev::to_bf16_kernel(narrow.data(), wide.data(), n); });
  for (long long i = 0; i < n; ++i) ASSERT_EQ(narrow[i].bits, want16[i]) << i;
  std::vector<float> back(n, NAN), want_back(n);
  run(blocks_for(n), [&] { dev::to_f32_kernel(back.data(), narrow.data(), n); });
  cpu.from_bf16(want_back.data(), want16.data(), n);
  for (long long i = 0; i < n; ++i) {
    ASSERT_EQ(std::bit_cast<std::uint32_t>(back[i]), std::bit_cast<std::uint32_t>(want_back[i])) << i;
  }

  const long long rows = 5, width = 24;
  const std::vector<long long> slots = {9, 0, 4, 11, 2};
  const std::vector<Index> slots_index(slots.begin(), slots.end());
  const auto src = testing::random_uniform(rows * width, 8);
  std::vector<float> cache(12 * width, 0.5f), want_cache = cache;
  run(blocks_for(rows * width),
      [&] { dev::scatter_rows_kernel<float>(cache.data(), src.data(), nullptr, nullptr, slots.data(), rows, width); });
  cpu.scatter_rows(want_cache.data(), src.data(), slots_index.data(), rows, width);
  EXPECT_EQ(cache, want_cache);
  // A KV cache's keys and values in one launch.
  const auto values = testing::random_uniform(rows * width, 10);
  std::vector<float> keys_cache(12 * width, 0.25f), values_cache = keys_cache, want_keys = keys_cache,
                                                    want_values = keys_cache;
  run(blocks_for(2 * rows * width), [&] {
    dev::scatter_rows_kernel(keys_cache.data(), src.data(), values_cache.data(), values.data(), slots.data(), rows,
                             width);
  });
  cpu.scatter_kv_rows(want_keys.data(), want_values.data(), src.data(), values.data(), slots_index.data(), rows, width);
  EXPECT_EQ(keys_cache, want_keys);
  EXPECT_EQ(values_cache, want_values);
  EXPECT_NE(values_cache, keys_cache);
  std::vector<std::uint16_t> src16(rows * width), want_cache16(12 * width, 0x3f00);
  cpu.to_bf16(src16.data(), src.data(), rows * width);
  std::vector<__nv_bfloat16> src_dev(rows * width), cache16(12 * width, __nv_bfloat16{0x3f00});
  __nv_bfloat16* const null16 = nullptr;
  for (long long i = 0; i < rows * width; ++i) src_dev[i].bits = src16[i];
  run(blocks_for(rows * width),
      [&] { dev::scatter_rows_kernel(cache16.data(), src_dev.data(), null16, null16, slots.data(), rows, width); });
  cpu.scatter_rows_bf16(want_cache16.data(), src16.data(), slots_index.data(), rows, width);
  for (long long i = 0; i < 12 * width; ++i) ASSERT_EQ(cache16[i].bits, want_cache16[i]) << i;
}

// The cuBLAS attention path's pieces: the causal softmax of two heads' 21 x 21 scores, and
// dS = P (dP - rowsum(P dP)), against the same formulas in double; without and with a score cap
// (Gemma 2's, here 1.5: the scores, up to 4, bend), where dS also carries the cap's slope, and
// with a sliding window of 6 keys (with the cap: Gemma 2's local layers).
TEST(CudaKernelsEmulated, CausalSoftmaxAndAttentionDs) {
  const long long len = 21, heads = 2, square = len * len;
  for (const auto& [cap, window] : {std::pair{0.0f, 0LL}, std::pair{1.5f, 0LL}, std::pair{1.5f, 6LL}}) {
    SCOPED_TRACE(cat("cap ", cap, ", window ", window));
    const auto first = [&](long long i) { return window > 0 && i >= window ? i - window + 1 : 0; };
    auto p = testing::random_uniform(heads * square, 1, -4.0f, 4.0f);
    const auto scores = p;
    const auto capped = [&](double s) { return cap > 0.0f ? cap * std::tanh(s / cap) : s; };
    cuda_emulation::launch(dim3(len, heads), dim3(kThreads), 0,
                           [&] { dev::causal_softmax_kernel(p.data(), len, len, 0, square, cap, window); });
    std::vector<float> want(heads * square);
    for (long long h = 0; h < heads; ++h) {
      for (long long i = 0; i < len; ++i) {
        const float* row = scores.data() + h * square + i * len;
        double m = -1e300, sum = 0.0;
        for (long long j = first(i); j <= i; ++j) m = std::max(m, capped(row[j]));
        for (long long j = first(i); j <= i; ++j) sum += std::exp(capped(row[j]) - m);
        for (long long j = 0; j < len; ++j) {
          want[h * square + i * len + j] = j >= first(i) && j <= i ? std::exp(capped(row[j]) - m) / sum : 0.0;
        }
      }
    }
    EXPECT_LT(testing::relative_error(p, want), 1e-6) << "cap " << cap;
    auto ds = testing::random_uniform(heads * square, 2);
    std::vector<float> want_ds(ds.size());
    for (long long r = 0; r < heads * len; ++r) {
      double dot = 0.0;
      for (long long j = 0; j < len; ++j) dot += static_cast<double>(p[r * len + j]) * ds[r * len + j];
      for (long long j = 0; j < len; ++j) {
        const double t = capped(scores[r * len + j]) / cap;
        want_ds[r * len + j] = p[r * len + j] * (ds[r * len + j] - dot) * (cap > 0.0f ? 1.0 - t * t : 1.0);
      }
    }
    cuda_emulation::launch(dim3(len, heads), dim3(kThreads), 0, [&] {
      dev::attention_ds_kernel(ds.data(), p.data(), len, cap > 0.0f ? scores.data() : nullptr, cap);
    });
    EXPECT_LT(testing::relative_error(ds, want_ds), 1e-5) << "cap " << cap;
  }
}

// CudaKernels::row_top_k's two launches: each chunk's k best, then each row's k best of those.
std::vector<double> top_k_emulated(const std::vector<float>& z, long long n, long long valid, long long k,
                                   long long start) {
  const long long chunks = smp::row_chunks(valid);
  std::vector<float> values(n * chunks * k, NAN);
  std::vector<long long> columns(n * chunks * k, -7);
  const auto candidates = [&] { smp::row_top_k_chunks_kernel(values.data(), columns.data(), z.data(), valid, k); };
  run(0, candidates, dim3(static_cast<unsigned>(n), static_cast<unsigned>(chunks)));
  std::vector<double> top(n * 2 * k, NAN);
  run(n, [&] { smp::row_top_k_kernel(top.data(), values.data(), columns.data(), chunks * k, k, start); });
  return top;
}

// CudaKernels::gumbel_argmax's two launches: each chunk's winner, then each row's of those.
std::pair<std::vector<double>, std::vector<double>> gumbel_argmax_emulated(
    const std::vector<float>& z, long long n, long long valid, const std::vector<double>& threshold, bool noisy,
    const std::vector<unsigned long long>& ids, const std::vector<long long>& positions, long long start) {
  const long long chunks = smp::row_chunks(valid);
  std::vector<double> chunk_score(n * chunks, NAN);
  std::vector<long long> chunk_token(n * chunks, -7);
  const auto winners = [&] {
    smp::gumbel_argmax_chunks_kernel(chunk_score.data(), chunk_token.data(), z.data(), valid, threshold.data(), noisy,
                                     42, ids.data(), positions.data(), start);
  };
  run(0, winners, dim3(static_cast<unsigned>(n), static_cast<unsigned>(chunks)));
  std::vector<double> score(n, NAN), id(n, NAN);
  run(n, [&] { smp::gumbel_argmax_kernel(score.data(), id.data(), chunk_score.data(), chunk_token.data(), chunks); });
  return {score, id};
}

// The two launches against CpuKernels::gumbel_argmax, greedy and noisy: the same tokens, and the
// same scores (the same operations on the same token).
void expect_gumbel_argmax_as_cpu(const std::vector<float>& z, long long n, long long valid,
                                 const std::vector<double>& threshold, const std::vector<unsigned long long>& ids,
                                 const std::vector<long long>& positions, long long start) {
  const CpuKernels cpu;
  const std::vector<std::uint64_t> ids64(ids.begin(), ids.end());
  const std::vector<std::int64_t> positions64(positions.begin(), positions.end());
  for (const bool noisy : {false, true}) {
    std::vector<double> want_score(n), want_id(n);
    cpu.gumbel_argmax(want_score.data(), want_id.data(), z.data(), n, valid, threshold.data(), noisy, 42, ids64.data(),
                      positions64.data(), start);
    const auto [score, id] = gumbel_argmax_emulated(z, n, valid, threshold, noisy, ids, positions, start);
    EXPECT_EQ(id, want_id) << (noisy ? "noisy" : "greedy");
    EXPECT_EQ(score, want_score) << (noisy ? "noisy" : "greedy");
  }
}

// Top-k over rows of three chunks: the best entries crowded into one chunk, spread over all,
// ties across a chunk boundary, banned (-inf) entries, and a row with fewer finite entries than
// k -- the CPU's candidates exactly.
TEST(CudaKernelsEmulated, TopKOverSeveralChunks) {
  const CpuKernels cpu;
  const long long n = 4, valid = 2 * smp::kRowChunk + 700, start = 90000;
  auto z = testing::random_uniform(n * valid, 21, -4.0f, 4.0f);
  // Row 0: its best 30 in chunk 0; row 1: a tie across the first chunk boundary; row 2: banned
  // entries; row 3: 8 finite entries.
  for (long long v = 0; v < 30; ++v) z[v] = 5.0f + 0.01f * static_cast<float>(v);
  for (long long i = 0; i < 3; ++i) z[valid + smp::kRowChunk - 1 - i] = z[valid + smp::kRowChunk + i] = 6.0f;
  for (long long v = 0; v < valid; v += 3) z[2 * valid + v] = -INFINITY;
  for (long long v = 0; v < valid; ++v) z[3 * valid + v] = v % 1000 == 999 ? 1.0f : -INFINITY;
  for (const long long k : {1LL, 5LL, 12LL}) {  // 12: more than row 3 has, fewer than row 0's crowd
    std::vector<double> want(n * 2 * k);
    cpu.row_top_k(want.data(), z.data(), n, valid, k, start);
    EXPECT_EQ(top_k_emulated(z, n, valid, k, start), want) << "k " << k;
  }
}

// The sampler on a shard of 500 of a 2000-token vocabulary: processed logits (penalty, EOS ban,
// temperature), row statistics in double, the top-k offer and its raw logits, and the Gumbel-max
// choice with Philox noise -- the same tokens as the CPU, exactly.
TEST(CudaKernelsEmulated, SamplerKernels) {
  const CpuKernels cpu;
  const long long n = 3, ld = 512, valid = 500, start = 1500;
  auto logits = testing::random_uniform(n * ld, 1, -5.0f, 5.0f);
  logits[7] = logits[9];  // a tie in row 0
  const std::vector<std::int32_t> history = {1501, 1501, 1600, 3, 1999, 1700};
  const std::vector<long long> offsets = {0, 3, 4, 6};
  const std::vector<Index> offsets_index(offsets.begin(), offsets.end());
  const std::vector<unsigned char> ban = {0, 1, 1};
  const std::vector<std::int32_t> eos = {1999, 1502, 7};
  std::vector<float> z(n * valid, NAN), want_z(n * valid);
  run(n, [&] {
    smp::sampling_logits_kernel(z.data(), logits.data(), ld, valid, start, history.data(), offsets.data(), 1.3f,
                                ban.data(), eos.data(), 3, 1.0f / 0.7f);
  });
  cpu.sampling_logits(want_z.data(), logits.data(), n, ld, valid, start, history.data(), offsets_index.data(), 1.3f,
                      ban.data(), eos.data(), 3, 1.0f / 0.7f);
  for (long long i = 0; i < n * valid; ++i) ASSERT_EQ(z[i], want_z[i]) << i;

  std::vector<double> mx(n, NAN), want_mx(n), se(n, NAN), want_se(n);
  run(n, [&] { smp::row_max_f64_kernel(mx.data(), z.data(), valid, valid, true); });
  cpu.row_max_f64(want_mx.data(), z.data(), n, valid, valid, true);
  EXPECT_EQ(mx, want_mx);
  run(n, [&] { smp::row_sumexp_f64_kernel(se.data(), z.data(), valid, valid, mx.data(), true); });
  cpu.row_sumexp_f64(want_se.data(), z.data(), n, valid, valid, want_mx.data(), true);
  EXPECT_LT(testing::relative_error(se, want_se), 1e-12);

  const long long k = 5;
  std::vector<double> want_top(n * 2 * k);
  cpu.row_top_k(want_top.data(), z.data(), n, valid, k, start);
  EXPECT_EQ(top_k_emulated(z, n, valid, k, start), want_top);
  // Candidates' raw logits, ids at stride 2 as in a top-k offer (the values unread): 40 a row over
  // 2 blocks of 32 threads, so that the grid-stride loop takes some twice; ids in the shard, before
  // and past it, and empty slots (-inf, -1) -- the CPU's values, which are the logits or -inf.
  const long long count = 40;
  std::vector<double> pairs(2 * n * count, 0.0);
  for (long long j = 0; j < n * count; ++j) pairs[2 * j + 1] = j % 9 == 0 ? -INFINITY : start - 30 + 17 * j % 560;
  pairs[3] = -1.0;
  std::vector<double> raw(n * count, NAN), want_raw(n * count);
  cuda_emulation::launch(dim3(2), dim3(32), 0, [&] {
    smp::logits_at_ids_kernel(raw.data(), logits.data(), n, ld, valid, pairs.data() + 1, count, 2, start);
  });
  cpu.logits_at_ids(want_raw.data(), logits.data(), n, ld, valid, pairs.data() + 1, count, 2, start);
  EXPECT_EQ(raw, want_raw);
  for (long long j = 0; j < n * count; ++j) {
    const double id = pairs[2 * j + 1];
    const bool held = id >= static_cast<double>(start) && id < static_cast<double>(start + valid);
    const long long column = held ? static_cast<long long>(id) - start : 0;
    EXPECT_EQ(want_raw[j], held ? static_cast<double>(logits[(j / count) * ld + column]) : -INFINITY) << "id " << id;
  }

  expect_gumbel_argmax_as_cpu(z, n, valid, {-INFINITY, 0.5, 2.0}, {11, 12, 13}, {4, 40, 400}, start);
}

// The row statistics over rows of three chunks (a maximum, then a sum of exponentials shifted by it, with banned
// entries left out or not): each chunk's partial result, then a row's reduction -- the CPU's maximum exactly, its sum
// to 1e-13 (the same terms in another order).
TEST(CudaKernelsEmulated, RowStatisticsOverSeveralChunks) {
  const CpuKernels cpu;
  const long long n = 3, valid = 2 * smp::kRowChunk + 500, ld = valid + 9, chunks = smp::row_chunks(valid);
  auto x = testing::random_uniform(n * ld, 25, -30.0f, 30.0f);
  for (long long i = 0; i < n * ld; i += 13) x[i] = -INFINITY;
  x[1 * ld + smp::kRowChunk + 3] = 40.0f;  // row 1's maximum in its middle chunk
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(chunks));
  for (const bool finite_only : {false, true}) {
    std::vector<double> partial(n * chunks, NAN), mx(n, NAN), se(n, NAN), want_mx(n), want_se(n);
    const auto maxima = [&] { smp::row_max_f64_kernel(partial.data(), x.data(), ld, valid, finite_only); };
    run(0, maxima, grid);
    run(n, [&] { smp::row_partials_f64_kernel(mx.data(), partial.data(), chunks, false); });
    cpu.row_max_f64(want_mx.data(), x.data(), n, ld, valid, finite_only);
    EXPECT_EQ(mx, want_mx) << finite_only;
    const auto sums = [&] { smp::row_sumexp_f64_kernel(partial.data(), x.data(), ld, valid, mx.data(), finite_only); };
    run(0, sums, grid);
    run(n, [&] { smp::row_partials_f64_kernel(se.data(), partial.data(), chunks, true); });
    cpu.row_sumexp_f64(want_se.data(), x.data(), n, ld, valid, want_mx.data(), finite_only);
    EXPECT_LT(testing::relative_error(se, want_se), 1e-13) << finite_only;
  }
}

// Gumbel-max over rows of three chunks: the winner in the first, middle or last chunk, a tie of
// the best score across a chunk boundary (greedy: the smaller token), a threshold no token passes
// -- the CPU's tokens, exactly.
TEST(CudaKernelsEmulated, GumbelArgmaxOverSeveralChunks) {
  const CpuKernels cpu;
  const long long n = 5, valid = 2 * smp::kRowChunk + 300, start = 7;
  auto z = testing::random_uniform(n * valid, 23, -3.0f, 3.0f);
  z[0 * valid + 10] = 9.0f, z[1 * valid + smp::kRowChunk + 5] = 9.0f, z[2 * valid + valid - 1] = 9.0f;
  z[3 * valid + smp::kRowChunk - 1] = z[3 * valid + smp::kRowChunk] = 9.0f;
  const std::vector<double> threshold = {-INFINITY, -INFINITY, 0.0, -INFINITY, 100.0};
  const std::vector<std::uint64_t> ids = {1, 2, 3, 4, 5};
  const std::vector<std::int64_t> positions = {9, 9, 9, 9, 9};
  expect_gumbel_argmax_as_cpu(z, n, valid, threshold, {ids.begin(), ids.end()}, {positions.begin(), positions.end()},
                              start);
  std::vector<double> greedy_score(n), greedy_id(n);
  cpu.gumbel_argmax(greedy_score.data(), greedy_id.data(), z.data(), n, valid, threshold.data(), false, 42, ids.data(),
                    positions.data(), start);
  EXPECT_EQ(greedy_id[3], static_cast<double>(start + smp::kRowChunk - 1)) << "the tie to the smaller token";
  EXPECT_EQ(greedy_id[4], -1.0) << "nothing passes the threshold";
}

// The top-p search's histograms over rows longer than a block's chunk (so several blocks add
// into a row), with banned (-inf) entries, ties, and each round's prefix that of the row's largest
// entry: the same integers as the CPU's, exactly.
TEST(CudaKernelsEmulated, MassHistogram) {
  const CpuKernels cpu;
  const long long n = 2, ld = 5200, valid = 5100;
  ASSERT_GT(valid, smp::kRowChunk);
  auto x = testing::random_uniform(n * ld, 7, -20.0f, 4.0f);
  x[3] = x[4] = x[5];
  x[10] = x[ld + 11] = -INFINITY;
  std::vector<double> shift(n);
  cpu.row_max_f64(shift.data(), x.data(), n, ld, valid, true);
  for (int bits = 0; bits < 32; bits += spin::kMassBucketBits) {
    std::vector<std::uint64_t> prefix(n);
    for (long long r = 0; r < n; ++r) {
      const std::uint32_t top = spin::float_order_key(static_cast<float>(shift[static_cast<std::size_t>(r)]));
      prefix[static_cast<std::size_t>(r)] = bits == 0 ? 0 : top >> (32 - bits);
    }
    std::vector<std::uint64_t> want(n * spin::kMassBuckets, 1);
    cpu.row_mass_histogram(want.data(), x.data(), n, ld, valid, shift.data(), prefix.data(), bits);
    std::vector<unsigned long long> got(want.size(), 0);  // CudaKernels zeroes it before the launch
    const std::vector<unsigned long long> prefix_ull(prefix.begin(), prefix.end());
    const auto chunks = static_cast<unsigned>(smp::row_chunks(valid));
    const auto kernel = [&] {
      smp::row_mass_histogram_kernel(got.data(), x.data(), ld, valid, shift.data(), prefix_ull.data(), bits);
    };
    run(0, kernel, dim3(static_cast<unsigned>(n), chunks));
    std::uint64_t counted = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i], want[i]) << "bits " << bits << ", bucket " << i;
      counted += want[i];
    }
    EXPECT_GT(counted, 0u) << "bits " << bits << ": the prefix of the largest entry matches it at least";
  }
}

}  // namespace
}  // namespace spin::kernels
