// The norms' CUDA kernels (src/kernels/cuda/cuda_kernels_device.cuh) run on the CPU under
// tests/common/cuda_emulation.h, with the launch shapes CudaKernels uses, against their CpuKernels
// twins: RMSNorm (Gemma's 1 + w too), OLMo 2's norm across the TP group from its sums and dots, and
// LayerNorm with and without weight and bias and with a weight per head (Command R+'s q / k norms):
// the forward by rows, the weight gradients by columns over chunks of rows with their atomics.
// Float32 arithmetic in another order on both sides: 1e-5 relative L2; bf16 outputs the same rounding
// but for float32 order ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"

// clang-format off
#include "common/cuda_emulation.h"
#include "kernels/cuda/cuda_kernels_device.cuh"
#include "unit/kernels/cuda/emulated_launch.h"
// clang-format on

namespace spin::kernels {
namespace {

namespace dev = cuda_detail::device;
using cuda_detail::blocks_for;
using cuda_detail::kThreads;
using emulated::run;

TEST(CudaKernelsEmulated, RmsNormForwardAndBackward) {
  // w_offset 1: Gemma's norms (1 + w).
  for (const float w_offset : {0.0f, 1.0f}) {
    SCOPED_TRACE(w_offset);
    const CpuKernels cpu;
    // The row kernels (a block per row) on 24 rows; dw's column kernel over 260 rows, two chunks
    // of 256 (its blocks are few: the emulation's cost is in the barriers of many blocks).
    const long long rows = 24, n = 260, dim = 70;
    const auto x = testing::random_uniform(n * dim, 1),
               w = testing::random_uniform(dim, 2, 0.5f - w_offset, 1.5f - w_offset),
               dout = testing::random_uniform(n * dim, 3);
    std::vector<float> out(rows * dim, NAN), rstd(rows, NAN), want_out(n * dim), want_rstd(n);
    run(rows,
        [&] { dev::rmsnorm_forward_kernel<float>(out.data(), rstd.data(), x.data(), w.data(), w_offset, dim, 1e-5f); });
    cpu.rmsnorm_forward(want_out.data(), want_rstd.data(), x.data(), w.data(), n, dim, 1e-5f, w_offset);
    want_out.resize(rows * dim);
    EXPECT_LT(testing::relative_error(out, want_out), 1e-5);
    EXPECT_LT(testing::relative_error(rstd, std::vector<float>(want_rstd.begin(), want_rstd.begin() + rows)), 1e-5);
    std::vector<__nv_bfloat16> out16(rows * dim, __nv_bfloat16{0xFFFF});
    std::vector<std::uint16_t> want16(rows * dim);
    std::vector<float> scratch(rows);
    run(rows, [&] {
      dev::rmsnorm_forward_kernel<__nv_bfloat16>(out16.data(), rstd.data(), x.data(), w.data(), w_offset, dim, 1e-5f);
    });
    cpu.rmsnorm_forward_bf16(want16.data(), scratch.data(), x.data(), w.data(), rows, dim, 1e-5f, w_offset);
    long long differ = 0;
    for (std::size_t i = 0; i < want16.size(); ++i) differ += out16[i].bits != want16[i];
    EXPECT_LE(differ, rows * dim / 50) << "bf16 outputs: the same rounding but for float32 order ties";

    auto dx = testing::random_uniform(rows * dim, 4), dw = testing::random_uniform(dim, 5);
    auto want_dx = dx, want_dw = dw;
    run(rows, [&] {
      dev::rmsnorm_backward_dx_kernel(dx.data(), dout.data(), x.data(), w.data(), w_offset, rstd.data(), dim);
    });
    cuda_emulation::launch(
        dim3((dim + kThreads - 1) / kThreads, (n + dev::kRowsPerChunk - 1) / dev::kRowsPerChunk), dim3(kThreads), 0,
        [&] { dev::rmsnorm_backward_dw_kernel(dw.data(), dout.data(), x.data(), want_rstd.data(), n, dim); });
    std::vector<float> ignored(n * dim, 0.0f);
    std::vector<float> unused_dw(dim, 0.0f);
    cpu.rmsnorm_backward(want_dx.data(), unused_dw.data(), dout.data(), x.data(), w.data(), want_rstd.data(), rows, dim,
                         w_offset);
    cpu.rmsnorm_backward(ignored.data(), want_dw.data(), dout.data(), x.data(), w.data(), want_rstd.data(), n, dim,
                         w_offset);
    EXPECT_LT(testing::relative_error(dx, want_dx), 1e-5);
    EXPECT_LT(testing::relative_error(dw, want_dw), 1e-5);

    // Over a bf16 x (Qwen3's head norms): the same kernels reading it widened, against the CPU's.
    std::vector<__nv_bfloat16> x16(rows * dim);
    std::vector<std::uint16_t> x16_bits(rows * dim);
    for (std::size_t i = 0; i < x16.size(); ++i) x16[i].bits = x16_bits[i] = f32_to_bf16(x[i]);
    std::vector<__nv_bfloat16> o16(rows * dim, __nv_bfloat16{0xFFFF});
    std::vector<std::uint16_t> want_o16(rows * dim);
    std::vector<float> rstd16(rows, NAN), want_rstd16(rows);
    run(rows, [&] {
      dev::rmsnorm_forward_kernel<__nv_bfloat16>(o16.data(), rstd16.data(), x16.data(), w.data(), w_offset, dim, 1e-5f);
    });
    cpu.rmsnorm_forward_bf16_in(want_o16.data(), want_rstd16.data(), x16_bits.data(), w.data(), rows, dim, 1e-5f,
                                w_offset);
    EXPECT_LT(testing::relative_error(rstd16, want_rstd16), 1e-5);
    differ = 0;
    for (std::size_t i = 0; i < want_o16.size(); ++i) differ += o16[i].bits != want_o16[i];
    EXPECT_LE(differ, rows * dim / 50) << "bf16 outputs: the same rounding but for float32 order ties";
    auto dx16 = testing::random_uniform(rows * dim, 6), dw16 = testing::random_uniform(dim, 7);
    auto want_dx16 = dx16, want_dw16 = dw16;
    run(rows, [&] {
      dev::rmsnorm_backward_dx_kernel(dx16.data(), dout.data(), x16.data(), w.data(), w_offset, want_rstd16.data(),
                                      dim);
    });
    run(
        1,
        [&] { dev::rmsnorm_backward_dw_kernel(dw16.data(), dout.data(), x16.data(), want_rstd16.data(), rows, dim); },
        dim3((dim + kThreads - 1) / kThreads, (rows + dev::kRowsPerChunk - 1) / dev::kRowsPerChunk));
    cpu.rmsnorm_backward_bf16_in(want_dx16.data(), want_dw16.data(), dout.data(), x16_bits.data(), w.data(),
                                 want_rstd16.data(), rows, dim, w_offset);
    EXPECT_LT(testing::relative_error(dx16, want_dx16), 1e-5);
    EXPECT_LT(testing::relative_error(dw16, want_dw16), 1e-5);
  }
}

// The norm over rows spread across ranks (OLMo 2's q and k norms): the row sums (with and without
// weights), the norm from given sums into float32 and bf16 with rstd written over the sums, the
// input gradient from given sums element-wise, against the CPU kernels.
TEST(CudaKernelsEmulated, RmsNormFromSumsAndDots) {
  const CpuKernels cpu;
  const long long n = 12, dim = 70, total = 3 * dim;
  const auto x = testing::random_uniform(n * dim, 1), w = testing::random_uniform(dim, 2, 0.5f, 1.5f),
             dout = testing::random_uniform(n * dim, 3);
  std::vector<float> sums(n, NAN), want_sums(n), dots(n, NAN), want_dots(n);
  run(n, [&] { dev::row_dot_kernel(sums.data(), x.data(), x.data(), nullptr, dim); });
  cpu.row_dot(want_sums.data(), x.data(), x.data(), nullptr, n, dim);
  EXPECT_LT(testing::relative_error(sums, want_sums), 1e-5);
  run(n, [&] { dev::row_dot_kernel(dots.data(), dout.data(), x.data(), w.data(), dim); });
  cpu.row_dot(want_dots.data(), dout.data(), x.data(), w.data(), n, dim);
  EXPECT_LT(testing::relative_error(dots, want_dots), 1e-5);
  for (float& s : sums) s *= 3.0f;  // as if two more ranks held as much
  for (float& d : dots) d *= 2.0f;

  std::vector<float> out(n * dim, NAN), want(n * dim), want_rstd(n), rstd = sums;
  cpu.rmsnorm_forward_from_sums(want.data(), want_rstd.data(), x.data(), w.data(), sums.data(), n, dim, total, 1e-5f);
  run(n, [&] {
    dev::rmsnorm_from_sums_kernel<float>(out.data(), rstd.data(), x.data(), w.data(), rstd.data(), dim, total, 1e-5f);
  });
  EXPECT_LT(testing::relative_error(out, want), 1e-5);
  EXPECT_LT(testing::relative_error(rstd, want_rstd), 1e-6) << "rstd written over the sums";
  std::vector<__nv_bfloat16> out16(n * dim, __nv_bfloat16{0xFFFF});
  std::vector<std::uint16_t> want16(n * dim);
  std::vector<float> rstd16(n);
  run(n, [&] {
    dev::rmsnorm_from_sums_kernel<__nv_bfloat16>(out16.data(), rstd16.data(), x.data(), w.data(), sums.data(), dim,
                                                 total, 1e-5f);
  });
  cpu.to_bf16(want16.data(), want.data(), n * dim);
  long long differ = 0;
  for (std::size_t i = 0; i < want16.size(); ++i) differ += out16[i].bits != want16[i];
  EXPECT_LE(differ, n * dim / 50) << "bf16 outputs: the same rounding but for float32 order ties";

  auto dx = testing::random_uniform(n * dim, 4), dw = testing::random_uniform(dim, 5);
  auto want_dx = dx, want_dw = dw;
  run(blocks_for(n * dim), [&] {
    dev::rmsnorm_from_dots_dx_kernel(dx.data(), dout.data(), x.data(), w.data(), want_rstd.data(), dots.data(), n, dim,
                                     total);
  });
  run(
      1, [&] { dev::rmsnorm_backward_dw_kernel(dw.data(), dout.data(), x.data(), want_rstd.data(), n, dim); },
      dim3((dim + kThreads - 1) / kThreads, (n + dev::kRowsPerChunk - 1) / dev::kRowsPerChunk));
  cpu.rmsnorm_backward_from_dots(want_dx.data(), want_dw.data(), dout.data(), x.data(), w.data(), want_rstd.data(),
                                 dots.data(), n, dim, total);
  EXPECT_LT(testing::relative_error(dx, want_dx), 1e-5);
  EXPECT_LT(testing::relative_error(dw, want_dw), 1e-5);
}

// LayerNorm, OLMo's without weight or bias and StableLM's with both: forward (float32 and bf16
// out), backward accumulating -- dx by rows, dw and db by columns over chunks of rows (more rows
// than a chunk: two chunks' atomic adds).
//
// The forward and dx kernels (a block a row) run over the first `few` rows -- each row its own, and
// emulating a block a row costs seconds for hundreds of rows on a loaded machine --; the dw / db
// kernel over all n, two chunks of rows, with the means of every row from the host.
TEST(CudaKernelsEmulated, LayerNorm) {
  const CpuKernels cpu;
  const long long n = 300, dim = 300, few = 12;  // more columns than threads: each thread takes two or one
  auto x = testing::random_uniform(n * dim, 21);
  for (long long j = 0; j < dim; ++j) x[j] += 5.0f;  // a row off zero mean
  const auto dout = testing::random_uniform(n * dim, 22);
  const auto w = testing::random_uniform(dim, 24), b = testing::random_uniform(dim, 25);
  const auto head = [&](const std::vector<float>& v, long long width) {
    return std::vector<float>(v.begin(), v.begin() + few * width);
  };
  for (const bool affine : {false, true}) {
    const float* wp = affine ? w.data() : nullptr;
    const float* bp = affine ? b.data() : nullptr;
    std::vector<float> out(few * dim, NAN), rstd(few, NAN), want(n * dim), want_rstd(n);
    cpu.layernorm_forward(want.data(), want_rstd.data(), x.data(), wp, bp, n, dim, 1e-5f);
    run(few, [&] { dev::layernorm_forward_kernel<float>(out.data(), rstd.data(), x.data(), wp, bp, dim, 1e-5f, 1); });
    EXPECT_LT(testing::relative_error(out, head(want, dim)), 1e-5) << affine;
    EXPECT_LT(testing::relative_error(rstd, head(want_rstd, 1)), 1e-5) << affine;
    std::vector<__nv_bfloat16> out16(few * dim, __nv_bfloat16{0xFFFF});
    std::vector<std::uint16_t> want16(few * dim);
    run(few, [&] {
      dev::layernorm_forward_kernel<__nv_bfloat16>(out16.data(), rstd.data(), x.data(), wp, bp, dim, 1e-5f, 1);
    });
    cpu.to_bf16(want16.data(), want.data(), few * dim);
    long long differ = 0;
    for (std::size_t i = 0; i < want16.size(); ++i) differ += out16[i].bits != want16[i];
    EXPECT_LE(differ, few * dim / 50) << "bf16 outputs: the same rounding but for float32 order ties";

    auto dx = testing::random_uniform(n * dim, 23);
    auto want_dx = dx;
    std::vector<float> means(n, NAN), dw(dim, 0.25f), db(dim, 0.5f), want_dw = dw, want_db = db;
    run(few, [&] {
      dev::layernorm_backward_dx_kernel(dx.data(), affine ? means.data() : nullptr, dout.data(), x.data(), wp,
                                        want_rstd.data(), dim, 1);
    });
    cpu.layernorm_backward(want_dx.data(), affine ? want_dw.data() : nullptr, affine ? want_db.data() : nullptr,
                           dout.data(), x.data(), wp, want_rstd.data(), n, dim);
    EXPECT_LT(testing::relative_error(head(dx, dim), head(want_dx, dim)), 1e-5) << affine;
    if (!affine) continue;
    // Every row's mean, as the dx kernel leaves them (the rows it ran: checked against the host's).
    for (long long i = 0; i < n; ++i) {
      double sum = 0.0;
      for (long long j = 0; j < dim; ++j) sum += x[i * dim + j];
      const float mean = static_cast<float>(sum / dim);
      if (i < few) {
        EXPECT_NEAR(means[i], mean, 1e-5f * std::fabs(mean) + 1e-6f) << i;
      }
      means[i] = mean;
    }
    const long long chunks = (n + dev::kRowsPerChunk - 1) / dev::kRowsPerChunk;
    ASSERT_EQ(chunks, 2);
    run(
        1,
        [&] {
          dev::layernorm_backward_dw_kernel(dw.data(), db.data(), dout.data(), x.data(), means.data(), want_rstd.data(),
                                            n, dim, 1);
        },
        dim3((dim + kThreads - 1) / kThreads, chunks));
    EXPECT_LT(testing::relative_error(dw, want_dw), 1e-5);
    EXPECT_LT(testing::relative_error(db, want_db), 1e-5);
  }
}

// The per-head LayerNorm (a weight row a head: Cohere's q / k norms) through the same kernels with
// w_rows = heads: forward and dx by rows (the first few row groups: a block a row is slow to
// emulate), and dw by (head, column) over chunks of row groups (two chunks), the means from the host.
TEST(CudaKernelsEmulated, HeadLayerNorm) {
  const CpuKernels cpu;
  const long long n = 260, heads = 2, dim = 48, rows = n * heads, width = heads * dim, few = 6;
  auto x = testing::random_uniform(n * width, 31);
  for (long long j = 0; j < dim; ++j) x[j] += 5.0f;
  const auto dout = testing::random_uniform(n * width, 32), w = testing::random_uniform(width, 33);
  std::vector<float> out(few * width, NAN), rstd(few * heads, NAN), want(n * width), want_rstd(rows);
  cpu.head_layernorm_forward(want.data(), want_rstd.data(), x.data(), w.data(), n, heads, dim, 1e-5f);
  run(static_cast<unsigned>(few * heads), [&] {
    dev::layernorm_forward_kernel<float>(out.data(), rstd.data(), x.data(), w.data(), nullptr, dim, 1e-5f, heads);
  });
  const auto first = [](const std::vector<float>& v, long long count) {
    return std::vector<float>(v.begin(), v.begin() + count);
  };
  EXPECT_LT(testing::relative_error(out, first(want, few * width)), 1e-5);
  EXPECT_LT(testing::relative_error(rstd, first(want_rstd, few * heads)), 1e-5);
  const auto dx0 = testing::random_uniform(n * width, 34);
  std::vector<float> dx = first(dx0, few * width), want_dx = dx0;
  std::vector<float> means(rows), dw(width, 0.25f), want_dw = dw;
  for (long long i = 0; i < rows; ++i) {
    double sum = 0.0;
    for (long long j = 0; j < dim; ++j) sum += x[i * dim + j];
    means[i] = static_cast<float>(sum / dim);
  }
  run(static_cast<unsigned>(few * heads), [&] {
    dev::layernorm_backward_dx_kernel(dx.data(), nullptr, dout.data(), x.data(), w.data(), want_rstd.data(), dim,
                                      heads);
  });
  cpu.head_layernorm_backward(want_dx.data(), want_dw.data(), dout.data(), x.data(), w.data(), want_rstd.data(), n,
                              heads, dim);
  EXPECT_LT(testing::relative_error(dx, first(want_dx, few * width)), 1e-5);
  const long long chunks = (n + dev::kRowsPerChunk - 1) / dev::kRowsPerChunk;
  ASSERT_EQ(chunks, 2);
  run(
      1,
      [&] {
        dev::layernorm_backward_dw_kernel(dw.data(), nullptr, dout.data(), x.data(), means.data(), want_rstd.data(),
                                          rows, dim, heads);
      },
      dim3((width + kThreads - 1) / kThreads, chunks));
  EXPECT_LT(testing::relative_error(dw, want_dw), 1e-5);
}

}  // namespace
}  // namespace spin::kernels
